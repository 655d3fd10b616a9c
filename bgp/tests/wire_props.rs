//! Property tests: decode(encode(m)) == m, decoding arbitrary bytes never panics, and update
//! packing carries exactly the given prefixes in messages within the size limit.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp::wire::*;
use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;

fn v4_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, len)| {
        let n = Ipv4Network::new(Ipv4Addr::from(a), len).unwrap();
        IpNetwork::V4(Ipv4Network::new(n.network(), len).unwrap())
    })
}

fn v6_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, len)| {
        let n = Ipv6Network::new(Ipv6Addr::from(a), len).unwrap();
        IpNetwork::V6(Ipv6Network::new(n.network(), len).unwrap())
    })
}

fn nlri(
    prefix: impl Strategy<Value = Prefix>,
    add_path: bool,
    max: usize,
) -> impl Strategy<Value = Vec<Nlri>> {
    vec((prefix, any::<u32>()), 0..max).prop_map(move |v| {
        v.into_iter()
            .map(|(prefix, id)| Nlri {
                prefix,
                path_id: if add_path { id } else { 0 },
            })
            .collect()
    })
}

fn unicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    (0x0100_0000u32..0xe000_0000).prop_map(Ipv4Addr::from)
}

fn asn() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..65536, any::<u32>()]
}

fn as_path(four_octet: bool) -> impl Strategy<Value = AsPath> {
    let kind = prop_oneof![Just(SegmentType::Sequence), Just(SegmentType::Set)];
    let body = vec((kind, vec(asn(), 1..8)), 0..4);
    // Confederation segments lead the path; towards an OLD speaker their ASes must fit in
    // two octets, as AS4_PATH never carries them (RFC 6793 §3).
    let confed_as = if four_octet {
        1u32..u32::MAX
    } else {
        1u32..65536
    };
    let confed = proptest::option::of(vec(confed_as, 1..4));
    (confed, body).prop_map(|(confed, body)| {
        let mut segments: Vec<AsSegment> = confed
            .into_iter()
            .map(|asns| AsSegment {
                kind: SegmentType::ConfedSequence,
                asns,
            })
            .collect();
        segments.extend(
            body.into_iter()
                .map(|(kind, asns)| AsSegment { kind, asns }),
        );
        AsPath { segments }
    })
}

fn path_attrs(four_octet: bool) -> impl Strategy<Value = PathAttrs> {
    let origin = prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ];
    let aggregator = proptest::option::of((asn(), any::<u32>()).prop_map(|(asn, a)| Aggregator {
        asn,
        address: Ipv4Addr::from(a),
    }));
    let large = vec(
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(global, local1, local2)| {
            LargeCommunity {
                global,
                local1,
                local2,
            }
        }),
        0..4,
    );
    let unknown = proptest::collection::btree_map(100u8..=200, vec(any::<u8>(), 0..300), 0..3);
    (
        (
            origin,
            as_path(four_octet),
            unicast_v4(),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
        ),
        (any::<bool>(), aggregator, vec(any::<u32>(), 0..5), large),
        (any::<Option<u32>>(), vec(any::<u32>(), 0..4), unknown),
    )
        .prop_map(
            |(
                (origin, as_path, nh, med, local_pref),
                (atomic, aggregator, comms, large),
                (orig, clusters, unknown),
            )| {
                PathAttrs {
                    origin: Some(origin),
                    as_path: Some(as_path),
                    next_hop: Some(nh),
                    med,
                    local_pref,
                    atomic_aggregate: atomic,
                    aggregator,
                    communities: comms.into_iter().map(Community).collect(),
                    large_communities: large,
                    originator_id: orig.map(Ipv4Addr::from),
                    cluster_list: clusters.into_iter().map(Ipv4Addr::from).collect(),
                    unknown: unknown_attrs(unknown),
                }
            },
        )
}

fn unknown_attrs(m: BTreeMap<u8, Vec<u8>>) -> Vec<RawAttribute> {
    m.into_iter()
        .map(|(type_code, value)| RawAttribute {
            // As received after a Partial-setting hop: optional, transitive, partial.
            flags: 0xe0,
            type_code,
            value,
        })
        .collect()
}

fn mp_next_hop() -> impl Strategy<Value = MpNextHop> {
    (any::<u128>(), proptest::option::of(any::<u128>())).prop_map(|(g, ll)| MpNextHop {
        global: IpAddr::V6(Ipv6Addr::from(g)),
        link_local: ll.map(Ipv6Addr::from),
    })
}

