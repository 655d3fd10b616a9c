//! [`AdjRibOut`]: what one peer has been sent, and what it should be sent next.
//!
//! The speaker states the desired end result per prefix ([`AdjRibOut::set`] /
//! [`AdjRibOut::remove`]); changes are coalesced until the speaker flushes with
//! [`AdjRibOut::take_pending`], which groups announcements by attribute set so the encoder can
//! pack every prefix sharing one set into as few UPDATEs as fit (RFC 4271 §9.2: "a BGP
//! speaker ... SHOULD NOT advertise a given feasible BGP route ... if it is identical to ...
//! the route previously advertised" — a no-op set sends nothing).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::rib::attrs::RouteAttrs;
use crate::rib::peer::PeerId;
use crate::wire::{Family, Ipv4Network, Nlri, Prefix};
use foldhash::fast::RandomState as SeededState;
use std::net::Ipv4Addr;

mod direct;
pub use direct::Direct;

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
///
/// Two stores of the same shape: IPv4 with a small path identifier (every path identifier
/// we assign is small) under an 8-byte packed key, a third of an [`Nlri`] key, so a full
/// IPv4 table costs half the memory and hashes faster; everything else under its [`Nlri`].
#[derive(Debug, Default)]
pub struct AdjRibOut {
    v4: Store<u64>,
    other: Store<Nlri>,
    families: Vec<FamilyState>,
    /// Add-path send (RFC 7911): per prefix, the source of each path the peer should have
    /// and the local path identifier it goes out with. Empty without add-path.
    multi: HashMap<Prefix, Vec<(PathKey, u32)>, SeededState>,
}

/// Names a path in Loc-RIB for add-path send: the peer it came from and the path identifier
/// that peer gave it (0 without add-path).
pub type PathKey = (PeerId, u32);

/// A store key: converts back to the [`Nlri`] it was made from.
trait OutKey: Copy + Ord + std::hash::Hash {
    fn nlri(self) -> Nlri;
}

/// Path identifiers below this pack into a `u64` key with an IPv4 prefix.
const PACKED_PATH_IDS: u32 = 1 << 24;

/// `nlri` as a packed IPv4 key: address (as stored, host bits included) in the top 32 bits,
/// prefix length in the next 8, path identifier in the low 24.
fn pack(nlri: &Nlri) -> Option<u64> {
    match nlri.prefix {
        Prefix::V4(n) if nlri.path_id < PACKED_PATH_IDS => Some(
            (u64::from(u32::from(n.ip())) << 32)
                | (u64::from(n.prefix()) << 24)
                | u64::from(nlri.path_id),
        ),
        _ => None,
    }
}

impl OutKey for u64 {
    fn nlri(self) -> Nlri {
        let addr = Ipv4Addr::from((self >> 32) as u32);
        let len = ((self >> 24) & 0xff) as u8;
        // Only valid networks are packed; the fallback is never taken.
        let net = Ipv4Network::new(addr, len).unwrap_or_else(|_| Ipv4Network::from(addr));
        Nlri {
            prefix: Prefix::V4(net),
            path_id: (self & u64::from(PACKED_PATH_IDS - 1)) as u32,
        }
    }
}

impl OutKey for Nlri {
    fn nlri(self) -> Nlri {
        self
    }
}

/// What a store change did to the pending set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delta {
    Added,
    Removed,
    Same,
}

/// Advertised and pending state under one key type.
#[derive(Debug)]
struct Store<K> {
    /// A B-tree: fuller than a hash table at its load limit, and the flush inserts runs of
    /// neighbouring prefixes.
    advertised: BTreeMap<K, Arc<RouteAttrs>>,
    /// Desired state not yet sent: `Some` = announce, `None` = withdraw.
    pending: HashMap<K, Option<Arc<RouteAttrs>>, SeededState>,
    /// Flush order of `pending` (first change first). May hold stale entries, which are
    /// skipped; cleared whenever `pending` empties.
    order: VecDeque<K>,
    /// `advertised` is rebuilt once it holds this many entries (see [`Store::compact`]).
    compact_at: usize,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Self {
            advertised: BTreeMap::new(),
            pending: HashMap::default(),
            order: VecDeque::new(),
            compact_at: COMPACT_MIN,
        }
    }
}

/// Smallest table worth rebuilding.
const COMPACT_MIN: usize = 4096;

/// Pending sets larger than this are freed, not kept, once drained: a full table's initial
/// burst should not pin its peak memory for the life of the session, and with hundreds of
/// peers (route reflection) kept capacity adds up.
const KEEP_DRAINED: usize = 4096;

impl<K: OutKey> Store<K> {
    /// Whether the peer already has `attrs` for `key` is checked when the change is taken
    /// (see [`Store::take`]), not here: one B-tree walk per change instead of two.
    fn set(&mut self, key: K, attrs: Arc<RouteAttrs>) -> Delta {
        match self.pending.entry(key) {
            Entry::Occupied(mut o) => {
                o.insert(Some(attrs));
                Delta::Same
            }
            Entry::Vacant(v) => {
                v.insert(Some(attrs));
                self.order.push_back(key);
                Delta::Added
            }
        }
    }

