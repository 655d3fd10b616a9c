//! Bramble's per-peer maximum-prefix limit against GoBGP: one path over the limit ends the
//! session with Cease / Maximum Number of Prefixes Reached (RFC 4486 §4), the peer's routes
//! go, and the session stays down for the hold-down before Bramble starts it again.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use interop_tests::bramble::{route_peer, Bramble, BrambleConfig, BramblePeer};
use interop_tests::gobgp::{Gobgp, GobgpConfig, GobgpNeighbor};
use interop_tests::mrt::MrtRoute;
use interop_tests::prefixes::ipv4_prefixes;
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};

const POLL: Duration = Duration::from_millis(500);
const LIMIT: u32 = 100;
const HOLD_DOWN: u64 = 20;

fn learned(bramble: &Bramble) -> usize {
    bramble
        .loc_routes()
        .unwrap()
        .iter()
        .filter(|r| route_peer(r) == Some(P2p::a4()))
        .count()
}

/// NOTIFICATIONs GoBGP received from `addr`, from `gobgp neighbor ADDR -j`.
fn notifications_received(gobgp: &Gobgp, addr: IpAddr) -> u64 {
    let v = gobgp.neighbor(addr).unwrap();
    v["state"]["messages"]["received"]["notification"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn gobgp_over_the_limit_gets_cease_and_is_held_down() {
    require_bramble();
    let dir = ScratchDir::new("tr-maxpfx").unwrap();
    // a = GoBGP (AS 65000, 10.0.0.1), b = Bramble (AS 64512, 10.0.0.2).
    let net = P2p::new("tr-maxpfx-gobgp", "tr-maxpfx-node").unwrap();
    let mut g = GobgpConfig::new(65000, P2p::A4);
    g.neighbors.push(GobgpNeighbor::new(P2p::b4(), 64512));
    let gobgp = Gobgp::start(&net.a, dir.path(), &g).unwrap();

    let mut cfg = BrambleConfig::new("node1", P2p::B4, 64512, dir.path());
    let mut peer = BramblePeer::new(P2p::a4(), 65000);
    peer.max_prefixes = Some(LIMIT);
    peer.max_prefixes_restart = Some(HOLD_DOWN as u32);
    cfg.bgp.peers.push(peer);
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();

    wait_until("eBGP Established", Duration::from_secs(60), POLL, || {
        let g = gobgp.neighbor_state(P2p::b4())?;
        let n = bramble.peer_state(P2p::a4())?;
        check(
            g == "Established" && n.as_deref() == Some("Established"),
            || format!("GoBGP {g}, Bramble {n:?}"),
        )
    })
    .unwrap();

    // Below the limit is fine. (announce_bulk briefly adds a sentinel route, so stay one
    // under: the sentinel may reach Bramble too.)
    let prefixes = ipv4_prefixes(Ipv4Addr::new(100, 64, 0, 0), 24, LIMIT as usize + 1);
    let below = LIMIT as usize - 1;
    let routes: Vec<MrtRoute> = prefixes
        .iter()
        .map(|p| MrtRoute::new(*p, P2p::a4()))
        .collect();
    gobgp.announce_bulk(&routes[..below]).unwrap();
    wait_until(
        "Bramble holds the routes",
        Duration::from_secs(60),
        POLL,
        || {
            let st = bramble.peer_status(P2p::a4())?.unwrap_or_default();
            check(st["accepted"].as_u64() == Some(below as u64), || {
                format!("{st}")
            })
        },
    )
    .unwrap();
    assert_eq!(notifications_received(&gobgp, P2p::b4()), 0);

    // The rest: LIMIT + 1 prefixes in all, over the limit: Cease.
    gobgp.announce_bulk(&routes[below..]).unwrap();
    wait_until(
        "GoBGP receives a NOTIFICATION",
        Duration::from_secs(30),
        POLL,
        || {
            let n = notifications_received(&gobgp, P2p::b4());
            check(n >= 1, || format!("{n} notifications"))
        },
    )
    .unwrap();
    let tripped = Instant::now();
    let st = bramble.peer_status(P2p::a4()).unwrap().unwrap();
    assert_ne!(st["state"].as_str(), Some("Established"), "{st}");
    assert_eq!(
        st["info"].as_str(),
        Some("max-prefix limit 100 exceeded; restarting in 20s"),
        "{st}"
    );
    assert_eq!(learned(&bramble), 0, "the peer's routes are dropped");
    // GoBGP logs the NOTIFICATION: Cease (6) / Maximum Number of Prefixes Reached (1), data
    // AFI 1, SAFI 1, limit 100 = 00 01 01 00 00 00 64, base64 "AAEBAAAAZA==".
    let log = std::fs::read_to_string(dir.path().join("gobgpd.stdout")).unwrap();
    let got = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["msg"] == "received notification")
        .expect("gobgpd logged no received notification");
    assert_eq!(
        (&got["Code"], &got["Subcode"], &got["Data"]),
        (&6.into(), &1.into(), &"AAEBAAAAZA==".into()),
        "{got}"
    );

    // GoBGP keeps trying (connect retry 1 s); Bramble stays down for the hold-down.
    for p in &prefixes[below..] {
        gobgp.withdraw(&p.to_string()).unwrap();
    }
    while tripped.elapsed() < Duration::from_secs(HOLD_DOWN - 3) {
        let st = bramble.peer_status(P2p::a4()).unwrap().unwrap();
        assert_ne!(
            st["state"].as_str(),
            Some("Established"),
            "up during the hold-down: {st}"
        );
        assert_ne!(gobgp.neighbor_state(P2p::b4()).unwrap(), "Established");
        std::thread::sleep(POLL);
    }
    // Then it comes back, within the limit again.
    wait_until(
        "session back after the hold-down",
        Duration::from_secs(60),
        POLL,
        || {
            let st = bramble.peer_status(P2p::a4())?.unwrap_or_default();
            check(
                st["state"].as_str() == Some("Established")
                    && st["accepted"].as_u64() == Some(below as u64),
                || format!("{st}"),
            )
        },
    )
    .unwrap();
    // (No upper or lower bound on when it came back: `tripped` is when this test *saw* the
    // NOTIFICATION, up to a poll and a `gobgp` call after Bramble sent it; the loop above
    // already showed the session staying down for the hold-down less that slack.)
}
