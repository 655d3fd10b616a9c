//! The reference `ptp` plugin (Debian's containernetworking-plugins) calling `bramble-ipam`
//! exactly as a runtime would: `ptp` runs in a node namespace (`ip netns exec NODE`), finds
//! `bramble-ipam` on `CNI_PATH`, and wires container namespaces (`CNI_NETNS=/run/netns/X`).
//! The agent runs in the node namespace with a sled store in a scratch directory.
//!
//! Needs root, `/usr/lib/cni/ptp` (apt-get install containernetworking-plugins), and
//! `target/debug/bramble` + `target/debug/bramble-ipam` built (`cargo build -p agent`).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use interop_tests::bramble::bramble_bin;
use interop_tests::cni::{require_cni, CniNetwork};
use interop_tests::{require_bramble, wait_until, ChildGuard, Netns, ScratchDir};

/// Containers wired per run (the issue asks for 200): about 6 s of ADDs and 30 s in all on a
/// 2-core machine, most of it namespace creation and pings.
const CONTAINERS: usize = 200;
const POOL: &str = "10.244.0.0/16";

fn host_routes(node: &Netns) -> String {
    node.ip(&["-4", "route", "show"]).unwrap()
}

fn pings(node: &Netns, ip: IpAddr) -> bool {
    node.exec_unchecked("ping", ["-c", "1", "-W", "2", &ip.to_string()])
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn ptp_with_bramble_ipam_wires_containers_and_del_unwires_them() {
    require_bramble();
    // CI installs the tools: a missing one is a failure, not a skip.
    require_cni();
    let scratch = ScratchDir::new("cni-ptp").unwrap();
    let node = Netns::new("cninode").unwrap();
    node.ip(&["link", "set", "lo", "up"]).unwrap();
    let socket = scratch.join("bramble.sock");
    let config = format!(
        "[node]\nname = \"cni-node\"\nrouter_id = \"192.0.2.1\"\nasn = 64512\n\n[api]\nsocket = \"{}\"\n\n\
         [fib]\nenabled = false\n\n[ipam]\nstore = \"sled\"\npath = \"{}\"\n\n\
         [[ipam.pools]]\ncidr = \"{POOL}\"\nblock_size = 26\n",
        socket.display(),
        scratch.join("ipam").display()
    );
    let cfg_path = scratch.write("bramble.toml", config.as_bytes()).unwrap();
    let mut cmd = node.command(bramble_bin());
    cmd.arg("agent").arg("--config").arg(&cfg_path);
    let mut agent = ChildGuard::spawn(cmd, "bramble", scratch.path()).unwrap();
    wait_until(
        "control socket",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            agent.check_running()?;
            Ok(std::os::unix::net::UnixStream::connect(&socket).is_ok())
        },
    )
    .unwrap();

    let net = CniNetwork::ptp("podnet", POOL, &socket);
    let containers: Vec<Netns> = (0..CONTAINERS)
        .map(|_| Netns::new("cnic").unwrap())
        .collect();

    let start = Instant::now();
    let mut addrs: Vec<IpAddr> = Vec::new();
    let mut results = Vec::new();
    for c in &containers {
        let r = net.add(&node, c, c.name(), "eth0").unwrap();
        assert_eq!(r.prefix_len, 16, "{:?}", r.raw);
        assert_eq!(r.gateway, Some("169.254.1.1".parse().unwrap()));
        addrs.push(r.ip);
        results.push(r);
    }
    let add_time = start.elapsed();
    let distinct: BTreeSet<IpAddr> = addrs.iter().copied().collect();
    assert_eq!(distinct.len(), CONTAINERS, "addresses must be distinct");
    let pool: ipnetwork::IpNetwork = POOL.parse().unwrap();
    assert!(addrs.iter().all(|a| pool.contains(*a)));

    // The container has its address, the gateway's link route and the pool via it; the node
    // has a host route to the container.
    let first = &containers[0];
    net.check(&node, first, first.name(), "eth0", &results[0])
        .unwrap();
    let routes = first.ip(&["-4", "route", "show"]).unwrap();
    assert!(
        routes.contains("169.254.1.1 dev eth0 scope link"),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("{POOL} via 169.254.1.1 dev eth0")),
        "{routes}"
    );
    let node_routes = host_routes(&node);
    for a in &addrs {
        assert!(
            node_routes.contains(&format!("{a} dev veth")),
            "no route to {a}: {node_routes}"
        );
    }
    for a in &addrs {
        assert!(pings(&node, *a), "{a} does not answer");
    }
    // Container to container goes through the node.
    let other = addrs[1];
    let out = first
        .exec_unchecked("ping", ["-c", "1", "-W", "2", &other.to_string()])
        .unwrap();
    assert!(out.status.success(), "container 0 cannot reach {other}");

    // DEL half: their veths, host routes and allocations are gone; the rest still answer.
    let start = Instant::now();
    let half = CONTAINERS / 2;
    for c in &containers[..half] {
        net.del(&node, c, c.name(), "eth0").unwrap();
    }
    let del_time = start.elapsed();
    let node_routes = host_routes(&node);
    for (c, a) in containers.iter().zip(&addrs).take(half) {
        assert!(
            !node_routes.contains(&format!("{a} dev")),
            "route to {a} left: {node_routes}"
        );
        let links = c.ip(&["link", "show"]).unwrap();
        assert!(!links.contains("eth0"), "{links}");
        // The allocation is gone: CHECK through the plugin says the handle holds nothing.
        let mut check = net.netconf();
        check["cniVersion"] = "1.1.0".into();
        let gone = std::path::Path::new("/run/netns/gone");
        let out = net
            .invoke_ipam("CHECK", Some(gone), c.name(), "eth0", &check)
            .unwrap();
        assert!(!out.success());
        assert_eq!(out.error_code(), Some(102), "{}", out.stdout);
    }
    for a in &addrs[half..] {
        assert!(pings(&node, *a), "{a} lost after the other half's DEL");
    }
    eprintln!("{CONTAINERS} ptp ADDs in {add_time:?}, {half} DELs in {del_time:?}");

    for c in &containers[half..] {
        net.del(&node, c, c.name(), "eth0").unwrap();
    }
    drop(containers);
    agent.stop();
}
