//! The Bramble lab: a BIRD top-of-rack router, two Bramble nodes, and a "container" behind
//! each node, all in network namespaces. Traffic between the containers crosses the ToR on
//! routes that only BGP taught (no default routes anywhere).
//!
//! ```text
//!                      tor (BIRD, AS 65000, kernel export)
//!             10.0.1.1 /                       \ 10.0.2.1
//!  10.0.1.2 node1 (Bramble AS 64512)      node2 (Bramble AS 64513) 10.0.2.2
//!     announces 10.244.1.0/26                announces 10.244.2.0/26
//!          |  /32 to the container               |
//!     c1: 10.244.1.10                        c2: 10.244.2.10
//! ```
//!
//! Containers are wired like Calico's: the container's address is a /32, its default route
//! points at 169.254.1.1 on its veth, which the node's side of the veth holds.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use crate::bird::{Bird, BirdBgp, BirdConfig};
use crate::bramble::{Bramble, BrambleConfig, BramblePeer, FibSection};
use crate::{check, wait_until, Netns, Result, Veth};

/// One Bramble node of the lab.
pub struct NodeSpec {
    pub name: &'static str,
    pub asn: u32,
    pub index: u8,
    pub block: &'static str,
    pub container_ip: Ipv4Addr,
}

pub const NODES: [NodeSpec; 2] = [
    NodeSpec {
        name: "node1",
        asn: 64512,
        index: 1,
        block: "10.244.1.0/26",
        container_ip: Ipv4Addr::new(10, 244, 1, 10),
    },
    NodeSpec {
        name: "node2",
        asn: 64513,
        index: 2,
        block: "10.244.2.0/26",
        container_ip: Ipv4Addr::new(10, 244, 2, 10),
    },
];
pub const TOR_AS: u32 = 65000;

pub fn tor_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, i, 1)
}

pub fn node_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, i, 2)
}

/// A running lab. Dropping it stops the daemons and removes every namespace.
pub struct Lab {
    // Field order is drop order: daemons first, then namespaces.
    pub agents: Vec<Bramble>,
    pub bird: Bird,
    pub containers: Vec<Netns>,
    pub nodes: Vec<Netns>,
    pub tor: Netns,
}

fn sysctl(ns: &Netns, key: &str, value: &str) -> Result<()> {
    ns.exec("sysctl", ["-qw", &format!("{key}={value}")])?;
    Ok(())
}

impl Lab {
    /// Builds the lab. `prefix` names the namespaces (`PREFIX-tor`, `PREFIX-node1`, …);
    /// `fixed` = use exactly those names (removing leftovers), else add a unique suffix.
    pub fn start(prefix: &str, fixed: bool, dir: &Path) -> Result<Lab> {
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
        let mut containers = Vec::new();
        for n in &NODES {
            let ns = make(n.name)?;
            sysctl(&ns, "net.ipv4.ip_forward", "1")?;
            let link = Veth::between(tor.name(), &format!("to-{}", n.name), ns.name(), "eth0")?;
            link.a().add_addr(&format!("{}/30", tor_addr(n.index)))?;
            link.b().add_addr(&format!("{}/30", node_addr(n.index)))?;

            // The container: a /32 on eth0, default via 169.254.1.1, proxy ARP on the host.
            let c = make(&format!("c{}", n.index))?;
            let host_if = format!("cali{}", n.index);
            Veth::between(ns.name(), &host_if, c.name(), "eth0")?;
            // The host side holds the containers' gateway address (Calico answers for it by
            // proxy ARP; an address is the simpler equivalent inside a lab node).
            ns.ip(&["addr", "add", "169.254.1.1/32", "dev", &host_if])?;
            c.ip(&[
                "addr",
                "add",
                &format!("{}/32", n.container_ip),
                "dev",
                "eth0",
            ])?;
            c.ip(&[
                "route",
                "add",
                "169.254.1.1",
                "dev",
                "eth0",
                "scope",
                "link",
            ])?;
            c.ip(&[
                "route",
                "add",
                "default",
                "via",
                "169.254.1.1",
                "dev",
                "eth0",
            ])?;
            ns.ip(&[
                "route",
                "add",
                &format!("{}/32", n.container_ip),
                "dev",
                &host_if,
            ])?;
            nodes.push(ns);
            containers.push(c);
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
        for (n, ns) in NODES.iter().zip(&nodes) {
            let ndir = dir.join(n.name);
            std::fs::create_dir_all(&ndir).map_err(|e| crate::Error::io(&ndir, e))?;
            let mut cfg = BrambleConfig::new(n.name, node_addr(n.index), n.asn, &ndir);
            cfg.fib = Some(FibSection { enabled: true });
            let mut p = BramblePeer::new(IpAddr::V4(tor_addr(n.index)), TOR_AS);
            p.local_address = Some(IpAddr::V4(node_addr(n.index)));
            p.families = vec!["ipv4-unicast".into()];
            p.import = vec!["10.244.0.0/16 le 32".into()];
            p.export = vec!["10.244.0.0/16 le 32".into()];
            cfg.bgp.peers.push(p);
            agents.push(Bramble::start(ns, &ndir, &cfg)?);
        }
        for (n, agent) in NODES.iter().zip(&agents) {
            agent.announce(n.block)?;
        }
        Ok(Lab {
            agents,
            bird,
            containers,
            nodes,
            tor,
        })
    }

    /// Waits until each node's kernel holds the other node's block, installed by Bramble
    /// (protocol 196).
    pub fn wait_converged(&self, timeout: Duration) -> Result<()> {
        for (i, (n, ns)) in NODES.iter().zip(&self.nodes).enumerate() {
            let other = &NODES[1 - i];
            wait_until(
                &format!("{} to install {}", n.name, other.block),
                timeout,
                Duration::from_millis(300),
                || {
                    let routes = ns.ip(&["-j", "route", "show", "proto", "196"])?;
                    check(routes.contains(other.block.trim_end_matches("/26")), || {
                        format!("{}: proto 196 routes {routes}", n.name)
                    })
                },
            )?;
        }
        Ok(())
    }

    /// Pings container `to` from container `from`; Ok(output) if every ping was answered.
    pub fn ping(&self, from: usize, to: usize) -> Result<String> {
        let dst = NODES[to].container_ip.to_string();
        let out = self.containers[from].exec("ping", ["-c", "3", "-i", "0.2", "-W", "2", &dst])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
