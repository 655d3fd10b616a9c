//! The devices under test, configured equivalently: every session passive (the harness
//! connects), hold time 240 s, no prefix limits; feeders imported whole and sent nothing,
//! the monitor sent everything and imported nothing; as a route reflector every client is
//! imported from and exported to. The FIB is programmed only when asked.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::bird::{Bird, BirdConfig};
use crate::bramble::{Bramble, BrambleConfig, BramblePeer, FibSection};
use crate::gobgp::{Gobgp, GobgpConfig, GobgpNeighbor};
use crate::Netns;

use super::session::HOLD_TIME;
use super::BenchError;

/// The DUT's AS (also the route-reflector clients' AS).
pub const DUT_AS: u32 = 65000;
/// The monitor's AS.
pub const MONITOR_AS: u32 = 65001;

/// Which daemon is under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DutKind {
    /// `bramble agent`.
    Bramble,
    /// BIRD 2.
    Bird,
    /// `gobgpd`.
    Gobgp,
}

impl DutKind {
    /// The name used on the command line (`--dut bramble,bird,gobgp`).
    pub fn name(self) -> &'static str {
        match self {
            DutKind::Bramble => "bramble",
            DutKind::Bird => "bird",
            DutKind::Gobgp => "gobgp",
        }
    }

    /// The name in reports.
    pub fn label(self) -> &'static str {
        match self {
            DutKind::Bramble => "Bramble",
            DutKind::Bird => "BIRD",
            DutKind::Gobgp => "GoBGP",
        }
    }

    /// Parse a command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bramble" => Some(DutKind::Bramble),
            "bird" => Some(DutKind::Bird),
            "gobgp" | "gobgpd" => Some(DutKind::Gobgp),
            _ => None,
        }
    }

    /// Whether this DUT can program the kernel FIB (GoBGP has no FIB of its own).
    pub fn has_fib(self) -> bool {
        !matches!(self, DutKind::Gobgp)
    }
}

/// Who the DUT talks to.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The DUT's address (and router id).
    pub dut: Ipv4Addr,
    /// The monitor's address, if there is a monitor (eBGP, [`MONITOR_AS`]).
    pub monitor: Option<Ipv4Addr>,
    /// Feeder addresses and ASes (eBGP), or route-reflector clients (iBGP, [`DUT_AS`]).
    pub feeders: Vec<(Ipv4Addr, u32)>,
    /// Feeders are iBGP route-reflector clients.
    pub reflector: bool,
    /// Program the kernel FIB.
    pub fib: bool,
}

/// A running DUT; stopped on drop (its namespace's drop kills it too).
#[derive(Debug)]
pub enum Running {
    /// Bramble.
    Bramble(Bramble),
    /// BIRD.
    Bird(Bird),
    /// GoBGP.
    Gobgp(Gobgp),
}

impl Running {
    /// Write the config for `layout` into `dir` and start `kind` in `ns`.
    pub fn start(
        kind: DutKind,
        ns: &Netns,
        dir: &Path,
        layout: &Layout,
    ) -> Result<Self, BenchError> {
        Ok(match kind {
            DutKind::Bramble => {
                Running::Bramble(Bramble::start(ns, dir, &bramble_config(dir, layout))?)
            }
            DutKind::Bird => Running::Bird(Bird::start(ns, dir, &bird_config(layout))?),
            DutKind::Gobgp => Running::Gobgp(Gobgp::start(ns, dir, &gobgp_config(layout))?),
        })
    }

    /// The daemon's process id.
    pub fn pid(&mut self) -> u32 {
        match self {
            Running::Bramble(b) => b.process().pid(),
            Running::Bird(b) => b.process().pid(),
            Running::Gobgp(g) => g.process().pid(),
        }
    }

    /// An error with the stderr tail if the daemon has exited.
    pub fn check_running(&mut self) -> Result<(), BenchError> {
        let p = match self {
            Running::Bramble(b) => b.process(),
            Running::Bird(b) => b.process(),
            Running::Gobgp(g) => g.process(),
        };
        Ok(p.check_running()?)
    }
}

const ALL_V4: &str = "0.0.0.0/0 le 32";

/// Bramble: passive peers; feeders import all and export nothing, the monitor the reverse
/// (eBGP is default-deny both ways, RFC 8212); reflector clients both.
pub fn bramble_config(dir: &Path, l: &Layout) -> BrambleConfig {
    let mut cfg = BrambleConfig::new("dut", l.dut, DUT_AS, dir);
    cfg.bgp.hold_time = HOLD_TIME;
    cfg.bgp.listen = Some("0.0.0.0:179".into());
    cfg.fib = Some(FibSection { enabled: l.fib });
    if l.reflector {
        cfg.bgp.cluster_id = Some(l.dut);
    }
    let peer = |addr: Ipv4Addr, asn: u32, import: bool, export: bool| {
        let mut p = BramblePeer::new(IpAddr::V4(addr), asn);
        p.passive = true;
        p.hold_time = Some(HOLD_TIME);
        p.families = vec!["ipv4-unicast".into()];
        p.import = if import {
            vec![ALL_V4.into()]
        } else {
            Vec::new()
        };
        p.export = if export {
            vec![ALL_V4.into()]
        } else {
            Vec::new()
        };
        p
    };
    for &(addr, asn) in &l.feeders {
        let mut p = peer(addr, asn, true, l.reflector);
        p.rr_client = l.reflector;
        cfg.bgp.peers.push(p);
    }
    if let Some(m) = l.monitor {
        cfg.bgp.peers.push(peer(m, MONITOR_AS, false, true));
    }
    cfg
}

