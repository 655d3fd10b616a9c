//! `bgp.mesh = "reflectors"`: nodes peer with the registered route reflectors only, and a
//! reflector takes the registered mesh nodes as its route-reflector clients (RFC 4456).
//!
//! One etcd member and four Bramble nodes on one bridge: `mesh1` is a route reflector
//! (`bgp.cluster_id`), `mesh2`..`mesh4` its clients, no configured peers anywhere. Three
//! sessions form (client-reflector only, none between clients), the reflector reflects each
//! client's container route to the others with the next hop unchanged, and every container
//! pings every other. A SIGKILLed client leaves the reflector once its lease lapses, and
//! its route leaves the other clients.

mod mesh_common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use interop_tests::etcd::EtcdCluster;
use interop_tests::{check, require_bramble, wait_until, Lan, Netns, ScratchDir};

use mesh_common::*;

const NODES: usize = 4;

#[test]
fn clients_peer_with_the_reflector_only() {
    require_bramble();
    let dir = ScratchDir::new("mesh-rr").unwrap();
    let lan = Lan::new("mesh-rsw").unwrap();
    let etcd_ns = Netns::new("mesh-retcd").unwrap();
    let etcd_link = lan.attach(&etcd_ns).unwrap();
    etcd_link
        .a()
        .add_addr(&format!("{}/24", etcd_ip()))
        .unwrap();
    let etcd = EtcdCluster::in_namespaces(&[(&etcd_ns, IpAddr::V4(etcd_ip()))]).unwrap();
    let endpoints = etcd.client_endpoints();
    let reflector = Role {
        mesh: "\"reflectors\"",
        cluster_id: Some("10.81.0.1"),
    };
    let client = Role {
        mesh: "\"reflectors\"",
        cluster_id: None,
    };
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| {
            let role = if i == 0 { reflector } else { client };
            Node::start(i, &lan, &endpoints, dir.path(), role)
        })
        .collect();
    let all: Vec<usize> = (0..NODES).collect();
    let rr = IpAddr::V4(lan_ip(0));

    wait_until(
        "the reflector's sessions",
        Duration::from_secs(90),
        POLL,
        || {
            let clients = nodes[0].established("mesh-rr-client")?;
            check(clients == others(0, &all), || {
                format!("{:?}", nodes[0].peers())
            })?;
            for n in &nodes[1..] {
                let up = n.established_mesh()?;
                check(up == BTreeSet::from([rr]), || {
                    format!("{}: {:?}", n.name, n.peers())
                })?;
            }
            Ok(true)
        },
    )
    .unwrap();
    // No client-to-client sessions.
    for n in &nodes[1..] {
        assert_eq!(n.peers().unwrap().len(), 1, "{}", n.name);
    }
    let listed = nodes[1].json(&["nodes", "-o", "json"]).unwrap();
    let roles: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("mesh1", "reflector"),
            ("mesh2", "node"),
            ("mesh3", "node"),
            ("mesh4", "node")
        ]
    );

    for (i, n) in nodes.iter().enumerate() {
        n.client(&["routes", "announce", &format!("{}/32", container_ip(i))])
            .unwrap();
    }
    // Reflected routes keep their next hop: each container is routed via its own node.
    wait_until("container routes", Duration::from_secs(60), POLL, || {
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
        for &j in all.iter().filter(|&&j| j != i) {
            let out = from.ping(container_ip(j)).unwrap();
            assert!(
                out.contains(" 0% packet loss"),
                "{} -> {j}: {out}",
                from.name
            );
        }
    }

    // A client dies: the reflector drops it once its lease lapses, and with it the route.
    let victim = 3;
    nodes[victim].agent.kill();
    let alive: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    wait_until(
        "the dead client to leave",
        Duration::from_secs(LEASE * 6),
        POLL,
        || {
            let peers: BTreeSet<IpAddr> =
                nodes[0].peers()?.into_iter().map(|(a, _, _)| a).collect();
            check(peers == others(0, &alive), || format!("{peers:?}"))?;
            for &i in &alive {
                let got = sorted(nodes[i].kernel_routes()?);
                check(got == sorted(expected_routes(i, &alive)), || {
                    format!("{}: {got:?}", nodes[i].name)
                })?;
            }
            Ok(true)
        },
    )
    .unwrap();
    drop(nodes);
    drop(etcd);
}
