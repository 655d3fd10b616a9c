//! Decode vectors captured from BIRD, GoBGP and FRR (see shared/testdata/README.md).

use bgp::wire::*;
use bytes::BytesMut;

struct Vector {
    from: String,
    kind: String,
    bytes: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    // shared/ sits beside the repository: /work/main/bgp/../../shared. A git worktree is one
    // level deeper, so fall back to the nearest ancestor that holds shared/testdata.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/bgp-vectors.json"
    );
    let path = std::path::Path::new(path);
    let path = if path.exists() {
        path.to_path_buf()
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|a| a.join("shared/testdata/bgp-vectors.json"))
            .find(|p| p.exists())
            .expect("shared/testdata/bgp-vectors.json beside the repository")
    };
    let text = std::fs::read_to_string(path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|v| Vector {
            from: v["from"].as_str().unwrap().to_string(),
            kind: v["type"].as_str().unwrap().to_string(),
            bytes: hex::decode(v["hex"].as_str().unwrap()).unwrap(),
        })
        .collect()
}

/// The capabilities each sender negotiated with the test peer (4-octet AS and add-path
/// receive offered for IPv4 and IPv6): BIRD sends path ids for IPv4 only (`add paths tx`,
/// AddPath capability IPv4/send), FRR for both families (`addpath-tx-all-paths`, AddPath
/// IPv4+IPv6/both), GoBGP does not send add-path at all.
fn context_for(from: &str) -> (DecodeContext, EncodeContext) {
    let add_path = if from.starts_with("BIRD") {
        vec![Family::IPV4_UNICAST]
    } else if from.starts_with("FRR") {
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    } else {
        vec![]
    };
    let dec = DecodeContext {
        four_octet_as: true,
        add_path_rx: add_path.clone(),
        ..Default::default()
    };
    let enc = EncodeContext {
        four_octet_as: true,
        add_path_tx: add_path,
        ..Default::default()
    };
    (dec, enc)
}

/// Vectors whose bytes are valid but not what a canonical encoder writes, and why.
/// Bramble encodes MP_* first (RFC 7606 §5.1) then attributes by type code, uses
/// Extended Length only for values over 255 octets, and puts all capabilities in one
/// optional parameter.
fn non_canonical(v: &Vector) -> Option<&'static str> {
    if v.kind == "OPEN" && v.from.starts_with("FRR") {
        return Some("FRR puts every capability in its own optional parameter");
    }
    if v.kind != "UPDATE" {
        return None;
    }
    let attrs = attribute_headers(&v.bytes);
    if attrs
        .iter()
        .any(|&(flags, _, len)| flags & 0x10 != 0 && len <= 255)
    {
        return Some("Extended Length on a short attribute (BIRD, FRR: MP_REACH_NLRI, AS_PATH)");
    }
    if attrs.iter().skip(1).any(|&(_, code, _)| code == 14) {
        return Some("GoBGP puts MP_REACH_NLRI last; RFC 7606 §5.1 wants it first");
    }
    None
}

/// (flags, type, length) of each path attribute of an UPDATE.
fn attribute_headers(msg: &[u8]) -> Vec<(u8, u8, usize)> {
    let wlen = usize::from(u16::from_be_bytes([msg[19], msg[20]]));
    let at = 21 + wlen;
    let alen = usize::from(u16::from_be_bytes([msg[at], msg[at + 1]]));
    let mut attrs = &msg[at + 2..at + 2 + alen];
    let mut out = vec![];
    while !attrs.is_empty() {
        let (flags, code) = (attrs[0], attrs[1]);
        let (len, hdr) = if flags & 0x10 != 0 {
            (usize::from(u16::from_be_bytes([attrs[2], attrs[3]])), 4)
        } else {
            (usize::from(attrs[2]), 3)
        };
        out.push((flags, code, len));
        attrs = &attrs[hdr + len..];
    }
    out
}

fn decode_all() -> Vec<(Vector, Message)> {
    vectors()
        .into_iter()
        .map(|v| {
            let (ctx, _) = context_for(&v.from);
            let m = decode_message(&v.bytes, &ctx)
                .unwrap_or_else(|e| panic!("{} {}: {e}", v.from, v.kind));
            (v, m)
        })
        .collect()
}

