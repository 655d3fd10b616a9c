//! The lab end to end in host-routes mode: two Bramble nodes with IPAM peer with a BIRD ToR;
//! the CNI chain (`ptp` + `bramble-ipam`) wires three containers per node; each node
//! advertises one /32 per container, learns the other node's /32s over BGP and installs them
//! in its kernel (protocol 196, via the ToR), and every container on one node pings every
//! container on the other. No default routes anywhere: traffic flows only on BGP-taught
//! routes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use interop_tests::cni::require_cni;
use interop_tests::lab::{tor_addr, Advertise, Lab, CONTAINERS_PER_NODE, NODES};
use interop_tests::{check, require_bramble, wait_until, ScratchDir};

#[test]
fn containers_on_different_nodes_reach_each_other_over_host_routes() {
    require_bramble();
    require_cni();
    let t0 = Instant::now();
    let dir = ScratchDir::new("lab-traffic").unwrap();
    let lab = Lab::start("lt", false, dir.path(), Advertise::HostRoutes).unwrap();
    let up = t0.elapsed();
    assert_eq!(lab.containers.len(), NODES.len() * CONTAINERS_PER_NODE);
    let ips: BTreeSet<_> = lab.containers.iter().map(|c| c.ip).collect();
    assert_eq!(
        ips.len(),
        lab.containers.len(),
        "addresses must be distinct"
    );
    lab.wait_converged(Duration::from_secs(90)).unwrap();
    let converged = t0.elapsed();

    for (i, n) in NODES.iter().enumerate() {
        // Nodes have no default route: only BGP-taught routes lead off the node.
        let default = lab.nodes[i]
            .ip(&["-4", "route", "show", "default"])
            .unwrap();
        assert!(default.trim().is_empty(), "{}: {default}", n.name);
        // Each of the other node's containers is a proto 196 /32 via the ToR; own
        // containers are ptp's host routes, not Bramble's.
        let routes = lab.kernel_routes(i, "unicast").unwrap();
        for c in lab.containers.iter().filter(|c| c.node != i) {
            let hit = routes
                .iter()
                .find(|r| r["dst"] == c.ip.to_string())
                .unwrap_or_else(|| {
                    panic!("{}: no proto 196 route to {}: {routes:?}", n.name, c.ip)
                });
            assert_eq!(hit["gateway"], tor_addr(n.index).to_string(), "{hit}");
        }
        for c in lab.containers_on(i) {
            assert!(
                !routes.iter().any(|r| r["dst"] == c.ip.to_string()),
                "{}: Bramble installed its own container {}",
                n.name,
                c.ip
            );
        }
    }

    // BIRD holds exactly one /32 per container, from the node that hosts it.
    wait_until(
        "BIRD to hold every container /32",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            let n = lab.bird.route_count("master4")?;
            check(n == lab.containers.len() as u64, || format!("BIRD has {n}"))
        },
    )
    .unwrap();
    for (i, n) in NODES.iter().enumerate() {
        assert_eq!(
            lab.bird.route_count_from("master4", n.name).unwrap(),
            CONTAINERS_PER_NODE as u64
        );
        for c in lab.containers_on(i) {
            let r = lab.bird.show_route(&format!("{}/32", c.ip)).unwrap();
            assert_eq!(r.len(), 1, "{}: {r:?}", c.ip);
            assert_eq!(r[0].protocol, n.name);
            assert_eq!(r[0].as_path, vec![n.asn]);
        }
    }

    // Every container on one node pings every container on the other, both ways.
    let t_ping = Instant::now();
    let mut pairs = 0;
    for (i, from) in lab.containers.iter().enumerate() {
        for to in lab.containers.iter().filter(|t| t.node != from.node) {
            let out = lab
                .ping_ip(i, to.ip, 2)
                .unwrap_or_else(|e| panic!("{} -> {} ({}): {e}", from.label, to.label, to.ip));
            assert!(
                out.contains(" 0% packet loss"),
                "{} -> {}: {out}",
                from.label,
                to.label
            );
            pairs += 1;
        }
    }
    eprintln!(
        "lab (host-routes): up in {up:?}, converged at {converged:?}, {pairs} ping pairs in {:?}",
        t_ping.elapsed()
    );
}
