//! UPDATEs from peers into the RIB (RFC 4271 §9.1, RFC 7606 treat-as-withdraw), and the
//! per-peer maximum-prefix limit (RFC 4271 §6.7 / RFC 4486 §4).

use std::net::IpAddr;
use std::time::Duration;

use foldhash::{HashMap, HashSet};
use tokio::task::JoinHandle;

use crate::rib::{PeerId, RouteAttrs};
use crate::wire::{cease_subcode, code, Family, Nlri, Notification, Update};

use super::core::Speaker;
use super::policy_rules::{import_attrs, ImportReject};

impl Speaker {
    pub(crate) fn on_update(&mut self, idx: usize, update: Update) {
        let Some(slot) = self.peers.get(idx) else {
            return;
        };
        if slot.session.is_none() {
            return;
        }
        let id = slot.id;
        let ebgp = slot.ebgp;
        if let Some(family) = update.end_of_rib() {
            tracing::debug!(peer = %slot.address(), ?family, "End-of-RIB received");
            self.gr_end_of_rib(id, family);
            return;
        }
        if !update.discarded.is_empty() {
            tracing::warn!(peer = %slot.address(), discarded = ?update.discarded,
                "RFC 7606: malformed attributes discarded");
        }
        let Update {
            withdrawn,
            attrs,
            mp_reach,
            mp_unreach,
            nlri,
            treat_as_withdraw,
            ..
        } = update;
        for n in withdrawn
            .iter()
            .chain(mp_unreach.iter().flat_map(|u| u.withdrawn.iter()))
        {
            self.withdraw(id, *n);
        }
        if treat_as_withdraw {
            // RFC 7606 §2: every NLRI of the UPDATE is handled as withdrawn.
            tracing::warn!(peer = %self.peers[idx].address(),
                "RFC 7606: malformed UPDATE treated as withdraw");
            for n in nlri
                .iter()
                .chain(mp_reach.iter().flat_map(|r| r.nlri.iter()))
            {
                self.withdraw(id, *n);
            }
            return;
        }
        let (attrs, verdict) = import_attrs(
            attrs,
            self.cfg.asn,
            ebgp,
            self.cfg.router_id,
            self.cfg.cluster_id,
        );
        if !nlri.is_empty() {
            match attrs.next_hop {
                Some(nh) => {
                    let ra = RouteAttrs::new(attrs.clone(), IpAddr::V4(nh));
                    self.import(idx, id, ra, &nlri, verdict);
                }
                None => {
                    // The decoder flags a missing NEXT_HOP as treat-as-withdraw; be safe.
                    for n in &nlri {
                        self.withdraw(id, *n);
                    }
                }
            }
        }
        let family = mp_reach.as_ref().map_or(Family::IPV4_UNICAST, |r| r.family);
        if let Some(reach) = mp_reach {
            if reach.family == Family::IPV4_UNICAST || reach.family == Family::IPV6_UNICAST {
                let mut a = attrs;
                // The MP next hop replaces NEXT_HOP for these NLRI (RFC 4760 §3).
                a.next_hop = None;
                let ra = RouteAttrs {
                    attrs: a,
                    next_hop: reach.next_hop.global,
                    link_local: reach.next_hop.link_local,
                };
                self.import(idx, id, ra, &reach.nlri, verdict);
            }
        }
        self.check_max_prefixes(idx, family);
    }

    /// Warns once at 90 % of the peer's `max_prefixes`; past the limit sends Cease /
    /// Maximum Number of Prefixes Reached, drops the peer's routes and keeps the session
    /// down for `max_prefixes_restart` seconds before starting it again.
    fn check_max_prefixes(&mut self, idx: usize, family: Family) {
        let Some(slot) = self.peers.get(idx) else {
            return;
        };
        let Some(limit) = slot.settings.max_prefixes else {
            return;
        };
        let count = self.rib.counts(slot.id).map_or(0, |c| c.received);
        if count <= u64::from(limit) {
            if count * 10 >= u64::from(limit) * 9 && self.limits.warned.insert(slot.id) {
                tracing::warn!(peer = %slot.address(), count, limit,
                    "peer is at 90% of its max-prefix limit");
            }
            return;
        }
        let restart = slot.settings.max_prefixes_restart;
        tracing::warn!(peer = %slot.address(), count, limit, restart,
            "max-prefix limit exceeded: sending Cease, session down for the hold-down");
        let n = max_prefixes_notification(family, limit);
        let handle = slot.handle.clone();
        let id = slot.id;
        let delay = Duration::from_secs(u64::from(restart));
        let task = tokio::spawn(async move {
            handle.stop(n).await;
            tokio::time::sleep(delay).await;
            handle.start().await;
        });
        if let Some(old) = self.limits.restarts.insert(id, task) {
            old.abort();
        }
        if let Some(slot) = self.peers.get_mut(idx) {
            slot.info = format!("max-prefix limit {limit} exceeded; restarting in {restart}s");
        }
        // Routes go now: UPDATEs still queued behind this one are ignored (no session).
        self.session_down(idx);
    }

