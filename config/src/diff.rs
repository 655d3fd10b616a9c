//! What changed between two configurations, for reload.

use std::net::IpAddr;

use crate::model::{Config, Peer};

/// The difference between an old and a new [`Config`]. Peers are matched by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// In the new config only, in its order.
    pub peers_added: Vec<IpAddr>,
    /// In the old config only, in its order.
    pub peers_removed: Vec<IpAddr>,
    /// In both, with a session setting changed (the session has to be reset to apply it).
    pub peers_changed: Vec<IpAddr>,
    /// In both, with only `import`/`export` (prefix lists or the policies they name)
    /// changed: applied without a session reset (soft reconfiguration). A peer is in either
    /// this list or `peers_changed`, never both.
    pub peers_policy_changed: Vec<IpAddr>,
    /// Anything outside `[[bgp.peers]]` and `[[policy]]` changed (node, api, global bgp,
    /// fib, ipam): these need a restart of the agent.
    pub restart_needed: bool,
    /// What needs the restart, one short phrase each (e.g. "node.router_id").
    pub restart_reasons: Vec<String>,
}

impl ConfigDiff {
    /// True when the two configs are the same.
    pub fn is_empty(&self) -> bool {
        self.peers_added.is_empty()
            && self.peers_removed.is_empty()
            && self.peers_changed.is_empty()
            && self.peers_policy_changed.is_empty()
            && !self.restart_needed
    }
}

/// The peer with its filters cleared (to compare everything else).
fn without_policy(p: &Peer) -> Peer {
    let mut p = p.clone();
    p.import = Default::default();
    p.export = Default::default();
    p
}

impl Config {
    /// What changes going from `self` (running) to `new`.
    pub fn diff(&self, new: &Config) -> ConfigDiff {
        let old_peers = self.peers();
        let new_peers = new.peers();
        let find =
            |list: &'_ [Peer], addr: IpAddr| list.iter().find(|p| p.address == addr).cloned();
        let mut d = ConfigDiff::default();
        for p in new_peers {
            match find(old_peers, p.address) {
                None => d.peers_added.push(p.address),
                Some(old) if old == *p => {}
                Some(old) if without_policy(&old) == without_policy(p) => {
                    d.peers_policy_changed.push(p.address)
                }
                Some(_) => d.peers_changed.push(p.address),
            }
        }
        d.peers_removed = old_peers
            .iter()
            .filter(|p| find(new_peers, p.address).is_none())
            .map(|p| p.address)
            .collect();
        let (a, b) = (self, new);
        let mut reasons = Vec::new();
        let mut check = |changed: bool, what: &str| {
            if changed {
                reasons.push(what.to_string());
            }
        };
        check(a.node.router_id != b.node.router_id, "node.router_id");
        check(a.node.asn != b.node.asn, "node.asn");
        check(a.node.name != b.node.name, "node.name");
        check(a.api != b.api, "[api]");
        check(a.bgp.listen != b.bgp.listen, "bgp.listen");
        check(a.bgp.hold_time != b.bgp.hold_time, "bgp.hold_time");
        check(a.bgp.advertise != b.bgp.advertise, "bgp.advertise");
        check(
            a.bgp.graceful_restart != b.bgp.graceful_restart
                || a.bgp.restart_time != b.bgp.restart_time,
            "bgp.graceful_restart / restart_time",
        );
        check(a.bgp.cluster_id != b.bgp.cluster_id, "bgp.cluster_id");
        check(a.fib != b.fib, "[fib]");
        check(a.ipam != b.ipam, "[ipam]");
        d.restart_needed = !reasons.is_empty();
        d.restart_reasons = reasons;
        d
    }
}
