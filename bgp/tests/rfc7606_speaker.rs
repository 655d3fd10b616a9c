//! RFC 7606 end to end: a raw TCP peer written here sends one hand-built malformed UPDATE
//! per case to a real speaker and checks the prescribed action — treat-as-withdraw (the
//! route leaves the Loc-RIB, the session stays up), attribute discard (the route is
//! accepted without the attribute) or session reset (the NOTIFICATION code/subcode of
//! `bgp/src/wire/error.rs`) — and that the speaker keeps serving afterwards.

mod common;

use common::raw::msg;
use common::{allow_all, free_port, loc, wait_for};

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bgp::speaker::{spawn, PeerSettings, RouteEntry, SpeakerConfig, SpeakerHandle};
use bgp::wire::{Family, Prefix};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const SPEAKER_AS: u32 = 65001;
const EBGP_AS: u32 = 65002;
const RAW_ADDR: &str = "127.0.0.2";

// ----- speaker set-up (shapes as in tests/speaker.rs) -----

fn peer(asn: u32, port: u16) -> PeerSettings {
    PeerSettings {
        address: RAW_ADDR.parse().unwrap(),
        asn,
        port,
        local_address: Some("127.0.0.1".parse().unwrap()),
        passive: true,
        hold_time: None,
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        import: allow_all(),
        export: allow_all(),
        connect_retry: 1,
        next_hop_v6: None,
        password: None,
        ttl_security: false,
        max_prefixes: None,
        max_prefixes_restart: 60,
        rr_client: false,
        add_path: None,
    }
}

fn config(listen: SocketAddr, peers: Vec<PeerSettings>) -> SpeakerConfig {
    SpeakerConfig {
        router_id: "10.255.0.1".parse().unwrap(),
        asn: SPEAKER_AS,
        listen: Some(listen),
        // Long enough that the raw peer never has to send periodic KEEPALIVEs.
        hold_time: 90,
        // No GR: a reset must flush the peer's routes at once (RFC 4271 §8).
        graceful_restart: false,
        restart_time: 120,
        cluster_id: None,
        peers,
    }
}

async fn state(h: &SpeakerHandle) -> String {
    h.status().await.unwrap()[0].state.clone()
}

async fn route(h: &SpeakerHandle, prefix: &str) -> Option<RouteEntry> {
    let p: Prefix = prefix.parse().unwrap();
    let raw: IpAddr = RAW_ADDR.parse().unwrap();
    loc(h)
        .await
        .into_iter()
        .find(|r| r.prefix == p && r.peer == Some(raw))
}

// ----- hand-built messages (RFC 4271 §4) -----

fn open(asn: u32) -> Vec<u8> {
    let caps: &[u8] = &[
        // Multiprotocol IPv4 unicast, IPv6 unicast (RFC 4760 §8).
        1, 4, 0, 1, 0, 1, //
        1, 4, 0, 2, 0, 1, //
        // 4-octet AS (RFC 6793 §3).
        65, 4,
    ];
    let mut cap = caps.to_vec();
    cap.extend_from_slice(&asn.to_be_bytes());
    let mut body = vec![4];
    body.extend_from_slice(&u16::try_from(asn).unwrap_or(23456).to_be_bytes());
    body.extend_from_slice(&90u16.to_be_bytes());
    body.extend_from_slice(&[10, 255, 0, 2]);
    // One Capabilities optional parameter (RFC 5492).
    body.push(u8::try_from(cap.len() + 2).unwrap());
    body.push(2);
    body.push(u8::try_from(cap.len()).unwrap());
    body.extend_from_slice(&cap);
    msg(1, &body)
}

fn keepalive() -> Vec<u8> {
    msg(4, &[])
}

/// An UPDATE from raw fields; the length fields are computed from the slices.
fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    update_raw(
        u16::try_from(withdrawn.len()).unwrap(),
        withdrawn,
        u16::try_from(attrs.len()).unwrap(),
        attrs,
        nlri,
    )
}

/// An UPDATE whose length fields are given, not computed.
fn update_raw(wlen: u16, withdrawn: &[u8], alen: u16, attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = wlen.to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&alen.to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    msg(2, &b)
}

fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code, u8::try_from(value.len()).unwrap()];
    a.extend_from_slice(value);
    a
}

const WK: u8 = 0x40;
const OPT: u8 = 0x80;
const OPT_TRANS: u8 = 0xc0;

fn origin_igp() -> Vec<u8> {
    attr(WK, 1, &[0])
}

/// AS_PATH: one AS_SEQUENCE holding the eBGP peer's AS, 4-octet (RFC 6793).
fn as_path_ebgp() -> Vec<u8> {
    let mut v = vec![2, 1];
    v.extend_from_slice(&EBGP_AS.to_be_bytes());
    attr(WK, 2, &v)
}

fn next_hop() -> Vec<u8> {
    attr(WK, 3, &[127, 0, 0, 2])
}

fn med(v: u32) -> Vec<u8> {
    attr(OPT, 4, &v.to_be_bytes())
}

/// The NLRI 10.1.0.0/24, the route every case announces first.
const PFX: &str = "10.1.0.0/24";
const PFX_NLRI: [u8; 4] = [24, 10, 1, 0];

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn valid_ebgp_attrs() -> Vec<u8> {
    cat(&[origin_igp(), as_path_ebgp(), next_hop()])
}

/// An IPv6 MP_REACH_NLRI (RFC 4760 §3) for 2001:db8::/32 with the given next-hop bytes.
fn mp_reach_v6(flags: u8, nh: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 2, 1, u8::try_from(nh.len()).unwrap()];
    v.extend_from_slice(nh);
    v.push(0);
    v.extend_from_slice(&[32, 0x20, 0x01, 0x0d, 0xb8]);
    attr(flags, 14, &v)
}

fn v6_nh() -> Vec<u8> {
    "2001:db8::2"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets()
        .to_vec()
}

// ----- the raw peer -----

struct Raw {
    s: TcpStream,
}

impl Raw {
    async fn connect(port: u16) -> std::io::Result<Raw> {
        let sock = TcpSocket::new_v4()?;
        sock.bind(format!("{RAW_ADDR}:0").parse().unwrap())?;
        let s = sock
            .connect(format!("127.0.0.1:{port}").parse().unwrap())
            .await?;
        Ok(Raw { s })
    }

    async fn send(&mut self, m: &[u8]) {
        self.s.write_all(m).await.unwrap();
    }

    /// Next message as (type, body); `None` on EOF, error or timeout.
    async fn read(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        let fut = async {
            let mut hdr = [0u8; 19];
            self.s.read_exact(&mut hdr).await.ok()?;
            let len = usize::from(u16::from_be_bytes([hdr[16], hdr[17]]));
            let mut body = vec![0u8; len.checked_sub(19)?];
            self.s.read_exact(&mut body).await.ok()?;
            Some((hdr[18], body))
        };
        tokio::time::timeout(wait, fut).await.ok().flatten()
    }

    /// OPEN / OPEN / KEEPALIVE / KEEPALIVE (RFC 4271 §8.2.2); Err says where it stopped.
    async fn handshake(&mut self, asn: u32) -> Result<(), String> {
        self.send(&open(asn)).await;
        match self.read(Duration::from_secs(5)).await {
            Some((1, _)) => {}
            other => return Err(format!("expected OPEN, got {other:?}")),
        }
        match self.read(Duration::from_secs(5)).await {
            Some((4, _)) => {}
            other => return Err(format!("expected KEEPALIVE, got {other:?}")),
        }
        self.send(&keepalive()).await;
        Ok(())
    }

    /// Reads until a NOTIFICATION: (code, subcode, data).
    async fn notification(&mut self) -> (u8, u8, Vec<u8>) {
        loop {
            match self.read(Duration::from_secs(5)).await {
                Some((3, body)) => {
                    assert!(body.len() >= 2, "short NOTIFICATION {body:?}");
                    return (body[0], body[1], body[2..].to_vec());
                }
                Some(_) => continue,
                None => panic!("connection closed or timed out without a NOTIFICATION"),
            }
        }
    }

