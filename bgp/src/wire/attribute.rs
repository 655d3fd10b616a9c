// ===== Path attributes (RFC 4271 §4.3) =====
//
//  0                   1
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Attr. Flags  |Attr. Type Code|
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  | Attr. Length (1 or 2 octets)  |   2 octets when Extended Length (0x10) is set
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  | Attribute Value (variable)    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Flags: Optional 0x80, Transitive 0x40, Partial 0x20, Extended Length 0x10.

//! The path attribute list: decoding with RFC 7606 error handling, canonical encoding.

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use super::aspath::{
    as4_path_of, as_path_len, decode_as_path, encode_as_path, merge_as4_path, needs_as4_path,
    strip_confed,
};
use super::community::{
    decode_communities, decode_large_communities, encode_communities, encode_large_communities,
};
use super::mp::{decode_mp_reach, decode_mp_unreach};
use super::{
    multiple_of, Aggregator, AsPath, DecodeContext, EncodeContext, EncodeError, ErrorAction,
    MpReach, MpUnreach, Origin, PathAttrs, RawAttribute, UpdateError, AS_TRANS,
};

/// Path attribute type codes (IANA "BGP Path Attributes").
pub mod attr_type {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// Attribute flag bits (RFC 4271 §4.3).
pub mod attr_flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

use attr_flag::*;
use attr_type::*;

const WELL_KNOWN: u8 = TRANSITIVE;
const OPTIONAL_TRANSITIVE: u8 = OPTIONAL | TRANSITIVE;

/// The Optional and Transitive bits each known attribute must carry (RFC 7606 §3(c)).
fn expected_flags(code: u8) -> Option<u8> {
    Some(match code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => WELL_KNOWN,
        MULTI_EXIT_DISC | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI => {
            OPTIONAL
        }
        AGGREGATOR | COMMUNITIES | AS4_PATH | AS4_AGGREGATOR | LARGE_COMMUNITIES => {
            OPTIONAL_TRANSITIVE
        }
        _ => return None,
    })
}

/// What RFC 7606 §7 (and RFC 6793 §6, RFC 8092 §5) prescribes for a malformed attribute of
/// this type. MP_REACH_NLRI / MP_UNREACH_NLRI are handled separately (session reset).
pub fn malformed_action(code: u8) -> ErrorAction {
    match code {
        ATOMIC_AGGREGATE | AGGREGATOR | AS4_PATH | AS4_AGGREGATOR => ErrorAction::AttributeDiscard,
        MP_REACH_NLRI | MP_UNREACH_NLRI => ErrorAction::SessionReset,
        _ => ErrorAction::TreatAsWithdraw,
    }
}

fn is_known(code: u8) -> bool {
    expected_flags(code).is_some()
}

/// Attributes of one UPDATE as decoded.
#[derive(Debug, Default)]
pub(crate) struct DecodedAttrs {
    pub attrs: PathAttrs,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub treat_as_withdraw: bool,
    pub discarded: Vec<u8>,
}

/// Splits one attribute off `buf`: (flags, type, value, whole attribute, rest).
type Split<'a> = (u8, u8, &'a [u8], &'a [u8], &'a [u8]);

fn split_attr(buf: &[u8]) -> Result<Split<'_>, UpdateError> {
    let overrun = UpdateError::MalformedAttributeList("attribute overruns the path attributes");
    let (flags, code, len, hdr) = match *buf {
        [f, c, l0, l1, ..] if f & EXTENDED_LENGTH != 0 => {
            (f, c, usize::from(u16::from_be_bytes([l0, l1])), 4)
        }
        [f, c, l, ..] if f & EXTENDED_LENGTH == 0 => (f, c, usize::from(l), 3),
        _ => return Err(overrun),
    };
    let (whole, rest) = buf.split_at_checked(hdr + len).ok_or(overrun)?;
    let value = whole.get(hdr..).unwrap_or_default();
    Ok((flags, code, value, whole, rest))
}

fn be32(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes)
}

