//! FIB end to end, ownership: a `proto static` route to a destination Bramble also learns is
//! left exactly as it is and `routes --table fib` reports the conflict; a Bramble route
//! deleted by hand (`ip route del`) is put back within a few seconds.

mod fib_common;

use std::time::Duration;

use fib_common::{any_route, kernel_gateways};
use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer, FibSection};
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};

/// Learned by Bramble and already held by a `proto static` route.
const FOREIGN: &str = "10.50.0.0/24";
/// Learned and installed by Bramble.
const OURS: &str = "10.51.0.0/24";

#[test]
fn foreign_route_is_left_alone_and_deleted_route_comes_back() {
    require_bramble();
    let dir = ScratchDir::new("fib-own").unwrap();
    let net = P2p::new("fib-own-bird", "fib-own-node").unwrap();
    // The foreign route: its own metric and a gateway BIRD does not announce with.
    net.b
        .ip(&[
            "route", "add", FOREIGN, "via", "10.0.0.1", "proto", "static", "metric", "0",
        ])
        .unwrap();
    let foreign_before = any_route(&net.b, FOREIGN).unwrap();
    assert_eq!(foreign_before["protocol"], "static");

    let mut bcfg = BirdConfig::new(P2p::A4);
    bcfg.statics.push(BirdStatic::new("s4", &[FOREIGN, OURS]));
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    s.ipv4 = Some(BirdChannel::new("none", "all"));
    bcfg.bgp.push(s);
    let _bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    let mut cfg = BrambleConfig::new("node", P2p::B4, 64512, dir.path());
    cfg.fib = Some(FibSection { enabled: true });
    cfg.bgp.peers.push(BramblePeer::new(P2p::a4(), 65000));
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();

    // The conflict is reported, and our other route is installed.
    wait_until(
        "routes --table fib reports the conflict",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let fib = bramble.routes("fib", None)?;
            let conflict = fib.iter().find(|r| r["prefix"] == FOREIGN).and_then(|r| {
                r["note"]
                    .as_str()
                    .filter(|n| n.contains("another protocol"))
                    .map(str::to_string)
            });
            let ours = fib
                .iter()
                .any(|r| r["prefix"] == OURS && r["best"] == true && r["note"].is_null());
            check(conflict.is_some() && ours, || format!("{fib:?}"))
        },
    )
    .unwrap();
    let kernel = kernel_gateways(&net.b, false);
    assert_eq!(kernel.len(), 1, "{kernel:?}");
    assert!(kernel.contains_key(OURS), "{kernel:?}");
    assert_eq!(
        any_route(&net.b, FOREIGN).unwrap(),
        foreign_before,
        "the foreign route was changed"
    );

    // Our route deleted by hand comes back (the programmer watches deletions).
    net.b.ip(&["route", "del", OURS, "proto", "196"]).unwrap();
    assert!(!kernel_gateways(&net.b, false).contains_key(OURS));
    wait_until(
        "the deleted route is put back",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let back = kernel_gateways(&net.b, false).contains_key(OURS);
            check(back, || "not back yet".into())
        },
    )
    .unwrap();
    // Still untouched.
    assert_eq!(any_route(&net.b, FOREIGN).unwrap(), foreign_before);
    let fib = bramble.routes("fib", None).unwrap();
    assert!(
        fib.iter()
            .any(|r| r["prefix"] == FOREIGN && !r["note"].is_null()),
        "{fib:?}"
    );
}
