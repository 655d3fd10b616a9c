//! Malformed input → the action RFC 4271 §6 / RFC 7606 prescribe.

use bytes::{BufMut, BytesMut};

use super::*;

const ORIGIN_IGP: &[u8] = &[0x40, 1, 1, 0];
const AS_PATH_65000: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8];
const NEXT_HOP: &[u8] = &[0x40, 3, 4, 192, 0, 2, 1];
const NLRI_10_0_0: &[u8] = &[24, 10, 0, 0];

fn ctx4() -> DecodeContext {
    DecodeContext {
        four_octet_as: true,
        ..Default::default()
    }
}

/// An UPDATE from raw withdrawn / attribute / NLRI fields.
fn update(withdrawn: &[u8], attrs: &[&[u8]], nlri: &[u8]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs.concat();
    let mut b = BytesMut::new();
    b.put_slice(&[0xff; 16]);
    b.put_u16((23 + withdrawn.len() + attrs.len() + nlri.len()) as u16);
    b.put_u8(2);
    b.put_u16(withdrawn.len() as u16);
    b.put_slice(withdrawn);
    b.put_u16(attrs.len() as u16);
    b.put_slice(&attrs);
    b.put_slice(nlri);
    b.to_vec()
}

fn decode_update(msg: &[u8], ctx: &DecodeContext) -> Result<Update, MessageError> {
    match decode_message(msg, ctx)? {
        Message::Update(u) => Ok(u),
        other => panic!("not an UPDATE: {other:?}"),
    }
}

fn notif(msg: &[u8], ctx: &DecodeContext) -> (u8, u8) {
    let n = decode_message(msg, ctx).unwrap_err().notification();
    (n.code, n.subcode)
}

fn valid_with(extra: &[&[u8]]) -> Update {
    // The base attributes, minus any type `extra` replaces.
    let mut attrs: Vec<&[u8]> = [ORIGIN_IGP, AS_PATH_65000, NEXT_HOP]
        .into_iter()
        .filter(|a| !extra.iter().any(|e| e[1] == a[1]))
        .collect();
    attrs.extend_from_slice(extra);
    decode_update(&update(&[], &attrs, NLRI_10_0_0), &ctx4()).unwrap()
}

fn taw(u: &Update) -> bool {
    u.treat_as_withdraw
}

#[test]
fn well_formed_update_is_clean() {
    let u = valid_with(&[]);
    assert!(!taw(&u) && u.discarded.is_empty());
    assert_eq!(u.nlri.len(), 1);
    assert_eq!(u.nlri[0].prefix, "10.0.0.0/24".parse::<Prefix>().unwrap());
}

#[test]
fn header_errors() {
    let mut msg = update(&[], &[], &[]);
    let ctx = ctx4();
    msg[3] = 0;
    assert_eq!(notif(&msg, &ctx), (1, 1));
    assert!(message_len(&msg, 4096).is_err());
    let mut msg = update(&[], &[], &[]);
    msg[18] = 9;
    let n = decode_message(&msg, &ctx).unwrap_err().notification();
    assert_eq!((n.code, n.subcode, n.data), (1, 3, vec![9]));
    // Length field beyond the maximum: data is the length field.
    let mut msg = update(&[], &[], &[]);
    msg[16..18].copy_from_slice(&5000u16.to_be_bytes());
    let n = message_len(&msg, 4096).unwrap_err().notification();
    assert_eq!((n.code, n.subcode, n.data), (1, 2, vec![0x13, 0x88]));
    assert_eq!(message_len(&msg[..18], 4096).unwrap(), None);
    assert_eq!(message_len(&msg, 65535).unwrap(), Some(5000));
}

