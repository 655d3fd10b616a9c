//! The etcd driver on its own: a loopback cluster survives losing one member, and a cluster
//! spread over namespaces on a LAN answers from every member.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use interop_tests::etcd::EtcdCluster;
use interop_tests::{require_root_and_tools, wait_until, Lan, Netns};

#[test]
fn loopback_cluster_survives_one_member_kill_and_restart() {
    let mut cluster = EtcdCluster::loopback(3).unwrap();
    assert_eq!(cluster.client_endpoints().len(), 3);
    cluster.etcdctl(&["put", "/drv/a", "1"]).unwrap();

    cluster.kill(1);
    assert!(!cluster.is_running(1));
    // Two of three keep a quorum: writes go on (once a new leader is elected, if the killed
    // member led).
    wait_until(
        "a write on the surviving members",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || cluster.etcdctl_at(0, &["put", "/drv/b", "2"]).map(|_| true),
    )
    .unwrap();

    cluster.restart(1).unwrap();
    assert!(cluster.is_running(1));
    // The restarted member caught up from its peers.
    let got = cluster
        .etcdctl_at(1, &["get", "/drv/b", "--print-value-only"])
        .unwrap();
    assert_eq!(got.trim(), "2");
    assert_eq!(cluster.keys("/drv/").unwrap(), vec!["/drv/a", "/drv/b"]);
}

#[test]
fn single_member_keeps_data_across_restart() {
    let mut cluster = EtcdCluster::single().unwrap();
    cluster.etcdctl(&["put", "/drv/k", "v"]).unwrap();
    cluster.stop(0);
    assert!(cluster.etcdctl_at(0, &["get", "/drv/k"]).is_err());
    cluster.restart(0).unwrap();
    let got = cluster
        .etcdctl_at(0, &["get", "/drv/k", "--print-value-only"])
        .unwrap();
    assert_eq!(got.trim(), "v");
}

#[test]
fn cluster_in_namespaces_on_a_lan() {
    require_root_and_tools();
    let lan = Lan::new("etcd-sw").unwrap();
    let mut nodes = Vec::new();
    let mut links = Vec::new();
    for i in 0..3u8 {
        let ns = Netns::new("etcd-n").unwrap();
        let link = lan.attach(&ns).unwrap();
        link.a().add_addr(&format!("10.79.0.{}/24", i + 1)).unwrap();
        nodes.push(ns);
        links.push(link);
    }
    let members: Vec<(&Netns, IpAddr)> = nodes
        .iter()
        .enumerate()
        .map(|(i, ns)| (ns, IpAddr::V4(Ipv4Addr::new(10, 79, 0, i as u8 + 1))))
        .collect();
    let cluster = EtcdCluster::in_namespaces(&members).unwrap();
    assert_eq!(
        cluster.client_endpoints(),
        vec![
            "http://10.79.0.1:2379",
            "http://10.79.0.2:2379",
            "http://10.79.0.3:2379"
        ]
    );
    cluster.etcdctl_at(2, &["put", "/drv/x", "y"]).unwrap();
    let got = cluster
        .etcdctl_at(0, &["get", "/drv/x", "--print-value-only"])
        .unwrap();
    assert_eq!(got.trim(), "y");
}