/// BIRD: one passive `protocol bgp` per peer from a template; with the FIB on, a kernel
/// protocol exporting everything into table main.
pub fn bird_config(l: &Layout) -> BirdConfig {
    let mut cfg = BirdConfig::new(l.dut);
    let mut o = String::new();
    if l.fib {
        o.push_str("protocol kernel { ipv4 { import none; export all; }; scan time 60; }\n");
    }
    let _ = writeln!(
        o,
        "template bgp bench {{\n  local {} as {DUT_AS};\n  passive on;\n  hold time {HOLD_TIME};\n}}",
        l.dut
    );
    let feeder_channel = if l.reflector {
        // iBGP is multihop with recursive next hops by default; ours share the link.
        "  direct;\n  rr client;\n  rr cluster id CLUSTER;\n  ipv4 { import all; export all; gateway direct; };\n"
            .replace("CLUSTER", &l.dut.to_string())
    } else {
        "  ipv4 { import all; export none; };\n".to_string()
    };
    for (i, &(addr, asn)) in l.feeders.iter().enumerate() {
        let _ = writeln!(
            o,
            "protocol bgp f{i} from bench {{\n  neighbor {addr} as {asn};\n{feeder_channel}}}"
        );
    }
    if let Some(m) = l.monitor {
        let _ = writeln!(
            o,
            "protocol bgp monitor from bench {{\n  neighbor {m} as {MONITOR_AS};\n  \
             ipv4 {{ import none; export all; }};\n}}"
        );
    }
    cfg.extra = o;
    cfg
}

/// GoBGP: passive neighbors; a global export policy rejects everything towards the feeders
/// (GoBGP has no per-neighbor policy outside route-server mode); reflector clients get
/// `route-reflector-client`. GoBGP has no FIB: `layout.fib` is ignored (reported as n/a).
pub fn gobgp_config(l: &Layout) -> GobgpConfig {
    let mut cfg = GobgpConfig::new(DUT_AS, l.dut);
    for &(addr, asn) in &l.feeders {
        let mut n = GobgpNeighbor::new(IpAddr::V4(addr), asn);
        n.passive = true;
        n.hold_time = HOLD_TIME;
        n.families = vec!["ipv4-unicast".into()];
        if l.reflector {
            n.extra = format!(
                "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    \
                 route-reflector-cluster-id = \"{}\"\n",
                l.dut
            );
        }
        cfg.neighbors.push(n);
    }
    if let Some(m) = l.monitor {
        let mut n = GobgpNeighbor::new(IpAddr::V4(m), MONITOR_AS);
        n.passive = true;
        n.hold_time = HOLD_TIME;
        n.families = vec!["ipv4-unicast".into()];
        cfg.neighbors.push(n);
    }
    if !l.reflector && !l.feeders.is_empty() {
        let list: Vec<String> = l
            .feeders
            .iter()
            .map(|(a, _)| format!("\"{a}/32\""))
            .collect();
        let policy = format!(
            "[global.apply-policy.config]\n  export-policy-list = [\"not-to-feeders\"]\n  \
             default-export-policy = \"accept-route\"\n  default-import-policy = \"accept-route\"\n\n\
             [[defined-sets.neighbor-sets]]\n  neighbor-set-name = \"feeders\"\n  \
             neighbor-info-list = [{}]\n\n\
             [[policy-definitions]]\n  name = \"not-to-feeders\"\n  \
             [[policy-definitions.statements]]\n    name = \"reject\"\n    \
             [policy-definitions.statements.conditions.match-neighbor-set]\n      \
             neighbor-set = \"feeders\"\n    \
             [policy-definitions.statements.actions]\n      route-disposition = \"reject-route\"\n",
            list.join(", ")
        );
        if let Some(last) = cfg.neighbors.last_mut() {
            last.extra.push('\n');
            last.extra.push_str(&policy);
        }
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(reflector: bool) -> Layout {
        Layout {
            dut: Ipv4Addr::new(10, 100, 0, 1),
            monitor: (!reflector).then_some(Ipv4Addr::new(10, 100, 0, 2)),
            feeders: vec![
                (Ipv4Addr::new(10, 100, 1, 1), 64700),
                (Ipv4Addr::new(10, 100, 1, 2), 64701),
            ],
            reflector,
            fib: true,
        }
    }

    #[test]
    fn bird_config_has_every_peer() {
        let t = bird_config(&layout(false)).render();
        assert!(t.contains("protocol kernel"));
        assert!(t.contains("protocol bgp f1 from bench"));
        assert!(t.contains("neighbor 10.100.0.2 as 65001"));
        let t = bird_config(&layout(true)).render();
        assert!(t.contains("rr client;") && t.contains("gateway direct"));
    }

    #[test]
    fn gobgp_config_is_valid_toml_with_policy() {
        let t = gobgp_config(&layout(false)).render();
        let v: toml::Value = toml::from_str(&t).unwrap();
        assert_eq!(v["neighbors"].as_array().unwrap().len(), 3);
        assert!(v["global"]["apply-policy"].is_table());
        let t = gobgp_config(&layout(true)).render();
        assert!(t.contains("route-reflector-client = true"));
    }

    #[test]
    fn bramble_config_filters() {
        let c = bramble_config(Path::new("/tmp/x"), &layout(false));
        let t = c.render().unwrap();
        assert!(t.contains("passive = true"));
        assert_eq!(c.bgp.peers.len(), 3);
        assert!(c.bgp.peers[0].export.is_empty() && c.bgp.peers[2].import.is_empty());
    }
}
