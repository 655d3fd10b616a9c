//! The Bramble lab: a BIRD top-of-rack router, two Bramble nodes with IPAM, and containers
//! that the CNI plugin chain (`ptp` + `bramble-ipam`) wires on each node, all in network
//! namespaces. Traffic between containers on different nodes crosses the ToR on routes that
//! only BGP taught (no default routes anywhere).
//!
//! ```text
//!                      tor (BIRD, AS 65000, kernel export)
//!             10.0.1.1 /                       \ 10.0.2.1
//!  10.0.1.2 node1 (Bramble AS 64512)      node2 (Bramble AS 64513) 10.0.2.2
//!     pool 10.244.0.0/16, blocks /26          pool 10.244.0.0/16, blocks /26
//!     (reserves 10.244.128.0/17)              (reserves 10.244.0.0/17)
//!       |      |      |   ptp veths            |      |      |
//!      c1.1   c1.2   c1.3                     c2.1   c2.2   c2.3
//! ```
//!
//! Each node has its own sled store, so nothing coordinates block ownership between them (an
//! etcd store would); each node reserves the half of the pool the other uses, which keeps their
//! blocks disjoint. Containers are created as a runtime creates them: `ptp` runs inside the
//! node namespace, asks `bramble-ipam` for an address, and wires the container with the pool
//! via 169.254.1.1; the node gets a /32 host route to the container's veth. The agent then
//! advertises either one /32 per container (`host-routes`) or its blocks (`aggregate`, with a
//! kernel blackhole per block).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::bird::{Bird, BirdBgp, BirdConfig};
use crate::bramble::{Bramble, BrambleConfig, BramblePeer, FibSection, IpamPool};
use crate::cni::{check_cni_plugins, CniNetwork, CniResult};
use crate::{check, wait_until, Netns, Result, Veth};

/// The pool every node allocates from.
pub const POOL: &str = "10.244.0.0/16";
/// Block prefix length.
pub const BLOCK_SIZE: u8 = 26;
/// Containers the lab wires on each node.
pub const CONTAINERS_PER_NODE: usize = 3;
/// The CNI network name (the first part of every IPAM handle).
pub const NETWORK: &str = "labnet";
/// The container-side interface name.
pub const IFNAME: &str = "eth0";
/// The ToR's AS.
pub const TOR_AS: u32 = 65000;

/// One Bramble node of the lab.
pub struct NodeSpec {
    /// Node (and namespace suffix) name.
    pub name: &'static str,
    /// The node's AS.
    pub asn: u32,
    /// 1-based; picks the link subnet `10.0.INDEX.0/30`.
    pub index: u8,
    /// The part of [`POOL`] the node never allocates from (the other node's half).
    pub reserved: &'static str,
}

/// The lab's nodes.
pub const NODES: [NodeSpec; 2] = [
    NodeSpec {
        name: "node1",
        asn: 64512,
        index: 1,
        reserved: "10.244.128.0/17",
    },
    NodeSpec {
        name: "node2",
        asn: 64513,
        index: 2,
        reserved: "10.244.0.0/17",
    },
];

/// The ToR's address on the link to node `i`.
pub fn tor_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, i, 1)
}

/// Node `i`'s address on its link to the ToR.
pub fn node_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, i, 2)
}

/// What the agents originate for their allocations (`bgp.advertise`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Advertise {
    /// One /32 per allocated address.
    #[default]
    HostRoutes,
    /// One route per block the node owns, plus a kernel blackhole for it.
    Aggregate,
}

impl Advertise {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            Advertise::HostRoutes => "host-routes",
            Advertise::Aggregate => "aggregate",
        }
    }
}

/// A container the CNI chain wired.
#[derive(Debug)]
pub struct Container {
    /// Index of its node in [`NODES`] (and `Lab::nodes`, `Lab::agents`).
    pub node: usize,
    /// A short label, `cNODE.K` (1-based).
    pub label: String,
    /// `CNI_CONTAINERID` (the namespace name).
    pub id: String,
    /// Its address (from `bramble-ipam`).
    pub ip: IpAddr,
    /// The ADD result.
    pub result: CniResult,
    /// Its namespace.
    pub ns: Netns,
}

/// A running lab. Dropping it stops the daemons and removes every namespace.
pub struct Lab {
    // Field order is drop order: daemons first, then namespaces.
    /// One agent per node, in [`NODES`] order.
    pub agents: Vec<Bramble>,
    /// The ToR's BIRD.
    pub bird: Bird,
    /// Every container, node by node.
    pub containers: Vec<Container>,
    /// One CNI network per node (its agent's socket).
    pub networks: Vec<CniNetwork>,
    /// Node namespaces, in [`NODES`] order.
    pub nodes: Vec<Netns>,
    /// The ToR's namespace.
    pub tor: Netns,
    /// What the agents advertise.
    pub advertise: Advertise,
}

