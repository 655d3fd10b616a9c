//! Borrowing across nodes in aggregate mode (issue 7, test 4): three Bramble nodes on one etcd
//! store behind a BIRD ToR (eBGP, one AS per node), all on one LAN. The pool is a single
//! block: node1 claims it with its first container, node0's container then borrows an address
//! from it. node0 announces the borrowed /32, node1 the block; node1 learns (from etcd) that
//! the address is lent and cuts it out of its blackhole. Traffic from node2 — and from node1
//! itself — to the borrowed address reaches node0's container, not node1's blackhole.
//!
//! Needs root, etcd, BIRD, the CNI `ptp` plugin, `target/debug/bramble` + `bramble-ipam`.

mod etcd_common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use etcd_common::{network, node_addr, EtcdLab};
use interop_tests::bird::{Bird, BirdBgp, BirdConfig};
use interop_tests::bramble::{BramblePeer, FibSection};
use interop_tests::cni::require_cni;
use interop_tests::{check, require_bramble, wait_until, Netns};

const POOL: &str = "10.91.0.0/29";
const TOR_AS: u32 = 64999;
const TOR: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 1);
const POLL: Duration = Duration::from_millis(300);
const CONVERGE: Duration = Duration::from_secs(60);

fn node_as(i: usize) -> u32 {
    65001 + i as u32
}

/// Destinations of node `ns`'s Bramble routes (protocol 196) of `kind`.
fn kernel_dsts(ns: &Netns, kind: &str) -> BTreeSet<String> {
    let text = ns
        .ip(&["-4", "-j", "route", "show", "proto", "196", "type", kind])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_default();
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r["dst"].as_str())
        .map(|d| {
            if d.contains('/') {
                d.to_string()
            } else {
                format!("{d}/32")
            }
        })
        .collect()
}