#[test]
fn per_type_lengths() {
    let ctx = ctx4();
    let mk = |kind: u8, body: &[u8]| {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(kind);
        m.extend_from_slice(body);
        m
    };
    assert_eq!(notif(&mk(4, &[0]), &ctx), (1, 2)); // KEEPALIVE == 19
    assert_eq!(notif(&mk(5, &[0, 1, 0]), &ctx), (1, 2)); // ROUTE-REFRESH == 23
    assert_eq!(notif(&mk(3, &[6]), &ctx), (1, 2)); // NOTIFICATION >= 21
    assert_eq!(notif(&mk(2, &[0, 0]), &ctx), (1, 2)); // UPDATE >= 23
    assert_eq!(notif(&mk(1, &[4; 9]), &ctx), (1, 2)); // OPEN >= 29
    assert_eq!(
        decode_message(&mk(5, &[0, 2, 1, 1]), &ctx).unwrap(),
        Message::RouteRefresh(RouteRefresh {
            family: Family::IPV6_UNICAST,
            subtype: 1
        })
    );
    assert_eq!(
        decode_message(&mk(3, &[6, 2, 1, b'x']), &ctx).unwrap(),
        Message::Notification(Notification::new(6, 2, vec![1, b'x']))
    );
}

fn open_msg(version: u8, my_as: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((29 + params.len()) as u16).to_be_bytes());
    m.push(1);
    m.push(version);
    m.extend_from_slice(&my_as.to_be_bytes());
    m.extend_from_slice(&hold.to_be_bytes());
    m.extend_from_slice(&id);
    m.push(params.len() as u8);
    m.extend_from_slice(params);
    m
}

#[test]
fn open_errors() {
    let ctx = ctx4();
    let id = [192, 0, 2, 1];
    let n = decode_message(&open_msg(3, 65000, 90, id, &[]), &ctx)
        .unwrap_err()
        .notification();
    assert_eq!((n.code, n.subcode, n.data), (2, 1, vec![0, 4]));
    assert_eq!(notif(&open_msg(4, 65000, 1, id, &[]), &ctx), (2, 6));
    assert_eq!(notif(&open_msg(4, 65000, 2, id, &[]), &ctx), (2, 6));
    assert_eq!(notif(&open_msg(4, 65000, 90, [0; 4], &[]), &ctx), (2, 3));
    assert_eq!(notif(&open_msg(4, 65000, 90, id, &[1, 0]), &ctx), (2, 4));
    // Capability overrunning its parameter.
    assert_eq!(
        notif(&open_msg(4, 65000, 90, id, &[2, 2, 65, 4]), &ctx),
        (2, 0)
    );
    // 4-octet AS capability with a bad length.
    assert_eq!(
        notif(&open_msg(4, 65000, 90, id, &[2, 3, 65, 1, 0]), &ctx),
        (2, 0)
    );
    // Hold time 0 is fine.
    assert!(decode_message(&open_msg(4, 65000, 0, id, &[]), &ctx).is_ok());
}

#[test]
fn open_four_octet_as_and_several_parameters() {
    let params = [
        2, 6, 65, 4, 0, 1, 0, 0, // 4-octet AS 65536
        2, 4, 2, 0, 70, 0, // route refresh + enhanced, one parameter
        2, 3, 200, 1, 7, // unknown capability
    ];
    let Message::Open(o) =
        decode_message(&open_msg(4, AS_TRANS, 90, [1, 1, 1, 1], &params), &ctx4()).unwrap()
    else {
        panic!()
    };
    assert_eq!(o.asn, 65536);
    assert_eq!(
        o.capabilities,
        vec![
            Capability::FourOctetAs(65536),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::Unknown {
                code: 200,
                value: vec![7]
            }
        ]
    );
    // Encoding writes AS_TRANS in My AS.
    let mut out = BytesMut::new();
    encode_message(&Message::Open(o), &EncodeContext::default(), &mut out).unwrap();
    assert_eq!(&out[20..22], &AS_TRANS.to_be_bytes());
}