    fn remove(&mut self, key: K) -> Delta {
        if self.advertised.contains_key(&key) {
            match self.pending.entry(key) {
                Entry::Occupied(mut o) => {
                    o.insert(None);
                    Delta::Same
                }
                Entry::Vacant(v) => {
                    v.insert(None);
                    self.order.push_back(key);
                    Delta::Added
                }
            }
        } else {
            self.cancel(&key)
        }
    }

    /// Drops a pending change of `key`.
    fn cancel(&mut self, key: &K) -> Delta {
        if self.pending.remove(key).is_none() {
            return Delta::Same;
        }
        self.drained();
        Delta::Removed
    }

    /// Forgets the flush order once nothing is pending (and frees big empty sets).
    fn drained(&mut self) {
        if self.pending.is_empty() {
            self.compact();
            if self.pending.capacity() > KEEP_DRAINED {
                self.pending = HashMap::default();
            }
            if self.order.capacity() > KEEP_DRAINED {
                self.order = VecDeque::new();
            } else {
                self.order.clear();
            }
        }
    }

    /// Rebuilds `advertised` with full nodes once it has grown by half since the last
    /// rebuild. Routes arrive in runs of neighbouring prefixes, and a B-tree filled that way
    /// keeps its nodes about half full; one built from sorted entries fills them, which
    /// takes a third off a full table's Adj-RIB-Out, the bulk of a reflector's memory. The
    /// rebuilds cost at most twice the table's final size in moved entries.
    fn compact(&mut self) {
        let len = self.advertised.len();
        if len < self.compact_at {
            return;
        }
        // In key order: `collect` bulk-builds the new tree without comparisons.
        self.advertised = std::mem::take(&mut self.advertised).into_iter().collect();
        self.compact_at = (len + len / 2).max(COMPACT_MIN);
    }

    /// Takes up to `max` pending changes, oldest first; afterwards they count as
    /// advertised. `f` gets each with its new state and whether it is to be sent: an
    /// announcement of the attribute set the peer already has is not (RFC 4271 §9.2).
    /// Returns how many were taken.
    fn take(
        &mut self,
        max: usize,
        mut f: impl FnMut(Nlri, Option<&Arc<RouteAttrs>>, bool),
    ) -> usize {
        let mut taken = 0;
        while taken < max {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            let Some(state) = self.pending.remove(&key) else {
                continue; // stale: cancelled after it was queued
            };
            taken += 1;
            match state {
                None => {
                    self.advertised.remove(&key);
                    f(key.nlri(), None, true);
                }
                Some(attrs) => {
                    let old = self.advertised.insert(key, Arc::clone(&attrs));
                    let send = !old.is_some_and(|o| Arc::ptr_eq(&o, &attrs));
                    f(key.nlri(), Some(&attrs), send);
                }
            }
        }
        self.drained();
        taken
    }
}

impl AdjRibOut {
    pub fn new() -> Self {
        Self::default()
    }

    fn family_mut(&mut self, family: Family) -> &mut FamilyState {
        family_state(&mut self.families, family)
    }

    fn count(&mut self, nlri: &Nlri, delta: Delta) {
        let f = self.family_mut(Family::of(&nlri.prefix));
        match delta {
            Delta::Added => f.pending += 1,
            Delta::Removed => f.pending = f.pending.saturating_sub(1),
            Delta::Same => {}
        }
    }

    /// The peer should now have `attrs` for `nlri`. Setting the attribute set already
    /// advertised (same `Arc`) sends nothing (a pending change is overridden, and the
    /// no-op is dropped when taken).
    pub fn set(&mut self, nlri: Nlri, attrs: Arc<RouteAttrs>) {
        let delta = match pack(&nlri) {
            Some(k) => self.v4.set(k, attrs),
            None => self.other.set(nlri, attrs),
        };
        self.count(&nlri, delta);
    }

