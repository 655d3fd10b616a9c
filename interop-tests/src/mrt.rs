//! A writer for MRT TABLE_DUMP_V2 files (RFC 6396 §4.3), the input of `gobgp mrt inject global`.
//!
//! Injecting one MRT file streams every route to `gobgpd` over one gRPC `AddPathStream`, which
//! is orders of magnitude faster than one `gobgp global rib add` process per prefix.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

/// MRT type TABLE_DUMP_V2 (RFC 6396 §4.3).
const TABLE_DUMP_V2: u16 = 13;
/// Subtypes (RFC 6396 §4.3).
const PEER_INDEX_TABLE: u16 = 1;
const RIB_IPV4_UNICAST: u16 = 2;
const RIB_IPV6_UNICAST: u16 = 4;

/// BGP path attribute flags and type codes (RFC 4271 §4.3, RFC 4760 §3).
const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_OPTIONAL: u8 = 0x80;
const FLAG_EXTENDED_LEN: u8 = 0x10;
const ATTR_ORIGIN: u8 = 1;
const ATTR_AS_PATH: u8 = 2;
const ATTR_NEXT_HOP: u8 = 3;
const ATTR_MED: u8 = 4;
const ATTR_COMMUNITIES: u8 = 8;
const ATTR_MP_REACH_NLRI: u8 = 14;
const AS_SEQUENCE: u8 = 2;

/// ORIGIN values (RFC 4271 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// IGP (0).
    Igp = 0,
    /// EGP (1).
    Egp = 1,
    /// INCOMPLETE (2).
    Incomplete = 2,
}

/// One route for the dump.
#[derive(Debug, Clone)]
pub struct MrtRoute {
    /// The prefix (IPv4 → RIB_IPV4_UNICAST, IPv6 → RIB_IPV6_UNICAST).
    pub prefix: IpNetwork,
    /// NEXT_HOP (IPv4) or the MP_REACH_NLRI next hop (IPv6); must match the prefix family.
    pub next_hop: IpAddr,
    /// AS_PATH as one AS_SEQUENCE; empty = locally originated.
    pub as_path: Vec<u32>,
    /// ORIGIN.
    pub origin: Origin,
    /// MULTI_EXIT_DISC, when set.
    pub med: Option<u32>,
    /// COMMUNITIES (RFC 1997), each `asn << 16 | value`.
    pub communities: Vec<u32>,
}

/// The well-known NO_ADVERTISE community (RFC 1997): keep the route, tell no peer.
pub const NO_ADVERTISE: u32 = 0xFFFF_FF02;

impl MrtRoute {
    /// A locally originated (empty AS path, origin IGP) route.
    pub fn new(prefix: IpNetwork, next_hop: IpAddr) -> Self {
        Self {
            prefix,
            next_hop,
            as_path: Vec::new(),
            origin: Origin::Igp,
            med: None,
            communities: Vec::new(),
        }
    }
}

fn push_attr(out: &mut Vec<u8>, flags: u8, code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.push(flags | FLAG_EXTENDED_LEN);
        out.push(code);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.push(flags);
        out.push(code);
        out.push(value.len() as u8);
    }
    out.extend_from_slice(value);
}

/// NLRI encoding of a prefix: length in bits, then the significant bytes (RFC 4271 §4.3).
fn push_prefix(out: &mut Vec<u8>, prefix: &IpNetwork) {
    let len = prefix.prefix();
    out.push(len);
    let n = usize::from(len).div_ceil(8);
    match prefix.network() {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..n.min(4)]),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..n.min(16)]),
    }
}

/// The path attributes of a RIB entry. AS numbers are always 4 bytes in MRT (RFC 6396 §4.3.4).
fn attributes(r: &MrtRoute) -> Vec<u8> {
    let mut a = Vec::with_capacity(64);
    push_attr(&mut a, FLAG_TRANSITIVE, ATTR_ORIGIN, &[r.origin as u8]);
    let mut path = Vec::new();
    // An AS_SEQUENCE holds at most 255 ASes; longer paths are split.
    for chunk in r.as_path.chunks(255) {
        path.push(AS_SEQUENCE);
        path.push(chunk.len() as u8);
        for asn in chunk {
            path.extend_from_slice(&asn.to_be_bytes());
        }
    }
    push_attr(&mut a, FLAG_TRANSITIVE, ATTR_AS_PATH, &path);
    match r.next_hop {
        IpAddr::V4(nh) if r.prefix.is_ipv4() => {
            push_attr(&mut a, FLAG_TRANSITIVE, ATTR_NEXT_HOP, &nh.octets());
        }
        nh => {
            // The full RFC 4760 §3 form: GoBGP's MRT reader parses MP_REACH_NLRI like a BGP
            // UPDATE's, not the abbreviated form of RFC 6396 §4.3.4.
            let (afi, nh_bytes): (u16, Vec<u8>) = match nh {
                IpAddr::V4(v4) => (if r.prefix.is_ipv4() { 1 } else { 2 }, v4.octets().to_vec()),
                IpAddr::V6(v6) => (if r.prefix.is_ipv4() { 1 } else { 2 }, v6.octets().to_vec()),
            };
            let mut v = Vec::new();
            v.extend_from_slice(&afi.to_be_bytes());
            v.push(1); // SAFI unicast
            v.push(nh_bytes.len() as u8);
            v.extend_from_slice(&nh_bytes);
            v.push(0); // reserved
            push_prefix(&mut v, &r.prefix);
            push_attr(&mut a, FLAG_OPTIONAL, ATTR_MP_REACH_NLRI, &v);
        }
    }
    if let Some(med) = r.med {
        push_attr(&mut a, FLAG_OPTIONAL, ATTR_MED, &med.to_be_bytes());
    }
    if !r.communities.is_empty() {
        let v: Vec<u8> = r.communities.iter().flat_map(|c| c.to_be_bytes()).collect();
        push_attr(
            &mut a,
            FLAG_OPTIONAL | FLAG_TRANSITIVE,
            ATTR_COMMUNITIES,
            &v,
        );
    }
    a
}

