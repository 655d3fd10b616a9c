//! What changed between two configurations, for reload.

use std::net::IpAddr;

use crate::model::Config;

/// The difference between an old and a new [`Config`]. Peers are matched by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// In the new config only, in its order.
    pub peers_added: Vec<IpAddr>,
    /// In the old config only, in its order.
    pub peers_removed: Vec<IpAddr>,
    /// In both, with any setting changed (the session has to be reset to apply it).
    pub peers_changed: Vec<IpAddr>,
    /// Anything outside `[[bgp.peers]]` changed (node, api, global bgp, fib, ipam): these
    /// need a restart of the agent.
    pub restart_needed: bool,
}

impl ConfigDiff {
    /// True when the two configs are the same.
    pub fn is_empty(&self) -> bool {
        self.peers_added.is_empty()
            && self.peers_removed.is_empty()
            && self.peers_changed.is_empty()
            && !self.restart_needed
    }
}

impl Config {
    /// What changes going from `self` (running) to `new`.
    pub fn diff(&self, new: &Config) -> ConfigDiff {
        let old_peers = self.peers();
        let new_peers = new.peers();
        let find =
            |list: &[crate::Peer], addr: IpAddr| list.iter().find(|p| p.address == addr).cloned();
        let mut d = ConfigDiff::default();
        for p in new_peers {
            match find(old_peers, p.address) {
                None => d.peers_added.push(p.address),
                Some(old) if old != *p => d.peers_changed.push(p.address),
                Some(_) => {}
            }
        }
        d.peers_removed = old_peers
            .iter()
            .filter(|p| find(new_peers, p.address).is_none())
            .map(|p| p.address)
            .collect();
        let strip = |c: &Config| {
            let mut c = c.clone();
            c.bgp.peers.clear();
            c
        };
        d.restart_needed = strip(self) != strip(new);
        d
    }
}
