//! FIB end to end, ECMP: two BIRD peers in the same neighbour AS announce one prefix with
//! equal attributes; the kernel holds one protocol-196 route with two next hops. One peer
//! goes down (its BIRD protocol disabled) and the route becomes single-path by a replace:
//! `ip monitor route`, recording throughout, shows no deletion of the prefix.

mod fib_common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use fib_common::{events_for, kernel_gateways, Monitor};
use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer, FibSection};
use interop_tests::{check, require_bramble, wait_until, Netns, ScratchDir, Veth};

const PREFIX: &str = "10.99.0.0/24";

fn peer(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, i, 1))
}

/// BIRD router `i`: AS 65001, address 10.0.i.1, Bramble at 10.0.i.2, announcing PREFIX.
fn router_config(i: u8) -> BirdConfig {
    let mut cfg = BirdConfig::new(Ipv4Addr::new(10, 0, i, 1));
    cfg.statics.push(BirdStatic::new("s4", &[PREFIX]));
    let mut s = BirdBgp::new(
        "bramble",
        65001,
        IpAddr::V4(Ipv4Addr::new(10, 0, i, 2)),
        64512,
    );
    s.ipv4 = Some(BirdChannel::new("none", "all"));
    cfg.bgp.push(s);
    cfg
}

fn wait_for_gateways(node: &Netns, want: &[IpAddr], what: &str) {
    let want: Vec<String> = want.iter().map(ToString::to_string).collect();
    wait_until(
        what,
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let routes = kernel_gateways(node, false);
            check(
                routes.len() == 1 && routes.get(PREFIX) == Some(&want),
                || format!("kernel: {routes:?}"),
            )
        },
    )
    .unwrap();
}

#[test]
fn ecmp_route_shrinks_to_one_path_by_replace_not_delete() {
    require_bramble();
    let dir = ScratchDir::new("fib-ecmp").unwrap();
    let node = Netns::new("fib-ecmp-node").unwrap();
    let r1 = Netns::new("fib-ecmp-r1").unwrap();
    let r2 = Netns::new("fib-ecmp-r2").unwrap();
    for (i, r) in [(1u8, &r1), (2u8, &r2)] {
        let l = Veth::new(r, &node).unwrap();
        l.a().add_addr(&format!("10.0.{i}.1/30")).unwrap();
        l.b().add_addr(&format!("10.0.{i}.2/30")).unwrap();
    }
    let (d1, d2) = (dir.join("r1"), dir.join("r2"));
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::create_dir_all(&d2).unwrap();
    let _b1 = Bird::start(&r1, &d1, &router_config(1)).unwrap();
    let b2 = Bird::start(&r2, &d2, &router_config(2)).unwrap();

    let mut cfg = BrambleConfig::new("node", Ipv4Addr::new(192, 0, 2, 1), 64512, dir.path());
    cfg.fib = Some(FibSection { enabled: true });
    for i in [1u8, 2] {
        cfg.bgp.peers.push(BramblePeer::new(peer(i), 65001));
    }
    let _bramble = Bramble::start(&node, dir.path(), &cfg).unwrap();

    wait_for_gateways(&node, &[peer(1), peer(2)], "one route with two next hops");

    let monitor = Monitor::start(&node, dir.path(), "monitor");
    b2.disable("bramble").unwrap();
    wait_for_gateways(&node, &[peer(1)], "the route becomes single-path");
    // Let any late write show up in the recording before stopping it.
    std::thread::sleep(Duration::from_secs(1));
    let recording = monitor.stop();
    let events = events_for(&recording, PREFIX);
    assert!(
        events.iter().all(|l| !l.starts_with("Deleted")),
        "the prefix was deleted on the way (a moment without a route):\n{recording}"
    );
    // The monitor saw the change itself (proof that it was recording).
    assert!(
        events
            .iter()
            .any(|l| l.contains(&format!("via {}", peer(1)))),
        "monitor did not record the replace:\n{recording}"
    );
}
