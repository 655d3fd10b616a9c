//! Sessions over loopback: real sockets, real timers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp::session::{spawn_peer, Listener, PeerConfig, PeerHandle, SessionEvent, State};
use bgp::wire::{
    decode_message, encode_message, message_len, AsPath, AsSegment, Capability, DecodeContext,
    EncodeContext, Family, Message, Nlri, Notification, Open, Origin, PathAttrs, SegmentType,
    Update,
};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const LO1: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const LO2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const WAIT: Duration = Duration::from_secs(20);

type Events = mpsc::Receiver<(u32, SessionEvent)>;

fn caps(asn: u32) -> Vec<Capability> {
    vec![
        Capability::MultiProtocol(Family::IPV4_UNICAST),
        Capability::RouteRefresh,
        Capability::FourOctetAs(asn),
    ]
}

fn peer_cfg(local: IpAddr, remote: SocketAddr, local_asn: u32, remote_asn: u32) -> PeerConfig {
    let id = match local {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::new(192, 0, 2, 1),
    };
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
        capabilities: caps(local_asn),
        password: None,
        ttl_security: false,
    }
}

/// Waits for the first event matching `pred`, returning it.
async fn wait_for(
    rx: &mut Events,
    what: &str,
    pred: impl Fn(&SessionEvent) -> bool,
) -> SessionEvent {
    let fut = async {
        loop {
            let (_, ev) = rx.recv().await.expect("events channel closed");
            if pred(&ev) {
                return ev;
            }
        }
    };
    timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn established(rx: &mut Events) -> SessionEvent {
    wait_for(rx, "Established", |e| {
        matches!(e, SessionEvent::Established(_))
    })
    .await
}

fn update() -> Update {
    Update {
        attrs: PathAttrs {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath {
                segments: vec![AsSegment {
                    kind: SegmentType::Sequence,
                    asns: vec![65001],
                }],
            }),
            next_hop: Some(Ipv4Addr::new(127, 0, 0, 1)),
            ..PathAttrs::default()
        },
        nlri: vec![Nlri {
            prefix: "10.244.1.0/26".parse().unwrap(),
            path_id: 0,
        }],
        ..Update::default()
    }
}

fn encode(msg: &Message, ctx: &EncodeContext) -> bytes::Bytes {
    let mut b = BytesMut::new();
    encode_message(msg, ctx, &mut b).unwrap();
    b.freeze()
}

/// Two listeners (127.0.0.1 and 127.0.0.2, ephemeral ports) and two peers pointing at each
/// other.
async fn two_peers(
    a_passive: bool,
    b_passive: bool,
) -> (PeerHandle, Events, PeerHandle, Events, Listener, Listener) {
    let la = Listener::bind(SocketAddr::new(LO1, 0)).await.unwrap();
    let lb = Listener::bind(SocketAddr::new(LO2, 0)).await.unwrap();
    let mut ca = peer_cfg(LO1, lb.local_addr(), 65001, 65002);
    ca.passive = a_passive;
    let mut cb = peer_cfg(LO2, la.local_addr(), 65002, 65001);
    cb.passive = b_passive;
    let (ta, ra) = mpsc::channel(64);
    let (tb, rb) = mpsc::channel(64);
    let a = spawn_peer(1, ca, ta);
    let b = spawn_peer(2, cb, tb);
    la.register(LO2, &a);
    lb.register(LO1, &b);
    (a, ra, b, rb, la, lb)
}

#[tokio::test]
async fn established_update_and_cease() {
    let (a, mut ra, _b, mut rb, _la, _lb) = two_peers(false, true).await;
    let SessionEvent::Established(neg) = established(&mut ra).await else {
        unreachable!()
    };
    established(&mut rb).await;
    assert_eq!(neg.hold_time, 9);
    assert_eq!(neg.keepalive, 3);
    assert!(neg.four_octet_as && neg.route_refresh);
    assert_eq!(neg.families, vec![Family::IPV4_UNICAST]);

    let u = update();
    a.send(encode(&Message::Update(u.clone()), &neg.encode))
        .await
        .unwrap();
    let got = wait_for(&mut rb, "UPDATE", |e| matches!(e, SessionEvent::Update(_))).await;
    assert_eq!(got, SessionEvent::Update(u));

    a.stop(Notification::cease(2)).await;
    let SessionEvent::Down { reason } =
        wait_for(&mut rb, "Down", |e| matches!(e, SessionEvent::Down { .. })).await
    else {
        unreachable!()
    };
    assert!(reason.contains("Cease"), "{reason}");
    assert!(reason.contains("received NOTIFICATION"), "{reason}");
    let SessionEvent::Down { reason } =
        wait_for(&mut ra, "Down", |e| matches!(e, SessionEvent::Down { .. })).await
    else {
        unreachable!()
    };
    assert!(reason.contains("stopped"), "{reason}");

    // Stopped means Idle for good: nothing comes back up without start().
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Ok((_, ev)) = ra.try_recv() {
        assert!(!matches!(ev, SessionEvent::Established(_)), "{ev:?}");
    }
    a.start().await;
    established(&mut ra).await;
}

