//! Scenario 2: Bramble ↔ GoBGP, iBGP, MP-BGP: GoBGP announces 10,000 IPv4 + 1,000 IPv6.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use interop_tests::bramble::{route_next_hop, route_peer, Bramble, BrambleConfig, BramblePeer};
use interop_tests::gobgp::{Gobgp, GobgpConfig, GobgpNeighbor};
use interop_tests::mrt::MrtRoute;
use interop_tests::prefixes::{ipv4_prefixes, ipv6_prefixes};
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};

const POLL: Duration = Duration::from_secs(1);

/// (IPv4, IPv6) routes from `peer` in Bramble's Loc-RIB, and whether every one has `nh4`/`nh6`.
fn learned(bramble: &Bramble, peer: IpAddr) -> interop_tests::Result<(usize, usize, bool)> {
    let (mut v4, mut v6, mut nh_ok) = (0, 0, true);
    for r in bramble.loc_routes()? {
        if route_peer(&r) != Some(peer) {
            continue;
        }
        let prefix = r["prefix"].as_str().unwrap_or_default();
        if prefix.contains(':') {
            v6 += 1;
            nh_ok &= route_next_hop(&r) == Some(P2p::a6());
        } else {
            v4 += 1;
            nh_ok &= route_next_hop(&r) == Some(P2p::a4());
        }
    }
    Ok((v4, v6, nh_ok))
}

#[test]
fn bramble_learns_10k_v4_and_1k_v6_over_ibgp_from_gobgp() {
    require_bramble();
    let dir = ScratchDir::new("br-ibgp").unwrap();
    // a = GoBGP (AS 64512, 10.0.0.1 / fd00::1), b = Bramble (AS 64512, 10.0.0.2).
    let net = P2p::new("br-ibgp-gobgp", "br-ibgp-node").unwrap();

    let mut g = GobgpConfig::new(64512, P2p::A4);
    g.neighbors.push(GobgpNeighbor::new(P2p::b4(), 64512));
    let gobgp = Gobgp::start(&net.a, dir.path(), &g).unwrap();

    let mut cfg = BrambleConfig::new("node1", P2p::B4, 64512, dir.path());
    cfg.bgp.peers.push(BramblePeer::new(P2p::a4(), 64512));
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();

    wait_until("iBGP Established", Duration::from_secs(60), POLL, || {
        let g = gobgp.neighbor_state(P2p::b4())?;
        let n = bramble.peer_state(P2p::a4())?;
        check(
            g == "Established" && n.as_deref() == Some("Established"),
            || format!("GoBGP {g}, Bramble {n:?}"),
        )
    })
    .unwrap();

    let mut routes: Vec<MrtRoute> = ipv4_prefixes(Ipv4Addr::new(100, 64, 0, 0), 24, 10_000)
        .into_iter()
        .map(|p| MrtRoute::new(p, P2p::a4()))
        .collect();
    routes.extend(
        ipv6_prefixes("2001:db8:1000::".parse().unwrap(), 48, 1000)
            .into_iter()
            .map(|p| MrtRoute::new(p, P2p::a6())),
    );
    let took = gobgp.announce_bulk(&routes).unwrap();
    eprintln!("GoBGP took 11,000 routes in {took:?}");

    wait_until(
        "Bramble's Loc-RIB holds all",
        Duration::from_secs(90),
        POLL,
        || {
            let (v4, v6, nh) = learned(&bramble, P2p::a4())?;
            check(v4 == 10_000 && v6 == 1000 && nh, || {
                format!("{v4} IPv4, {v6} IPv6, next hops right: {nh}")
            })
        },
    )
    .unwrap();
    let st = bramble.peer_status(P2p::a4()).unwrap().unwrap();
    assert_eq!(st["type"].as_str(), Some("ibgp"), "{st}");

    gobgp.withdraw_all("ipv4").unwrap();
    gobgp.withdraw_all("ipv6").unwrap();
    wait_until(
        "Bramble's Loc-RIB empties",
        Duration::from_secs(90),
        POLL,
        || {
            let (v4, v6, _) = learned(&bramble, P2p::a4())?;
            check(v4 == 0 && v6 == 0, || format!("{v4} IPv4, {v6} IPv6 left"))
        },
    )
    .unwrap();
}