fn ping(ns: &Netns, dst: IpAddr) -> String {
    let out = ns
        .exec_unchecked(
            "ping",
            ["-c", "3", "-i", "0.2", "-W", "2", &dst.to_string()],
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn borrowed_address_is_reached_past_the_owners_blackhole() {
    require_bramble();
    require_cni();
    let mut lab = EtcdLab::start("etcd-b", 1);

    // The ToR on the LAN, one eBGP session per node.
    let tor = Netns::new("etcd-b-tor").unwrap();
    let tor_link = lab.lan.attach(&tor).unwrap();
    tor_link.a().add_addr(&format!("{TOR}/24")).unwrap();
    let mut bird_cfg = BirdConfig::new(TOR);
    for i in 0..3 {
        let mut s = BirdBgp::new(
            &format!("node{i}"),
            TOR_AS,
            IpAddr::V4(node_addr(i)),
            node_as(i),
        );
        s.local_address = Some(IpAddr::V4(TOR));
        bird_cfg.bgp.push(s);
    }
    bird_cfg.extra = "protocol kernel { ipv4 { export all; }; }\n".into();
    let bird = Bird::start(&tor, lab.dir.path(), &bird_cfg).unwrap();

    for i in 0..3 {
        lab.add_node(POOL, 29, 5, |cfg| {
            cfg.node.asn = node_as(i);
            cfg.bgp.advertise = Some("aggregate".into());
            cfg.fib = Some(FibSection { enabled: true });
            let mut p = BramblePeer::new(IpAddr::V4(TOR), TOR_AS);
            p.local_address = Some(IpAddr::V4(node_addr(i)));
            p.families = vec!["ipv4-unicast".into()];
            p.import = vec![format!("{POOL} le 32")];
            p.export = vec![format!("{POOL} le 32")];
            cfg.bgp.peers.push(p);
        });
    }
    wait_until("ToR sessions up", CONVERGE, POLL, || {
        let up: Vec<bool> = (0..3)
            .map(|i| bird.is_established(&format!("node{i}")).unwrap_or(false))
            .collect();
        check(up.iter().all(|u| *u), || format!("{up:?}"))
    })
    .unwrap();

    // node1 claims the pool's only block; node0 then has to borrow from it.
    let nets: Vec<_> = lab.nodes.iter().map(|n| network(&n.socket, POOL)).collect();
    let c1 = Netns::new("etcd-b-c1").unwrap();
    let r1 = nets[1]
        .add(&lab.nodes[1].ns, &c1, c1.name(), "eth0")
        .unwrap();
    let c0 = Netns::new("etcd-b-c0").unwrap();
    let r0 = nets[0]
        .add(&lab.nodes[0].ns, &c0, c0.name(), "eth0")
        .unwrap();
    // node2's container borrows too (the pool has no other block): containers only route
    // the pool, so traffic from node2 is sent by its container.
    let c2 = Netns::new("etcd-b-c2").unwrap();
    let r2 = nets[2]
        .add(&lab.nodes[2].ns, &c2, c2.name(), "eth0")
        .unwrap();
    let block = "10.91.0.0/29";
    let borrowed = r0.ip;
    assert!(
        block
            .parse::<ipnetwork::IpNetwork>()
            .unwrap()
            .contains(borrowed),
        "{borrowed} not in {block}"
    );
    assert_ne!(borrowed, r1.ip);

    // The ToR: the block from node1, the borrowed /32 from node0.
    let host = format!("{borrowed}/32");
    wait_until("ToR holds the block and the /32", CONVERGE, POLL, || {
        let b = bird.show_route(block)?;
        let h = bird.show_route(&host)?;
        check(
            b.iter().any(|r| r.protocol == "node1") && h.iter().any(|r| r.protocol == "node0"),
            || format!("block {b:?} host {h:?}"),
        )
    })
    .unwrap();

    // node1 cut the lent addresses out of its blackhole, told by its etcd watch on the
    // blocks (its full re-read runs only every 30 s, as a safety net: the bound below is
    // half that, so the watch must have done it); the rest of the block stays blackholed
    // (but for the lent addresses' /32 neighbours, which may be local containers' host
    // routes).
    let lent = [borrowed, r2.ip];
    wait_until(
        "node1's blackhole spares the lent addresses",
        Duration::from_secs(15),
        POLL,
        || {
            let holes = kernel_dsts(&lab.nodes[1].ns, "blackhole");
            let covers = holes
                .iter()
                .filter_map(|d| d.parse::<ipnetwork::IpNetwork>().ok())
                .any(|n| lent.iter().any(|ip| n.contains(*ip)));
            check(!holes.is_empty() && !covers, || format!("{holes:?}"))
        },
    )
    .unwrap();
    let holes = kernel_dsts(&lab.nodes[1].ns, "blackhole");
    assert!(!holes.contains(block), "{holes:?}");
    assert!(holes.iter().all(|h| !h.ends_with("/32")), "{holes:?}");

    // Traffic from node2's container (and from the owner node1's) reaches node0's container.
    for (from, c) in [(2, &c2), (1, &c1)] {
        wait_until(
            &format!("node{from}'s container pings the borrowed {borrowed}"),
            CONVERGE,
            POLL,
            || {
                let out = ping(c, borrowed);
                check(out.contains(" 0% packet loss"), || {
                    let routes = |n: &Netns| n.ip(&["-4", "route"]).unwrap_or_default();
                    format!(
                        "{out}\nnode{from}:\n{}\nnode0:\n{}\ntor:\n{}",
                        routes(&lab.nodes[from].ns),
                        routes(&lab.nodes[0].ns),
                        routes(&tor),
                    )
                })
            },
        )
        .unwrap();
    }
    // The one that answered is node0's container: its address is configured there only.
    let addrs = c0.ip(&["-4", "addr", "show", "eth0"]).unwrap();
    assert!(addrs.contains(&borrowed.to_string()), "{addrs}");
    let route = lab.nodes[2]
        .ns
        .ip(&["-4", "route", "get", &borrowed.to_string()])
        .unwrap();
    assert!(!route.contains("blackhole"), "{route}");

    // node1's own container is still reached too.
    let out = ping(&c2, r1.ip);
    assert!(out.contains(" 0% packet loss"), "{out}");
    assert_eq!(lab.check(0)["clean"], true);
    assert_ne!(r2.ip, borrowed);
    drop((c0, c1, c2));
}
