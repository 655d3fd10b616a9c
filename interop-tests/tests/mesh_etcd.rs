//! Issue 7, test 3: the node-to-node mesh over the etcd node registry.
//!
//! One etcd member in its own namespace and five Bramble nodes, each in its own namespace,
//! all on one bridge; every node has `bgp.mesh = true` and no configured peers. The ten
//! iBGP sessions form by themselves (each node shows four Established `mesh` peers),
//! each node originates its container's address, and every container pings every other
//! node's container. Then one node is SIGKILLed: once its registry lease lapses its
//! sessions and routes are gone from the other four (`bramble status`, `ip -j route`),
//! although graceful restart would otherwise keep its routes for the restart time.

mod mesh_common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use interop_tests::etcd::EtcdCluster;
use interop_tests::{check, require_bramble, wait_until, Lan, Netns, ScratchDir};

use mesh_common::*;

const NODES: usize = 5;

#[test]
fn five_nodes_mesh_by_themselves_and_a_dead_node_leaves() {
    require_bramble();
    let t0 = Instant::now();
    let dir = ScratchDir::new("mesh-etcd").unwrap();
    let lan = Lan::new("mesh-sw").unwrap();
    // etcd in its own namespace on the same bridge.
    let etcd_ns = Netns::new("mesh-etcd").unwrap();
    let etcd_link = lan.attach(&etcd_ns).unwrap();
    etcd_link
        .a()
        .add_addr(&format!("{}/24", etcd_ip()))
        .unwrap();
    let mut etcd = EtcdCluster::in_namespaces(&[(&etcd_ns, IpAddr::V4(etcd_ip()))]).unwrap();
    let endpoints = etcd.client_endpoints();

    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| Node::start(i, &lan, &endpoints, dir.path(), FULL))
        .collect();
    let all: Vec<usize> = (0..NODES).collect();

    // `bramble nodes -o json`: all five, with their addresses and roles.
    wait_until(
        "five registered nodes",
        Duration::from_secs(30),
        POLL,
        || {
            let v = nodes[0].json(&["nodes", "-o", "json"])?;
            let n = v.as_array().map_or(0, Vec::len);
            check(n == NODES, || format!("{v}"))
        },
    )
    .unwrap();
    let listed = nodes[2].json(&["nodes", "-o", "json"]).unwrap();
    let listed = listed.as_array().unwrap();
    for (i, n) in nodes.iter().enumerate() {
        let entry = listed
            .iter()
            .find(|e| e["name"] == n.name.as_str())
            .unwrap_or_else(|| panic!("{} missing from {listed:?}", n.name));
        assert_eq!(
            entry["addresses"],
            serde_json::json!([lan_ip(i).to_string()])
        );
        assert_eq!(entry["router_id"], lan_ip(i).to_string());
        assert_eq!(entry["asn"], ASN);
        assert_eq!(entry["port"], 179);
        assert_eq!(entry["role"], "node");
        assert_eq!(entry["mesh"], "full");
    }
    let table = nodes[0].client(&["nodes"]).unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(table.lines().count(), NODES + 1, "{table}");

    // The ten sessions: four Established mesh peers on every node, nothing else.
    wait_until("the full mesh", Duration::from_secs(90), POLL, || {
        for (i, n) in nodes.iter().enumerate() {
            let up = n.established_mesh()?;
            check(up == others(i, &all), || {
                format!("{}: {:?}", n.name, n.peers())
            })?;
        }
        Ok(true)
    })
    .unwrap();
    let meshed = t0.elapsed();
    for n in &nodes {
        assert_eq!(n.peers().unwrap().len(), NODES - 1, "{}", n.name);
    }

    // Each node originates its container's address; every node routes every other
    // container via its owner.
    for (i, n) in nodes.iter().enumerate() {
        n.client(&["routes", "announce", &format!("{}/32", container_ip(i))])
            .unwrap();
    }
    wait_until("container routes", Duration::from_secs(60), POLL, || {
        for (i, n) in nodes.iter().enumerate() {
            let got = sorted(n.kernel_routes()?);
            let want = sorted(expected_routes(i, &all));
            check(got == want, || format!("{}: {got:?}", n.name))?;
        }
        Ok(true)
    })
    .unwrap();
    // The mesh sessions export what the node's own export policy allows: prefixes inside
    // the IPAM pool only. A prefix outside it stays home; one inside, announced after it,
    // arrives.
    nodes[0]
        .client(&["routes", "announce", "192.0.2.0/24"])
        .unwrap();
    nodes[0]
        .client(&["routes", "announce", "10.82.200.0/24"])
        .unwrap();
    wait_until("the pool prefix", Duration::from_secs(30), POLL, || {
        let got = nodes[1].kernel_routes()?;
        check(got.iter().any(|(d, _)| d == "10.82.200.0/24"), || {
            format!("{got:?}")
        })
    })
    .unwrap();
    let own = nodes[0]
        .json(&["routes", "-o", "json"])
        .unwrap()
        .to_string();
    assert!(own.contains("\"192.0.2.0/24\""), "{own}");
    for n in &nodes[1..] {
        let routes = n.json(&["routes", "-o", "json"]).unwrap().to_string();
        assert!(!routes.contains("192.0.2.0/24"), "{}: {routes}", n.name);
    }
    nodes[0]
        .client(&["routes", "withdraw", "10.82.200.0/24"])
        .unwrap();
    nodes[0]
        .client(&["routes", "withdraw", "192.0.2.0/24"])
        .unwrap();
    wait_until("the withdrawal", Duration::from_secs(30), POLL, || {
        for (i, n) in nodes.iter().enumerate() {
            let got = sorted(n.kernel_routes()?);
            check(got == sorted(expected_routes(i, &all)), || {
                format!("{}: {got:?}", n.name)
            })?;
        }
        Ok(true)
    })
    .unwrap();

    for (i, from) in nodes.iter().enumerate() {
        for j in all.iter().filter(|&&j| j != i) {
            let out = from.ping(container_ip(*j)).unwrap();
            assert!(
                out.contains(" 0% packet loss"),
                "{} container -> {}: {out}",
                from.name,
                container_ip(*j)
            );
        }
    }

    // SIGKILL the third node: no Cease, no lease revoke. Its sessions drop, but graceful
    // restart alone would keep its routes for 120 s; the registry removes it once its
    // lease lapses.
    let victim = 2;
    nodes[victim].agent.kill();
    let killed = Instant::now();
    let alive: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    wait_until(
        "the dead node to leave",
        Duration::from_secs(LEASE * 6),
        POLL,
        || {
            for &i in &alive {
                let n = &nodes[i];
                let peers: BTreeSet<IpAddr> = n.peers()?.into_iter().map(|(a, _, _)| a).collect();
                check(peers == others(i, &alive), || {
                    format!("{}: {peers:?}", n.name)
                })?;
                let got = sorted(n.kernel_routes()?);
                check(got == sorted(expected_routes(i, &alive)), || {
                    format!("{}: {got:?}", n.name)
                })?;
            }
            Ok(true)
        },
    )
    .unwrap();
    let gone = killed.elapsed();
    for &i in &alive {
        let n = &nodes[i];
        assert_eq!(
            n.established_mesh().unwrap(),
            others(i, &alive),
            "{}",
            n.name
        );
        let routes = n.json(&["routes", "-o", "json"]).unwrap();
        let dead = container_ip(victim).to_string();
        assert!(
            !routes.to_string().contains(&format!("\"{dead}/32\"")),
            "{}: {routes}",
            n.name
        );
    }
    let listed = nodes[0].json(&["nodes", "-o", "json"]).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["mesh1", "mesh2", "mesh4", "mesh5"]);
    // The survivors still reach each other's containers.
    for &i in &alive {
        for &j in alive.iter().filter(|&&j| j != i) {
            let out = nodes[i].ping(container_ip(j)).unwrap();
            assert!(out.contains(" 0% packet loss"), "{out}");
        }
    }
    assert_eq!(
        etcd.keys("/bramble/nodes/").unwrap(),
        [
            "/bramble/nodes/mesh1",
            "/bramble/nodes/mesh2",
            "/bramble/nodes/mesh4",
            "/bramble/nodes/mesh5"
        ]
    );

    // etcd goes away for longer than the lease: the sessions and routes stay, `bramble
    // nodes` keeps the last list it saw.
    etcd.kill(0);
    std::thread::sleep(Duration::from_secs(LEASE * 2));
    for &i in &alive {
        let n = &nodes[i];
        assert_eq!(
            n.established_mesh().unwrap(),
            others(i, &alive),
            "{}",
            n.name
        );
        let listed = n.json(&["nodes", "-o", "json"]).unwrap();
        assert_eq!(
            listed.as_array().map(Vec::len),
            Some(alive.len()),
            "{listed}"
        );
        let got = sorted(n.kernel_routes().unwrap());
        assert_eq!(got, sorted(expected_routes(i, &alive)), "{}", n.name);
    }
    // etcd returns: every node registers again under a new lease, nothing else changes.
    etcd.restart(0).unwrap();
    wait_until("re-registration", Duration::from_secs(60), POLL, || {
        let keys = etcd.keys("/bramble/nodes/")?;
        check(keys.len() == alive.len(), || format!("{keys:?}"))?;
        // Each key is attached to a live lease again (granted after the restart).
        for k in &keys {
            let out = etcd.etcdctl(&["get", k, "-w", "json"])?;
            check(out.contains("\"lease\""), || format!("{k}: {out}"))?;
        }
        Ok(true)
    })
    .unwrap();
    // After a further lease period the entries are still there: the leases are kept alive.
    std::thread::sleep(Duration::from_secs(LEASE + 2));
    assert_eq!(etcd.keys("/bramble/nodes/").unwrap().len(), alive.len());
    for &i in &alive {
        let n = &nodes[i];
        assert_eq!(
            n.established_mesh().unwrap(),
            others(i, &alive),
            "{}",
            n.name
        );
    }
    for &i in &alive {
        for &j in alive.iter().filter(|&&j| j != i) {
            let out = nodes[i].ping(container_ip(j)).unwrap();
            assert!(out.contains(" 0% packet loss"), "{out}");
        }
    }
    eprintln!(
        "mesh: 10 sessions after {meshed:?}; dead node gone after {gone:?} (lease {LEASE} s); \
         whole test {:?}",
        t0.elapsed()
    );
    drop(nodes);
    drop(etcd);
}