/// (update, four_octet_as, add_path)
fn update_case() -> impl Strategy<Value = (Update, bool, bool)> {
    (any::<bool>(), any::<bool>()).prop_flat_map(|(four, add_path)| {
        let reach = proptest::option::of(
            (mp_next_hop(), nlri(v6_prefix(), add_path, 20)).prop_map(|(next_hop, nlri)| MpReach {
                family: Family::IPV6_UNICAST,
                next_hop,
                nlri,
            }),
        );
        let unreach =
            proptest::option::of(
                nlri(v6_prefix(), add_path, 20).prop_map(|withdrawn| MpUnreach {
                    family: Family::IPV6_UNICAST,
                    withdrawn,
                }),
            );
        (
            nlri(v4_prefix(), add_path, 40),
            path_attrs(four),
            reach,
            unreach,
            nlri(v4_prefix(), add_path, 40),
        )
            .prop_map(move |(withdrawn, attrs, mp_reach, mp_unreach, nlri)| {
                let u = Update {
                    withdrawn,
                    attrs,
                    mp_reach,
                    mp_unreach,
                    nlri,
                    ..Default::default()
                };
                (u, four, add_path)
            })
    })
}

fn contexts(four: bool, add_path: bool) -> (EncodeContext, DecodeContext) {
    let families = if add_path {
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    } else {
        vec![]
    };
    (
        EncodeContext {
            four_octet_as: four,
            extended_message: true,
            add_path_tx: families.clone(),
        },
        DecodeContext {
            four_octet_as: four,
            extended_message: true,
            add_path_rx: families,
            extended_next_hop: vec![],
            external: false,
        },
    )
}

fn roundtrip(m: &Message, enc: &EncodeContext, dec: &DecodeContext) -> Message {
    let mut out = BytesMut::new();
    encode_message(m, enc, &mut out).unwrap();
    assert_eq!(
        message_len(&out, dec.max_message_len()).unwrap(),
        Some(out.len())
    );
    decode_message(&out, dec).unwrap()
}

