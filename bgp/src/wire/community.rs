// ===== COMMUNITIES (RFC 1997 §3) =====
//
//  +-------------------------------+-------------------------------+
//  |       AS (2 octets)           |      Value (2 octets)         |   repeated
//  +-------------------------------+-------------------------------+
//
// ===== LARGE_COMMUNITY (RFC 8092 §3) =====
//
//  +---------------------------------------------------------------+
//  |                    Global Administrator                       |
//  +---------------------------------------------------------------+
//  |                    Local Data Part 1                          |
//  +---------------------------------------------------------------+
//  |                    Local Data Part 2                          |   repeated
//  +---------------------------------------------------------------+

//! Standard and large communities.

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::{multiple_of, Community, LargeCommunity};

fn be32(c: &[u8]) -> u32 {
    match c {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// `None` unless the length is a non-zero multiple of 4 (RFC 7606 §7.8).
pub(crate) fn decode_communities(v: &[u8]) -> Option<Vec<Community>> {
    if v.is_empty() || !multiple_of(v.len(), 4) {
        return None;
    }
    Some(v.chunks_exact(4).map(|c| Community(be32(c))).collect())
}

/// `None` unless the length is a non-zero multiple of 12 (RFC 8092 §5).
pub(crate) fn decode_large_communities(v: &[u8]) -> Option<Vec<LargeCommunity>> {
    if v.is_empty() || !multiple_of(v.len(), 12) {
        return None;
    }
    Some(
        v.chunks_exact(12)
            .map(|c| LargeCommunity {
                global: be32(c),
                local1: be32(c.get(4..).unwrap_or_default()),
                local2: be32(c.get(8..).unwrap_or_default()),
            })
            .collect(),
    )
}

pub(crate) fn encode_communities(list: &[Community], out: &mut BytesMut) {
    for c in list {
        out.put_u32(c.0);
    }
}

pub(crate) fn encode_large_communities(list: &[LargeCommunity], out: &mut BytesMut) {
    for c in list {
        out.put_u32(c.global);
        out.put_u32(c.local1);
        out.put_u32(c.local2);
    }
}

impl Community {
    /// A community from its `ASN:VALUE` halves.
    pub fn new(asn: u16, value: u16) -> Community {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

/// `65000:100`, or the RFC 1997 well-known name.
impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Community::NO_EXPORT => f.write_str("no-export"),
            Community::NO_ADVERTISE => f.write_str("no-advertise"),
            Community::NO_EXPORT_SUBCONFED => f.write_str("no-export-subconfed"),
            Community(v) => write!(f, "{}:{}", v >> 16, v & 0xffff),
        }
    }
}

/// `global:local1:local2` (RFC 8092 §4 notation).
impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}
