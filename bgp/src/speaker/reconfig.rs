//! Import policy with soft reconfiguration inbound, and policy changes at run time.
//!
//! The Adj-RIB-In keeps what each peer sent before import policy: rejected paths are kept by
//! the RIB with their (shared) note; accepted paths are kept in the Loc-RIB table with the
//! attributes after policy, and only when policy changed them is the pre-policy attribute
//! set also kept here, in [`SoftIn`] (one map entry per such path; none at all when the
//! policy changes nothing). A new import policy is then applied to every path again without
//! asking the peer (no ROUTE-REFRESH, no session reset); a new export policy re-runs export
//! into the Adj-RIB-Out, which sends only the differences.

use std::sync::Arc;

use foldhash::HashMap;

use crate::policy::{Filter, Verdict};
use crate::rib::{Path, PeerId, RouteAttrs};
use crate::wire::{Nlri, Prefix};

use super::api::{PeerSettings, PolicyChange};
use super::core::Speaker;
use super::policy_rules::{import_attrs, policy_changes, ImportReject};

/// Pre-policy attribute sets of accepted paths whose attributes the import policy changed.
#[derive(Default)]
pub(crate) struct SoftIn {
    peers: HashMap<PeerId, HashMap<Nlri, Arc<RouteAttrs>>>,
}

impl SoftIn {
    fn set(&mut self, peer: PeerId, nlri: Nlri, pre: Arc<RouteAttrs>) {
        self.peers.entry(peer).or_default().insert(nlri, pre);
    }

    /// The path is gone or stored as received.
    pub(crate) fn remove(&mut self, peer: PeerId, nlri: &Nlri) {
        if let Some(m) = self.peers.get_mut(&peer) {
            m.remove(nlri);
        }
    }

    /// The peer's paths are gone.
    pub(crate) fn forget(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// The attributes `peer` sent for `nlri`, when import policy changed them.
    pub(crate) fn get(&self, peer: PeerId, nlri: &Nlri) -> Option<&Arc<RouteAttrs>> {
        self.peers.get(&peer).and_then(|m| m.get(nlri))
    }
}

impl Speaker {
    /// Imports one path `pre` (attributes as received, normalised by `import_attrs`) from
    /// peer `idx`: the loop `verdict`, then the peer's import filter. Returns whether the
    /// prefix's best path or ECMP set changed (and marks it dirty).
    pub(crate) fn import_path(
        &mut self,
        idx: usize,
        nlri: Nlri,
        pre: &Arc<RouteAttrs>,
        verdict: Option<ImportReject>,
    ) -> bool {
        let Some(slot) = self.peers.get(idx) else {
            return false;
        };
        let id = slot.id;
        let outcome = match verdict {
            Some(r) => Err(r.note()),
            None => match slot
                .settings
                .import
                .evaluate(&nlri.prefix, &pre.attrs, slot.ebgp)
            {
                Verdict::Reject(note) => Err(note),
                Verdict::Accept(None) => Ok(None),
                // A rule that changes nothing: stored as received, no copy.
                Verdict::Accept(Some(d)) if !policy_changes(&slot.settings.import, d) => Ok(None),
                Verdict::Accept(Some(d)) => {
                    let mut post = RouteAttrs::clone(pre);
                    let changed =
                        slot.settings
                            .import
                            .apply(d, &mut post.attrs, self.cfg.asn, false);
                    Ok(changed.then_some(post))
                }
            },
        };
        let res = match outcome {
            Err(note) => {
                self.soft_in.remove(id, &nlri);
                self.rib.insert_rejected(id, nlri, pre.clone(), note)
            }
            Ok(None) => {
                self.soft_in.remove(id, &nlri);
                self.rib.insert(id, nlri, pre.clone())
            }
            Ok(Some(post)) => {
                let post = self.rib.intern(post);
                self.soft_in.set(id, nlri, pre.clone());
                self.rib.insert(id, nlri, post)
            }
        };
        match res {
            Ok(true) => {
                self.dirty.insert(nlri.prefix);
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::error!(prefix = %nlri.prefix, "rib: {e}");
                false
            }
        }
    }

    /// Applies new import/export filters of an existing peer, without touching its session.
    /// Only `import` and `export` of `settings` are used.
    pub(crate) fn update_peer(&mut self, settings: PeerSettings) -> Result<PolicyChange, String> {
        let idx = self
            .peers
            .iter()
            .position(|p| p.address() == settings.address)
            .ok_or_else(|| format!("no such peer {}", settings.address))?;
        self.set_policy(idx, settings.import, settings.export)
    }

    /// Replaces peer `idx`'s filters; re-evaluates its Adj-RIB-In when import changed and
    /// its Adj-RIB-Out when export changed.
    pub(crate) fn set_policy(
        &mut self,
        idx: usize,
        import: Filter,
        export: Filter,
    ) -> Result<PolicyChange, String> {
        let slot = self.peers.get_mut(idx).ok_or("no such peer")?;
        let mut change = PolicyChange::default();
        if slot.settings.import != import {
            slot.settings.import = import;
            change.import_changed = true;
        }
        if slot.settings.export != export {
            slot.settings.export = export;
            change.export_changed = true;
        }
        let peer = slot.address();
        if change.import_changed {
            change.reevaluated = self.reimport(idx);
        }
        if change.export_changed {
            change.readvertised = self.reexport(idx);
        }
        tracing::info!(%peer, import = change.import_changed, export = change.export_changed,
            reevaluated = change.reevaluated, "policy changed without a session reset");
        Ok(change)
    }