/// Decodes the Path Attributes field. `Err` only for what RFC 7606 leaves at session reset;
/// everything softer is recorded in the result. Note: RFC 7606 §4 allows treat-as-withdraw
/// when an attribute overruns the field, but the unparsed tail may hold an MP_REACH_NLRI
/// whose routes could then not be withdrawn, so this codec resets the session instead.
pub(crate) fn decode_attrs(
    mut buf: &[u8],
    ctx: &DecodeContext,
) -> Result<DecodedAttrs, UpdateError> {
    let mut d = DecodedAttrs::default();
    let mut seen = [false; 256];
    let mut as4_path: Option<AsPath> = None;
    let mut as4_aggregator: Option<Aggregator> = None;
    while !buf.is_empty() {
        let (flags, code, value, whole, rest) = split_attr(buf)?;
        buf = rest;
        let seen_before = seen
            .get_mut(usize::from(code))
            .map(|s| std::mem::replace(s, true));
        if seen_before == Some(true) {
            // RFC 7606 §3(g): a repeated MP_* is a reset, other repeats are discarded.
            if matches!(code, MP_REACH_NLRI | MP_UNREACH_NLRI) {
                return Err(UpdateError::MalformedAttributeList("repeated MP attribute"));
            }
            d.discarded.push(code);
            continue;
        }
        // RFC 6793 §3: AS4_* from a NEW speaker are ignored.
        if ctx.four_octet_as && matches!(code, AS4_PATH | AS4_AGGREGATOR) {
            continue;
        }
        let Some(expected) = expected_flags(code) else {
            unknown_attr(flags, code, value, whole, &mut d.attrs)?;
            continue;
        };
        if flags & OPTIONAL_TRANSITIVE != expected {
            if matches!(code, MP_REACH_NLRI | MP_UNREACH_NLRI) {
                return Err(UpdateError::AttributeFlags {
                    type_code: code,
                    attr: whole.to_vec(),
                });
            }
            malformed(&mut d, code, ctx);
            continue;
        }
        let ok = match code {
            MP_REACH_NLRI => {
                d.mp_reach =
                    decode_mp_reach(value, ctx).map_err(|reason| mp_error(code, reason, whole))?;
                true
            }
            MP_UNREACH_NLRI => {
                d.mp_unreach = decode_mp_unreach(value, ctx)
                    .map_err(|reason| mp_error(code, reason, whole))?;
                true
            }
            AS4_PATH => match decode_as_path(value, true) {
                Some(mut p) => {
                    strip_confed(&mut p);
                    as4_path = Some(p);
                    true
                }
                None => false,
            },
            AS4_AGGREGATOR => match decode_aggregator(value, true) {
                Some(a) => {
                    as4_aggregator = Some(a);
                    true
                }
                None => false,
            },
            _ => decode_simple(code, value, ctx, &mut d.attrs),
        };
        if !ok {
            malformed(&mut d, code, ctx);
        }
    }
    if !ctx.four_octet_as {
        merge_as4(&mut d.attrs, as4_path, as4_aggregator);
    }
    Ok(d)
}

fn mp_error(code: u8, reason: &'static str, whole: &[u8]) -> UpdateError {
    UpdateError::OptionalAttribute {
        type_code: code,
        reason,
        attr: whole.to_vec(),
    }
}

fn malformed(d: &mut DecodedAttrs, code: u8, ctx: &DecodeContext) {
    // RFC 7606 §7.5: LOCAL_PREF from an external peer is discarded whatever its form (it is
    // ignored there anyway, RFC 4271 §5.1.5); from an internal peer it is treat-as-withdraw.
    let action = if code == LOCAL_PREF && ctx.external {
        ErrorAction::AttributeDiscard
    } else {
        malformed_action(code)
    };
    match action {
        ErrorAction::AttributeDiscard => {
            tracing::debug!(type_code = code, "RFC 7606 attribute discard");
            d.discarded.push(code);
        }
        _ => {
            tracing::debug!(type_code = code, "RFC 7606 treat-as-withdraw");
            d.treat_as_withdraw = true;
        }
    }
}

/// RFC 4271 §5 / §6.3 for attributes this codec does not know.
fn unknown_attr(
    flags: u8,
    code: u8,
    value: &[u8],
    whole: &[u8],
    attrs: &mut PathAttrs,
) -> Result<(), UpdateError> {
    if flags & OPTIONAL == 0 {
        return Err(UpdateError::UnrecognizedWellKnown {
            type_code: code,
            attr: whole.to_vec(),
        });
    }
    if flags & TRANSITIVE != 0 {
        attrs.unknown.push(RawAttribute {
            flags: flags & !EXTENDED_LENGTH,
            type_code: code,
            value: value.to_vec(),
        });
    }
    // Unknown optional non-transitive attributes are quietly ignored (RFC 4271 §5).
    Ok(())
}

fn decode_aggregator(v: &[u8], four_octet: bool) -> Option<Aggregator> {
    match (four_octet, v) {
        (false, [a, b, addr @ ..]) if addr.len() == 4 => Some(Aggregator {
            asn: u32::from(u16::from_be_bytes([*a, *b])),
            address: Ipv4Addr::from(be32(addr)?),
        }),
        (true, [a, b, c, d, addr @ ..]) if addr.len() == 4 => Some(Aggregator {
            asn: u32::from_be_bytes([*a, *b, *c, *d]),
            address: Ipv4Addr::from(be32(addr)?),
        }),
        _ => None,
    }
}

