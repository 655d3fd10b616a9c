//! Scenario 4: a cut link; both sides drop the session within the hold time; restore.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use interop_tests::bird::{Bird, BirdBgp, BirdConfig, BirdStatic};
use interop_tests::bramble::{route_peer, Bramble, BrambleConfig, BramblePeer};
use interop_tests::prefixes::ipv4_prefixes;
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};

const POLL: Duration = Duration::from_millis(250);

#[test]
fn cut_link_expires_hold_timer_and_restore_relearns() {
    require_bramble();
    let dir = ScratchDir::new("br-hold").unwrap();
    let net = P2p::new("br-hold-bird", "br-hold-node").unwrap();

    let mut bcfg = BirdConfig::new(P2p::A4);
    bcfg.statics.push(BirdStatic::new(
        "s4",
        &ipv4_prefixes(Ipv4Addr::new(10, 50, 0, 0), 24, 10),
    ));
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    s.hold_time = 9;
    bcfg.bgp.push(s);
    let bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    let mut cfg = BrambleConfig::new("node1", P2p::B4, 64512, dir.path());
    let mut peer = BramblePeer::new(P2p::a4(), 65000);
    peer.hold_time = Some(9);
    cfg.bgp.peers.push(peer);
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();
    bramble.announce("10.60.0.0/24").unwrap();

    let learned = || -> interop_tests::Result<bool> {
        let b = bird.protocol_state("bramble")?;
        let n = bramble.peer_state(P2p::a4())?;
        let from_bird = bramble
            .loc_routes()?
            .iter()
            .filter(|r| route_peer(r) == Some(P2p::a4()))
            .count();
        let at_bird = bird.route_count_from("master4", "bramble")?;
        check(
            b == "Established"
                && n.as_deref() == Some("Established")
                && from_bird == 10
                && at_bird == 1,
            || format!("BIRD {b}, Bramble {n:?}, Bramble has {from_bird}, BIRD has {at_bird}"),
        )
    };
    wait_until(
        "up with routes both ways",
        Duration::from_secs(60),
        POLL,
        learned,
    )
    .unwrap();

    net.link.set_up(false).unwrap();
    let cut = Instant::now();
    // Hold time 9 s: both sides give up within it; the limit adds slack for a slow machine.
    wait_until(
        "both sides leave Established",
        Duration::from_secs(30),
        POLL,
        || {
            let b = bird.protocol_state("bramble")?;
            let n = bramble.peer_state(P2p::a4())?;
            check(
                b != "Established" && n.as_deref() != Some("Established"),
                || format!("BIRD {b}, Bramble {n:?}"),
            )
        },
    )
    .unwrap();
    eprintln!("both sides down {:?} after the cut", cut.elapsed());
    wait_until(
        "Bramble drops BIRD's routes",
        Duration::from_secs(30),
        POLL,
        || {
            let n = bramble
                .loc_routes()?
                .iter()
                .filter(|r| route_peer(r) == Some(P2p::a4()))
                .count();
            check(n == 0, || format!("{n} left"))
        },
    )
    .unwrap();
    assert!(bramble.status().is_ok(), "the agent still answers");

    net.link.set_up(true).unwrap();
    wait_until(
        "back up, routes re-learned",
        Duration::from_secs(90),
        POLL,
        learned,
    )
    .unwrap();
}
