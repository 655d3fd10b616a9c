//! Scenario 1: Bramble ↔ BIRD, eBGP over IPv4; Bramble announces 10,000 /32s, withdraws half.

use std::net::Ipv4Addr;
use std::time::Duration;

use interop_tests::bird::{Bird, BirdBgp, BirdConfig};
use interop_tests::bramble::{route_as_path, Bramble, BrambleConfig, BramblePeer};
use interop_tests::prefixes::ipv4_prefixes;
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};

const POLL: Duration = Duration::from_millis(500);

#[test]
fn bramble_announces_10k_to_bird_and_withdraws_half() {
    require_bramble();
    let dir = ScratchDir::new("br-ebgp").unwrap();
    // a = BIRD (AS 65000, 10.0.0.1), b = Bramble (AS 64512, 10.0.0.2).
    let net = P2p::new("br-ebgp-bird", "br-ebgp-node").unwrap();

    let mut bcfg = BirdConfig::new(P2p::A4);
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    s.local_address = Some(P2p::a4());
    bcfg.bgp.push(s);
    let bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    let mut cfg = BrambleConfig::new("node1", P2p::B4, 64512, dir.path());
    let mut peer = BramblePeer::new(P2p::a4(), 65000);
    peer.local_address = Some(P2p::b4());
    cfg.bgp.peers.push(peer);
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();

    wait_until("session Established", Duration::from_secs(60), POLL, || {
        let b = bird.protocol_state("bramble")?;
        let n = bramble.peer_state(P2p::a4())?;
        check(
            b == "Established" && n.as_deref() == Some("Established"),
            || format!("BIRD {b}, Bramble {n:?}"),
        )
    })
    .unwrap();

    let prefixes = ipv4_prefixes(Ipv4Addr::new(10, 200, 0, 0), 32, 10_000);
    bramble.announce_many(&prefixes).unwrap();
    wait_until(
        "BIRD holds 10,000 routes",
        Duration::from_secs(90),
        POLL,
        || {
            let n = bird.route_count_from("master4", "bramble")?;
            check(n == 10_000, || format!("BIRD has {n}"))
        },
    )
    .unwrap();
    let r = bird.show_route("10.200.3.7/32").unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].as_path, vec![64512]);
    assert_eq!(r[0].via, vec![P2p::b4()]);

    bramble.withdraw_many(&prefixes[..5000]).unwrap();
    wait_until(
        "BIRD down to 5,000 routes",
        Duration::from_secs(90),
        POLL,
        || {
            let n = bird.route_count_from("master4", "bramble")?;
            check(n == 5000, || format!("BIRD has {n}"))
        },
    )
    .unwrap();
    assert!(bird.show_route("10.200.0.1/32").unwrap().is_empty());
    assert_eq!(
        bird.show_route(&prefixes[9999].to_string()).unwrap().len(),
        1
    );

    // Bramble advertised them, and nothing came back (eBGP, BIRD exports none of its own).
    let st = bramble.peer_status(P2p::a4()).unwrap().unwrap();
    assert_eq!(st["received"].as_u64(), Some(0), "{st}");
    let loc = bramble.loc_routes().unwrap();
    assert!(
        loc.iter().all(|r| route_as_path(r).is_empty()),
        "only local routes"
    );
}
