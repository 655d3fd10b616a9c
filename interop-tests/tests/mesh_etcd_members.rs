//! The node registry on a three-member etcd cluster survives losing a member: every node's
//! entry stays registered (its lease kept alive through the other members) and the mesh
//! sessions stay up.

mod mesh_common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use interop_tests::etcd::EtcdCluster;
use interop_tests::{check, require_bramble, wait_until, Lan, Netns, ScratchDir, Veth};

use mesh_common::*;

const NODES: usize = 3;

#[test]
fn registry_survives_an_etcd_member_loss() {
    require_bramble();
    let dir = ScratchDir::new("mesh-members").unwrap();
    let lan = Lan::new("mesh-msw").unwrap();
    let mut etcd_ns: Vec<(Netns, Veth, IpAddr)> = Vec::new();
    for m in 0..3u8 {
        let ns = Netns::new("mesh-metcd").unwrap();
        let link = lan.attach(&ns).unwrap();
        let ip = Ipv4Addr::new(10, 81, 0, 100 + m);
        link.a().add_addr(&format!("{ip}/24")).unwrap();
        etcd_ns.push((ns, link, IpAddr::V4(ip)));
    }
    let members: Vec<(&Netns, IpAddr)> = etcd_ns.iter().map(|(ns, _, ip)| (ns, *ip)).collect();
    let mut etcd = EtcdCluster::in_namespaces(&members).unwrap();
    let endpoints = etcd.client_endpoints();
    let nodes: Vec<Node> = (0..NODES)
        .map(|i| Node::start(i, &lan, &endpoints, dir.path(), FULL))
        .collect();
    let all: Vec<usize> = (0..NODES).collect();
    let meshed = |nodes: &[Node]| -> interop_tests::Result<bool> {
        for (i, n) in nodes.iter().enumerate() {
            let up = n.established_mesh()?;
            check(up == others(i, &all), || {
                format!("{}: {:?}", n.name, n.peers())
            })?;
        }
        Ok(true)
    };
    wait_until("the mesh", Duration::from_secs(90), POLL, || meshed(&nodes)).unwrap();

    // Every member in turn goes away for longer than the lease; the entries stay.
    for m in 0..3 {
        etcd.kill(m);
        let alive = (m + 1) % 3;
        std::thread::sleep(Duration::from_secs(LEASE * 2));
        let keys = etcd
            .etcdctl_at(
                alive,
                &["get", "--prefix", "--keys-only", "/bramble/nodes/"],
            )
            .unwrap();
        let keys: Vec<&str> = keys.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            keys,
            [
                "/bramble/nodes/mesh1",
                "/bramble/nodes/mesh2",
                "/bramble/nodes/mesh3"
            ],
            "member {m} down"
        );
        meshed(&nodes).unwrap();
        etcd.restart(m).unwrap();
    }
    drop(nodes);
    drop(etcd);
}