fn sysctl(ns: &Netns, key: &str, value: &str) -> Result<()> {
    ns.exec("sysctl", ["-qw", &format!("{key}={value}")])?;
    Ok(())
}

impl Lab {
    /// Builds the lab and wires [`CONTAINERS_PER_NODE`] containers per node through CNI.
    /// `prefix` names the namespaces (`PREFIX-tor`, `PREFIX-node1`, `PREFIX-n1c1`, …);
    /// `fixed` = use exactly those names (removing leftovers), else add a unique suffix.
    pub fn start(prefix: &str, fixed: bool, dir: &Path, advertise: Advertise) -> Result<Lab> {
        check_cni_plugins("ptp")?;
        let make = |name: &str| {
            let full = format!("{prefix}-{name}");
            if fixed {
                Netns::fixed(&full)
            } else {
                Netns::new(&full)
            }
        };
        let tor = make("tor")?;
        sysctl(&tor, "net.ipv4.ip_forward", "1")?;
        let mut nodes = Vec::new();
        for n in &NODES {
            let ns = make(n.name)?;
            sysctl(&ns, "net.ipv4.ip_forward", "1")?;
            let link = Veth::between(tor.name(), &format!("to-{}", n.name), ns.name(), "eth0")?;
            link.a().add_addr(&format!("{}/30", tor_addr(n.index)))?;
            link.b().add_addr(&format!("{}/30", node_addr(n.index)))?;
            nodes.push(ns);
        }

        let mut bird_cfg = BirdConfig::new(Ipv4Addr::new(10, 0, 0, 1));
        for n in &NODES {
            let mut s = BirdBgp::new(n.name, TOR_AS, IpAddr::V4(node_addr(n.index)), n.asn);
            s.local_address = Some(IpAddr::V4(tor_addr(n.index)));
            bird_cfg.bgp.push(s);
        }
        // The ToR puts what it learns into its kernel table, like a real router.
        bird_cfg.extra = "protocol kernel { ipv4 { export all; }; }\n".into();
        let bird = Bird::start(&tor, dir, &bird_cfg)?;

        let mut agents = Vec::new();
        let mut networks = Vec::new();
        for (n, ns) in NODES.iter().zip(&nodes) {
            let ndir = dir.join(n.name);
            std::fs::create_dir_all(&ndir).map_err(|e| crate::Error::io(&ndir, e))?;
            let mut cfg = BrambleConfig::new(n.name, node_addr(n.index), n.asn, &ndir)
                .with_ipam(vec![IpamPool::new(POOL, BLOCK_SIZE)], advertise.as_str())
                .with_reservations(&[n.reserved]);
            cfg.fib = Some(FibSection { enabled: true });
            let mut p = BramblePeer::new(IpAddr::V4(tor_addr(n.index)), TOR_AS);
            p.local_address = Some(IpAddr::V4(node_addr(n.index)));
            p.families = vec!["ipv4-unicast".into()];
            p.import = vec![format!("{POOL} le 32")];
            p.export = vec![format!("{POOL} le 32")];
            cfg.bgp.peers.push(p);
            let agent = Bramble::start(ns, &ndir, &cfg)?;
            networks.push(CniNetwork::ptp(NETWORK, POOL, agent.socket()));
            agents.push(agent);
        }

        let mut containers = Vec::new();
        for (i, ((n, ns), net)) in NODES.iter().zip(&nodes).zip(&networks).enumerate() {
            for k in 1..=CONTAINERS_PER_NODE {
                let cns = make(&format!("n{}c{k}", n.index))?;
                let id = cns.name().to_string();
                let result = net.add(ns, &cns, &id, IFNAME)?;
                containers.push(Container {
                    node: i,
                    label: format!("c{}.{k}", n.index),
                    id,
                    ip: result.ip,
                    result,
                    ns: cns,
                });
            }
        }
        Ok(Lab {
            agents,
            bird,
            containers,
            networks,
            nodes,
            tor,
            advertise,
        })
    }

    /// The containers on node `node` (index into [`NODES`]).
    pub fn containers_on(&self, node: usize) -> impl Iterator<Item = &Container> {
        self.containers.iter().filter(move |c| c.node == node)
    }