    /// Over a short while, nothing but KEEPALIVE / UPDATE arrives and the socket stays open.
    async fn assert_no_notification(&mut self) {
        let until = Instant::now() + Duration::from_millis(300);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            let fut = async {
                let mut hdr = [0u8; 19];
                self.s.read_exact(&mut hdr).await.map(|_| hdr)
            };
            match tokio::time::timeout(left, fut).await {
                Err(_) => return,
                Ok(Err(e)) => panic!("speaker closed the session: {e}"),
                Ok(Ok(hdr)) => {
                    assert!(
                        matches!(hdr[18], 2 | 4),
                        "unexpected message type {}",
                        hdr[18]
                    );
                    let len = usize::from(u16::from_be_bytes([hdr[16], hdr[17]]));
                    let mut body = vec![0u8; len - 19];
                    self.s.read_exact(&mut body).await.unwrap();
                }
            }
        }
    }
}

/// A speaker with one passive peer 127.0.0.2 (AS `peer_as`), a raw session to it
/// Established, and `valid` (announcing 10.1.0.0/24) already in the Loc-RIB.
async fn setup(peer_as: u32, valid: &[u8]) -> (SpeakerHandle, u16, Raw) {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let h = spawn(config(listen, vec![peer(peer_as, port)]), None)
        .await
        .unwrap();
    let mut raw = Raw::connect(port).await.unwrap();
    raw.handshake(peer_as).await.unwrap();
    wait_for("Established", || async { state(&h).await == "Established" }).await;
    raw.send(valid).await;
    wait_for("the valid route in the Loc-RIB", || async {
        route(&h, PFX).await.is_some()
    })
    .await;
    (h, port, raw)
}

// ----- the three actions -----

/// RFC 7606 §2 treat-as-withdraw: the malformed UPDATE re-announces 10.1.0.0/24; the route
/// must leave the Loc-RIB, the session stay Established, and a valid UPDATE be accepted.
async fn expect_treat_as_withdraw(peer_as: u32, valid_attrs: Vec<u8>, bad_attrs: Vec<u8>) {
    let valid = update(&[], &valid_attrs, &PFX_NLRI);
    let (h, _, mut raw) = setup(peer_as, &valid).await;
    raw.send(&update(&[], &bad_attrs, &PFX_NLRI)).await;
    wait_for("the route to be withdrawn", || async {
        route(&h, PFX).await.is_none()
    })
    .await;
    raw.assert_no_notification().await;
    assert_eq!(state(&h).await, "Established");
    raw.send(&valid).await;
    wait_for("the valid route to be accepted again", || async {
        route(&h, PFX).await.is_some()
    })
    .await;
    assert_eq!(state(&h).await, "Established");
    h.shutdown().await.unwrap();
}

/// RFC 7606 §2 attribute discard: the malformed UPDATE re-announces 10.1.0.0/24 with
/// MED 77; the route must be replaced (MED 77 seen) and the session stay Established.
/// Returns the accepted route for attribute checks.
async fn expect_attribute_discard(bad_attrs: Vec<u8>) -> RouteEntry {
    let valid = update(&[], &valid_ebgp_attrs(), &PFX_NLRI);
    let (h, _, mut raw) = setup(EBGP_AS, &valid).await;
    raw.send(&update(&[], &cat(&[bad_attrs, med(77)]), &PFX_NLRI))
        .await;
    wait_for("the route with MED 77", || async {
        route(&h, PFX).await.and_then(|r| r.med) == Some(77)
    })
    .await;
    raw.assert_no_notification().await;
    assert_eq!(state(&h).await, "Established");
    let r = route(&h, PFX).await.unwrap();
    h.shutdown().await.unwrap();
    r
}