fn capability() -> impl Strategy<Value = Capability> {
    let family = (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Family { afi, safi });
    let mode = prop_oneof![
        Just(AddPathMode::Receive),
        Just(AddPathMode::Send),
        Just(AddPathMode::Both)
    ];
    prop_oneof![
        family.clone().prop_map(Capability::MultiProtocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        vec((family.clone(), any::<u16>()), 0..4).prop_map(Capability::ExtendedNextHop),
        vec((family.clone(), mode), 0..4).prop_map(Capability::AddPath),
        (
            any::<bool>(),
            any::<bool>(),
            0u16..4096,
            vec((family, any::<bool>()), 0..4)
        )
            .prop_map(|(restart_state, notification, restart_time, families)| {
                Capability::GracefulRestart(GracefulRestartCap {
                    restart_state,
                    notification,
                    restart_time,
                    families,
                })
            }),
        (100u8..=200, vec(any::<u8>(), 0..20))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        asn(),
        any::<u16>(),
        1u32..,
        vec(capability(), 0..40),
        any::<bool>(),
    )
        .prop_map(|(asn, hold, id, mut capabilities, with_as4)| {
            // The decoded AS comes from the capability: include it whenever it is needed.
            if asn > 65535 || with_as4 {
                capabilities.push(Capability::FourOctetAs(asn));
            }
            Open {
                version: 4,
                asn,
                hold_time: if hold == 1 || hold == 2 { 0 } else { hold },
                router_id: Ipv4Addr::from(id),
                capabilities,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn update_roundtrip((u, four, add_path) in update_case()) {
        let (enc, dec) = contexts(four, add_path);
        let m = Message::Update(u);
        prop_assert_eq!(roundtrip(&m, &enc, &dec), m);
    }

    #[test]
    fn open_roundtrip(o in open()) {
        let m = Message::Open(o);
        let (enc, dec) = contexts(true, false);
        prop_assert_eq!(roundtrip(&m, &enc, &dec), m);
    }

    #[test]
    fn notification_roundtrip(code in any::<u8>(), subcode in any::<u8>(), data in vec(any::<u8>(), 0..200)) {
        let m = Message::Notification(Notification::new(code, subcode, data));
        let (enc, dec) = contexts(true, false);
        prop_assert_eq!(roundtrip(&m, &enc, &dec), m);
    }

    #[test]
    fn route_refresh_roundtrip(afi in any::<u16>(), safi in any::<u8>(), subtype in any::<u8>()) {
        let m = Message::RouteRefresh(RouteRefresh { family: Family { afi, safi }, subtype });
        let (enc, dec) = contexts(true, false);
        prop_assert_eq!(roundtrip(&m, &enc, &dec), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        kind in 0u8..8,
        body in vec(any::<u8>(), 0..600),
        four in any::<bool>(),
        add_path in any::<bool>(),
        raw in vec(any::<u8>(), 0..64),
    ) {
        let (_, dec) = contexts(four, add_path);
        let _ = decode_message(&raw, &dec);
        let _ = message_len(&raw, 4096);
        // A valid header in front of random bodies reaches every message decoder.
        let mut msg = vec![0xff; 16];
        msg.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        msg.push(kind);
        msg.extend_from_slice(&body);
        let _ = decode_message(&msg, &dec);
        if let Some(n) = decode_message(&msg, &dec).err().map(|e| e.notification()) {
            let _ = n.to_string();
        }
    }

    #[test]
    fn mutated_updates_never_panic((u, four, add_path) in update_case(), flips in vec((any::<usize>(), any::<u8>()), 1..8)) {
        let (enc, dec) = contexts(four, add_path);
        let mut out = BytesMut::new();
        encode_message(&Message::Update(u), &enc, &mut out).unwrap();
        let mut bytes = out.to_vec();
        for (at, v) in flips {
            // Keep the header intact so the UPDATE decoder is exercised.
            let i = 19 + at % (bytes.len() - 19).max(1);
            if let Some(b) = bytes.get_mut(i) { *b = v; }
        }
        let _ = decode_message(&bytes, &dec);
    }

    #[test]
    fn packing_carries_exactly_the_prefixes(
        v6 in any::<bool>(),
        add_path in any::<bool>(),
        extended in any::<bool>(),
        four in any::<bool>(),
        attrs in path_attrs(true),
        nh in mp_next_hop(),
        v4_list in nlri(v4_prefix(), true, 3000),
        v6_list in nlri(v6_prefix(), true, 1500),
    ) {
        let family = if v6 { Family::IPV6_UNICAST } else { Family::IPV4_UNICAST };
        let mut list = if v6 { v6_list } else { v4_list };
        if !add_path {
            list.iter_mut().for_each(|n| n.path_id = 0);
        }
        let (mut enc, mut dec) = contexts(four, add_path);
        enc.extended_message = extended;
        dec.extended_message = extended;
        let max = enc.max_message_len();

        let mut out = BytesMut::new();
        let count = encode_announcements(&attrs, family, Some(nh), &list, &enc, &mut out).unwrap();
        let withdrawals = encode_withdrawals(family, &list, &enc, &mut out).unwrap();

        let mut announced = vec![];
        let mut withdrawn = vec![];
        let mut messages = 0;
        let mut buf = &out[..];
        let entry_len = |n: &Nlri| usize::from(add_path) * 4 + 1 + usize::from(n.prefix.prefix()).div_ceil(8);
        while !buf.is_empty() {
            let len = message_len(buf, max).unwrap().unwrap();
            prop_assert!(len <= max);
            // As few as fit: a message that is not the last of its run was full, i.e. the
            // next prefix (plus one octet should the MP attribute header grow) did not fit.
            let Message::Update(u) = decode_message(&buf[..len], &dec).unwrap() else { panic!() };
            prop_assert!(!u.treat_as_withdraw);
            if v6 {
                if let Some(r) = u.mp_reach {
                    prop_assert_eq!(r.next_hop, nh);
                    announced.extend(r.nlri);
                }
                if let Some(w) = u.mp_unreach { withdrawn.extend(w.withdrawn) }
                prop_assert_eq!(u.attrs.next_hop, None);
            } else {
                announced.extend(u.nlri);
                withdrawn.extend(u.withdrawn);
            }
            messages += 1;
            buf = &buf[len..];
            let seen = if messages <= count { announced.len() } else { withdrawn.len() };
            if seen < list.len() {
                prop_assert!(len + entry_len(&list[seen]) + 1 > max, "message of {} not full", len);
            }
        }
        prop_assert_eq!(messages, count + withdrawals);
        prop_assert_eq!(&announced, &list);
        prop_assert_eq!(&withdrawn, &list);
        prop_assert_eq!(count == 0, list.is_empty());
    }
}
