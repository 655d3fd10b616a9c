//! [`AdjRibOut`]: what one peer has been sent, and what it should be sent next.
//!
//! The speaker states the desired end result per prefix ([`AdjRibOut::set`] /
//! [`AdjRibOut::remove`]); changes are coalesced until the speaker flushes with
//! [`AdjRibOut::take_pending`], which groups announcements by attribute set so the encoder can
//! pack every prefix sharing one set into as few UPDATEs as fit (RFC 4271 §9.2: "a BGP
//! speaker ... SHOULD NOT advertise a given feasible BGP route ... if it is identical to ...
//! the route previously advertised" — a no-op set sends nothing).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::rib::attrs::RouteAttrs;
use crate::rib::peer::PeerId;
use crate::wire::{Family, Nlri, Prefix};
use foldhash::fast::RandomState as SeededState;

/// What to send a peer now: withdrawals per family, and announcements grouped by attribute
/// set (pointer identity of the `Arc`) and family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingUpdates {
    pub withdrawals: Vec<(Family, Vec<Nlri>)>,
    pub announcements: Vec<(Arc<RouteAttrs>, Family, Vec<Nlri>)>,
}

impl PendingUpdates {
    /// No withdrawal and no announcement.
    pub fn is_empty(&self) -> bool {
        self.withdrawals.is_empty() && self.announcements.is_empty()
    }

    /// Number of prefixes withdrawn plus announced.
    pub fn prefix_count(&self) -> usize {
        self.withdrawals.iter().map(|(_, v)| v.len()).sum::<usize>()
            + self
                .announcements
                .iter()
                .map(|(_, _, v)| v.len())
                .sum::<usize>()
    }
}

#[derive(Debug, Clone, Copy)]
struct FamilyState {
    family: Family,
    /// Prefixes of this family waiting in `pending`.
    pending: usize,
    /// The speaker has queued the whole initial table for this family.
    initial_queued: bool,
    /// End-of-RIB has been handed out (RFC 4724 §2).
    eor_sent: bool,
}

/// The Adj-RIB-Out of one peer.
#[derive(Debug, Default)]
pub struct AdjRibOut {
    advertised: HashMap<Nlri, Arc<RouteAttrs>, SeededState>,
    /// Desired state not yet sent: `Some` = announce, `None` = withdraw.
    pending: HashMap<Nlri, Option<Arc<RouteAttrs>>, SeededState>,
    /// Flush order of `pending` (first change first). May hold stale entries, which are
    /// skipped; cleared whenever `pending` empties.
    order: VecDeque<Nlri>,
    families: Vec<FamilyState>,
    /// Add-path send (RFC 7911): per prefix, the source of each path the peer should have
    /// and the local path identifier it goes out with. Empty without add-path.
    multi: HashMap<Prefix, Vec<(PathKey, u32)>, SeededState>,
}

/// Names a path in Loc-RIB for add-path send: the peer it came from and the path identifier
/// that peer gave it (0 without add-path).
pub type PathKey = (PeerId, u32);

impl AdjRibOut {
    pub fn new() -> Self {
        Self::default()
    }

    fn family_mut(&mut self, family: Family) -> &mut FamilyState {
        let i = match self.families.iter().position(|f| f.family == family) {
            Some(i) => i,
            None => {
                self.families.push(FamilyState {
                    family,
                    pending: 0,
                    initial_queued: false,
                    eor_sent: false,
                });
                self.families.len() - 1
            }
        };
        &mut self.families[i]
    }

    fn pending_added(&mut self, nlri: Nlri) {
        self.order.push_back(nlri);
        self.family_mut(Family::of(&nlri.prefix)).pending += 1;
    }

    fn pending_removed(&mut self, nlri: &Nlri) {
        let f = self.family_mut(Family::of(&nlri.prefix));
        f.pending = f.pending.saturating_sub(1);
        if self.pending.is_empty() {
            self.order.clear();
        }
    }

    /// The peer should now have `attrs` for `nlri`. Setting the attribute set already
    /// advertised (same `Arc`) cancels any pending change and sends nothing.
    pub fn set(&mut self, nlri: Nlri, attrs: Arc<RouteAttrs>) {
        let unchanged = self
            .advertised
            .get(&nlri)
            .is_some_and(|a| Arc::ptr_eq(a, &attrs));
        if unchanged {
            if self.pending.remove(&nlri).is_some() {
                self.pending_removed(&nlri);
            }
            return;
        }
        match self.pending.entry(nlri) {
            Entry::Occupied(mut o) => {
                o.insert(Some(attrs));
            }
            Entry::Vacant(v) => {
                v.insert(Some(attrs));
                self.pending_added(nlri);
            }
        }
    }

