//! The trust features over loopback with the real kernel: TCP MD5 signatures (RFC 2385),
//! GTSM (RFC 5082) and the maximum-prefix limit (RFC 4486 §4).
//!
//! MD5 and GTSM need a kernel with CONFIG_TCP_MD5SIG and IP_MINTTL (every Linux since
//! 2.6.x / 2.6.34); loopback keeps a packet's TTL, so a TTL 255 sender arrives with 255.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp::policy::{Filter, PrefixRule};
use bgp::session::{spawn_peer, Listener, Md5Key, PeerConfig, PeerHandle, SessionEvent};
use bgp::speaker::{spawn, Announce, PeerSettings, SpeakerConfig, SpeakerHandle, TableKind};
use bgp::wire::{decode_message, message_len, Capability, DecodeContext, Family, Message};
use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const LO1: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const LO2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const LO3: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const WAIT: Duration = Duration::from_secs(20);

type Events = mpsc::Receiver<(u32, SessionEvent)>;

fn peer_cfg(local: IpAddr, remote: SocketAddr, local_asn: u32, remote_asn: u32) -> PeerConfig {
    let IpAddr::V4(id) = local else { panic!() };
    PeerConfig {
        remote_addr: remote.ip(),
        remote_port: remote.port(),
        local_addr: Some(local),
        local_asn,
        remote_asn,
        router_id: id,
        hold_time: 9,
        passive: false,
        connect_retry: Duration::from_secs(1),
        capabilities: vec![
            Capability::MultiProtocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(local_asn),
        ],
        password: None,
        ttl_security: false,
    }
}

fn key(s: &str) -> Option<Md5Key> {
    Some(Md5Key::new(s).unwrap())
}

/// Two listeners (127.0.0.1, 127.0.0.2) and two active peers pointing at each other, with
/// the given keys and GTSM settings.
async fn two_peers(
    a_key: Option<Md5Key>,
    b_key: Option<Md5Key>,
    gtsm: bool,
) -> (PeerHandle, Events, PeerHandle, Events, Listener, Listener) {
    let la = Listener::bind(SocketAddr::new(LO1, 0)).await.unwrap();
    let lb = Listener::bind(SocketAddr::new(LO2, 0)).await.unwrap();
    let mut ca = peer_cfg(LO1, lb.local_addr(), 65001, 65002);
    ca.password = a_key;
    ca.ttl_security = gtsm;
    let mut cb = peer_cfg(LO2, la.local_addr(), 65002, 65001);
    cb.password = b_key;
    cb.ttl_security = gtsm;
    let (ta, ra) = mpsc::channel(64);
    let (tb, rb) = mpsc::channel(64);
    let a = spawn_peer(1, ca, ta);
    let b = spawn_peer(2, cb, tb);
    la.try_register(LO2, &a).unwrap();
    lb.try_register(LO1, &b).unwrap();
    (a, ra, b, rb, la, lb)
}

async fn wait_event(
    rx: &mut Events,
    within: Duration,
    pred: impl Fn(&SessionEvent) -> bool,
) -> Option<SessionEvent> {
    timeout(within, async {
        loop {
            let (_, ev) = rx.recv().await?;
            if pred(&ev) {
                return Some(ev);
            }
        }
    })
    .await
    .ok()
    .flatten()
}

fn is_established(e: &SessionEvent) -> bool {
    matches!(e, SessionEvent::Established(_))
}

#[tokio::test]
async fn md5_matching_keys_establish() {
    let (_a, mut ra, _b, mut rb, _la, _lb) = two_peers(key("s3cret"), key("s3cret"), false).await;
    assert!(wait_event(&mut ra, WAIT, is_established).await.is_some());
    assert!(wait_event(&mut rb, WAIT, is_established).await.is_some());
}

#[tokio::test]
async fn md5_mismatched_keys_never_establish_and_say_why() {
    let (_a, mut ra, _b, mut rb, _la, _lb) = two_peers(key("s3cret"), key("other"), false).await;
    let ev = wait_event(&mut ra, Duration::from_secs(6), |e| {
        is_established(e) || matches!(e, SessionEvent::Down { .. })
    })
    .await;
    let Some(SessionEvent::Down { reason }) = ev else {
        panic!("expected a Down for the timed-out connect, got {ev:?}")
    };
    assert!(
        reason.contains("timed out (TCP MD5 configured: check the password)"),
        "{reason}"
    );
    // Several more ConnectRetry rounds: never Established on either side.
    assert!(wait_event(&mut ra, Duration::from_secs(4), is_established)
        .await
        .is_none());
    assert!(
        wait_event(&mut rb, Duration::from_millis(100), is_established)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn md5_one_sided_key_never_establishes() {
    let (_a, mut ra, _b, mut rb, _la, _lb) = two_peers(key("s3cret"), None, false).await;
    assert!(wait_event(&mut ra, Duration::from_secs(5), is_established)
        .await
        .is_none());
    assert!(
        wait_event(&mut rb, Duration::from_millis(100), is_established)
            .await
            .is_none()
    );
}

/// A raw TCP client bound to `from`, sending with `ttl`.
async fn raw_connect(from: IpAddr, to: SocketAddr, ttl: u32) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from, 0))?;
    let sock = socket2::SockRef::from(&s);
    sock.set_ttl(ttl)?;
    s.connect(to).await
}