fn decode_ipv4_list(v: &[u8]) -> Option<Vec<Ipv4Addr>> {
    if v.is_empty() || !multiple_of(v.len(), 4) {
        return None;
    }
    Some(
        v.chunks_exact(4)
            .filter_map(be32)
            .map(Ipv4Addr::from)
            .collect(),
    )
}

/// Decodes a well-formed attribute into `attrs`; `false` when it is malformed.
fn decode_simple(code: u8, v: &[u8], ctx: &DecodeContext, attrs: &mut PathAttrs) -> bool {
    match code {
        // RFC 7606 §7.1.
        ORIGIN => {
            attrs.origin = match v {
                [0] => Some(Origin::Igp),
                [1] => Some(Origin::Egp),
                [2] => Some(Origin::Incomplete),
                _ => return false,
            }
        }
        // RFC 7606 §7.2.
        AS_PATH => match decode_as_path(v, ctx.four_octet_as) {
            Some(p) => attrs.as_path = Some(p),
            None => return false,
        },
        // RFC 7606 §7.3: wrong length or an address that cannot be a next hop.
        NEXT_HOP => match be32(v).map(Ipv4Addr::from) {
            Some(a) if !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()) => {
                attrs.next_hop = Some(a)
            }
            _ => return false,
        },
        // RFC 7606 §7.4, §7.5.
        MULTI_EXIT_DISC => match be32(v) {
            Some(m) => attrs.med = Some(m),
            None => return false,
        },
        LOCAL_PREF => match be32(v) {
            Some(l) => attrs.local_pref = Some(l),
            None => return false,
        },
        // RFC 7606 §7.6, §7.7 (discard on error).
        ATOMIC_AGGREGATE => {
            if !v.is_empty() {
                return false;
            }
            attrs.atomic_aggregate = true;
        }
        AGGREGATOR => match decode_aggregator(v, ctx.four_octet_as) {
            Some(a) => attrs.aggregator = Some(a),
            None => return false,
        },
        // RFC 7606 §7.8, RFC 8092 §5.
        COMMUNITIES => match decode_communities(v) {
            Some(c) => attrs.communities = c,
            None => return false,
        },
        LARGE_COMMUNITIES => match decode_large_communities(v) {
            Some(c) => attrs.large_communities = c,
            None => return false,
        },
        // RFC 7606 §7.9, §7.10.
        ORIGINATOR_ID => match be32(v) {
            Some(id) => attrs.originator_id = Some(Ipv4Addr::from(id)),
            None => return false,
        },
        CLUSTER_LIST => match decode_ipv4_list(v) {
            Some(l) => attrs.cluster_list = l,
            None => return false,
        },
        _ => {}
    }
    true
}

/// RFC 6793 §4.2.3: reconstruct the 4-octet path and aggregator from an OLD speaker.
fn merge_as4(attrs: &mut PathAttrs, as4_path: Option<AsPath>, as4_agg: Option<Aggregator>) {
    if let Some(agg) = attrs.aggregator {
        if agg.asn != u32::from(AS_TRANS) && as4_agg.is_some() {
            // The AGGREGATOR was set by an OLD speaker after the AS4_* were: ignore both.
            return;
        }
        if let Some(a4) = as4_agg {
            attrs.aggregator = Some(a4);
        }
    }
    if let (Some(path), Some(p4)) = (attrs.as_path.as_ref(), as4_path.as_ref()) {
        attrs.as_path = Some(merge_as4_path(path, p4));
    }
}

// ----- encoding -----

/// Appends an attribute header, with Extended Length only when the value exceeds 255 octets.
pub(crate) fn put_attr_header(
    out: &mut BytesMut,
    flags: u8,
    code: u8,
    len: usize,
) -> Result<(), EncodeError> {
    out.put_u8(if len > 255 {
        flags | EXTENDED_LENGTH
    } else {
        flags & !EXTENDED_LENGTH
    });
    out.put_u8(code);
    if len > 255 {
        let l = u16::try_from(len).map_err(|_| EncodeError::AttributeTooLong {
            type_code: code,
            len,
        })?;
        out.put_u16(l);
    } else {
        out.put_u8(len as u8);
    }
    Ok(())
}

/// Header size for a value of `len` octets.
pub(crate) fn attr_header_len(len: usize) -> usize {
    if len > 255 {
        4
    } else {
        3
    }
}