    /// The blocks node `node` owns (`bramble ipam show`).
    pub fn blocks(&self, node: usize) -> Result<BTreeSet<String>> {
        let agent = self
            .agents
            .get(node)
            .ok_or_else(|| crate::Error::parse("lab node", format!("no node {node}")))?;
        Ok(agent
            .ipam_show()?
            .iter()
            .flat_map(|pool| pool["blocks"].as_array().cloned().unwrap_or_default())
            .filter_map(|b| b["cidr"].as_str().map(str::to_string))
            .collect())
    }

    /// Bramble's (protocol 196) routes in node `node`'s kernel, as `ip -j route` objects;
    /// `kind` is e.g. `unicast` or `blackhole`.
    pub fn kernel_routes(&self, node: usize, kind: &str) -> Result<Vec<Value>> {
        let ns = self
            .nodes
            .get(node)
            .ok_or_else(|| crate::Error::parse("lab node", format!("no node {node}")))?;
        let text = ns.ip(&["-4", "-j", "route", "show", "proto", "196", "type", kind])?;
        match serde_json::from_str(text.trim()) {
            Ok(Value::Array(a)) => Ok(a),
            _ if text.trim().is_empty() => Ok(Vec::new()),
            _ => Err(crate::Error::parse("ip -j route", text)),
        }
    }

    /// The destinations of [`Lab::kernel_routes`], normalised to CIDR (`10.244.0.1/32`).
    pub fn kernel_dsts(&self, node: usize, kind: &str) -> Result<BTreeSet<String>> {
        Ok(self
            .kernel_routes(node, kind)?
            .iter()
            .filter_map(|r| r["dst"].as_str())
            .map(|d| {
                if d.contains('/') {
                    d.to_string()
                } else {
                    format!("{d}/32")
                }
            })
            .collect())
    }

    /// What node `node` must have learned from the ToR: the other nodes' container /32s
    /// (host-routes) or their blocks (aggregate).
    pub fn expected_remote(&self, node: usize) -> Result<BTreeSet<String>> {
        let mut want = BTreeSet::new();
        for other in (0..NODES.len()).filter(|&o| o != node) {
            match self.advertise {
                Advertise::HostRoutes => want.extend(
                    self.containers_on(other)
                        .map(|c| format!("{}/{}", c.ip, host_len(c.ip))),
                ),
                Advertise::Aggregate => want.extend(self.blocks(other)?),
            }
        }
        Ok(want)
    }

    /// Waits until each node's kernel holds, as Bramble's (protocol 196) unicast routes,
    /// everything [`Lab::expected_remote`] lists for it.
    pub fn wait_converged(&self, timeout: Duration) -> Result<()> {
        for (i, n) in NODES.iter().enumerate() {
            let want = self.expected_remote(i)?;
            wait_until(
                &format!("{} to install {want:?}", n.name),
                timeout,
                Duration::from_millis(300),
                || {
                    let got = self.kernel_dsts(i, "unicast")?;
                    check(want.is_subset(&got), || {
                        format!("{}: proto 196 routes {got:?}", n.name)
                    })
                },
            )?;
        }
        Ok(())
    }

    /// Pings `to` from container `from` (indices into `containers`) three times; Ok(output)
    /// if any ping was answered (ping's exit status), else an error carrying its output.
    pub fn ping(&self, from: usize, to: usize) -> Result<String> {
        let dst = self.container(to)?.ip;
        self.ping_ip(from, dst, 3)
    }

    /// Pings `dst` from container `from` `count` times (0.2 s apart, 2 s timeout).
    pub fn ping_ip(&self, from: usize, dst: IpAddr, count: u32) -> Result<String> {
        let out = self.container(from)?.ns.exec(
            "ping",
            [
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "2",
                &dst.to_string(),
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether one ping from container `from` to `dst` is answered.
    pub fn reaches(&self, from: usize, dst: IpAddr) -> bool {
        self.ping_ip(from, dst, 1).is_ok()
    }

    /// CNI DEL of container `idx`: its veth, host route and address go; it leaves
    /// `containers` and is returned (its namespace still exists until dropped).
    pub fn del_container(&mut self, idx: usize) -> Result<Container> {
        let c = self.container(idx)?;
        let (node, net) = self
            .nodes
            .get(c.node)
            .zip(self.networks.get(c.node))
            .ok_or_else(|| crate::Error::parse("lab node", format!("no node {}", c.node)))?;
        net.del(node, &c.ns, &c.id, IFNAME)?;
        Ok(self.containers.remove(idx))
    }

    fn container(&self, idx: usize) -> Result<&Container> {
        self.containers
            .get(idx)
            .ok_or_else(|| crate::Error::parse("lab container", format!("no container {idx}")))
    }
}

fn host_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}
