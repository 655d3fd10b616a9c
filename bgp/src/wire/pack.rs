//! Update packing for Adj-RIB-Out (RFC 4271 §4.3, §9.2): as many NLRI as fit under one set
//! of attributes per UPDATE, so a full table goes out in as few messages as possible.

use std::net::IpAddr;

use bytes::{BufMut, BytesMut};

use super::attribute::{attr_header_len, attr_type, encode_path_attrs, put_attr_header};
use super::header::{begin, finish, message_type};
use super::mp::encode_mp_reach_head;
use super::nlri::{encode_nlri, nlri_len};
use super::update::check_family;
use super::{EncodeContext, EncodeError, Family, MpNextHop, Nlri, PathAttrs, AFI_IPV6, HEADER_LEN};

/// Withdrawn Routes Length + Total Path Attribute Length.
const UPDATE_FIXED: usize = HEADER_LEN + 4;
const MP_FLAGS: u8 = 0x80;

/// How many leading entries of `rest` fit: `fits(total)` is asked with the running size
/// starting from `base`. Returns (count, total).
fn fitting(
    rest: &[Nlri],
    add_path: bool,
    base: usize,
    fits: impl Fn(usize) -> bool,
) -> (usize, usize) {
    let mut total = base;
    let mut count = 0;
    for n in rest {
        let next = total + nlri_len(n, add_path);
        if !fits(next) {
            break;
        }
        total = next;
        count += 1;
    }
    (count, total)
}

/// Runs `write` once per message until `nlri` is consumed; restores `out` on error.
fn pack(
    nlri: &[Nlri],
    add_path: bool,
    base: usize,
    fits: impl Fn(usize) -> bool,
    max: usize,
    out: &mut BytesMut,
    mut write: impl FnMut(&[Nlri], usize, &mut BytesMut) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    let restore = out.len();
    let mut rest = nlri;
    let mut messages = 0;
    while !rest.is_empty() {
        let (count, total) = fitting(rest, add_path, base, &fits);
        let Some((chunk, tail)) = rest.split_at_checked(count).filter(|_| count > 0) else {
            out.truncate(restore);
            let len = rest.first().map_or(base, |n| base + nlri_len(n, add_path));
            return Err(EncodeError::TooLong { len, max });
        };
        if let Err(e) = write(chunk, total, out) {
            out.truncate(restore);
            return Err(e);
        }
        messages += 1;
        rest = tail;
    }
    Ok(messages)
}

fn put_nlri(chunk: &[Nlri], add_path: bool, out: &mut BytesMut) {
    for n in chunk {
        encode_nlri(n, add_path, out);
    }
}