#[tokio::test]
async fn collision_ends_with_one_session() {
    let (a, mut ra, b, mut rb, _la, _lb) = two_peers(false, false).await;
    established(&mut ra).await;
    established(&mut rb).await;
    // Both stay up on one connection: an UPDATE goes through each way and no Down follows.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ctx = EncodeContext {
        four_octet_as: true,
        ..EncodeContext::default()
    };
    a.send(encode(&Message::Update(update()), &ctx))
        .await
        .unwrap();
    b.send(encode(&Message::Update(update()), &ctx))
        .await
        .unwrap();
    for rx in [&mut ra, &mut rb] {
        let ev = wait_for(rx, "UPDATE or Down", |e| {
            matches!(e, SessionEvent::Update(_) | SessionEvent::Down { .. })
        })
        .await;
        assert!(matches!(ev, SessionEvent::Update(_)), "{ev:?}");
    }
    while let Ok((_, ev)) = ra.try_recv() {
        assert!(!matches!(ev, SessionEvent::Down { .. }), "{ev:?}");
    }
}

/// A raw TCP client bound to `from`.
async fn raw_connect(from: IpAddr, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(from, 0)).unwrap();
    s.connect(to).await.unwrap()
}

/// Reads one whole message.
async fn read_msg(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Message> {
    loop {
        if let Ok(Some(len)) = message_len(buf, 4096) {
            if buf.len() >= len {
                let m = buf.split_to(len);
                return Some(decode_message(&m, &DecodeContext::default()).unwrap());
            }
        }
        if s.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

#[tokio::test]
async fn passive_listener_answers_garbage_with_a_notification() {
    let l = Listener::bind(SocketAddr::new(LO1, 0)).await.unwrap();
    let mut cfg = peer_cfg(LO1, SocketAddr::new(LO2, 179), 65001, 65002);
    cfg.passive = true;
    let (tx, mut rx) = mpsc::channel(16);
    let p = spawn_peer(7, cfg, tx);
    l.register(LO2, &p);

    // An unregistered source address is closed without a word.
    let mut s = raw_connect(Ipv4Addr::new(127, 0, 0, 3).into(), l.local_addr()).await;
    let mut buf = BytesMut::new();
    assert!(timeout(WAIT, read_msg(&mut s, &mut buf))
        .await
        .unwrap()
        .is_none());

    let mut s = raw_connect(LO2, l.local_addr()).await;
    let mut buf = BytesMut::new();
    let first = timeout(WAIT, read_msg(&mut s, &mut buf)).await.unwrap();
    assert!(
        matches!(first, Some(Message::Open(ref o)) if o.asn == 65001),
        "{first:?}"
    );
    s.write_all(&[0u8; 19]).await.unwrap();
    let next = timeout(WAIT, read_msg(&mut s, &mut buf)).await.unwrap();
    let Some(Message::Notification(n)) = next else {
        panic!("expected NOTIFICATION, got {next:?}")
    };
    assert_eq!((n.code, n.subcode), (1, 1), "Connection Not Synchronized");
    assert!(timeout(WAIT, read_msg(&mut s, &mut buf))
        .await
        .unwrap()
        .is_none());
    let ev = wait_for(&mut rx, "Down", |e| matches!(e, SessionEvent::Down { .. })).await;
    assert!(format!("{ev:?}").contains("Message Header Error"), "{ev:?}");

    // The task is still alive and answers.
    p.stop(Notification::cease(2)).await;
    assert!(p.send(bytes::Bytes::new()).await.is_ok());
}

#[tokio::test]
async fn hold_timer_expires_when_the_peer_goes_silent() {
    let (mut s, mut buf, mut rx, _p) = raw_established(3).await;

    // Silence from here on: keepalives from the peer task, then Hold Timer Expired.
    let start = tokio::time::Instant::now();
    let mut keepalives = 0;
    let notification = loop {
        match timeout(WAIT, read_msg(&mut s, &mut buf)).await.unwrap() {
            Some(Message::Keepalive) => keepalives += 1,
            Some(Message::Notification(n)) => break n,
            other => panic!("unexpected {other:?}"),
        }
    };
    let elapsed = start.elapsed();
    assert_eq!(notification.code, 4);
    assert!(keepalives >= 2, "keepalive every second, got {keepalives}");
    assert!(
        elapsed >= Duration::from_millis(2500) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    // StateChanged to Idle, then Down with the reason.
    let ev = wait_for(&mut rx, "Idle", |e| {
        matches!(
            e,
            SessionEvent::StateChanged {
                to: State::Idle,
                ..
            }
        )
    })
    .await;
    let (_, down) = rx.recv().await.unwrap();
    let SessionEvent::Down { reason } = down else {
        panic!("expected Down, got {down:?}")
    };
    assert!(reason.contains("Hold Timer Expired"), "{reason}");
    assert!(matches!(
        ev,
        SessionEvent::StateChanged {
            from: State::Established,
            ..
        }
    ));
}

#[tokio::test]
async fn slow_consumer_back_pressure_keeps_the_session_up() {
    let (a, mut ra, _b, mut rb, _la, _lb) = two_peers(false, true).await;
    let SessionEvent::Established(neg) = established(&mut ra).await else {
        unreachable!()
    };
    established(&mut rb).await;
    // Queue far more UPDATEs than the channels hold while B's speaker does not read.
    let one = encode(&Message::Update(update()), &neg.encode);
    let mut batch = BytesMut::new();
    for _ in 0..200 {
        batch.extend_from_slice(&one);
    }
    let batch = batch.freeze();
    let sender = tokio::spawn(async move {
        for _ in 0..50 {
            a.send(batch.clone()).await.unwrap();
        }
        a
    });
    // Longer than the 9 s hold time: keepalives must still flow both ways.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut updates = 0;
    while updates < 10_000 {
        let (_, ev) = timeout(WAIT, rb.recv()).await.unwrap().unwrap();
        match ev {
            SessionEvent::Update(_) => updates += 1,
            other => panic!("unexpected {other:?} after {updates} updates"),
        }
    }
    let _a = sender.await.unwrap();
    while let Ok((_, ev)) = ra.try_recv() {
        assert!(!matches!(ev, SessionEvent::Down { .. }), "{ev:?}");
    }
}

/// A peer task connected to a raw socket that completed OPEN + KEEPALIVE.
async fn raw_established(hold: u16) -> (TcpStream, BytesMut, Events, PeerHandle) {
    let raw = TcpListener::bind(SocketAddr::new(LO1, 0)).await.unwrap();
    let mut cfg = peer_cfg(LO1, raw.local_addr().unwrap(), 65001, 65002);
    cfg.hold_time = hold;
    let (tx, mut rx) = mpsc::channel(16);
    let p = spawn_peer(11, cfg, tx);
    let (mut s, _) = timeout(WAIT, raw.accept()).await.unwrap().unwrap();
    let mut buf = BytesMut::new();
    let first = read_msg(&mut s, &mut buf).await;
    assert!(matches!(first, Some(Message::Open(_))), "{first:?}");
    let open = Open {
        version: 4,
        asn: 65002,
        hold_time: hold,
        router_id: Ipv4Addr::new(192, 0, 2, 2),
        capabilities: caps(65002),
    };
    let ctx = EncodeContext::default();
    s.write_all(&encode(&Message::Open(open), &ctx))
        .await
        .unwrap();
    s.write_all(&encode(&Message::Keepalive, &ctx))
        .await
        .unwrap();
    established(&mut rx).await;
    (s, buf, rx, p)
}

/// An UPDATE from raw body bytes (after the header).
fn raw_update(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    m.push(2);
    m.extend_from_slice(body);
    m
}

#[tokio::test]
async fn rfc7606_outcomes_are_forwarded_and_fatal_errors_reset() {
    let (mut s, mut buf, mut rx, _p) = raw_established(90).await;
    // ORIGIN 5 is invalid: RFC 7606 §7.1 treat-as-withdraw, the session stays.
    let attrs: &[u8] = &[
        0x40, 1, 1, 5, // ORIGIN
        0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xea, // AS_PATH 65002 (4-octet)
        0x40, 3, 4, 127, 0, 0, 2, // NEXT_HOP
    ];
    let mut body = vec![0, 0, 0, u8::try_from(attrs.len()).unwrap()];
    body.extend_from_slice(attrs);
    body.extend_from_slice(&[24, 10, 1, 2]);
    s.write_all(&raw_update(&body)).await.unwrap();
    let ev = wait_for(&mut rx, "UPDATE", |e| matches!(e, SessionEvent::Update(_))).await;
    let SessionEvent::Update(u) = ev else {
        unreachable!()
    };
    assert!(u.treat_as_withdraw, "{u:?}");

    // Withdrawn Routes Length overrunning the message: NOTIFICATION and reset.
    s.write_all(&raw_update(&[0xff, 0xff, 0, 0])).await.unwrap();
    let n = loop {
        match timeout(WAIT, read_msg(&mut s, &mut buf)).await.unwrap() {
            Some(Message::Keepalive) => continue,
            Some(Message::Notification(n)) => break n,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(n.code, 3, "{n:?}");
    let ev = wait_for(&mut rx, "Down", |e| matches!(e, SessionEvent::Down { .. })).await;
    assert!(format!("{ev:?}").contains("UPDATE Message Error"), "{ev:?}");
}