    /// The peer should no longer have `nlri`. Cancels a pending announcement of a prefix
    /// that was never advertised.
    pub fn remove(&mut self, nlri: Nlri) {
        let delta = match pack(&nlri) {
            Some(k) => self.v4.remove(k),
            None => self.other.remove(nlri),
        };
        self.count(&nlri, delta);
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
    /// [`AdjRibOut::take_pending`]; the rest stay pending. IPv4 (without large path
    /// identifiers) is taken before the rest.
    pub fn take_pending_limited(&mut self, max_prefixes: usize) -> PendingUpdates {
        let mut grouper = Grouper::default();
        let families = &mut self.families;
        let mut collect = |nlri: Nlri, state: Option<&Arc<RouteAttrs>>, send: bool| {
            let family = Family::of(&nlri.prefix);
            let f = family_state(families, family);
            f.pending = f.pending.saturating_sub(1);
            if send {
                grouper.push(family, nlri, state);
            }
        };
        let taken = self.v4.take(max_prefixes, &mut collect);
        self.other.take(max_prefixes - taken, &mut collect);
        grouper.out
    }

    /// Number of changes waiting to be sent.
    pub fn pending_len(&self) -> usize {
        self.v4.pending.len() + self.other.pending.len()
    }

    /// Changes are waiting to be sent.
    pub fn has_pending(&self) -> bool {
        !self.v4.pending.is_empty() || !self.other.pending.is_empty()
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
        match pack(nlri) {
            Some(k) => self.v4.advertised.get(&k),
            None => self.other.advertised.get(nlri),
        }
    }

    /// Number of prefixes the peer currently has from us.
    pub fn advertised_len(&self) -> usize {
        self.v4.advertised.len() + self.other.advertised.len()
    }

    /// Every advertised prefix with its attributes (`routes --table adj-out`).
    pub fn iter(&self) -> impl Iterator<Item = (Nlri, &Arc<RouteAttrs>)> + '_ {
        self.v4
            .advertised
            .iter()
            .map(|(k, a)| (k.nlri(), a))
            .chain(self.other.advertised.iter().map(|(n, a)| (*n, a)))
    }

    /// Forget everything (session down).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// The family's state in `families`, added if missing.
fn family_state(families: &mut Vec<FamilyState>, family: Family) -> &mut FamilyState {
    let i = match families.iter().position(|f| f.family == family) {
        Some(i) => i,
        None => {
            families.push(FamilyState {
                family,
                pending: 0,
                initial_queued: false,
                eor_sent: false,
            });
            families.len() - 1
        }
    };
    &mut families[i]
}

/// Builds [`PendingUpdates`]: withdrawals by family, announcements by attribute set and
/// family.
#[derive(Debug, Default)]
struct Grouper {
    out: PendingUpdates,
    /// (attribute set address, family) -> index in `out.announcements`.
    groups: HashMap<(usize, Family), usize, SeededState>,
    /// The last group used: runs of prefixes sharing a set skip the lookup.
    last: Option<((usize, Family), usize)>,
}

impl Grouper {
    fn push(&mut self, family: Family, nlri: Nlri, state: Option<&Arc<RouteAttrs>>) {
        let Some(attrs) = state else {
            match self.out.withdrawals.iter_mut().find(|(f, _)| *f == family) {
                Some((_, v)) => v.push(nlri),
                None => self.out.withdrawals.push((family, vec![nlri])),
            }
            return;
        };
        let key = (Arc::as_ptr(attrs) as usize, family);
        let idx = match self.last {
            Some((k, i)) if k == key => Some(i),
            _ => self.groups.get(&key).copied(),
        };
        match idx.and_then(|i| self.out.announcements.get_mut(i).map(|g| (i, g))) {
            Some((i, (_, _, v))) => {
                v.push(nlri);
                self.last = Some((key, i));
            }
            None => {
                let i = self.out.announcements.len();
                self.groups.insert(key, i);
                self.out
                    .announcements
                    .push((Arc::clone(attrs), family, vec![nlri]));
                self.last = Some((key, i));
            }
        }
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

    /// Tables large enough to be rebuilt (see `Store::compact`) keep exactly what was sent,
    /// through growth, withdrawals and re-announcements across several rebuilds.
    #[test]
    fn rebuilt_tables_keep_what_was_sent() {
        let nlri = |i: u32| Nlri {
            prefix: Prefix::V4(Ipv4Network::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap()),
            path_id: 0,
        };
        let (a, b) = (attrs(1), attrs(2));
        let mut out = AdjRibOut::new();
        let mut want = BTreeMap::new();
        for round in 0..5u32 {
            for i in (round * 5000)..((round + 1) * 5000) {
                out.set(nlri(i), Arc::clone(&a));
                want.insert(nlri(i), Arc::clone(&a));
            }
            for i in (0..round * 5000).step_by(3) {
                out.remove(nlri(i));
                want.remove(&nlri(i));
            }
            for i in (1..round * 5000).step_by(7) {
                out.set(nlri(i), Arc::clone(&b));
                want.insert(nlri(i), Arc::clone(&b));
            }
            let sent = out.take_pending().prefix_count();
            assert!(sent > 0);
            assert!(!out.has_pending());
            let got: Vec<(Nlri, bool)> = out.iter().map(|(n, x)| (n, Arc::ptr_eq(x, &b))).collect();
            let expected: Vec<(Nlri, bool)> =
                want.iter().map(|(n, x)| (*n, Arc::ptr_eq(x, &b))).collect();
            assert_eq!(got, expected, "round {round}");
        }
        assert!(want.len() > 2 * COMPACT_MIN);
    }
}