/// Reads one message; None on EOF or reset.
async fn read_msg(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Message> {
    loop {
        if let Ok(Some(len)) = message_len(buf, 4096) {
            if buf.len() >= len {
                let m = buf.split_to(len);
                return decode_message(&m, &DecodeContext::default()).ok();
            }
        }
        if s.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

#[tokio::test]
async fn unsigned_syn_to_a_keyed_listener_never_connects() {
    let l = Listener::bind(SocketAddr::new(LO1, 0)).await.unwrap();
    let mut cfg = peer_cfg(LO1, SocketAddr::new(LO2, 179), 65001, 65002);
    cfg.passive = true;
    cfg.password = key("s3cret");
    let (tx, _rx) = mpsc::channel(16);
    let p = spawn_peer(3, cfg, tx);
    l.try_register(LO2, &p).unwrap();
    let res = timeout(Duration::from_secs(3), raw_connect(LO2, l.local_addr(), 64)).await;
    assert!(
        res.is_err(),
        "the handshake completed without a signature: {res:?}"
    );
    // Without the key registered, the same client gets an OPEN.
    l.unregister(LO2);
    let mut cfg = peer_cfg(LO1, SocketAddr::new(LO2, 179), 65001, 65002);
    cfg.passive = true;
    let (tx, _rx2) = mpsc::channel(16);
    let p = spawn_peer(4, cfg, tx);
    l.try_register(LO2, &p).unwrap();
    let mut s = timeout(WAIT, raw_connect(LO2, l.local_addr(), 64))
        .await
        .unwrap()
        .unwrap();
    let first = timeout(WAIT, read_msg(&mut s, &mut BytesMut::new()))
        .await
        .unwrap();
    assert!(matches!(first, Some(Message::Open(_))), "{first:?}");
}

#[tokio::test]
async fn gtsm_peers_establish_over_loopback() {
    let (_a, mut ra, _b, mut rb, _la, _lb) = two_peers(None, None, true).await;
    assert!(wait_event(&mut ra, WAIT, is_established).await.is_some());
    assert!(wait_event(&mut rb, WAIT, is_established).await.is_some());
}

#[tokio::test]
async fn gtsm_and_md5_together_establish() {
    let (_a, mut ra, _b, mut rb, _la, _lb) = two_peers(key("k"), key("k"), true).await;
    assert!(wait_event(&mut ra, WAIT, is_established).await.is_some());
    assert!(wait_event(&mut rb, WAIT, is_established).await.is_some());
}

fn passive_gtsm_peer(key_: u32, remote: IpAddr, gtsm: bool) -> (PeerHandle, Events) {
    let mut cfg = peer_cfg(LO1, SocketAddr::new(remote, 179), 65001, 65002);
    cfg.passive = true;
    cfg.ttl_security = gtsm;
    let (tx, rx) = mpsc::channel(16);
    (spawn_peer(key_, cfg, tx), rx)
}

#[tokio::test]
async fn gtsm_only_listener_drops_low_ttl_syns() {
    let l = Listener::bind(SocketAddr::new(LO1, 0)).await.unwrap();
    let (p, _rx) = passive_gtsm_peer(5, LO2, true);
    l.try_register(LO2, &p).unwrap();
    // Every registered peer uses GTSM: the listener's IP_MINTTL drops the SYN itself.
    let res = timeout(Duration::from_secs(3), raw_connect(LO2, l.local_addr(), 64)).await;
    assert!(
        res.is_err(),
        "a TTL 64 SYN completed the handshake: {res:?}"
    );
    let mut s = timeout(WAIT, raw_connect(LO2, l.local_addr(), 255))
        .await
        .unwrap()
        .unwrap();
    let first = timeout(WAIT, read_msg(&mut s, &mut BytesMut::new()))
        .await
        .unwrap();
    assert!(matches!(first, Some(Message::Open(_))), "{first:?}");
}

#[tokio::test]
async fn gtsm_peer_on_a_mixed_listener_is_checked_by_its_syn() {
    let l = Listener::bind(SocketAddr::new(LO1, 0)).await.unwrap();
    let (gtsm, _r1) = passive_gtsm_peer(6, LO2, true);
    let (plain, _r2) = passive_gtsm_peer(7, LO3, false);
    l.try_register(LO2, &gtsm).unwrap();
    l.try_register(LO3, &plain).unwrap();

    // The GTSM peer's TTL 64 connection is accepted by the kernel, then closed unread.
    let mut s = timeout(WAIT, raw_connect(LO2, l.local_addr(), 64))
        .await
        .unwrap()
        .unwrap();
    let first = timeout(WAIT, read_msg(&mut s, &mut BytesMut::new()))
        .await
        .unwrap();
    assert!(first.is_none(), "a TTL 64 connection got {first:?}");
    // TTL 255 from the GTSM peer is served.
    let mut s = timeout(WAIT, raw_connect(LO2, l.local_addr(), 255))
        .await
        .unwrap()
        .unwrap();
    let first = timeout(WAIT, read_msg(&mut s, &mut BytesMut::new()))
        .await
        .unwrap();
    assert!(matches!(first, Some(Message::Open(_))), "{first:?}");
    // The plain peer is not held to GTSM.
    let mut s = timeout(WAIT, raw_connect(LO3, l.local_addr(), 64))
        .await
        .unwrap()
        .unwrap();
    let first = timeout(WAIT, read_msg(&mut s, &mut BytesMut::new()))
        .await
        .unwrap();
    assert!(matches!(first, Some(Message::Open(_))), "{first:?}");
}

// ===== maximum prefixes, speaker to speaker =====

fn allow_all() -> Filter {
    Filter {
        rules: Some(vec!["0.0.0.0/0 le 32".parse::<PrefixRule>().unwrap()]),
        policy: None,
    }
}

fn settings(address: IpAddr, asn: u32, port: u16, local: IpAddr, passive: bool) -> PeerSettings {
    PeerSettings {
        address,
        asn,
        port,
        local_address: Some(local),
        passive,
        hold_time: None,
        families: vec![Family::IPV4_UNICAST],
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

fn speaker_cfg(
    asn: u32,
    id: &str,
    listen: Option<SocketAddr>,
    peer: PeerSettings,
) -> SpeakerConfig {
    SpeakerConfig {
        router_id: id.parse().unwrap(),
        asn,
        listen,
        hold_time: 9,
        graceful_restart: false,
        restart_time: 120,
        cluster_id: None,
        peers: vec![peer],
    }
}

async fn status(h: &SpeakerHandle) -> bgp::speaker::PeerStatus {
    h.status().await.unwrap().remove(0)
}

async fn wait_status(
    h: &SpeakerHandle,
    within: Duration,
    pred: impl Fn(&bgp::speaker::PeerStatus) -> bool,
) -> bgp::speaker::PeerStatus {
    let start = Instant::now();
    loop {
        let s = status(h).await;
        if pred(&s) {
            return s;
        }
        assert!(start.elapsed() < within, "timed out; last status {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn announce(n: u8) -> Vec<Announce> {
    (0..n)
        .map(|i| Announce {
            prefix: format!("10.9.{i}.0/24").parse().unwrap(),
            next_hop: None,
            communities: Vec::new(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_prefixes_ceases_drops_routes_and_holds_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // a (AS 65001) listens on 127.0.0.1 and takes at most 3 paths from b.
    let mut pa = settings(LO2, 65002, port, LO1, true);
    pa.max_prefixes = Some(3);
    pa.max_prefixes_restart = 3;
    let a = spawn(
        speaker_cfg(65001, "10.255.0.1", Some(SocketAddr::new(LO1, port)), pa),
        None,
    )
    .await
    .unwrap();
    let b = spawn(
        speaker_cfg(
            65002,
            "10.255.0.2",
            None,
            settings(LO1, 65001, port, LO2, false),
        ),
        None,
    )
    .await
    .unwrap();
    b.announce(announce(3)).await.unwrap().unwrap();
    wait_status(&a, WAIT, |s| s.state == "Established" && s.accepted == 3).await;

    // One more path than allowed.
    b.announce(announce(4)).await.unwrap().unwrap();
    let sa = wait_status(&a, WAIT, |s| s.state != "Established").await;
    let tripped = Instant::now();
    assert_eq!(sa.info, "max-prefix limit 3 exceeded; restarting in 3s");
    assert_eq!(sa.received, 0);
    let loc = a.routes(TableKind::Loc, None).await.unwrap().unwrap();
    assert!(loc.iter().all(|r| r.peer.is_none()), "{loc:?}");
    let sb = wait_status(&b, WAIT, |s| s.info.contains("received NOTIFICATION")).await;
    assert!(
        sb.info
            .contains("Cease / Maximum Number of Prefixes Reached"),
        "{sb:?}"
    );

    // Down for the hold-down, whatever b tries; then back (b now within the limit).
    b.withdraw(vec!["10.9.3.0/24".parse().unwrap()])
        .await
        .unwrap()
        .unwrap();
    while tripped.elapsed() < Duration::from_millis(2500) {
        let s = status(&a).await;
        assert_ne!(s.state, "Established", "up during the hold-down: {s:?}");
        assert_eq!(s.info, "max-prefix limit 3 exceeded; restarting in 3s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = wait_status(&a, Duration::from_secs(30), |s| {
        s.state == "Established" && s.accepted == 3
    })
    .await;
    assert!(tripped.elapsed() >= Duration::from_secs(3), "{s:?}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