/// Session reset: the raw peer gets NOTIFICATION `code`/`subcode` (data checked when
/// given), the peer's routes are flushed, the speaker still answers, and a new raw
/// connection from the same peer reaches Established again (after the IdleHold back-off).
async fn expect_session_reset(bad: Vec<u8>, code: u8, subcode: u8, data: Option<Vec<u8>>) {
    let valid = update(&[], &valid_ebgp_attrs(), &PFX_NLRI);
    let (h, port, mut raw) = setup(EBGP_AS, &valid).await;
    raw.send(&bad).await;
    let (c, s, d) = raw.notification().await;
    assert_eq!(
        (c, s),
        (code, subcode),
        "NOTIFICATION code/subcode (data {d:?})"
    );
    if let Some(data) = data {
        assert_eq!(d, data, "NOTIFICATION data");
    }
    drop(raw);
    wait_for("the session to leave Established", || async {
        state(&h).await != "Established"
    })
    .await;
    wait_for("the peer's routes to be flushed", || async {
        route(&h, PFX).await.is_none()
    })
    .await;

    // Still serving: a new connection is accepted (retry through the IdleHold back-off).
    let start = Instant::now();
    let mut raw = loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "speaker did not re-accept the peer within 20 s (state {})",
            state(&h).await
        );
        if let Ok(mut r) = Raw::connect(port).await {
            if r.handshake(EBGP_AS).await.is_ok() {
                break r;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    wait_for("Established again", || async {
        state(&h).await == "Established"
    })
    .await;
    eprintln!("re-established {:?} after the reset", start.elapsed());
    raw.send(&valid).await;
    wait_for("the route after re-establishment", || async {
        route(&h, PFX).await.is_some()
    })
    .await;
    h.shutdown().await.unwrap();
}

// ----- treat-as-withdraw (RFC 7606 §2, §3, §7) -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_bad_value_is_treat_as_withdraw() {
    // RFC 7606 §7.1: undefined ORIGIN value.
    let bad = cat(&[attr(WK, 1, &[3]), as_path_ebgp(), next_hop()]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_bad_length_is_treat_as_withdraw() {
    // RFC 7606 §7.1: ORIGIN length not 1.
    let bad = cat(&[attr(WK, 1, &[0, 0]), as_path_ebgp(), next_hop()]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_bad_flags_is_treat_as_withdraw() {
    // RFC 7606 §3(c): Optional bit set on a well-known attribute.
    let bad = cat(&[attr(OPT_TRANS, 1, &[0]), as_path_ebgp(), next_hop()]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_path_segment_overrun_is_treat_as_withdraw() {
    // RFC 7606 §7.2: segment count 3, but one ASN in the attribute.
    let mut v = vec![2, 3];
    v.extend_from_slice(&EBGP_AS.to_be_bytes());
    let bad = cat(&[origin_igp(), attr(WK, 2, &v), next_hop()]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_path_zero_length_segment_is_treat_as_withdraw() {
    // RFC 7606 §7.2: a segment with length zero.
    let mut v = vec![2, 1];
    v.extend_from_slice(&EBGP_AS.to_be_bytes());
    v.extend_from_slice(&[2, 0]);
    let bad = cat(&[origin_igp(), attr(WK, 2, &v), next_hop()]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_path_bad_segment_type_is_treat_as_withdraw() {
    // RFC 7606 §7.2: undefined segment type (9).
    let mut v = vec![9, 1];
    v.extend_from_slice(&EBGP_AS.to_be_bytes());
    let bad = cat(&[origin_igp(), attr(WK, 2, &v), next_hop()]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_path_trailing_octet_is_treat_as_withdraw() {
    // RFC 7606 §7.2: one octet left over after the last segment (overrun of the header).
    let mut v = vec![2, 1];
    v.extend_from_slice(&EBGP_AS.to_be_bytes());
    v.push(2);
    let bad = cat(&[origin_igp(), attr(WK, 2, &v), next_hop()]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_hop_bad_length_is_treat_as_withdraw() {
    // RFC 7606 §7.3: NEXT_HOP length not 4.
    let bad = cat(&[origin_igp(), as_path_ebgp(), attr(WK, 3, &[127, 0, 0])]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_hop_multicast_is_treat_as_withdraw() {
    // RFC 7606 §7.3 (RFC 4271 §6.3): a syntactically incorrect next hop.
    let bad = cat(&[origin_igp(), as_path_ebgp(), attr(WK, 3, &[224, 0, 0, 1])]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn med_bad_length_is_treat_as_withdraw() {
    // RFC 7606 §7.4: MULTI_EXIT_DISC length not 4.
    let bad = cat(&[valid_ebgp_attrs(), attr(OPT, 4, &[0, 0, 1])]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_pref_bad_length_from_ibgp_is_treat_as_withdraw() {
    // RFC 7606 §7.5: from an internal neighbor, LOCAL_PREF length not 4 is treat-as-withdraw.
    let ibgp = |lp: Vec<u8>| cat(&[origin_igp(), attr(WK, 2, &[]), next_hop(), lp]);
    let valid = ibgp(attr(WK, 5, &100u32.to_be_bytes()));
    let bad = ibgp(attr(WK, 5, &[0, 0, 100]));
    expect_treat_as_withdraw(SPEAKER_AS, valid, bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn communities_not_multiple_of_4_is_treat_as_withdraw() {
    // RFC 7606 §7.8: COMMUNITIES length not a non-zero multiple of 4.
    let bad = cat(&[
        valid_ebgp_attrs(),
        attr(OPT_TRANS, 8, &[0xfd, 0xea, 0, 1, 7]),
    ]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_communities_not_multiple_of_12_is_treat_as_withdraw() {
    // RFC 8092 §5: LARGE_COMMUNITIES length not a non-zero multiple of 12.
    let bad = cat(&[valid_ebgp_attrs(), attr(OPT_TRANS, 32, &[0; 13])]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_origin_is_treat_as_withdraw() {
    // RFC 7606 §3(d): missing well-known mandatory attribute with NLRI present.
    let bad = cat(&[as_path_ebgp(), next_hop()]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_as_path_is_treat_as_withdraw() {
    // RFC 7606 §3(d).
    let bad = cat(&[origin_igp(), next_hop()]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_next_hop_is_treat_as_withdraw() {
    // RFC 7606 §3(d): NEXT_HOP is mandatory when the NLRI field is not empty (RFC 4760 §3).
    let bad = cat(&[origin_igp(), as_path_ebgp()]);
    expect_treat_as_withdraw(EBGP_AS, valid_ebgp_attrs(), bad).await;
}

// ----- attribute discard (RFC 7606 §2, §3(g), §7.6, §7.7, §7.5) -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_aggregate_bad_length_is_discarded() {
    // RFC 7606 §7.6: ATOMIC_AGGREGATE length not 0. (RouteEntry does not expose the flag,
    // so only acceptance and the untouched attributes are checked.)
    let r = expect_attribute_discard(cat(&[valid_ebgp_attrs(), attr(WK, 6, &[1])])).await;
    assert_eq!((r.origin.as_str(), r.as_path), ("igp", vec![EBGP_AS]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregator_bad_length_is_discarded() {
    // RFC 7606 §7.7: AGGREGATOR length not 8 on a 4-octet-AS session (here 7).
    let bad = attr(OPT_TRANS, 7, &[0, 0, 0xfd, 0xea, 10, 0, 0]);
    let r = expect_attribute_discard(cat(&[valid_ebgp_attrs(), bad])).await;
    assert_eq!((r.origin.as_str(), r.as_path), ("igp", vec![EBGP_AS]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_attribute_keeps_the_first() {
    // RFC 7606 §3(g): all but the first occurrence of a repeated attribute are discarded.
    let bad = cat(&[valid_ebgp_attrs(), attr(WK, 1, &[2])]);
    let r = expect_attribute_discard(bad).await;
    assert_eq!(r.origin, "igp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_pref_bad_length_from_ebgp_is_discarded() {
    // RFC 7606 §7.5: LOCAL_PREF from an external neighbor SHALL be discarded using
    // attribute discard, whatever its length.
    let r = expect_attribute_discard(cat(&[valid_ebgp_attrs(), attr(WK, 5, &[0, 0, 100])])).await;
    assert_eq!(r.local_pref, None);
}

// ----- session reset (RFC 7606 §3, §4, §5.3, §7.11; RFC 4271 §6.3) -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp_reach_bad_next_hop_length_resets_3_9() {
    // RFC 7606 §7.11: an MP_REACH_NLRI next-hop length that does not fit the AFI (5 for
    // IPv6) is a session reset; error.rs maps it to 3/9 Optional Attribute Error with the
    // attribute as data.
    let mp = mp_reach_v6(OPT, &[0x20, 0x01, 0x0d, 0xb8, 0]);
    let bad = update(&[], &cat(&[mp.clone(), origin_igp(), as_path_ebgp()]), &[]);
    expect_session_reset(bad, 3, 9, Some(mp)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp_reach_bad_flags_resets_3_4() {
    // RFC 7606 §3(c) leaves MP_REACH_NLRI flag errors to its own rules (§5.3 / §7.11:
    // session reset); error.rs sends 3/4 Attribute Flags Error with the attribute.
    let mp = mp_reach_v6(OPT_TRANS, &v6_nh());
    let bad = update(&[], &cat(&[mp.clone(), origin_igp(), as_path_ebgp()]), &[]);
    expect_session_reset(bad, 3, 4, Some(mp)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_mp_reach_resets_3_1() {
    // RFC 7606 §3(g): more than one MP_REACH_NLRI is Malformed Attribute List.
    let mp = mp_reach_v6(OPT, &v6_nh());
    let attrs = cat(&[mp.clone(), mp, origin_igp(), as_path_ebgp()]);
    expect_session_reset(update(&[], &attrs, &[]), 3, 1, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nlri_prefix_length_over_32_resets_3_10() {
    // RFC 7606 §5.3: an NLRI field that cannot be parsed is a session reset, 3/10 Invalid
    // Network Field.
    let bad = update(&[], &valid_ebgp_attrs(), &[33, 10, 1, 0, 0, 0]);
    expect_session_reset(bad, 3, 10, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nlri_prefix_overrunning_the_field_resets_3_10() {
    // RFC 7606 §5.3: a /24 with only two prefix octets left in the message.
    let bad = update(&[], &valid_ebgp_attrs(), &[24, 10, 1]);
    expect_session_reset(bad, 3, 10, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_overrunning_the_field_resets_3_1() {
    // RFC 7606 §4 allows treat-as-withdraw here, but the codec resets (3/1) because the
    // unparsed tail could hold an MP_REACH_NLRI (see attribute.rs decode_attrs).
    let mut attrs = valid_ebgp_attrs();
    attrs.extend_from_slice(&[OPT, 4, 10, 0, 0]); // MED claiming 10 octets, 2 present
    expect_session_reset(update(&[], &attrs, &PFX_NLRI), 3, 1, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_attribute_length_overrun_resets_3_1() {
    // RFC 4271 §6.3 / RFC 7606 §4: Total Path Attribute Length past the end of the message.
    let attrs = valid_ebgp_attrs();
    let alen = u16::try_from(attrs.len() + 40).unwrap();
    expect_session_reset(update_raw(0, &[], alen, &attrs, &PFX_NLRI), 3, 1, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawn_length_overrun_resets_3_1() {
    // RFC 4271 §6.3 / RFC 7606 §4: Withdrawn Routes Length past the end of the message.
    let bad = update_raw(100, &PFX_NLRI, 0, &[], &[]);
    expect_session_reset(bad, 3, 1, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrecognized_well_known_resets_3_2() {
    // RFC 4271 §6.3 (unchanged by RFC 7606): unknown attribute with the Optional bit clear;
    // the data is the attribute.
    let unknown = attr(WK, 200, &[1, 2]);
    let attrs = cat(&[valid_ebgp_attrs(), unknown.clone()]);
    expect_session_reset(update(&[], &attrs, &PFX_NLRI), 3, 2, Some(unknown)).await;
}

// ----- the harness itself -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_update_after_valid_update_is_kept() {
    // Control case: a well-formed re-announcement leaves the route in place and the session
    // up, so the withdrawals above are caused by the malformation alone.
    let valid = update(&[], &valid_ebgp_attrs(), &PFX_NLRI);
    let (h, _, mut raw) = setup(EBGP_AS, &valid).await;
    raw.send(&update(&[], &cat(&[valid_ebgp_attrs(), med(5)]), &PFX_NLRI))
        .await;
    wait_for("MED 5", || async {
        route(&h, PFX).await.and_then(|r| r.med) == Some(5)
    })
    .await;
    raw.assert_no_notification().await;
    assert_eq!(state(&h).await, "Established");
    h.shutdown().await.unwrap();
}
