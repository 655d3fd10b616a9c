//! Scenario 3: Bramble ↔ BIRD over IPv6 transport, IPv6 unicast both ways.

use std::time::Duration;

use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::bramble::{route_next_hop, route_peer, Bramble, BrambleConfig, BramblePeer};
use interop_tests::prefixes::ipv6_prefixes;
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};

const POLL: Duration = Duration::from_millis(500);

#[test]
fn bramble_and_bird_exchange_ipv6_over_ipv6_transport() {
    require_bramble();
    let dir = ScratchDir::new("br-v6").unwrap();
    // a = BIRD (AS 65000, fd00::1), b = Bramble (AS 64512, fd00::2).
    let net = P2p::new("br-v6-bird", "br-v6-node").unwrap();

    let mut bcfg = BirdConfig::new(P2p::A4);
    bcfg.statics.push(BirdStatic::new(
        "s6",
        &ipv6_prefixes("2001:db8:a::".parse().unwrap(), 64, 100),
    ));
    let mut s = BirdBgp::new("bramble", 65000, P2p::b6(), 64512);
    s.local_address = Some(P2p::a6());
    s.ipv4 = None;
    s.ipv6 = Some(BirdChannel::all());
    bcfg.bgp.push(s);
    let bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    let mut cfg = BrambleConfig::new("node1", P2p::B4, 64512, dir.path());
    cfg.bgp.listen = Some("[::]:179".into());
    let mut peer = BramblePeer::new(P2p::a6(), 65000);
    peer.local_address = Some(P2p::b6());
    peer.families = vec!["ipv6-unicast".into()];
    cfg.bgp.peers.push(peer);
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();

    wait_until(
        "IPv6 session Established",
        Duration::from_secs(60),
        POLL,
        || {
            let b = bird.protocol_state("bramble")?;
            let n = bramble.peer_state(P2p::a6())?;
            check(
                b == "Established" && n.as_deref() == Some("Established"),
                || format!("BIRD {b}, Bramble {n:?}"),
            )
        },
    )
    .unwrap();

    // BIRD → Bramble: 100 /64s with BIRD's global address as next hop.
    wait_until(
        "Bramble learns 100 IPv6 routes",
        Duration::from_secs(60),
        POLL,
        || {
            let from_bird: Vec<_> = bramble
                .loc_routes()?
                .into_iter()
                .filter(|r| route_peer(r) == Some(P2p::a6()))
                .collect();
            let nh_ok = from_bird
                .iter()
                .all(|r| route_next_hop(r) == Some(P2p::a6()));
            check(from_bird.len() == 100 && nh_ok, || {
                format!("{} routes, next hops fd00::1: {nh_ok}", from_bird.len())
            })
        },
    )
    .unwrap();

    // Bramble → BIRD.
    let mine = ipv6_prefixes("2001:db8:b::".parse().unwrap(), 48, 10);
    bramble.announce_many(&mine).unwrap();
    wait_until(
        "BIRD learns Bramble's 10 routes",
        Duration::from_secs(60),
        POLL,
        || {
            let n = bird.route_count_from("master6", "bramble")?;
            check(n == 10, || format!("BIRD has {n}"))
        },
    )
    .unwrap();
    let r = bird.show_route("2001:db8:b::/48").unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].as_path, vec![64512]);
    assert_eq!(r[0].bgp_next_hop.first(), Some(&P2p::b6()));

    bramble.withdraw("2001:db8:b::/48").unwrap();
    wait_until(
        "BIRD drops the withdrawn route",
        Duration::from_secs(60),
        POLL,
        || {
            let n = bird.route_count_from("master6", "bramble")?;
            check(n == 9, || format!("BIRD has {n}"))
        },
    )
    .unwrap();
}