fn updates_from(who: &str) -> Vec<Update> {
    decode_all()
        .into_iter()
        .filter(|(v, _)| v.from.starts_with(who))
        .filter_map(|(_, m)| match m {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

fn open_from(who: &str) -> Open {
    decode_all()
        .into_iter()
        .find_map(|(v, m)| match m {
            Message::Open(o) if v.from.starts_with(who) => Some(o),
            _ => None,
        })
        .unwrap()
}

fn v4(s: &str, path_id: u32) -> Nlri {
    Nlri {
        prefix: s.parse().unwrap(),
        path_id,
    }
}

fn seq(asns: &[u32]) -> AsSegment {
    AsSegment {
        kind: SegmentType::Sequence,
        asns: asns.to_vec(),
    }
}

#[test]
fn every_vector_decodes_with_the_right_type() {
    let all = decode_all();
    assert_eq!(all.len(), 24);
    for (v, m) in &all {
        let kind = match m {
            Message::Open(_) => "OPEN",
            Message::Update(u) => {
                assert!(!u.treat_as_withdraw, "{}: treat-as-withdraw", v.from);
                assert!(u.discarded.is_empty(), "{}: discarded", v.from);
                "UPDATE"
            }
            Message::Notification(_) => "NOTIFICATION",
            Message::Keepalive => "KEEPALIVE",
            Message::RouteRefresh(_) => "ROUTE-REFRESH",
        };
        assert_eq!(kind, v.kind, "{}", v.from);
        assert_eq!(message_len(&v.bytes, 4096).unwrap(), Some(v.bytes.len()));
    }
}

#[test]
fn canonical_vectors_reencode_byte_for_byte() {
    let mut canonical = 0;
    for (v, m) in decode_all() {
        let (dec, enc) = context_for(&v.from);
        let mut out = BytesMut::new();
        encode_message(&m, &enc, &mut out).unwrap();
        match non_canonical(&v) {
            None => {
                assert_eq!(
                    hex::encode(&out),
                    hex::encode(&v.bytes),
                    "{} {}",
                    v.from,
                    v.kind
                );
                canonical += 1;
            }
            // Still the same message, only spelled differently.
            Some(why) => {
                assert_ne!(&out[..], &v.bytes[..], "{why}");
                assert_eq!(decode_message(&out, &dec).unwrap(), m, "{why}");
            }
        }
    }
    assert_eq!(canonical, 16);
}

#[test]
fn bird_ipv4_update() {
    let u = &updates_from("BIRD")[0];
    assert_eq!(
        u.nlri,
        vec![
            v4("10.1.0.0/24", 2),
            v4("10.1.2.0/26", 2),
            v4("10.1.1.1/32", 2)
        ]
    );
    let a = &u.attrs;
    assert_eq!(a.origin, Some(Origin::Igp));
    assert_eq!(a.as_path.as_ref().unwrap().segments, vec![seq(&[65000])]);
    assert_eq!(a.next_hop, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(a.med, Some(50));
    assert_eq!(a.communities, vec![Community::new(65000, 100)]);
    assert_eq!(
        a.large_communities,
        vec![LargeCommunity {
            global: 65000,
            local1: 1,
            local2: 2
        }]
    );
    assert_eq!(
        updates_from("BIRD")[1].end_of_rib(),
        Some(Family::IPV4_UNICAST)
    );
}

#[test]
fn bird_ipv6_mp_reach_and_end_of_rib() {
    let ups = updates_from("BIRD");
    let r = ups[2].mp_reach.as_ref().unwrap();
    assert_eq!(r.family, Family::IPV6_UNICAST);
    assert_eq!(
        r.next_hop.global,
        "2001:db8::1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        r.next_hop.link_local,
        Some("fe80::c020:b7ff:fee3:31f9".parse().unwrap())
    );
    // BIRD did not negotiate add-path for IPv6: no path ids.
    assert_eq!(
        r.nlri,
        vec![v4("2001:db8:1::5/128", 0), v4("2001:db8:1::/64", 0)]
    );
    assert_eq!(ups[2].attrs.next_hop, None);
    assert_eq!(ups[3].end_of_rib(), Some(Family::IPV6_UNICAST));
}

#[test]
fn bird_open() {
    let o = open_from("BIRD");
    assert_eq!((o.asn, o.hold_time), (65000, 240));
    assert_eq!(o.router_id, std::net::Ipv4Addr::new(192, 0, 2, 1));
    assert!(o.capabilities.contains(&Capability::FourOctetAs(65000)));
    assert!(o.capabilities.contains(&Capability::AddPath(vec![(
        Family::IPV4_UNICAST,
        AddPathMode::Send
    )])));
    assert!(o.capabilities.contains(&Capability::EnhancedRouteRefresh));
}

#[test]
fn gobgp_as_set_and_no_export() {
    let ups = updates_from("GoBGP");
    let with_set = ups
        .iter()
        .find(|u| u.nlri == vec![v4("10.2.1.1/32", 0)])
        .unwrap();
    assert_eq!(
        with_set.attrs.as_path.as_ref().unwrap().segments,
        vec![
            seq(&[65000, 65100]),
            AsSegment {
                kind: SegmentType::Set,
                asns: vec![65200, 65300]
            }
        ]
    );
    assert_eq!(with_set.attrs.origin, Some(Origin::Incomplete));
    let no_export = ups
        .iter()
        .find(|u| u.nlri == vec![v4("10.2.0.0/24", 0)])
        .unwrap();
    assert_eq!(
        no_export.attrs.communities,
        vec![Community::new(65000, 100), Community::NO_EXPORT]
    );
    // IPv6 with an IPv4-mapped next hop, communities, no path ids.
    let r = ups[0].mp_reach.as_ref().unwrap();
    assert_eq!(r.nlri, vec![v4("2001:db8:2::/64", 0)]);
    assert_eq!(
        r.next_hop.global,
        "::ffff:192.0.2.1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(ups[0].attrs.communities, vec![Community::new(65000, 200)]);
}

#[test]
fn gobgp_open() {
    let o = open_from("GoBGP");
    assert_eq!(o.hold_time, 90);
    assert!(o.capabilities.contains(&Capability::ExtendedNextHop(vec![(
        Family::IPV4_UNICAST,
        AFI_IPV6
    )])));
    assert!(o.capabilities.iter().any(|c| matches!(
        c,
        Capability::GracefulRestart(gr) if gr.restart_time == 120 && !gr.restart_state
    )));
    // FQDN (73) is not interpreted.
    assert!(o
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::Unknown { code: 73, .. })));
}

#[test]
fn frr_aggregate_and_add_path() {
    let ups = updates_from("FRR");
    let agg = &ups[0];
    // The README mentions ATOMIC_AGGREGATE, but the captured aggregate (summary with
    // as-set over one route) only carries AGGREGATOR.
    assert!(!agg.attrs.atomic_aggregate);
    assert_eq!(
        agg.attrs.aggregator,
        Some(Aggregator {
            asn: 65000,
            address: "192.0.2.1".parse().unwrap()
        })
    );
    assert_eq!(agg.nlri, vec![v4("10.3.0.0/16", 2)]);
    assert_eq!(agg.attrs.med, Some(70));
    assert_eq!(
        agg.attrs.large_communities,
        vec![LargeCommunity {
            global: 65000,
            local1: 3,
            local2: 4
        }]
    );
    let r = ups[1].mp_reach.as_ref().unwrap();
    assert_eq!(r.nlri, vec![v4("2001:db8:3::/64", 0)]);
    assert_eq!(ups[1].attrs.med, Some(0));
    assert_eq!(
        ups[2].nlri,
        vec![v4("10.3.0.0/24", 3), v4("10.3.1.1/32", 4)]
    );
    assert_eq!(ups[3].end_of_rib(), Some(Family::IPV6_UNICAST));
    assert_eq!(ups[4].end_of_rib(), Some(Family::IPV4_UNICAST));
}

#[test]
fn frr_open() {
    let o = open_from("FRR");
    assert_eq!(o.hold_time, 9);
    assert!(o.capabilities.contains(&Capability::ExtendedMessage));
    assert!(o.capabilities.contains(&Capability::AddPath(vec![
        (Family::IPV4_UNICAST, AddPathMode::Both),
        (Family::IPV6_UNICAST, AddPathMode::Both)
    ])));
    let gr = o
        .capabilities
        .iter()
        .find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
        .unwrap();
    assert!(gr.restart_state && gr.notification);
    assert_eq!(gr.restart_time, 120);
    assert_eq!(gr.families.len(), 2);
}

#[test]
fn truncations_of_every_vector_never_panic() {
    for v in vectors() {
        let (ctx, _) = context_for(&v.from);
        for n in 0..v.bytes.len() {
            let cut = &v.bytes[..n];
            assert!(decode_message(cut, &ctx).is_err());
            // Also with the length field patched to the cut length.
            if n >= 19 {
                let mut patched = cut.to_vec();
                patched[16..18].copy_from_slice(&(n as u16).to_be_bytes());
                let _ = decode_message(&patched, &ctx);
            }
            let _ = message_len(cut, 4096);
        }
    }
}