    /// The peer should no longer have `nlri`. Cancels a pending announcement of a prefix
    /// that was never advertised.
    pub fn remove(&mut self, nlri: Nlri) {
        if self.advertised.contains_key(&nlri) {
            match self.pending.entry(nlri) {
                Entry::Occupied(mut o) => {
                    o.insert(None);
                }
                Entry::Vacant(v) => {
                    v.insert(None);
                    self.pending_added(nlri);
                }
            }
        } else if self.pending.remove(&nlri).is_some() {
            self.pending_removed(&nlri);
        }
    }

    /// Add-path send (RFC 7911 §3): the peer should now have exactly `paths` for `prefix`,
    /// each named by its source. A source already advertised keeps its local path
    /// identifier (identifiers are stable while a path stays); a new one gets the lowest
    /// identifier (from 1) not kept for the prefix; identifiers no longer used are withdrawn.
    /// Duplicate sources after the first are ignored.
    pub fn set_paths(&mut self, prefix: Prefix, paths: &[(PathKey, Arc<RouteAttrs>)]) {
        let old = self.multi.remove(&prefix).unwrap_or_default();
        if old.is_empty() && paths.is_empty() {
            return;
        }
        let mut kept: Vec<(PathKey, u32)> = Vec::with_capacity(paths.len());
        let mut fresh: Vec<usize> = Vec::new();
        for (i, (src, _)) in paths.iter().enumerate() {
            if paths.iter().take(i).any(|(s, _)| s == src) {
                continue;
            }
            match old.iter().find(|(s, _)| s == src) {
                Some(&(_, id)) => kept.push((*src, id)),
                None => fresh.push(i),
            }
        }
        let mut next = 1u32;
        for i in fresh {
            while kept.iter().any(|&(_, id)| id == next) {
                next = next.saturating_add(1);
            }
            if let Some((src, _)) = paths.get(i) {
                kept.push((*src, next));
            }
        }
        for &(_, id) in &old {
            if !kept.iter().any(|&(_, k)| k == id) {
                self.remove(Nlri {
                    prefix,
                    path_id: id,
                });
            }
        }
        for &(src, id) in &kept {
            if let Some((_, attrs)) = paths.iter().find(|(s, _)| *s == src) {
                self.set(
                    Nlri {
                        prefix,
                        path_id: id,
                    },
                    Arc::clone(attrs),
                );
            }
        }
        if !kept.is_empty() {
            kept.shrink_to_fit();
            self.multi.insert(prefix, kept);
        }
    }

    /// The local path identifiers `prefix` goes out with under add-path, by source.
    pub fn path_ids(&self, prefix: &Prefix) -> &[(PathKey, u32)] {
        self.multi.get(prefix).map_or(&[], Vec::as_slice)
    }

    /// Everything pending, grouped; afterwards it counts as advertised.
    pub fn take_pending(&mut self) -> PendingUpdates {
        self.take_pending_limited(usize::MAX)
    }

    /// At most `max_prefixes` pending changes, oldest first, grouped like
    /// [`AdjRibOut::take_pending`]; the rest stay pending.
    pub fn take_pending_limited(&mut self, max_prefixes: usize) -> PendingUpdates {
        let mut out = PendingUpdates::default();
        // (attribute set address, family) -> index in out.announcements
        let mut groups: HashMap<(usize, Family), usize, SeededState> = HashMap::default();
        let mut taken = 0;
        self.advertised
            .reserve(self.pending.len().min(max_prefixes));
        while taken < max_prefixes {
            let Some(nlri) = self.order.pop_front() else {
                break;
            };
            let Some(state) = self.pending.remove(&nlri) else {
                continue; // stale: cancelled after it was queued
            };
            taken += 1;
            let family = Family::of(&nlri.prefix);
            let f = self.family_mut(family);
            f.pending = f.pending.saturating_sub(1);
            match state {
                None => {
                    self.advertised.remove(&nlri);
                    match out.withdrawals.iter_mut().find(|(f, _)| *f == family) {
                        Some((_, v)) => v.push(nlri),
                        None => out.withdrawals.push((family, vec![nlri])),
                    }
                }
                Some(attrs) => {
                    let key = (Arc::as_ptr(&attrs) as usize, family);
                    match groups.get(&key).and_then(|&i| out.announcements.get_mut(i)) {
                        Some((_, _, v)) => v.push(nlri),
                        None => {
                            groups.insert(key, out.announcements.len());
                            out.announcements
                                .push((Arc::clone(&attrs), family, vec![nlri]));
                        }
                    }
                    self.advertised.insert(nlri, attrs);
                }
            }
        }
        if self.pending.is_empty() {
            self.order.clear();
        }
        out
    }

