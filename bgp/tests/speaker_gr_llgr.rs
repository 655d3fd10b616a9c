//! Long-lived graceful restart as helper (RFC 9494) end to end: a raw TCP peer sends the GR
//! capability (short restart time) and the LLGR capability (code 71), announces a plain
//! route and one carrying NO_LLGR, then drops its TCP connection. Once the restart time has
//! run out, the plain route stays as long-lived stale (LLGR_STALE community, LOCAL_PREF 0)
//! and the NO_LLGR one goes; after the long-lived stale time the plain one goes too. A peer
//! that comes back during that phase refreshes its route; a speaker without
//! `llgr_stale_time` ignores the peer's LLGR capability.

mod common;

use common::raw::{msg, RawPeer};
use common::{config, free_port, loc, peer, wait_for};

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bgp::speaker::{spawn_graceful, GracefulOptions, RouteEntry, SpeakerHandle};
use bgp::wire::Prefix;

const SPEAKER_AS: u32 = 65001;
const RAW_AS: u32 = 65002;
const RAW_ADDR: &str = "127.0.0.2";
const P1: &str = "10.1.0.0/24";
const P2: &str = "10.2.0.0/24";
/// Our `llgr_stale_time`.
const OUR_LLST: u32 = 3600;

async fn speaker(llgr_stale_time: u32) -> (SpeakerHandle, u16) {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cfg = config(
        SPEAKER_AS,
        "10.255.0.1",
        Some(listen),
        vec![peer(RAW_ADDR, RAW_AS, port, "127.0.0.1", true)],
    );
    cfg.hold_time = 90;
    let h = spawn_graceful(
        cfg,
        None,
        GracefulOptions {
            restarting: false,
            selection_deferral: Duration::from_secs(360),
            llgr_stale_time,
        },
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

fn llgr_stale(r: &RouteEntry) -> bool {
    r.communities.iter().any(|c| c == "65535:6") && r.local_pref == Some(0)
}

async fn info(h: &SpeakerHandle) -> String {
    h.status().await.unwrap()[0].info.clone()
}

// ----- hand-built messages (RFC 4271 §4) -----

/// OPEN with IPv4 unicast, 4-octet AS, GR (restart time `restart`, F bit set) and LLGR for
/// IPv4 unicast with Long-lived Stale Time `llst` (RFC 9494 §3), F bit set.
fn open(restart: u16, llst: Option<u32>) -> Vec<u8> {
    let mut cap = vec![1, 4, 0, 1, 0, 1, 65, 4];
    cap.extend_from_slice(&RAW_AS.to_be_bytes());
    cap.extend_from_slice(&[64, 6]);
    cap.extend_from_slice(&restart.to_be_bytes());
    cap.extend_from_slice(&[0, 1, 1, 0x80]);
    if let Some(t) = llst {
        cap.extend_from_slice(&[71, 7, 0, 1, 1, 0x80]);
        cap.extend_from_slice(&t.to_be_bytes()[1..]);
    }
    let mut body = vec![4];
    body.extend_from_slice(&u16::try_from(RAW_AS).unwrap().to_be_bytes());
    body.extend_from_slice(&90u16.to_be_bytes());
    body.extend_from_slice(&[10, 255, 0, 2]);
    body.push(u8::try_from(cap.len() + 2).unwrap());
    body.push(2);
    body.push(u8::try_from(cap.len()).unwrap());
    body.extend_from_slice(&cap);
    msg(1, &body)
}

/// An UPDATE announcing `nlri` (ORIGIN IGP, AS_PATH [RAW_AS], NEXT_HOP 127.0.0.2), with
/// the NO_LLGR community when `no_llgr`.
fn announce(nlri: [u8; 4], no_llgr: bool) -> Vec<u8> {
    let mut a = vec![0x40, 1, 1, 0, 0x40, 2, 6, 2, 1];
    a.extend_from_slice(&RAW_AS.to_be_bytes());
    a.extend_from_slice(&[0x40, 3, 4, 127, 0, 0, 2]);
    if no_llgr {
        a.extend_from_slice(&[0xc0, 8, 4, 0xff, 0xff, 0, 7]);
    }
    let mut b = vec![0, 0];
    b.extend_from_slice(&u16::try_from(a.len()).unwrap().to_be_bytes());
    b.extend_from_slice(&a);
    b.extend_from_slice(&nlri);
    msg(2, &b)
}

/// IPv4 End-of-RIB (RFC 4724 §2).
fn end_of_rib() -> Vec<u8> {
    msg(2, &[0, 0, 0, 0])
}

const NLRI1: [u8; 4] = [24, 10, 1, 0];
const NLRI2: [u8; 4] = [24, 10, 2, 0];

/// The LLGR capability value in an OPEN body, if any.
fn llgr_value(open_body: &[u8]) -> Option<Vec<u8>> {
    let opt_len = usize::from(*open_body.get(9)?);
    let mut params = open_body.get(10..10 + opt_len)?;
    while let [ptype, plen, rest @ ..] = params {
        let (value, next) = rest.split_at(usize::from(*plen));
        if *ptype == 2 {
            let mut caps = value;
            while let [code, clen, crest @ ..] = caps {
                let (v, cnext) = crest.split_at(usize::from(*clen));
                if *code == 71 {
                    return Some(v.to_vec());
                }
                caps = cnext;
            }
        }
        params = next;
    }
    None
}

type Raw = RawPeer;

async fn raw_up(port: u16, restart: u16, llst: Option<u32>) -> Raw {
    RawPeer::up(RAW_ADDR, port, &open(restart, llst)).await
}

#[tokio::test]
async fn llgr_keeps_routes_after_the_restart_time_except_no_llgr_ones() {
    let (h, port) = speaker(OUR_LLST).await;
    let mut raw = raw_up(port, 1, Some(4)).await;
    // Our LLGR capability: IPv4 and IPv6 unicast, F bit clear, stale time 3600.
    let t = OUR_LLST.to_be_bytes();
    assert_eq!(
        llgr_value(&raw.their_open),
        Some(vec![
            0, 1, 1, 0, t[1], t[2], t[3], 0, 2, 1, 0, t[1], t[2], t[3]
        ])
    );
    raw.send(&announce(NLRI1, false)).await;
    raw.send(&announce(NLRI2, true)).await;
    wait_for("both routes", || async {
        route(&h, P1).await.is_some() && route(&h, P2).await.is_some()
    })
    .await;
    raw.crash();

    // The restart time (1 s) runs out: long-lived stale phase.
    wait_for("P1 long-lived stale, P2 gone", || async {
        let p1 = route(&h, P1).await.is_some_and(|r| llgr_stale(&r));
        p1 && route(&h, P2).await.is_none()
    })
    .await;
    let r = route(&h, P1).await.unwrap();
    assert_eq!(r.note.as_deref(), Some("stale"), "{r:?}");
    let i = info(&h).await;
    assert!(
        i.contains("1 routes kept as LLGR-stale for 4 s"),
        "status info: {i}"
    );
    // Then the long-lived stale time (4 s) runs out.
    wait_for("P1 gone after the long-lived stale time", || async {
        route(&h, P1).await.is_none()
    })
    .await;
    let i = info(&h).await;
    assert!(i.contains("stale time expired"), "status info: {i}");
}

#[tokio::test]
async fn a_peer_back_during_llgr_refreshes_its_routes() {
    let (h, port) = speaker(OUR_LLST).await;
    let mut raw = raw_up(port, 1, Some(120)).await;
    raw.send(&announce(NLRI1, false)).await;
    wait_for("P1", || async { route(&h, P1).await.is_some() }).await;
    raw.crash();
    wait_for("P1 long-lived stale", || async {
        route(&h, P1).await.is_some_and(|r| llgr_stale(&r))
    })
    .await;
    // Back (LLGR F bit set): the route stays until the peer refreshes it.
    let mut raw = raw_up(port, 1, Some(120)).await;
    assert!(route(&h, P1).await.is_some());
    raw.send(&announce(NLRI1, false)).await;
    raw.send(&end_of_rib()).await;
    wait_for("P1 fresh again", || async {
        route(&h, P1)
            .await
            .is_some_and(|r| !llgr_stale(&r) && r.note.is_none())
    })
    .await;
    let r = route(&h, P1).await.unwrap();
    assert!(!r.communities.iter().any(|c| c == "65535:6"), "{r:?}");
}

#[tokio::test]
async fn without_llgr_configured_the_peers_capability_is_ignored() {
    let (h, port) = speaker(0).await;
    let mut raw = raw_up(port, 1, Some(120)).await;
    assert_eq!(llgr_value(&raw.their_open), None);
    raw.send(&announce(NLRI1, false)).await;
    wait_for("P1", || async { route(&h, P1).await.is_some() }).await;
    raw.crash();
    wait_for("P1 gone after the restart time", || async {
        route(&h, P1).await.is_none()
    })
    .await;
}

/// A hub with the raw peer and a Bramble spoke (127.0.0.3, no LLGR) as its neighbours.
async fn hub_with_spoke() -> (SpeakerHandle, u16, SpeakerHandle) {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cfg = config(
        SPEAKER_AS,
        "10.255.0.1",
        Some(listen),
        vec![
            peer(RAW_ADDR, RAW_AS, port, "127.0.0.1", true),
            peer("127.0.0.3", 65003, port, "127.0.0.1", true),
        ],
    );
    cfg.hold_time = 90;
    let opts = GracefulOptions {
        restarting: false,
        selection_deferral: Duration::from_secs(360),
        llgr_stale_time: OUR_LLST,
    };
    let hub = spawn_graceful(cfg, None, opts).await.unwrap();
    let spoke = spawn_graceful(
        config(
            65003,
            "10.255.0.3",
            None,
            vec![peer("127.0.0.1", SPEAKER_AS, port, "127.0.0.3", false)],
        ),
        None,
        GracefulOptions::default(),
    )
    .await
    .unwrap();
    (hub, port, spoke)
}

async fn spoke_has(spoke: &SpeakerHandle, prefix: &str) -> bool {
    let p: Prefix = prefix.parse().unwrap();
    loc(spoke).await.iter().any(|r| r.prefix == p)
}

#[tokio::test]
async fn long_lived_stale_routes_are_withheld_from_peers_without_llgr() {
    let (h, port, spoke) = hub_with_spoke().await;
    let mut raw = raw_up(port, 1, Some(30)).await;
    raw.send(&announce(NLRI1, false)).await;
    wait_for("P1 at the spoke", || async { spoke_has(&spoke, P1).await }).await;
    raw.crash();
    // RFC 9494 §4.5: once P1 is long-lived stale the spoke (no LLGR capability) loses it,
    // while the hub still holds it.
    wait_for("P1 long-lived stale at the hub", || async {
        route(&h, P1).await.is_some_and(|r| llgr_stale(&r))
    })
    .await;
    wait_for("P1 withdrawn from the spoke", || async {
        !spoke_has(&spoke, P1).await
    })
    .await;
    assert!(route(&h, P1).await.is_some());
}

#[test]
fn a_route_received_long_lived_stale_is_least_preferred() {
    // RFC 9494 §4.3: LLGR_STALE on arrival means LOCAL_PREF 0, even over iBGP.
    let attrs = bgp::wire::PathAttrs {
        local_pref: Some(200),
        communities: vec![bgp::wire::Community::LLGR_STALE],
        ..Default::default()
    };
    let (out, reject) =
        bgp::speaker::import_attrs(attrs, 64512, false, "10.255.0.1".parse().unwrap(), None);
    assert!(reject.is_none());
    assert_eq!(out.local_pref, Some(0));
    let plain = bgp::wire::PathAttrs {
        local_pref: Some(200),
        ..Default::default()
    };
    let (out, _) =
        bgp::speaker::import_attrs(plain, 64512, false, "10.255.0.1".parse().unwrap(), None);
    assert_eq!(out.local_pref, Some(200));
}
