//! The drivers checked against each other, without Bramble: BIRD ↔ GoBGP in two namespaces.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::gobgp::{Gobgp, GobgpConfig, GobgpNeighbor};
use interop_tests::mrt::MrtRoute;
use interop_tests::prefixes::{ipv4_prefixes, ipv6_prefixes};
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_root_and_tools, wait_until, ScratchDir};

const SESSION_UP: Duration = Duration::from_secs(60);
const ROUTES: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(250);

fn bird_statics(n: usize) -> BirdStatic {
    BirdStatic::new("s4", &ipv4_prefixes(Ipv4Addr::new(10, 10, 0, 0), 24, n))
}

/// BIRD (AS 65001) in `a`, one session over IPv4 carrying both families.
fn bird_config(statics: usize) -> BirdConfig {
    let mut cfg = BirdConfig::new(P2p::A4);
    cfg.statics.push(bird_statics(statics));
    let mut s = BirdBgp::new("gobgp", 65001, P2p::b4(), 65002);
    s.local_address = Some(P2p::a4());
    s.ipv4 = Some(BirdChannel::all());
    s.ipv6 = Some(BirdChannel::all());
    cfg.bgp.push(s);
    cfg
}

#[test]
fn bird_and_gobgp_exchange_bulk_routes() {
    require_root_and_tools();
    let dir = ScratchDir::new("drv-bulk").unwrap();
    let net = P2p::new("drv-bird", "drv-gobgp").unwrap();

    let bird = Bird::start(&net.a, dir.path(), &bird_config(1000)).unwrap();
    let mut gcfg = GobgpConfig::new(65002, P2p::B4);
    let mut n = GobgpNeighbor::new(P2p::a4(), 65001);
    n.local_address = Some(P2p::b4());
    gcfg.neighbors.push(n);
    let gobgp = Gobgp::start(&net.b, dir.path(), &gcfg).unwrap();

    wait_until("BIRD and GoBGP Established", SESSION_UP, POLL, || {
        Ok(bird.is_established("gobgp")? && gobgp.is_established(P2p::a4())?)
    })
    .unwrap();

    // BIRD → GoBGP: 1,000 statics.
    wait_until("GoBGP holds BIRD's 1,000 routes", ROUTES, POLL, || {
        Ok(gobgp.rib_count("ipv4")? == 1000)
    })
    .unwrap();
    let rib = gobgp.rib("ipv4").unwrap();
    let p = &rib["10.10.0.0/24"][0];
    assert_eq!(p.as_path, vec![65001]);
    assert_eq!(p.next_hop, Some(P2p::a4()));
    assert!(p.best);

    // GoBGP → BIRD: 10,000 IPv4 + 1,000 IPv6 through one MRT injection.
    let mut routes: Vec<MrtRoute> = ipv4_prefixes(Ipv4Addr::new(100, 64, 0, 0), 24, 10_000)
        .into_iter()
        .map(|p| MrtRoute::new(p, P2p::b4()))
        .collect();
    routes.extend(
        ipv6_prefixes("2001:db8:1000::".parse().unwrap(), 48, 1000)
            .into_iter()
            .map(|p| MrtRoute::new(p, P2p::b6())),
    );
    let started = Instant::now();
    let inject = gobgp.announce_bulk(&routes).unwrap();
    wait_until(
        "BIRD holds GoBGP's 10,000 + 1,000 routes",
        ROUTES,
        POLL,
        || {
            Ok(bird.route_count_from("master4", "gobgp")? == 10_000
                && bird.route_count_from("master6", "gobgp")? == 1000)
        },
    )
    .unwrap();
    eprintln!(
        "GoBGP MRT inject of 11,000 routes took {inject:?}; BIRD had all of them after {:?}",
        started.elapsed()
    );
    assert_eq!(gobgp.rib_count("ipv4").unwrap(), 11_000);
    assert_eq!(gobgp.rib_count("ipv6").unwrap(), 1000);

    let r = bird.show_route("100.64.7.0/24").unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].as_path, vec![65002]);
    assert_eq!(r[0].via, vec![P2p::b4()]);
    let r6 = bird.show_route("2001:db8:1001::/48").unwrap();
    assert_eq!(r6.len(), 1, "{r6:?}");
    assert_eq!(r6[0].bgp_next_hop.first(), Some(&P2p::b6()));

    // Withdraw everything GoBGP announced.
    gobgp.withdraw_all("ipv4").unwrap();
    gobgp.withdraw_all("ipv6").unwrap();
    wait_until("BIRD loses GoBGP's routes", ROUTES, POLL, || {
        Ok(bird.route_count_from("master4", "gobgp")? == 0
            && bird.route_count_from("master6", "gobgp")? == 0)
    })
    .unwrap();
    assert!(bird.show_route("100.64.7.0/24").unwrap().is_empty());

    // BIRD withdraws half of its statics by reconfiguring.
    bird.reconfigure(&bird_config(500)).unwrap();
    wait_until("GoBGP down to 500 of BIRD's routes", ROUTES, POLL, || {
        Ok(gobgp.rib_count("ipv4")? == 500)
    })
    .unwrap();
    assert!(gobgp.is_established(P2p::a4()).unwrap());
}