/// Appends as few UPDATEs as fit within `ctx.max_message_len()` announcing all of `nlri`
/// with `attrs`; returns how many were written (0 for no NLRI).
///
/// IPv4 unicast goes in the NLRI field with `attrs.next_hop` as NEXT_HOP. Every other family
/// (and IPv4 unicast without `attrs.next_hop`, RFC 8950) goes in MP_REACH_NLRI with
/// `mp_next_hop`, and NEXT_HOP is omitted. Path identifiers are written when
/// `ctx.add_path(family)`. On error `out` is left as it was.
pub fn encode_announcements(
    attrs: &PathAttrs,
    family: Family,
    mp_next_hop: Option<MpNextHop>,
    nlri: &[Nlri],
    ctx: &EncodeContext,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    if nlri.is_empty() {
        return Ok(0);
    }
    check_family(family, nlri)?;
    let max = ctx.max_message_len();
    let add_path = ctx.add_path(family);
    out.reserve(nlri.iter().map(|n| nlri_len(n, add_path)).sum::<usize>() + 256);

    if family == Family::IPV4_UNICAST && attrs.next_hop.is_some() {
        let mut attr_buf = BytesMut::with_capacity(256);
        encode_path_attrs(attrs, true, ctx, &mut attr_buf)?;
        let base = UPDATE_FIXED + attr_buf.len();
        return pack(
            nlri,
            add_path,
            base,
            |n| n <= max,
            max,
            out,
            |chunk, _, out| {
                let start = begin(out, message_type::UPDATE);
                out.put_u16(0);
                out.put_u16(attr_buf.len() as u16);
                out.put_slice(&attr_buf);
                put_nlri(chunk, add_path, out);
                finish(out, start, max)
            },
        );
    }

    let missing = EncodeError::MissingNextHop {
        afi: family.afi,
        safi: family.safi,
    };
    let nh = mp_next_hop.ok_or(missing.clone())?;
    // RFC 4760 §3 / RFC 8950: an IPv6 family needs an IPv6 next hop.
    if family.afi == AFI_IPV6 && matches!(nh.global, IpAddr::V4(_)) {
        return Err(missing);
    }
    let mut other = BytesMut::with_capacity(256);
    encode_path_attrs(attrs, false, ctx, &mut other)?;
    let mut head = BytesMut::with_capacity(40);
    encode_mp_reach_head(family, &nh, &mut head);
    let fixed = UPDATE_FIXED + other.len();
    let fits = |v: usize| fixed + attr_header_len(v) + v <= max;
    pack(
        nlri,
        add_path,
        head.len(),
        fits,
        max,
        out,
        |chunk, vlen, out| {
            let start = begin(out, message_type::UPDATE);
            out.put_u16(0);
            out.put_u16((attr_header_len(vlen) + vlen + other.len()) as u16);
            put_attr_header(out, MP_FLAGS, attr_type::MP_REACH_NLRI, vlen)?;
            out.put_slice(&head);
            put_nlri(chunk, add_path, out);
            out.put_slice(&other);
            finish(out, start, max)
        },
    )
}

/// Appends as few UPDATEs as fit withdrawing all of `nlri`: the Withdrawn Routes field for
/// IPv4 unicast, MP_UNREACH_NLRI for other families. Returns the message count.
pub fn encode_withdrawals(
    family: Family,
    nlri: &[Nlri],
    ctx: &EncodeContext,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    if nlri.is_empty() {
        return Ok(0);
    }
    check_family(family, nlri)?;
    let max = ctx.max_message_len();
    let add_path = ctx.add_path(family);
    out.reserve(nlri.iter().map(|n| nlri_len(n, add_path)).sum::<usize>() + 64);
    if family == Family::IPV4_UNICAST {
        return pack(
            nlri,
            add_path,
            0,
            |w| UPDATE_FIXED + w <= max,
            max,
            out,
            |chunk, wlen, out| {
                let start = begin(out, message_type::UPDATE);
                out.put_u16(wlen as u16);
                put_nlri(chunk, add_path, out);
                out.put_u16(0);
                finish(out, start, max)
            },
        );
    }
    let fits = |v: usize| UPDATE_FIXED + attr_header_len(v) + v <= max;
    pack(nlri, add_path, 3, fits, max, out, |chunk, vlen, out| {
        let start = begin(out, message_type::UPDATE);
        out.put_u16(0);
        out.put_u16((attr_header_len(vlen) + vlen) as u16);
        put_attr_header(out, MP_FLAGS, attr_type::MP_UNREACH_NLRI, vlen)?;
        out.put_u16(family.afi);
        out.put_u8(family.safi);
        put_nlri(chunk, add_path, out);
        finish(out, start, max)
    })
}

/// Appends the End-of-RIB marker for `family` (RFC 4724 §2): an empty UPDATE for IPv4
/// unicast, an UPDATE with an empty MP_UNREACH_NLRI otherwise.
pub fn encode_end_of_rib(family: Family, out: &mut BytesMut) {
    let start = begin(out, message_type::UPDATE);
    out.put_u16(0);
    if family == Family::IPV4_UNICAST {
        out.put_u16(0);
    } else {
        out.put_u16(6);
        out.put_u8(MP_FLAGS);
        out.put_u8(attr_type::MP_UNREACH_NLRI);
        out.put_u8(3);
        out.put_u16(family.afi);
        out.put_u8(family.safi);
    }
    // 23 or 29 bytes: always within any maximum.
    let _ = finish(out, start, usize::from(u16::MAX));
}
