//! Shared by the `mesh_*` tests: Bramble nodes in namespaces on one bridge, each with a
//! container behind it, configured for the etcd node registry and the mesh.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use interop_tests::bramble::bramble_bin;
use interop_tests::process::{command_error, run_unchecked};
use interop_tests::{wait_until, ChildGuard, Lan, Netns, Veth};
use serde_json::Value;

pub const ASN: u32 = 64512;
/// `bgp.mesh_lease`, seconds.
pub const LEASE: u64 = 5;
pub const POLL: Duration = Duration::from_millis(300);

pub fn lan_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 81, 0, i as u8 + 1)
}

pub fn etcd_ip() -> Ipv4Addr {
    Ipv4Addr::new(10, 81, 0, 100)
}

/// The address of node `i`'s container.
pub fn container_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 82, i as u8, 10)
}

/// One Bramble node: its namespace, its container (a namespace behind a veth) and the agent.
pub struct Node {
    pub name: String,
    pub socket: PathBuf,
    // Field order is drop order: the agent goes before its namespaces.
    pub agent: ChildGuard,
    _link: Veth,
    _container_link: Veth,
    pub container: Netns,
    pub ns: Netns,
}

/// How a node takes part in the mesh.
#[derive(Debug, Clone, Copy)]
pub struct Role<'a> {
    /// The `bgp.mesh` value as TOML (`true`, `\"reflectors\"`).
    pub mesh: &'a str,
    /// `bgp.cluster_id`: set = a route reflector.
    pub cluster_id: Option<&'a str>,
}

/// A node in the full mesh.
pub const FULL: Role<'static> = Role {
    mesh: "true",
    cluster_id: None,
};

impl Node {
    /// Node `i` (`meshI+1`, LAN address `10.81.0.I+1`, container `10.82.I.10`), started and
    /// answering on its control socket.
    pub fn start(i: usize, lan: &Lan, endpoints: &[String], dir: &Path, role: Role<'_>) -> Node {
        let name = format!("mesh{}", i + 1);
        let ns = Netns::new("mesh-n").unwrap();
        let link = lan.attach(&ns).unwrap();
        link.a().add_addr(&format!("{}/24", lan_ip(i))).unwrap();
        // The container: a /24 behind the node, its default route via the node.
        let container = Netns::new("mesh-c").unwrap();
        let clink = Veth::new(&ns, &container).unwrap();
        clink.a().add_addr(&format!("10.82.{i}.1/24")).unwrap();
        clink
            .b()
            .add_addr(&format!("{}/24", container_ip(i)))
            .unwrap();
        container
            .ip(&["route", "add", "default", "via", &format!("10.82.{i}.1")])
            .unwrap();

        let socket = dir.join(format!("{name}.sock"));
        let endpoints: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
        let text = format!(
            r#"[node]
name = "{name}"
router_id = "{rid}"
asn = {ASN}

[api]
socket = "{socket}"

[bgp]
listen = "0.0.0.0:179"
hold_time = 9
mesh = {mesh}
mesh_lease = {LEASE}
{cluster_id}

[fib]
enabled = true

[ipam]
path = "{ipam}"
etcd_endpoints = [{endpoints}]

# The containers' addresses: with pools, the node exports only prefixes inside them.
[[ipam.pools]]
cidr = "10.82.0.0/16"
"#,
            rid = lan_ip(i),
            socket = socket.display(),
            ipam = dir.join(format!("{name}-ipam")).display(),
            endpoints = endpoints.join(", "),
            mesh = role.mesh,
            cluster_id = role
                .cluster_id
                .map(|c| format!("cluster_id = \"{c}\""))
                .unwrap_or_default(),
        );
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let mut cmd = ns.command(bramble_bin());
        cmd.arg("agent").arg("--config").arg(&cfg).env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or("info".into()),
        );
        let agent = ChildGuard::spawn(cmd, &format!("bramble-{name}"), dir).unwrap();
        let mut node = Node {
            name,
            socket,
            agent,
            _link: link,
            _container_link: clink,
            container,
            ns,
        };
        wait_until(
            "bramble control socket",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                node.agent.check_running()?;
                Ok(node.client(&["status", "-o", "json"]).is_ok())
            },
        )
        .unwrap();
        node
    }

    /// `bramble ARGS --socket S`: stdout, or the client's error.
    pub fn client(&self, args: &[&str]) -> interop_tests::Result<String> {
        let mut cmd = Command::new(bramble_bin());
        cmd.args(args).arg("--socket").arg(&self.socket);
        let out = run_unchecked(&mut cmd)?;
        if !out.status.success() {
            return Err(command_error(&cmd, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn json(&self, args: &[&str]) -> interop_tests::Result<Value> {
        let text = self.client(args)?;
        serde_json::from_str(&text)
            .map_err(|e| interop_tests::Error::parse("bramble output", format!("{e}: {text}")))
    }

    /// `bramble status -o json`: peer address → (type, state).
    pub fn peers(&self) -> interop_tests::Result<Vec<(IpAddr, String, String)>> {
        let v = self.json(&["status", "-o", "json"])?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["peer"].as_str().unwrap_or("").parse().unwrap(),
                    p["type"].as_str().unwrap_or("").to_string(),
                    p["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect())
    }

    /// Established mesh peers.
    pub fn established_mesh(&self) -> interop_tests::Result<BTreeSet<IpAddr>> {
        self.established("mesh")
    }

    /// Established peers of type `kind`.
    pub fn established(&self, kind: &str) -> interop_tests::Result<BTreeSet<IpAddr>> {
        Ok(self
            .peers()?
            .into_iter()
            .filter(|(_, k, state)| k == kind && state == "Established")
            .map(|(a, _, _)| a)
            .collect())
    }

    /// Destinations of the kernel's routes installed by Bramble (protocol 196), with their
    /// gateways.
    pub fn kernel_routes(&self) -> interop_tests::Result<Vec<(String, String)>> {
        let text = self.ns.ip(&["-j", "-4", "route", "show", "proto", "196"])?;
        let v: Value = serde_json::from_str(if text.trim().is_empty() { "[]" } else { &text })
            .map_err(|e| interop_tests::Error::parse("ip -j route", format!("{e}: {text}")))?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["dst"].as_str().unwrap_or("").to_string(),
                    r["gateway"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect())
    }

    /// Whether this node's container gets an answer from `ip`.
    pub fn ping(&self, ip: Ipv4Addr) -> interop_tests::Result<String> {
        let out = self
            .container
            .exec_unchecked("ping", ["-c", "2", "-i", "0.2", "-W", "2", &ip.to_string()])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

pub fn others(i: usize, alive: &[usize]) -> BTreeSet<IpAddr> {
    alive
        .iter()
        .filter(|&&j| j != i)
        .map(|&j| IpAddr::V4(lan_ip(j)))
        .collect()
}

/// The container routes node `i` should hold: one per other live node, via that node.
pub fn expected_routes(i: usize, alive: &[usize]) -> Vec<(String, String)> {
    alive
        .iter()
        .filter(|&&j| j != i)
        .map(|&j| (container_ip(j).to_string(), lan_ip(j).to_string()))
        .collect()
}

pub fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}
