// ===== UPDATE (RFC 4271 §4.3) =====
//
//  +-----------------------------------------------------+
//  |   Withdrawn Routes Length (2 octets)                |
//  +-----------------------------------------------------+
//  |   Withdrawn Routes (variable)                       |
//  +-----------------------------------------------------+
//  |   Total Path Attribute Length (2 octets)            |
//  +-----------------------------------------------------+
//  |   Path Attributes (variable)                        |
//  +-----------------------------------------------------+
//  |   Network Layer Reachability Information (variable) |
//  +-----------------------------------------------------+

//! UPDATE message codec.

use bytes::{BufMut, BytesMut};

use super::attribute::{attr_type, decode_attrs, encode_path_attrs, put_attr_header};
use super::header::patch_u16;
use super::mp::{encode_mp_reach, encode_mp_unreach, next_hop_len};
use super::nlri::{afi_of, decode_nlri, encode_nlri_list, nlri_len};
use super::{
    DecodeContext, EncodeContext, EncodeError, Family, Nlri, Update, UpdateError, AFI_IPV4,
};

fn be16(b: &[u8]) -> Option<(usize, &[u8])> {
    match b {
        [a, b, rest @ ..] => Some((usize::from(u16::from_be_bytes([*a, *b])), rest)),
        _ => None,
    }
}

/// Decodes an UPDATE body (after the header) with RFC 7606 error handling.
pub(crate) fn decode_update(body: &[u8], ctx: &DecodeContext) -> Result<Update, UpdateError> {
    use UpdateError::MalformedAttributeList as Malformed;
    // RFC 4271 §6.3 (kept by RFC 7606 §4): length fields overrunning the message.
    let (wlen, rest) = be16(body).ok_or(Malformed("truncated UPDATE"))?;
    let (withdrawn_bytes, rest) = rest
        .split_at_checked(wlen)
        .ok_or(Malformed("withdrawn routes length overruns the message"))?;
    let (alen, rest) =
        be16(rest).ok_or(Malformed("withdrawn routes length overruns the message"))?;
    let (attr_bytes, nlri_bytes) = rest.split_at_checked(alen).ok_or(Malformed(
        "total path attribute length overruns the message",
    ))?;

    let v4_add_path = ctx.add_path(Family::IPV4_UNICAST);
    let mut withdrawn = Vec::new();
    decode_nlri(withdrawn_bytes, AFI_IPV4, v4_add_path, &mut withdrawn)
        .map_err(UpdateError::InvalidNetworkField)?;
    let d = decode_attrs(attr_bytes, ctx)?;
    let mut nlri = Vec::new();
    decode_nlri(nlri_bytes, AFI_IPV4, v4_add_path, &mut nlri)
        .map_err(UpdateError::InvalidNetworkField)?;

    // RFC 7606 §3(d): a missing well-known mandatory attribute is treat-as-withdraw when
    // there is something to announce; NEXT_HOP is needed only for the NLRI field (RFC 4760).
    let announces = !nlri.is_empty() || d.mp_reach.is_some();
    let a = &d.attrs;
    let missing = announces
        && (a.origin.is_none()
            || a.as_path.is_none()
            || (!nlri.is_empty() && a.next_hop.is_none()));
    if missing {
        tracing::debug!("RFC 7606 treat-as-withdraw: missing well-known attribute");
    }
    Ok(Update {
        withdrawn,
        attrs: d.attrs,
        mp_reach: d.mp_reach,
        mp_unreach: d.mp_unreach,
        nlri,
        treat_as_withdraw: d.treat_as_withdraw || missing,
        discarded: d.discarded,
    })
}

/// Fails unless every prefix is of `family`'s address family.
pub(crate) fn check_family(family: Family, list: &[Nlri]) -> Result<(), EncodeError> {
    match list.iter().find(|n| afi_of(&n.prefix) != family.afi) {
        Some(n) => Err(EncodeError::FamilyMismatch {
            prefix: n.prefix,
            afi: family.afi,
            safi: family.safi,
        }),
        None => Ok(()),
    }
}

fn list_len(list: &[Nlri], add_path: bool) -> usize {
    list.iter().map(|n| nlri_len(n, add_path)).sum()
}

/// Appends an UPDATE body. MP_REACH_NLRI / MP_UNREACH_NLRI go first (RFC 7606 §5.1), the
/// other attributes follow in type-code order.
pub(crate) fn encode_update(
    u: &Update,
    ctx: &EncodeContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let v4 = Family::IPV4_UNICAST;
    let v4_add_path = ctx.add_path(v4);
    check_family(v4, &u.withdrawn)?;
    check_family(v4, &u.nlri)?;

    let at = out.len();
    out.put_u16(0);
    encode_nlri_list(&u.withdrawn, v4_add_path, out);
    patch_u16(out, at, (out.len() - at - 2) as u16);

    let at = out.len();
    out.put_u16(0);
    if let Some(r) = &u.mp_reach {
        check_family(r.family, &r.nlri)?;
        let len = 5 + next_hop_len(&r.next_hop) + list_len(&r.nlri, ctx.add_path(r.family));
        put_attr_header(out, 0x80, attr_type::MP_REACH_NLRI, len)?;
        encode_mp_reach(r, ctx, out);
    }
    if let Some(w) = &u.mp_unreach {
        check_family(w.family, &w.withdrawn)?;
        let len = 3 + list_len(&w.withdrawn, ctx.add_path(w.family));
        put_attr_header(out, 0x80, attr_type::MP_UNREACH_NLRI, len)?;
        encode_mp_unreach(w, ctx, out);
    }
    encode_path_attrs(&u.attrs, true, ctx, out)?;
    patch_u16(out, at, (out.len() - at - 2) as u16);

    encode_nlri_list(&u.nlri, v4_add_path, out);
    Ok(())
}