#[test]
fn gobgp_ibgp_bulk_keeps_next_hop_and_attributes() {
    require_root_and_tools();
    let dir = ScratchDir::new("drv-ibgp").unwrap();
    let net = P2p::new("drv-ibird", "drv-igobgp").unwrap();

    let mut cfg = BirdConfig::new(P2p::A4);
    let mut s = BirdBgp::new("gobgp", 65000, P2p::b4(), 65000);
    // No IGP here: the peer and the next hops are on the shared link.
    s.extra = "  direct;\n".into();
    s.ipv6 = Some(BirdChannel::all());
    cfg.bgp.push(s);
    let bird = Bird::start(&net.a, dir.path(), &cfg).unwrap();
    let mut gcfg = GobgpConfig::new(65000, P2p::B4);
    gcfg.neighbors.push(GobgpNeighbor::new(P2p::a4(), 65000));
    let gobgp = Gobgp::start(&net.b, dir.path(), &gcfg).unwrap();
    wait_until("iBGP Established", SESSION_UP, POLL, || {
        Ok(bird.is_established("gobgp")? && gobgp.is_established(P2p::a4())?)
    })
    .unwrap();

    let mut routes: Vec<MrtRoute> = ipv4_prefixes(Ipv4Addr::new(172, 16, 0, 0), 32, 100)
        .into_iter()
        .map(|p| {
            let mut r = MrtRoute::new(p, P2p::b4());
            r.as_path = vec![65100, 65101];
            r.med = Some(42);
            r
        })
        .collect();
    routes.extend(
        ipv6_prefixes("2001:db8:2000::".parse().unwrap(), 64, 10)
            .into_iter()
            .map(|p| MrtRoute::new(p, P2p::b6())),
    );
    gobgp.announce_bulk(&routes).unwrap();
    wait_until("BIRD holds 100 + 10 iBGP routes", ROUTES, POLL, || {
        Ok(bird.route_count_from("master4", "gobgp")? == 100
            && bird.route_count_from("master6", "gobgp")? == 10)
    })
    .unwrap();
    let r = bird.show_route("172.16.0.5/32").unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].as_path, vec![65100, 65101]);
    assert_eq!(r[0].bgp_next_hop, vec![P2p::b4()]);
    assert_eq!(r[0].med, Some(42));
    let r6 = bird.show_route("2001:db8:2000:3::/64").unwrap();
    assert_eq!(r6.len(), 1, "{r6:?}");
    assert_eq!(r6[0].bgp_next_hop.first(), Some(&P2p::b6()));
}

#[test]
fn link_cut_drops_sessions_and_restore_brings_them_back() {
    require_root_and_tools();
    let dir = ScratchDir::new("drv-cut").unwrap();
    let net = P2p::new("drv-cbird", "drv-cgobgp").unwrap();

    // Two sessions: IPv4 unicast over IPv4 transport, IPv6 unicast over IPv6 transport.
    let mut cfg = BirdConfig::new(P2p::A4);
    cfg.statics.push(bird_statics(10));
    cfg.statics.push(BirdStatic::new(
        "s6",
        &ipv6_prefixes("2001:db8:3000::".parse().unwrap(), 48, 10),
    ));
    let mut v4 = BirdBgp::new("g4", 65001, P2p::b4(), 65002);
    v4.local_address = Some(P2p::a4());
    let mut v6 = BirdBgp::new("g6", 65001, P2p::b6(), 65002);
    v6.local_address = Some(P2p::a6());
    v6.ipv4 = None;
    v6.ipv6 = Some(BirdChannel::all());
    cfg.bgp.extend([v4, v6]);
    let bird = Bird::start(&net.a, dir.path(), &cfg).unwrap();

    let mut gcfg = GobgpConfig::new(65002, P2p::B4);
    let mut n4 = GobgpNeighbor::new(P2p::a4(), 65001);
    n4.families = vec!["ipv4-unicast".into()];
    let mut n6 = GobgpNeighbor::new(P2p::a6(), 65001);
    n6.families = vec!["ipv6-unicast".into()];
    gcfg.neighbors.extend([n4, n6]);
    let gobgp = Gobgp::start(&net.b, dir.path(), &gcfg).unwrap();

    let peers: [(&str, IpAddr); 2] = [("g4", P2p::a4()), ("g6", P2p::a6())];
    let all_up = || -> interop_tests::Result<bool> {
        for (name, addr) in peers {
            let (b, g) = (bird.protocol_state(name)?, gobgp.neighbor_state(addr)?);
            check(b == "Established" && g == "Established", || {
                format!("{name}: BIRD {b}, GoBGP {g}")
            })?;
        }
        let (v4, v6) = (gobgp.rib_count("ipv4")?, gobgp.rib_count("ipv6")?);
        check(v4 == 10 && v6 == 10, || {
            format!("GoBGP has {v4} + {v6} routes")
        })
    };
    wait_until("both sessions up, routes learned", SESSION_UP, POLL, all_up).unwrap();

    net.link.set_up(false).unwrap();
    // Hold time 9 s on both sides: both notice within it (plus slack for a slow machine).
    wait_until(
        "both sides leave Established",
        Duration::from_secs(40),
        POLL,
        || {
            for (name, addr) in peers {
                if bird.is_established(name)? || gobgp.is_established(addr)? {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .unwrap();
    assert_eq!(gobgp.rib_count("ipv4").unwrap(), 0);

    net.link.set_up(true).unwrap();
    wait_until("sessions back, routes re-learned", SESSION_UP, POLL, all_up).unwrap();
}