fn push_record(out: &mut Vec<u8>, subtype: u16, body: &[u8]) {
    out.extend_from_slice(&0u32.to_be_bytes()); // timestamp
    out.extend_from_slice(&TABLE_DUMP_V2.to_be_bytes());
    out.extend_from_slice(&subtype.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// A TABLE_DUMP_V2 file: one PEER_INDEX_TABLE with a single peer (`peer_as`, `peer_id`, whose
/// routes these are), then one RIB record per route.
pub fn table_dump_v2(peer_as: u32, peer_id: Ipv4Addr, routes: &[MrtRoute]) -> Vec<u8> {
    let mut out = Vec::with_capacity(routes.len() * 48 + 64);
    // PEER_INDEX_TABLE (RFC 6396 §4.3.1).
    let mut pit = Vec::new();
    pit.extend_from_slice(&peer_id.octets()); // collector BGP ID
    pit.extend_from_slice(&0u16.to_be_bytes()); // view name length
    pit.extend_from_slice(&1u16.to_be_bytes()); // peer count
    pit.push(0x02); // peer type: IPv4 address, 4-byte AS
    pit.extend_from_slice(&peer_id.octets());
    pit.extend_from_slice(&Ipv4Addr::UNSPECIFIED.octets());
    pit.extend_from_slice(&peer_as.to_be_bytes());
    push_record(&mut out, PEER_INDEX_TABLE, &pit);

    // RIB_IPV4_UNICAST / RIB_IPV6_UNICAST (RFC 6396 §4.3.2), one entry each.
    let mut body = Vec::with_capacity(64);
    for (seq, r) in routes.iter().enumerate() {
        body.clear();
        body.extend_from_slice(&(seq as u32).to_be_bytes());
        push_prefix(&mut body, &r.prefix);
        body.extend_from_slice(&1u16.to_be_bytes()); // entry count
        body.extend_from_slice(&0u16.to_be_bytes()); // peer index
        body.extend_from_slice(&0u32.to_be_bytes()); // originated time
        let attrs = attributes(r);
        body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        body.extend_from_slice(&attrs);
        let subtype = if r.prefix.is_ipv4() {
            RIB_IPV4_UNICAST
        } else {
            RIB_IPV6_UNICAST
        };
        push_record(&mut out, subtype, &body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_record_bytes() {
        let r = MrtRoute::new("10.1.2.0/24".parse().unwrap(), "192.0.2.1".parse().unwrap());
        let out = table_dump_v2(65000, Ipv4Addr::new(192, 0, 2, 1), &[r]);
        // PEER_INDEX_TABLE: 12-byte header + 4 + 2 + 2 + (1 + 4 + 4 + 4).
        let pit_len = 12 + 8 + 13;
        assert_eq!(&out[4..8], &[0, 13, 0, 1]);
        assert_eq!(&out[8..12], &21u32.to_be_bytes());
        let rib = &out[pit_len..];
        assert_eq!(&rib[4..8], &[0, 13, 0, 2]);
        let body = &rib[12..];
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,             // sequence
            24, 10, 1, 2,           // prefix
            0, 1,                   // entry count
            0, 0, 0, 0, 0, 0,       // peer index, originated time
            0, 14,                  // attribute length
            0x40, 1, 1, 0,          // ORIGIN IGP
            0x40, 2, 0,             // AS_PATH empty
            0x40, 3, 4, 192, 0, 2, 1, // NEXT_HOP
        ];
        assert_eq!(body, expected);
        assert_eq!(&rib[8..12], &(expected.len() as u32).to_be_bytes());
    }

    #[test]
    fn ipv6_uses_mp_reach() {
        let mut r = MrtRoute::new(
            "2001:db8:1::/48".parse().unwrap(),
            "fd00::2".parse().unwrap(),
        );
        r.as_path = vec![65001];
        let attrs = attributes(&r);
        // ORIGIN (4) + AS_PATH (3 + 2 + 4) + MP_REACH (3 + 2 + 1 + 1 + 16 + 1 + 1 + 6).
        assert_eq!(attrs.len(), 4 + 9 + 31);
        assert_eq!(&attrs[13..16], &[0x80, 14, 28]);
        assert_eq!(&attrs[16..20], &[0, 2, 1, 16]);
    }
}