    /// Number of changes waiting to be sent.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Changes are waiting to be sent.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    // ----- End-of-RIB (RFC 4724 §2) -----

    /// The speaker has queued (with [`AdjRibOut::set`]) the whole initial table for
    /// `family`; End-of-RIB follows once it has all been taken.
    pub fn mark_initial_queued(&mut self, family: Family) {
        self.family_mut(family).initial_queued = true;
    }

    /// Families whose initial table has been completely taken and whose End-of-RIB has not
    /// been sent yet; they count as sent from now on.
    pub fn take_end_of_rib(&mut self) -> Vec<Family> {
        let mut due = Vec::new();
        for f in &mut self.families {
            if f.initial_queued && f.pending == 0 && !f.eor_sent {
                f.eor_sent = true;
                due.push(f.family);
            }
        }
        due
    }

    /// End-of-RIB for `family` has been handed out since the last reset.
    pub fn end_of_rib_sent(&self, family: Family) -> bool {
        self.families
            .iter()
            .any(|f| f.family == family && f.eor_sent)
    }

    // ----- queries -----

    /// What the peer was last sent for `nlri`.
    pub fn advertised(&self, nlri: &Nlri) -> Option<&Arc<RouteAttrs>> {
        self.advertised.get(nlri)
    }

    /// Number of prefixes the peer currently has from us.
    pub fn advertised_len(&self) -> usize {
        self.advertised.len()
    }

    /// Every advertised prefix with its attributes (`routes --table adj-out`).
    pub fn iter(&self) -> impl Iterator<Item = (&Nlri, &Arc<RouteAttrs>)> + '_ {
        self.advertised.iter()
    }

    /// Forget everything (session down).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PathAttrs;
    use std::net::{IpAddr, Ipv4Addr};

    fn attrs(nh: u8) -> Arc<RouteAttrs> {
        Arc::new(RouteAttrs::new(
            PathAttrs::default(),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, nh)),
        ))
    }

    fn ids(out: &PendingUpdates) -> (Vec<u32>, Vec<u32>) {
        let mut w: Vec<u32> = out
            .withdrawals
            .iter()
            .flat_map(|(_, v)| v.iter().map(|n| n.path_id))
            .collect();
        let mut a: Vec<u32> = out
            .announcements
            .iter()
            .flat_map(|(_, _, v)| v.iter().map(|n| n.path_id))
            .collect();
        w.sort_unstable();
        a.sort_unstable();
        (w, a)
    }

    #[test]
    fn set_paths_gives_stable_ids_and_withdraws_by_id() {
        let p: Prefix = "10.0.0.0/24".parse().unwrap();
        let (a, b, c) = (attrs(1), attrs(2), attrs(3));
        let mut out = AdjRibOut::new();
        out.set_paths(p, &[((1, 0), a.clone()), ((2, 0), b.clone())]);
        assert_eq!(ids(&out.take_pending()), (vec![], vec![1, 2]));
        assert_eq!(out.path_ids(&p), [((1, 0), 1), ((2, 0), 2)]);

        // The first path goes, a third comes: it takes the free id 1; (2, 0) keeps 2.
        out.set_paths(p, &[((2, 0), b.clone()), ((3, 7), c.clone())]);
        let pending = out.take_pending();
        assert_eq!(ids(&pending), (vec![], vec![1]), "id 1 re-announced");
        assert!(Arc::ptr_eq(&pending.announcements[0].0, &c));
        assert_eq!(out.path_ids(&p), [((2, 0), 2), ((3, 7), 1)]);

        // Unchanged: nothing to send.
        out.set_paths(p, &[((3, 7), c.clone()), ((2, 0), b.clone())]);
        assert!(out.take_pending().is_empty());

        // One left: the other is withdrawn by its path id.
        out.set_paths(p, &[((3, 7), c.clone())]);
        assert_eq!(ids(&out.take_pending()), (vec![2], vec![]));
        assert_eq!(out.advertised_len(), 1);

        // None left.
        out.set_paths(p, &[]);
        assert_eq!(ids(&out.take_pending()), (vec![1], vec![]));
        assert_eq!(out.advertised_len(), 0);
        assert!(out.path_ids(&p).is_empty());
    }

    #[test]
    fn set_paths_ignores_duplicate_sources() {
        let p: Prefix = "2001:db8::/64".parse().unwrap();
        let mut out = AdjRibOut::new();
        out.set_paths(p, &[((1, 5), attrs(1)), ((1, 5), attrs(2))]);
        let pending = out.take_pending();
        assert_eq!(ids(&pending), (vec![], vec![1]));
        assert_eq!(pending.announcements[0].1, Family::IPV6_UNICAST);
    }
}