/// Appends `attrs` in type-code order (NEXT_HOP only when `with_next_hop`). Towards an OLD
/// speaker, AS numbers above 65535 become AS_TRANS and AS4_PATH / AS4_AGGREGATOR carry the
/// real ones (RFC 6793 §4.2.2). Unknown optional transitive attributes go out with the
/// Partial bit set; other unknown ones are not passed on (RFC 4271 §5).
pub(crate) fn encode_path_attrs(
    attrs: &PathAttrs,
    with_next_hop: bool,
    ctx: &EncodeContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let four = ctx.four_octet_as;
    let mut unknown: Vec<&RawAttribute> = attrs
        .unknown
        .iter()
        .filter(|a| a.flags & OPTIONAL_TRANSITIVE == OPTIONAL_TRANSITIVE && !is_known(a.type_code))
        .collect();
    unknown.sort_by_key(|a| a.type_code);
    let mut unknown = unknown.into_iter().peekable();
    let mut flush = |upto: u16, out: &mut BytesMut| -> Result<(), EncodeError> {
        while let Some(a) = unknown.next_if(|a| u16::from(a.type_code) < upto) {
            put_attr_header(out, a.flags | PARTIAL, a.type_code, a.value.len())?;
            out.put_slice(&a.value);
        }
        Ok(())
    };

    if let Some(origin) = attrs.origin {
        put_attr_header(out, WELL_KNOWN, ORIGIN, 1)?;
        out.put_u8(origin as u8);
    }
    flush(u16::from(AS_PATH), out)?;
    if let Some(path) = &attrs.as_path {
        put_attr_header(out, WELL_KNOWN, AS_PATH, as_path_len(path, four))?;
        encode_as_path(path, four, out);
    }
    if let (true, Some(nh)) = (with_next_hop, attrs.next_hop) {
        put_attr_header(out, WELL_KNOWN, NEXT_HOP, 4)?;
        out.put_slice(&nh.octets());
    }
    flush(u16::from(MULTI_EXIT_DISC), out)?;
    if let Some(med) = attrs.med {
        put_attr_header(out, OPTIONAL, MULTI_EXIT_DISC, 4)?;
        out.put_u32(med);
    }
    if let Some(lp) = attrs.local_pref {
        put_attr_header(out, WELL_KNOWN, LOCAL_PREF, 4)?;
        out.put_u32(lp);
    }
    if attrs.atomic_aggregate {
        put_attr_header(out, WELL_KNOWN, ATOMIC_AGGREGATE, 0)?;
    }
    if let Some(agg) = attrs.aggregator {
        put_attr_header(
            out,
            OPTIONAL_TRANSITIVE,
            AGGREGATOR,
            if four { 8 } else { 6 },
        )?;
        if four {
            out.put_u32(agg.asn);
        } else {
            out.put_u16(u16::try_from(agg.asn).unwrap_or(AS_TRANS));
        }
        out.put_slice(&agg.address.octets());
    }
    if !attrs.communities.is_empty() {
        put_attr_header(
            out,
            OPTIONAL_TRANSITIVE,
            COMMUNITIES,
            4 * attrs.communities.len(),
        )?;
        encode_communities(&attrs.communities, out);
    }
    if let Some(id) = attrs.originator_id {
        put_attr_header(out, OPTIONAL, ORIGINATOR_ID, 4)?;
        out.put_slice(&id.octets());
    }
    if !attrs.cluster_list.is_empty() {
        put_attr_header(out, OPTIONAL, CLUSTER_LIST, 4 * attrs.cluster_list.len())?;
        for id in &attrs.cluster_list {
            out.put_slice(&id.octets());
        }
    }
    flush(u16::from(AS4_PATH), out)?;
    if let (false, Some(path)) = (four, &attrs.as_path) {
        if needs_as4_path(path) {
            let p4 = as4_path_of(path);
            put_attr_header(out, OPTIONAL_TRANSITIVE, AS4_PATH, as_path_len(&p4, true))?;
            encode_as_path(&p4, true, out);
        }
    }
    if let (false, Some(agg)) = (four, attrs.aggregator) {
        if agg.asn > u32::from(u16::MAX) {
            put_attr_header(out, OPTIONAL_TRANSITIVE, AS4_AGGREGATOR, 8)?;
            out.put_u32(agg.asn);
            out.put_slice(&agg.address.octets());
        }
    }
    flush(u16::from(LARGE_COMMUNITIES), out)?;
    if !attrs.large_communities.is_empty() {
        put_attr_header(
            out,
            OPTIONAL_TRANSITIVE,
            LARGE_COMMUNITIES,
            12 * attrs.large_communities.len(),
        )?;
        encode_large_communities(&attrs.large_communities, out);
    }
    flush(256, out)
}
