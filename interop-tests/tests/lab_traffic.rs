//! The lab end to end: two Bramble nodes peer with a BIRD ToR, learn each other's container
//! block over BGP, install it in their kernels (protocol 196), and the containers ping each
//! other across the ToR. No default routes anywhere: traffic flows only on BGP-taught routes.

use std::time::Duration;

use interop_tests::lab::{Lab, NODES};
use interop_tests::{require_bramble, ScratchDir};

#[test]
fn containers_on_different_nodes_reach_each_other() {
    require_bramble();
    let dir = ScratchDir::new("lab-traffic").unwrap();
    let lab = Lab::start("lt", false, dir.path()).unwrap();
    lab.wait_converged(Duration::from_secs(90)).unwrap();
    for (i, n) in NODES.iter().enumerate() {
        // The kernel route Bramble installed points at the ToR.
        let routes = lab.nodes[i]
            .ip(&["-j", "route", "show", "proto", "196"])
            .unwrap();
        let routes: serde_json::Value = serde_json::from_str(&routes).unwrap();
        let other = &NODES[1 - i];
        let hit = routes
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dst"] == other.block)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no proto 196 route to {}: {routes}",
                    n.name, other.block
                )
            });
        assert_eq!(
            hit["gateway"],
            interop_tests::lab::tor_addr(n.index).to_string()
        );
    }
    let out = lab.ping(0, 1).unwrap();
    assert!(out.contains(" 0% packet loss"), "c1 -> c2: {out}");
    let out = lab.ping(1, 0).unwrap();
    assert!(out.contains(" 0% packet loss"), "c2 -> c1: {out}");
}
