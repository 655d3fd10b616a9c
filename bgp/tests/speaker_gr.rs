//! Graceful restart, helper side (RFC 4724 §4.2) end to end: a raw TCP peer that sends a
//! hand-built OPEN with the Graceful Restart capability (code 64) announces routes to a real
//! speaker, then drops its TCP connection without a NOTIFICATION. The speaker must keep the
//! routes (marked stale) for the peer's restart time, clear them when the peer comes back
//! and sends End-of-RIB, and drop them at once when graceful restart does not apply.

mod common;

use common::raw::{msg, RawPeer};
use common::{allow_all, free_port, loc, wait_for};

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bgp::speaker::{spawn, PeerSettings, RouteEntry, SpeakerConfig, SpeakerHandle};
use bgp::wire::{Family, Prefix};

const SPEAKER_AS: u32 = 65001;
const RAW_AS: u32 = 65002;
const RAW_ADDR: &str = "127.0.0.2";
/// The raw peer's restart time (seconds) when it only goes away.
const RESTART: u16 = 3;
/// The restart time when it comes back: the speaker's FSM holds a dropped session in Idle
/// for 5 s (IdleHold) before it accepts the peer again.
const RESTART_LONG: u16 = 10;

fn peer(port: u16) -> PeerSettings {
    PeerSettings {
        address: RAW_ADDR.parse().unwrap(),
        asn: RAW_AS,
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

async fn speaker() -> (SpeakerHandle, u16) {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let h = spawn(
        SpeakerConfig {
            router_id: "10.255.0.1".parse().unwrap(),
            asn: SPEAKER_AS,
            listen: Some(listen),
            hold_time: 90,
            graceful_restart: true,
            restart_time: 120,
            cluster_id: None,
            peers: vec![peer(port)],
        },
        None,
    )
    .await
    .unwrap();
    (h, port)
}

async fn route(h: &SpeakerHandle, prefix: &str) -> Option<RouteEntry> {
    let p: Prefix = prefix.parse().unwrap();
    let raw: IpAddr = RAW_ADDR.parse().unwrap();
    loc(h)
        .await
        .into_iter()
        .find(|r| r.prefix == p && r.peer == Some(raw))
}

async fn info(h: &SpeakerHandle) -> String {
    h.status().await.unwrap()[0].info.clone()
}

// ----- hand-built messages (RFC 4271 §4) -----

/// OPEN with IPv4/IPv6 unicast, 4-octet AS and, if `gr` is given, the Graceful Restart
/// capability (RFC 4724 §3) for IPv4 unicast: (restart state bit, forwarding state bit).
fn open(gr: Option<(bool, bool, u16)>, hold: u16) -> Vec<u8> {
    let mut cap = vec![1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1, 65, 4];
    cap.extend_from_slice(&RAW_AS.to_be_bytes());
    if let Some((restarting, forwarding, time)) = gr {
        let flags_time = (u16::from(restarting) << 15) | time;
        cap.extend_from_slice(&[64, 6]);
        cap.extend_from_slice(&flags_time.to_be_bytes());
        cap.extend_from_slice(&[0, 1, 1, if forwarding { 0x80 } else { 0 }]);
    }
    let mut body = vec![4];
    body.extend_from_slice(&u16::try_from(RAW_AS).unwrap().to_be_bytes());
    body.extend_from_slice(&hold.to_be_bytes());
    body.extend_from_slice(&[10, 255, 0, 2]);
    body.push(u8::try_from(cap.len() + 2).unwrap());
    body.push(2);
    body.push(u8::try_from(cap.len()).unwrap());
    body.extend_from_slice(&cap);
    msg(1, &body)
}

fn update(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0];
    b.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    msg(2, &b)
}

/// ORIGIN IGP, AS_PATH [RAW_AS], NEXT_HOP 127.0.0.2.
fn attrs() -> Vec<u8> {
    let mut a = vec![0x40, 1, 1, 0, 0x40, 2, 6, 2, 1];
    a.extend_from_slice(&RAW_AS.to_be_bytes());
    a.extend_from_slice(&[0x40, 3, 4, 127, 0, 0, 2]);
    a
}

/// IPv4 unicast End-of-RIB: an UPDATE with nothing in it (RFC 4724 §2).
fn end_of_rib() -> Vec<u8> {
    update(&[], &[])
}

const P1: &str = "10.1.0.0/24";
const P2: &str = "10.2.0.0/24";
const NLRI1: [u8; 4] = [24, 10, 1, 0];
const NLRI2: [u8; 4] = [24, 10, 2, 0];

// ----- the raw peer -----

type Raw = RawPeer;

async fn raw_up(port: u16, gr: Option<(bool, bool, u16)>) -> Raw {
    raw_up_with_hold(port, gr, 90).await
}

/// As [`raw_up`] with the given Hold Time in the OPEN.
async fn raw_up_with_hold(port: u16, gr: Option<(bool, bool, u16)>, hold: u16) -> Raw {
    RawPeer::up(RAW_ADDR, port, &open(gr, hold)).await
}

/// Announces both test routes and waits until the speaker has them.
async fn announce_both(raw: &mut Raw, h: &SpeakerHandle) {
    let mut nlri = NLRI1.to_vec();
    nlri.extend_from_slice(&NLRI2);
    raw.send(&update(&attrs(), &nlri)).await;
    wait_for("both routes in the Loc-RIB", || async {
        route(h, P1).await.is_some() && route(h, P2).await.is_some()
    })
    .await;
}

async fn is_stale(h: &SpeakerHandle, prefix: &str) -> bool {
    route(h, prefix)
        .await
        .is_some_and(|r| r.note.as_deref() == Some("stale"))
}

#[tokio::test]
async fn routes_stay_stale_for_the_restart_time_then_go() {
    let (h, port) = speaker().await;
    let mut raw = raw_up(port, Some((false, true, RESTART))).await;
    announce_both(&mut raw, &h).await;
    assert_eq!(route(&h, P1).await.unwrap().note, None);
    let dropped = Instant::now();
    raw.crash();
    wait_for("routes marked stale", || async {
        is_stale(&h, P1).await && is_stale(&h, P2).await
    })
    .await;
    let i = info(&h).await;
    assert!(
        i.contains("graceful restart: 2 routes kept as stale"),
        "status info: {i}"
    );
    // Still there well into the restart time.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(is_stale(&h, P1).await && is_stale(&h, P2).await);
    wait_for("stale routes removed after the restart time", || async {
        route(&h, P1).await.is_none() && route(&h, P2).await.is_none()
    })
    .await;
    let took = dropped.elapsed();
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(6),
        "removed after {took:?}"
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn end_of_rib_removes_only_what_was_not_reannounced() {
    let (h, port) = speaker().await;
    let mut raw = raw_up(port, Some((false, true, RESTART_LONG))).await;
    announce_both(&mut raw, &h).await;
    raw.crash();
    wait_for("routes marked stale", || async { is_stale(&h, P1).await }).await;
    // The peer is back within its restart time, forwarding state preserved.
    let mut raw = raw_up(port, Some((true, true, RESTART_LONG))).await;
    raw.send(&update(&attrs(), &NLRI1)).await;
    wait_for("re-announced route no longer stale", || async {
        route(&h, P1).await.is_some_and(|r| r.note.is_none())
    })
    .await;
    // Before End-of-RIB the other one is still kept, still stale.
    assert!(is_stale(&h, P2).await, "{:?}", route(&h, P2).await);
    let sent = Instant::now();
    raw.send(&end_of_rib()).await;
    wait_for("unrefreshed stale route removed on End-of-RIB", || async {
        route(&h, P2).await.is_none()
    })
    .await;
    assert!(sent.elapsed() < Duration::from_secs(2));
    let r1 = route(&h, P1).await.expect("re-announced route stays");
    assert_eq!(r1.note, None);
    // And nothing is removed later by the (cancelled) restart timer.
    tokio::time::sleep(Duration::from_millis(u64::from(RESTART_LONG) * 1000)).await;
    assert!(route(&h, P1).await.is_some());
    assert_eq!(h.status().await.unwrap()[0].state, "Established");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn forwarding_bit_clear_on_return_drops_stale_routes_at_once() {
    let (h, port) = speaker().await;
    let mut raw = raw_up(port, Some((false, true, RESTART_LONG))).await;
    announce_both(&mut raw, &h).await;
    raw.crash();
    wait_for("routes marked stale", || async { is_stale(&h, P1).await }).await;
    // RFC 4724 §4.2: back, but the F bit for IPv4 unicast is clear.
    let _raw = raw_up(port, Some((true, false, RESTART_LONG))).await;
    let back = Instant::now();
    wait_for("stale routes dropped on the new OPEN", || async {
        route(&h, P1).await.is_none() && route(&h, P2).await.is_none()
    })
    .await;
    // Not the restart timer: that has seconds left.
    assert!(back.elapsed() < Duration::from_secs(2));
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_notification_ends_graceful_restart() {
    let (h, port) = speaker().await;
    let mut raw = raw_up(port, Some((false, true, RESTART))).await;
    announce_both(&mut raw, &h).await;
    // Cease / Administrative Shutdown; no N bit was negotiated (RFC 8538 §3).
    raw.send(&msg(3, &[6, 2])).await;
    drop(raw);
    wait_for("routes removed at once", || async {
        route(&h, P1).await.is_none() && route(&h, P2).await.is_none()
    })
    .await;
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_the_capability_routes_go_at_once() {
    let (h, port) = speaker().await;
    let mut raw = raw_up(port, None).await;
    announce_both(&mut raw, &h).await;
    let dropped = Instant::now();
    raw.crash();
    wait_for("routes removed at once", || async {
        route(&h, P1).await.is_none() && route(&h, P2).await.is_none()
    })
    .await;
    assert!(dropped.elapsed() < Duration::from_secs(2));
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn hold_timer_expiry_keeps_the_routes() {
    let (h, port) = speaker().await;
    // Hold Time 3 s, and the raw peer never sends another KEEPALIVE.
    let mut raw = raw_up_with_hold(port, Some((false, true, RESTART_LONG)), 3).await;
    announce_both(&mut raw, &h).await;
    wait_for("hold timer expiry", || async {
        h.status().await.unwrap()[0].state != "Established"
    })
    .await;
    wait_for("routes marked stale", || async {
        is_stale(&h, P1).await && is_stale(&h, P2).await
    })
    .await;
    let i = info(&h).await;
    assert!(i.contains("Hold Timer Expired"), "status info: {i}");
    assert!(
        i.contains("graceful restart: 2 routes kept as stale"),
        "status info: {i}"
    );
    drop(raw);
    h.shutdown().await.unwrap();
}
