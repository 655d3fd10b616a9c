// ===== ROUTE-REFRESH (RFC 2918 §3, RFC 7313 §3) =====
//
//  0       7      15      23      31
//  +-------+-------+-------+-------+
//  |      AFI      | Subtype | SAFI |
//  +-------+-------+-------+-------+
//
// Subtype (RFC 7313): 0 = normal request, 1 = BoRR, 2 = EoRR; RFC 2918 calls it Reserved.

//! ROUTE-REFRESH body codec.

use bytes::{BufMut, BytesMut};
use nom::number::complete::{be_u16, be_u8};
use nom::sequence::tuple;

use super::{Family, RouteRefresh};

/// Decodes the 4-byte body (length checked by the caller).
pub(crate) fn decode_route_refresh(body: &[u8]) -> Option<RouteRefresh> {
    let (_, (afi, subtype, safi)) = tuple((be_u16::<_, ()>, be_u8, be_u8))(body).ok()?;
    Some(RouteRefresh {
        family: Family { afi, safi },
        subtype,
    })
}

pub(crate) fn encode_route_refresh(rr: &RouteRefresh, out: &mut BytesMut) {
    out.put_u16(rr.family.afi);
    out.put_u8(rr.subtype);
    out.put_u8(rr.family.safi);
}