    fn import(
        &mut self,
        idx: usize,
        id: PeerId,
        ra: RouteAttrs,
        nlri: &[Nlri],
        verdict: Option<ImportReject>,
    ) {
        let attrs = self.rib.intern(ra);
        for n in nlri {
            self.graceful.refreshed(id, n);
            self.refresh_state.seen(id, n);
            // Loop verdict, then import filter / policy (speaker/reconfig.rs).
            self.import_path(idx, *n, &attrs, verdict);
        }
    }

    fn withdraw(&mut self, id: PeerId, n: Nlri) {
        self.graceful.refreshed(id, &n);
        self.refresh_state.seen(id, &n);
        self.soft_in.remove(id, &n);
        if self.rib.withdraw(id, n) {
            self.dirty.insert(n.prefix);
        }
    }

    /// RFC 2918 §4: re-send the whole Adj-RIB-Out of the family (done by the next flush).
    pub(crate) fn on_route_refresh(&mut self, idx: usize, family: Family) {
        if let Some(session) = self.peers.get_mut(idx).and_then(|s| s.session.as_mut()) {
            session.out.refresh(family);
        }
    }
}

/// Maximum-prefix state of every peer.
#[derive(Default)]
pub(crate) struct PrefixLimits {
    /// Peers warned at 90 % during their current session.
    warned: HashSet<PeerId>,
    /// Stop, hold-down and restart tasks.
    restarts: HashMap<PeerId, JoinHandle<()>>,
}

impl PrefixLimits {
    /// A new session: the 90 % warning may be given again.
    pub(crate) fn session_up(&mut self, id: PeerId) {
        self.warned.remove(&id);
    }

    /// The peer's session is being held down after exceeding its limit.
    pub(crate) fn holding_down(&self, id: PeerId) -> bool {
        self.restarts.get(&id).is_some_and(|t| !t.is_finished())
    }

    /// The peer was removed: its hold-down (and restart) is cancelled.
    pub(crate) fn forget(&mut self, id: PeerId) {
        self.warned.remove(&id);
        if let Some(t) = self.restarts.remove(&id) {
            t.abort();
        }
    }

    /// The speaker is stopping: no session may be restarted behind its back.
    pub(crate) fn abort_restarts(&mut self) {
        for (_, t) in self.restarts.drain() {
            t.abort();
        }
    }
}

/// Cease / Maximum Number of Prefixes Reached. RFC 4486 §4: the data is the AFI (2 octets),
/// the SAFI (1 octet) and the upper bound on the number of prefixes (4 octets).
pub(crate) fn max_prefixes_notification(family: Family, limit: u32) -> Notification {
    let mut data = Vec::with_capacity(7);
    data.extend_from_slice(&family.afi.to_be_bytes());
    data.push(family.safi);
    data.extend_from_slice(&limit.to_be_bytes());
    Notification::new(code::CEASE, cease_subcode::MAX_PREFIXES, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_prefixes_notification_carries_afi_safi_and_limit() {
        let n = max_prefixes_notification(Family::IPV6_UNICAST, 100_000);
        assert_eq!((n.code, n.subcode), (6, 1));
        assert_eq!(n.data, [0, 2, 1, 0x00, 0x01, 0x86, 0xa0]);
        assert_eq!(n.to_string(), "Cease / Maximum Number of Prefixes Reached");
        let n = max_prefixes_notification(Family::IPV4_UNICAST, 5);
        assert_eq!(n.data, [0, 1, 1, 0, 0, 0, 5]);
    }
}
