// ===== MP_REACH_NLRI (RFC 4760 §3) =====
//
//  +---------------------------------------------------------+
//  | Address Family Identifier (2 octets)                    |
//  +---------------------------------------------------------+
//  | Subsequent Address Family Identifier (1 octet)          |
//  +---------------------------------------------------------+
//  | Length of Next Hop Network Address (1 octet)            |
//  +---------------------------------------------------------+
//  | Network Address of Next Hop (variable)                  |
//  +---------------------------------------------------------+
//  | Reserved (1 octet)                                      |
//  +---------------------------------------------------------+
//  | Network Layer Reachability Information (variable)       |
//  +---------------------------------------------------------+
//
// ===== MP_UNREACH_NLRI (RFC 4760 §4) =====
//
//  +---------------------------------------------------------+
//  | Address Family Identifier (2 octets)                    |
//  +---------------------------------------------------------+
//  | Subsequent Address Family Identifier (1 octet)          |
//  +---------------------------------------------------------+
//  | Withdrawn Routes (variable)                             |
//  +---------------------------------------------------------+

//! Multiprotocol reachability attributes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};

use super::nlri::{decode_nlri, encode_nlri_list};
use super::{
    DecodeContext, EncodeContext, Family, MpNextHop, MpReach, MpUnreach, AFI_IPV4, AFI_IPV6,
};

/// SAFIs whose NLRI is a plain prefix list (unicast, multicast).
fn plain_prefix_family(f: Family) -> bool {
    matches!(f.afi, AFI_IPV4 | AFI_IPV6) && matches!(f.safi, 1 | 2)
}

fn v6(b: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from)
}

/// RFC 4760 §3, RFC 2545 §3, RFC 8950 §3: 4 octets for IPv4; 16 (global) or 32 (global +
/// link-local) for IPv6, also for IPv4 NLRI when extended next hop was negotiated.
fn decode_next_hop(family: Family, nh: &[u8], ctx: &DecodeContext) -> Option<MpNextHop> {
    let v6_allowed = family.afi == AFI_IPV6 || ctx.extended_next_hop.contains(&(family, AFI_IPV6));
    match nh.len() {
        4 if family.afi == AFI_IPV4 => Some(MpNextHop {
            global: IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(nh).ok()?)),
            link_local: None,
        }),
        16 if v6_allowed => Some(MpNextHop {
            global: IpAddr::V6(v6(nh)?),
            link_local: None,
        }),
        32 if v6_allowed => Some(MpNextHop {
            global: IpAddr::V6(v6(nh.get(..16)?)?),
            link_local: Some(v6(nh.get(16..)?)?),
        }),
        _ => None,
    }
}

/// Decodes MP_REACH_NLRI. `Ok(None)` for a family whose NLRI this codec cannot parse (the
/// attribute is then ignored); `Err` is malformed, which RFC 7606 §5.3 makes a session reset.
pub(crate) fn decode_mp_reach(
    v: &[u8],
    ctx: &DecodeContext,
) -> Result<Option<MpReach>, &'static str> {
    let [a0, a1, safi, nh_len, rest @ ..] = v else {
        return Err("truncated MP_REACH_NLRI");
    };
    let family = Family {
        afi: u16::from_be_bytes([*a0, *a1]),
        safi: *safi,
    };
    if !plain_prefix_family(family) {
        tracing::debug!(
            afi = family.afi,
            safi = family.safi,
            "ignoring MP_REACH_NLRI of unsupported family"
        );
        return Ok(None);
    }
    let (nh, rest) = rest
        .split_at_checked(usize::from(*nh_len))
        .ok_or("next hop overruns MP_REACH_NLRI")?;
    let next_hop = decode_next_hop(family, nh, ctx).ok_or("bad next hop length")?;
    // One reserved octet (RFC 4760 §3), ignored on receipt.
    let (_, nlri_bytes) = rest.split_first().ok_or("truncated MP_REACH_NLRI")?;
    let mut nlri = Vec::new();
    decode_nlri(nlri_bytes, family.afi, ctx.add_path(family), &mut nlri)?;
    Ok(Some(MpReach {
        family,
        next_hop,
        nlri,
    }))
}

/// Decodes MP_UNREACH_NLRI; same conventions as [`decode_mp_reach`].
pub(crate) fn decode_mp_unreach(
    v: &[u8],
    ctx: &DecodeContext,
) -> Result<Option<MpUnreach>, &'static str> {
    let [a0, a1, safi, rest @ ..] = v else {
        return Err("truncated MP_UNREACH_NLRI");
    };
    let family = Family {
        afi: u16::from_be_bytes([*a0, *a1]),
        safi: *safi,
    };
    if !plain_prefix_family(family) {
        tracing::debug!(
            afi = family.afi,
            safi = family.safi,
            "ignoring MP_UNREACH_NLRI of unsupported family"
        );
        return Ok(None);
    }
    let mut withdrawn = Vec::new();
    decode_nlri(rest, family.afi, ctx.add_path(family), &mut withdrawn)?;
    Ok(Some(MpUnreach { family, withdrawn }))
}

/// Size of the next hop field.
pub(crate) fn next_hop_len(nh: &MpNextHop) -> usize {
    match (nh.global, nh.link_local) {
        (IpAddr::V4(_), _) => 4,
        (IpAddr::V6(_), None) => 16,
        (IpAddr::V6(_), Some(_)) => 32,
    }
}

/// Appends AFI, SAFI, next hop and the reserved octet (everything before the NLRI).
pub(crate) fn encode_mp_reach_head(family: Family, nh: &MpNextHop, out: &mut BytesMut) {
    out.put_u16(family.afi);
    out.put_u8(family.safi);
    out.put_u8(next_hop_len(nh) as u8);
    match nh.global {
        IpAddr::V4(a) => out.put_slice(&a.octets()),
        IpAddr::V6(a) => {
            out.put_slice(&a.octets());
            if let Some(ll) = nh.link_local {
                out.put_slice(&ll.octets());
            }
        }
    }
    out.put_u8(0);
}

/// Appends the MP_REACH_NLRI value.
pub(crate) fn encode_mp_reach(r: &MpReach, ctx: &EncodeContext, out: &mut BytesMut) {
    encode_mp_reach_head(r.family, &r.next_hop, out);
    encode_nlri_list(&r.nlri, ctx.add_path(r.family), out);
}

/// Appends the MP_UNREACH_NLRI value.
pub(crate) fn encode_mp_unreach(u: &MpUnreach, ctx: &EncodeContext, out: &mut BytesMut) {
    out.put_u16(u.family.afi);
    out.put_u8(u.family.safi);
    encode_nlri_list(&u.withdrawn, ctx.add_path(u.family), out);
}