#[test]
fn open_rfc9072_extended_parameters() {
    // Opt Parm Len 255, type 255, extended length 6, then type 2 with a 2-octet length 3.
    let mut m = vec![0xff; 16];
    let body = [
        4, 0xfd, 0xe8, 0, 90, 1, 1, 1, 1, 255, 255, 0, 6, 2, 0, 3, 6, 0, 0,
    ];
    // (The capability TLV is "6, 0" = Extended Message, plus one stray byte: malformed.)
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(1);
    m.extend_from_slice(&body);
    assert_eq!(notif(&m, &ctx4()), (2, 0));
    let body = [
        4, 0xfd, 0xe8, 0, 90, 1, 1, 1, 1, 255, 255, 0, 5, 2, 0, 2, 6, 0,
    ];
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(1);
    m.extend_from_slice(&body);
    let Message::Open(o) = decode_message(&m, &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(o.capabilities, vec![Capability::ExtendedMessage]);
    // Large capability sets are encoded in the extended format and decode back.
    let big = Open {
        version: 4,
        asn: 65000,
        hold_time: 90,
        router_id: "1.1.1.1".parse().unwrap(),
        capabilities: (0..100)
            .map(|i| Capability::MultiProtocol(Family { afi: 1, safi: i }))
            .collect(),
    };
    let mut out = BytesMut::new();
    encode_message(
        &Message::Open(big.clone()),
        &EncodeContext::default(),
        &mut out,
    )
    .unwrap();
    assert_eq!(&out[28..30], &[255, 255]);
    assert_eq!(decode_message(&out, &ctx4()).unwrap(), Message::Open(big));
}

#[test]
fn session_reset_cases() {
    let ctx = ctx4();
    // Withdrawn routes length overruns the message.
    let mut msg = update(&[], &[], &[]);
    msg[19..21].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(notif(&msg, &ctx), (3, 1));
    // Total attribute length overruns the message.
    let mut msg = update(&[], &[], &[]);
    msg[21..23].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(notif(&msg, &ctx), (3, 1));
    // An attribute overrunning the attributes field.
    assert_eq!(notif(&update(&[], &[&[0x40, 1, 5, 0]], &[]), &ctx), (3, 1));
    // Fewer than 3 octets left for an attribute header.
    assert_eq!(
        notif(&update(&[], &[ORIGIN_IGP, &[0x40, 1]], &[]), &ctx),
        (3, 1)
    );
    // NLRI: prefix length over 32, and a truncated prefix.
    assert_eq!(
        notif(
            &update(
                &[],
                &[ORIGIN_IGP, AS_PATH_65000, NEXT_HOP],
                &[33, 1, 2, 3, 4, 5]
            ),
            &ctx
        ),
        (3, 10)
    );
    assert_eq!(
        notif(
            &update(&[], &[ORIGIN_IGP, AS_PATH_65000, NEXT_HOP], &[24, 10, 0]),
            &ctx
        ),
        (3, 10)
    );
    // Withdrawn routes with a bad prefix.
    assert_eq!(notif(&update(&[40, 0], &[], &[]), &ctx), (3, 10));
    // Unknown well-known attribute: data is the attribute.
    let n = decode_message(&update(&[], &[&[0x40, 99, 1, 7]], &[]), &ctx)
        .unwrap_err()
        .notification();
    assert_eq!((n.code, n.subcode, n.data), (3, 2, vec![0x40, 99, 1, 7]));
}

const MP_REACH_V6: &[u8] = &[
    0x80, 14, 26, 0, 2, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 32,
    0x20, 1, 0x0d, 0xb8,
];

#[test]
fn mp_reach_errors_reset() {
    let ctx = ctx4();
    let ok = update(&[], &[MP_REACH_V6, ORIGIN_IGP, AS_PATH_65000], &[]);
    let u = decode_update(&ok, &ctx).unwrap();
    assert_eq!(
        u.mp_reach.unwrap().nlri[0].prefix,
        "2001:db8::/32".parse::<Prefix>().unwrap()
    );
    // Duplicated MP_REACH_NLRI.
    assert_eq!(
        notif(&update(&[], &[MP_REACH_V6, MP_REACH_V6], &[]), &ctx),
        (3, 1)
    );
    // Wrong flags (well-known).
    let mut bad = MP_REACH_V6.to_vec();
    bad[0] = 0x40;
    assert_eq!(notif(&update(&[], &[&bad], &[]), &ctx), (3, 4));
    // Bad next hop length (15).
    let mut bad = MP_REACH_V6.to_vec();
    bad[6] = 15;
    assert_eq!(notif(&update(&[], &[&bad], &[]), &ctx), (3, 9));
    // Prefix length 129.
    let mut bad = MP_REACH_V6.to_vec();
    bad[24] = 129;
    assert_eq!(notif(&update(&[], &[&bad], &[]), &ctx), (3, 9));
    // A 4-octet IPv4 next hop for IPv6 NLRI.
    let v4nh: &[u8] = &[
        0x80, 14, 13, 0, 2, 1, 4, 192, 0, 2, 1, 0, 32, 0x20, 1, 0x0d, 0xb8,
    ];
    assert_eq!(notif(&update(&[], &[v4nh], &[]), &ctx), (3, 9));
    // MP_UNREACH_NLRI truncated and duplicated.
    assert_eq!(
        notif(&update(&[], &[&[0x80, 15, 2, 0, 2]], &[]), &ctx),
        (3, 9)
    );
    let unreach: &[u8] = &[0x80, 15, 3, 0, 2, 1];
    assert_eq!(notif(&update(&[], &[unreach, unreach], &[]), &ctx), (3, 1));
}

#[test]
fn extended_next_hop_for_ipv4() {
    let attr: &[u8] = &[
        0x80, 14, 25, 0, 1, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 24,
        10, 0, 0,
    ];
    let msg = update(&[], &[attr, ORIGIN_IGP, AS_PATH_65000], &[]);
    assert_eq!(notif(&msg, &ctx4()), (3, 9));
    let ctx = DecodeContext {
        extended_next_hop: vec![(Family::IPV4_UNICAST, AFI_IPV6)],
        ..ctx4()
    };
    let r = decode_update(&msg, &ctx).unwrap().mp_reach.unwrap();
    assert_eq!(
        r.next_hop.global,
        "2001:db8::1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(r.nlri[0].prefix, "10.0.0.0/24".parse::<Prefix>().unwrap());
}

#[test]
fn treat_as_withdraw_cases() {
    let cases: &[(&str, &[u8])] = &[
        ("bad ORIGIN value", &[0x40, 1, 1, 3]),
        ("ORIGIN length", &[0x40, 1, 2, 0, 0]),
        ("MED length", &[0x80, 4, 3, 0, 0, 0]),
        ("LOCAL_PREF length", &[0x40, 5, 2, 0, 0]),
        ("LOCAL_PREF flags", &[0x80, 5, 4, 0, 0, 0, 100]),
        ("MED flags", &[0x40, 4, 4, 0, 0, 0, 100]),
        ("COMMUNITIES length", &[0xc0, 8, 3, 0, 0, 0]),
        ("COMMUNITIES empty", &[0xc0, 8, 0]),
        (
            "LARGE_COMMUNITIES length",
            &[0xc0, 32, 8, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        ("ORIGINATOR_ID length", &[0x80, 9, 3, 1, 1, 1]),
        ("CLUSTER_LIST length", &[0x80, 10, 5, 1, 1, 1, 1, 1]),
    ];
    for (what, attr) in cases {
        let u = valid_with(&[attr]);
        assert!(taw(&u), "{what}");
        assert_eq!(u.nlri.len(), 1, "{what}: NLRI still reported");
    }
    // Bad NEXT_HOP / AS_PATH replace the good ones.
    let bad_nh: &[&[u8]] = &[ORIGIN_IGP, AS_PATH_65000, &[0x40, 3, 4, 0, 0, 0, 0]];
    assert!(taw(&decode_update(
        &update(&[], bad_nh, NLRI_10_0_0),
        &ctx4()
    )
    .unwrap()));
    let bad_paths: &[&[u8]] = &[
        &[0x40, 2, 6, 5, 1, 0, 0, 0xfd, 0xe8],    // segment type 5
        &[0x40, 2, 6, 2, 2, 0, 0, 0xfd, 0xe8],    // overrun
        &[0x40, 2, 7, 2, 1, 0, 0, 0xfd, 0xe8, 0], // underrun
        &[0x40, 2, 2, 2, 0],                      // zero-length segment
    ];
    for p in bad_paths {
        let msg = update(&[], &[ORIGIN_IGP, p, NEXT_HOP], NLRI_10_0_0);
        assert!(taw(&decode_update(&msg, &ctx4()).unwrap()), "{p:?}");
    }
}

#[test]
fn missing_mandatory_attributes() {
    let ctx = ctx4();
    for attrs in [
        vec![AS_PATH_65000, NEXT_HOP],
        vec![ORIGIN_IGP, NEXT_HOP],
        vec![ORIGIN_IGP, AS_PATH_65000],
    ] {
        assert!(taw(
            &decode_update(&update(&[], &attrs, NLRI_10_0_0), &ctx).unwrap()
        ));
    }
    // No NLRI: nothing is mandatory.
    let u = decode_update(&update(&[], &[ORIGIN_IGP], &[]), &ctx).unwrap();
    assert!(!taw(&u));
    // MP_REACH_NLRI needs ORIGIN and AS_PATH but not NEXT_HOP.
    let u = decode_update(
        &update(&[], &[MP_REACH_V6, ORIGIN_IGP, AS_PATH_65000], &[]),
        &ctx,
    );
    assert!(!taw(&u.unwrap()));
    let u = decode_update(&update(&[], &[MP_REACH_V6, ORIGIN_IGP], &[]), &ctx).unwrap();
    assert!(taw(&u));
}

#[test]
fn attribute_discard_cases() {
    let cases: &[(u8, &[u8])] = &[
        (6, &[0x40, 6, 1, 0]),
        (7, &[0xc0, 7, 6, 0xfd, 0xe8, 1, 1, 1, 1]), // 2-octet AGGREGATOR in a 4-octet session
        (7, &[0x40, 7, 8, 0, 0, 0xfd, 0xe8, 1, 1, 1, 1]), // flags
    ];
    for (code, attr) in cases {
        let u = valid_with(&[attr]);
        assert!(!taw(&u), "{code}");
        assert_eq!(u.discarded, vec![*code]);
        assert_eq!(u.attrs.aggregator, None);
        assert!(!u.attrs.atomic_aggregate);
    }
    // AS4_PATH / AS4_AGGREGATOR malformed from an OLD speaker (RFC 6793 §6).
    let ctx2 = DecodeContext::default();
    let as_path2: &[u8] = &[0x40, 2, 4, 2, 1, 0xfd, 0xe8];
    for (code, attr) in [
        (17u8, &[0xc0, 17, 5, 2, 1, 0, 1, 0][..]),
        (18, &[0xc0, 18, 6, 0, 1, 0, 0, 1, 1][..]),
    ] {
        let msg = update(&[], &[ORIGIN_IGP, as_path2, NEXT_HOP, attr], NLRI_10_0_0);
        let u = decode_update(&msg, &ctx2).unwrap();
        assert!(!taw(&u));
        assert_eq!(u.discarded, vec![code]);
    }
}

#[test]
fn duplicates_keep_the_first() {
    let u = valid_with(&[&[0x80, 4, 4, 0, 0, 0, 1], &[0x80, 4, 4, 0, 0, 0, 2]]);
    assert_eq!(u.attrs.med, Some(1));
    assert_eq!(u.discarded, vec![4]);
    assert!(!taw(&u));
}

#[test]
fn unknown_attributes() {
    // Optional transitive: kept; optional non-transitive: dropped.
    let u = valid_with(&[&[0xc0, 99, 2, 1, 2], &[0x80, 98, 1, 9]]);
    assert_eq!(
        u.attrs.unknown,
        vec![RawAttribute {
            flags: 0xc0,
            type_code: 99,
            value: vec![1, 2]
        }]
    );
    // Re-encoded with the Partial bit.
    let mut out = BytesMut::new();
    let ctx = EncodeContext {
        four_octet_as: true,
        ..Default::default()
    };
    encode_message(&Message::Update(u), &ctx, &mut out).unwrap();
    assert!(out.windows(5).any(|w| w == [0xe0, 99, 2, 1, 2]));
}

#[test]
fn as4_merge_from_old_speaker() {
    let ctx2 = DecodeContext::default();
    // AS_PATH: SEQ [100, AS_TRANS, AS_TRANS]; AS4_PATH: SEQ [70000, 80000].
    let as_path: &[u8] = &[0x40, 2, 8, 2, 3, 0, 100, 0x5b, 0xa0, 0x5b, 0xa0];
    let as4: &[u8] = &[0xc0, 17, 10, 2, 2, 0, 1, 0x11, 0x70, 0, 1, 0x38, 0x80];
    let agg: &[u8] = &[0xc0, 7, 6, 0x5b, 0xa0, 10, 0, 0, 1];
    let as4agg: &[u8] = &[0xc0, 18, 8, 0, 1, 0x11, 0x70, 10, 0, 0, 1];
    let msg = update(
        &[],
        &[ORIGIN_IGP, as_path, NEXT_HOP, agg, as4, as4agg],
        NLRI_10_0_0,
    );
    let u = decode_update(&msg, &ctx2).unwrap();
    assert_eq!(
        u.attrs.as_path.unwrap().segments,
        vec![
            AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![100]
            },
            AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![70000, 80000]
            }
        ]
    );
    assert_eq!(u.attrs.aggregator.unwrap().asn, 70000);
    // From a NEW speaker, AS4_* are ignored.
    let as_path4: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0, 100];
    let msg = update(&[], &[ORIGIN_IGP, as_path4, NEXT_HOP, as4], NLRI_10_0_0);
    let u = decode_update(&msg, &ctx4()).unwrap();
    assert_eq!(u.attrs.as_path.unwrap().segments[0].asns, vec![100]);
    assert!(u.discarded.is_empty());
}

#[test]
fn host_bits_are_masked() {
    let u = decode_update(
        &update(
            &[],
            &[ORIGIN_IGP, AS_PATH_65000, NEXT_HOP],
            &[20, 10, 1, 0xff, 0, 0],
        ),
        &ctx4(),
    );
    // 20 bits need 3 octets: [10, 1, 0xff] then a /0.
    let u = u.unwrap();
    assert_eq!(u.nlri[0].prefix, "10.1.240.0/20".parse::<Prefix>().unwrap());
    assert_eq!(u.nlri[1].prefix, "0.0.0.0/0".parse::<Prefix>().unwrap());
}

#[test]
fn notification_display() {
    assert_eq!(
        Notification::cease(2).to_string(),
        "Cease / Administrative Shutdown"
    );
    assert_eq!(
        Notification::new(2, 2, vec![]).to_string(),
        "OPEN Message Error / Bad Peer AS"
    );
    assert_eq!(
        Notification::new(4, 0, vec![]).to_string(),
        "Hold Timer Expired"
    );
    assert_eq!(
        Notification::new(9, 1, vec![]).to_string(),
        "code 9 / subcode 1"
    );
    let n = Notification::cease_with_message(cease_subcode::ADMINISTRATIVE_SHUTDOWN, "maintenance");
    assert_eq!(n.shutdown_message(), Some("maintenance"));
    assert_eq!(
        n.to_string(),
        "Cease / Administrative Shutdown: \"maintenance\""
    );
}

#[test]
fn end_of_rib_markers() {
    let mut out = BytesMut::new();
    encode_end_of_rib(Family::IPV4_UNICAST, &mut out);
    encode_end_of_rib(Family::IPV6_UNICAST, &mut out);
    assert_eq!(out.len(), 23 + 29);
    let ctx = ctx4();
    let a = decode_update(&out[..23], &ctx).unwrap();
    let b = decode_update(&out[23..], &ctx).unwrap();
    assert_eq!(a.end_of_rib(), Some(Family::IPV4_UNICAST));
    assert_eq!(b.end_of_rib(), Some(Family::IPV6_UNICAST));
}

#[test]
fn encode_too_long_fails_and_leaves_buffer() {
    let mut out = BytesMut::from(&b"abc"[..]);
    let u = Update {
        nlri: (0..2000u32)
            .map(|i| Nlri {
                prefix: IpNetwork::V4(
                    Ipv4Network::new(std::net::Ipv4Addr::from(i << 8), 24).unwrap(),
                ),
                path_id: 0,
            })
            .collect(),
        ..Default::default()
    };
    let err = encode_message(&Message::Update(u), &EncodeContext::default(), &mut out);
    assert!(matches!(err, Err(EncodeError::TooLong { .. })));
    assert_eq!(&out[..], b"abc");
}