    /// Runs import again over everything peer `idx` sent (soft reconfiguration inbound).
    /// Returns how many paths were evaluated.
    fn reimport(&mut self, idx: usize) -> usize {
        let Some(slot) = self.peers.get(idx) else {
            return 0;
        };
        let id = slot.id;
        let ebgp = slot.ebgp;
        let paths: Vec<(Nlri, Arc<RouteAttrs>)> = self
            .rib
            .adj_in(id)
            .map(|r| {
                let pre = self.soft_in.get(id, &r.nlri).unwrap_or(r.attrs).clone();
                (r.nlri, pre)
            })
            .collect();
        let n = paths.len();
        for (nlri, pre) in paths {
            // The loop checks again too (idempotent on attributes already normalised).
            let (_, verdict) = import_attrs(
                pre.attrs.clone(),
                self.cfg.asn,
                ebgp,
                self.cfg.router_id,
                self.cfg.cluster_id,
            );
            self.import_path(idx, nlri, &pre, verdict);
        }
        n
    }

    /// Runs export again for every best path towards peer `idx`; the Adj-RIB-Out queues only
    /// what differs from what the peer has. Returns how many prefixes were looked at.
    fn reexport(&mut self, idx: usize) -> usize {
        let Some(session) = self.peers.get_mut(idx).and_then(|s| s.session.as_mut()) else {
            return 0;
        };
        session.cache.clear();
        // RFC 7911: a peer that receives several paths is given all of them again.
        let add_path = !session.negotiated.encode.add_path_tx.is_empty();
        let best: Vec<(Prefix, Vec<Path>)> = self
            .rib
            .entries()
            .filter_map(|e| {
                if add_path {
                    (!e.paths().is_empty()).then(|| (e.prefix, e.paths().to_vec()))
                } else {
                    e.best().map(|p| (e.prefix, vec![p.clone()]))
                }
            })
            .collect();
        for (prefix, paths) in &best {
            self.export_one(idx, *prefix, paths);
        }
        // Anything still advertised without a best path any more is withdrawn.
        let gone: Vec<Prefix> = self
            .peers
            .get(idx)
            .and_then(|s| s.session.as_ref())
            .map(|s| {
                s.out
                    .adj_out()
                    .iter()
                    .map(|(n, _)| n.prefix)
                    .filter(|p| self.rib.best(p).is_none())
                    .collect()
            })
            .unwrap_or_default();
        for prefix in gone {
            self.export_one(idx, prefix, &[]);
        }
        best.len()
    }

    /// "policy P rule R" for an accepted path of peer `idx` (what `routes --table adj-in`
    /// shows), or None without an import policy.
    pub(crate) fn accepted_note(
        &self,
        idx: usize,
        nlri: &Nlri,
        stored: &RouteAttrs,
    ) -> Option<String> {
        let slot = self.peers.get(idx)?;
        let pre = self.soft_in.get(slot.id, nlri).map_or(stored, |a| a);
        match slot
            .settings
            .import
            .evaluate(&nlri.prefix, &pre.attrs, slot.ebgp)
        {
            Verdict::Accept(Some(d)) => {
                let what = slot.settings.import.describe(d)?;
                Some(if self.soft_in.get(slot.id, nlri).is_some() {
                    format!("accepted by {what} (attributes changed: see --table loc)")
                } else {
                    format!("accepted by {what}")
                })
            }
            _ => None,
        }
    }

    /// The attributes peer `idx` sent for `nlri` when import policy changed them.
    pub(crate) fn pre_policy(&self, idx: usize, nlri: &Nlri) -> Option<&Arc<RouteAttrs>> {
        self.soft_in.get(self.peers.get(idx)?.id, nlri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_in_entry_stays_small() {
        // One entry per path whose attributes import policy changed: the key and a pointer
        // (plus the hash table's control byte and slack).
        let entry = std::mem::size_of::<(Nlri, Arc<RouteAttrs>)>();
        assert!(entry <= 40, "{entry} bytes");
        let mut s = SoftIn::default();
        let n = Nlri {
            prefix: "10.0.0.0/24".parse().unwrap(),
            path_id: 0,
        };
        let a = Arc::new(RouteAttrs::new(
            Default::default(),
            "192.0.2.1".parse().unwrap(),
        ));
        s.set(1, n, a.clone());
        assert!(s.get(1, &n).is_some_and(|x| Arc::ptr_eq(x, &a)));
        s.remove(1, &n);
        assert!(s.get(1, &n).is_none());
        s.set(1, n, a);
        s.forget(1);
        assert!(s.get(1, &n).is_none());
    }
}
