//! The lab in aggregate mode: two Bramble nodes with IPAM, three containers per node wired by
//! the CNI chain (`ptp` + `bramble-ipam`). Each node advertises only its blocks: BIRD holds
//! exactly one route per block, each node's kernel holds a blackhole (protocol 196) for its
//! own block(s) and a route via the ToR to the other's, and containers on different nodes ping
//! each other. A CNI DEL on node2 removes that container's /32 host route; its address stops
//! answering (the block's blackhole drops it) while the other containers still answer, and the
//! block stays advertised.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use interop_tests::cni::require_cni;
use interop_tests::lab::{tor_addr, Advertise, Lab, CONTAINERS_PER_NODE, IFNAME, NODES};
use interop_tests::{check, require_bramble, wait_until, ScratchDir};

const POLL: Duration = Duration::from_millis(300);

/// Every cross-node pair pings with no loss.
fn all_pairs_ping(lab: &Lab) -> usize {
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
    pairs
}

/// BIRD holds exactly the blocks, one route each, from the owning node, and no /32.
fn assert_bird_holds_blocks(lab: &Lab, blocks: &[BTreeSet<String>]) {
    let total: usize = blocks.iter().map(BTreeSet::len).sum();
    let count = lab.bird.route_counts("master4", None).unwrap();
    assert_eq!(count.shown, total as u64, "{count:?}");
    assert_eq!(count.networks, total as u64, "{count:?}");
    for (i, n) in NODES.iter().enumerate() {
        assert_eq!(
            lab.bird.route_count_from("master4", n.name).unwrap(),
            blocks[i].len() as u64,
            "{}",
            n.name
        );
        for b in &blocks[i] {
            let r = lab.bird.show_route(b).unwrap();
            assert_eq!(r.len(), 1, "{b}: {r:?}");
            assert_eq!(r[0].protocol, n.name);
            assert_eq!(r[0].as_path, vec![n.asn]);
        }
    }
    for c in &lab.containers {
        let r = lab.bird.show_route(&format!("{}/32", c.ip)).unwrap();
        assert!(r.is_empty(), "BIRD has a /32 for {}: {r:?}", c.ip);
    }
}

#[test]
fn aggregate_blocks_blackholes_and_del_of_one_container() {
    require_bramble();
    require_cni();
    let t0 = Instant::now();
    let dir = ScratchDir::new("ipam-two-nodes").unwrap();
    let mut lab = Lab::start("i2n", false, dir.path(), Advertise::Aggregate).unwrap();
    assert_eq!(lab.containers.len(), NODES.len() * CONTAINERS_PER_NODE);

    // Three addresses fit one /26: one block per node, disjoint, each container inside its
    // node's block.
    let blocks: Vec<BTreeSet<String>> = (0..NODES.len()).map(|i| lab.blocks(i).unwrap()).collect();
    for (i, n) in NODES.iter().enumerate() {
        assert_eq!(blocks[i].len(), 1, "{}: {:?}", n.name, blocks[i]);
        for c in lab.containers_on(i) {
            let inside = blocks[i].iter().any(|b| {
                b.parse::<ipnetwork::IpNetwork>()
                    .map(|net| net.contains(c.ip))
                    .unwrap_or(false)
            });
            assert!(inside, "{} ({}) outside {:?}", c.label, c.ip, blocks[i]);
        }
    }
    assert!(blocks[0].is_disjoint(&blocks[1]));

    lab.wait_converged(Duration::from_secs(90)).unwrap();
    let converged = t0.elapsed();
    for (i, n) in NODES.iter().enumerate() {
        let default = lab.nodes[i]
            .ip(&["-4", "route", "show", "default"])
            .unwrap();
        assert!(default.trim().is_empty(), "{}: {default}", n.name);
        // Own blocks: blackholes; the other node's blocks: unicast via the ToR; no /32s
        // from Bramble.
        wait_until("own blackholes", Duration::from_secs(20), POLL, || {
            let got = lab.kernel_dsts(i, "blackhole")?;
            check(got == blocks[i], || format!("{}: {got:?}", n.name))
        })
        .unwrap();
        let other: BTreeSet<String> = (0..NODES.len())
            .filter(|&o| o != i)
            .flat_map(|o| blocks[o].iter().cloned())
            .collect();
        let routes = lab.kernel_routes(i, "unicast").unwrap();
        let dsts = lab.kernel_dsts(i, "unicast").unwrap();
        assert_eq!(dsts, other, "{}: {routes:?}", n.name);
        for r in &routes {
            assert_eq!(r["gateway"], tor_addr(n.index).to_string(), "{r}");
        }
    }
    let total_blocks = blocks.iter().map(BTreeSet::len).sum::<usize>() as u64;
    wait_until(
        "BIRD to hold the blocks",
        Duration::from_secs(30),
        POLL,
        || {
            let n = lab.bird.route_count("master4")?;
            check(n == total_blocks, || format!("BIRD has {n}"))
        },
    )
    .unwrap();
    assert_bird_holds_blocks(&lab, &blocks);

    let t_ping = Instant::now();
    let pairs = all_pairs_ping(&lab);
    let ping_time = t_ping.elapsed();

    // DEL one container on node2.
    let victim_idx = lab
        .containers
        .iter()
        .position(|c| c.node == 1)
        .expect("a container on node2");
    let victim = lab.del_container(victim_idx).unwrap();
    let node2 = &lab.nodes[1];
    let host_route = node2
        .ip(&["-4", "route", "show", &format!("{}/32", victim.ip)])
        .unwrap();
    assert!(
        host_route.trim().is_empty(),
        "node2 still routes {}: {host_route}",
        victim.ip
    );
    let links = victim.ns.ip(&["link", "show"]).unwrap();
    assert!(!links.contains(IFNAME), "{links}");
    // The allocation is gone: CHECK through bramble-ipam finds nothing under the handle.
    let net = &lab.networks[1];
    let mut conf = net.netconf();
    conf["cniVersion"] = "1.1.0".into();
    let out = net
        .invoke_ipam(
            "CHECK",
            Some(&interop_tests::cni::netns_path(&victim.ns)),
            &victim.id,
            IFNAME,
            &conf,
        )
        .unwrap();
    assert!(!out.success(), "{}", out.stdout);
    assert_eq!(out.error_code(), Some(102), "{}", out.stdout);

    // Its address no longer answers, from node1's containers or from its node; the block
    // stays advertised and blackholed; everyone else still answers.
    for (i, c) in lab.containers.iter().enumerate() {
        assert!(
            !lab.reaches(i, victim.ip),
            "{} still reaches the deleted {}",
            c.label,
            victim.ip
        );
    }
    assert_eq!(lab.kernel_dsts(1, "blackhole").unwrap(), blocks[1]);
    assert_bird_holds_blocks(&lab, &blocks);
    all_pairs_ping(&lab);
    eprintln!(
        "lab (aggregate): converged at {converged:?}, {pairs} ping pairs in {ping_time:?}, \
         whole test {:?}",
        t0.elapsed()
    );
}
