//! The prefix table behind Adj-RIB-In and Loc-RIB: one B-tree per address family, keyed by
//! prefix, holding every accepted path for that prefix from every peer (as BIRD's tables do).
//!
//! Layout, for the memory budget: an IPv4 key is 5 bytes (address + length), an IPv6 key 17;
//! the value is 16 bytes: a single path (the common case) inline, or a boxed vector for
//! prefixes with several paths. The paths are kept ordered: the ECMP set first, best path at
//! index 0. A B-tree rather than a hash map: its nodes are fuller than a hash table at
//! its load limit (a million /32s need a 2^21-bucket hash table, half empty), and
//! neighbouring prefixes, which UPDATEs carry together, share nodes that stay in cache.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::rib::attrs::RouteAttrs;
use crate::rib::decision::{self, Candidate, MultipathConfig};
use crate::rib::peer::{PeerId, PeerInfo};
use crate::wire::{Ipv4Network, Ipv6Network, Prefix};

/// One accepted path for a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub attrs: Arc<RouteAttrs>,
    pub peer: PeerId,
    /// RFC 7911 path identifier as received (0 without add-path).
    pub path_id: u32,
}

impl Path {
    /// Same peer, path id and attribute set (pointer identity).
    fn same(&self, other: &Path) -> bool {
        self.peer == other.peer
            && self.path_id == other.path_id
            && Arc::ptr_eq(&self.attrs, &other.attrs)
    }
}

/// The paths of one prefix.
#[derive(Debug)]
pub(crate) enum Paths {
    One(Path),
    Many(Box<Multi>),
}

#[derive(Debug)]
pub(crate) struct Multi {
    /// ECMP set first (best at 0), then the other paths in no particular order.
    paths: Vec<Path>,
    ecmp: usize,
}

impl Paths {
    pub(crate) fn as_slice(&self) -> &[Path] {
        match self {
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(m) => &m.paths,
        }
    }

    /// Size of the ECMP set (at least 1).
    pub(crate) fn ecmp_len(&self) -> usize {
        match self {
            Paths::One(_) => 1,
            Paths::Many(m) => m.ecmp,
        }
    }

    fn ecmp_snapshot(&self) -> Vec<Path> {
        self.as_slice()
            .get(..self.ecmp_len())
            .unwrap_or_default()
            .to_vec()
    }
}

/// A stand-in for a path whose peer is not registered (never expected; avoids a panic).
const UNKNOWN_PEER: PeerInfo = PeerInfo {
    id: PeerId::MAX,
    addr: IpAddr::V4(Ipv4Addr::BROADCAST),
    asn: 0,
    router_id: Ipv4Addr::BROADCAST,
    ibgp: true,
};

/// Looks up the decision data of a peer.
pub(crate) trait PeerLookup {
    fn info(&self, id: PeerId) -> Option<&PeerInfo>;
}

/// Re-run the decision process on `paths` and put them in order. Returns the size of the
/// ECMP set.
fn reselect(paths: &mut Vec<Path>, peers: &impl PeerLookup, cfg: &MultipathConfig) -> usize {
    let cands: Vec<Candidate<'_>> = paths
        .iter()
        .map(|p| Candidate {
            peer: peers.info(p.peer).unwrap_or(&UNKNOWN_PEER),
            attrs: &p.attrs,
            path_id: p.path_id,
        })
        .collect();
    let sel = decision::select(&cands, cfg);
    drop(cands);
    let mut old: Vec<Option<Path>> = paths.drain(..).map(Some).collect();
    for &i in &sel.ecmp {
        if let Some(p) = old.get_mut(i).and_then(Option::take) {
            paths.push(p);
        }
    }
    let ecmp = paths.len();
    paths.extend(old.into_iter().flatten());
    ecmp
}

/// What a table edit did.
pub(crate) struct Edit {
    /// The best path or ECMP set of the prefix changed.
    pub changed: bool,
    /// The path that was replaced or removed (or the new one, when it was a no-op), so the
    /// caller can count paths and release attributes.
    pub old: Option<Path>,
}

/// A per-family prefix table.
#[derive(Debug)]
pub(crate) struct Table<K> {
    pub(crate) map: BTreeMap<K, Paths>,
}

impl<K: Ord + Copy> Table<K> {
    pub(crate) fn new() -> Self {
        Self {
            map: BTreeMap::new(),
        }
    }

    /// Add or replace the path of (`path.peer`, `path.path_id`).
    pub(crate) fn insert(
        &mut self,
        key: K,
        path: Path,
        peers: &impl PeerLookup,
        cfg: &MultipathConfig,
    ) -> Edit {
        use std::collections::btree_map::Entry;
        let slot = match self.map.entry(key) {
            Entry::Vacant(v) => {
                v.insert(Paths::One(path));
                return Edit {
                    changed: true,
                    old: None,
                };
            }
            Entry::Occupied(o) => o.into_mut(),
        };
        if let Paths::One(p) = slot {
            if p.peer == path.peer && p.path_id == path.path_id {
                let changed = !Arc::ptr_eq(&p.attrs, &path.attrs);
                let old = std::mem::replace(p, path);
                return Edit {
                    changed,
                    old: Some(old),
                };
            }
            let first = p.clone();
            *slot = Paths::Many(Box::new(Multi {
                paths: vec![first],
                ecmp: 1,
            }));
        }
        let before = slot.ecmp_snapshot();
        let Paths::Many(m) = slot else {
            return Edit {
                changed: false,
                old: None,
            };
        };
        let old = match m
            .paths
            .iter_mut()
            .find(|p| p.peer == path.peer && p.path_id == path.path_id)
        {
            // The same attribute set again: nothing changes; hand the new copy back.
            Some(p) if Arc::ptr_eq(&p.attrs, &path.attrs) => {
                return Edit {
                    changed: false,
                    old: Some(path),
                }
            }
            Some(p) => Some(std::mem::replace(p, path)),
            None => {
                m.paths.push(path);
                None
            }
        };
        m.ecmp = reselect(&mut m.paths, peers, cfg);
        Edit {
            changed: !same_set(&before, slot),
            old,
        }
    }

    /// Remove the path of (`peer`, `path_id`).
    pub(crate) fn remove(
        &mut self,
        key: K,
        peer: PeerId,
        path_id: u32,
        peers: &impl PeerLookup,
        cfg: &MultipathConfig,
    ) -> Edit {
        use std::collections::btree_map::Entry;
        let Entry::Occupied(mut o) = self.map.entry(key) else {
            return Edit {
                changed: false,
                old: None,
            };
        };
        let matches = |p: &Path| p.peer == peer && p.path_id == path_id;
        match o.get_mut() {
            Paths::One(p) if matches(p) => {
                let Paths::One(old) = o.remove() else {
                    unreachable!("matched One above")
                };
                Edit {
                    changed: true,
                    old: Some(old),
                }
            }
            Paths::One(_) => Edit {
                changed: false,
                old: None,
            },
            slot @ Paths::Many(_) => {
                let before = slot.ecmp_snapshot();
                let mut removed = Vec::with_capacity(1);
                retain_paths(slot, |p| !matches(p), &mut removed, peers, cfg);
                Edit {
                    changed: !same_set(&before, slot),
                    old: removed.pop(),
                }
            }
        }
    }

    /// Remove every path of `peer`; `on_change(key)` for each prefix whose ECMP set changed
    /// (with `all`: for each prefix that lost a path). The removed attribute sets are left
    /// for the interner's sweep.
    pub(crate) fn remove_peer(
        &mut self,
        peer: PeerId,
        peers: &impl PeerLookup,
        cfg: &MultipathConfig,
        all: bool,
        mut on_change: impl FnMut(K),
    ) {
        let mut removed = Vec::new();
        self.map.retain(|key, slot| match slot {
            Paths::One(p) if p.peer == peer => {
                on_change(*key);
                false
            }
            Paths::One(_) => true,
            Paths::Many(m) => {
                if m.paths.iter().all(|p| p.peer != peer) {
                    return true;
                }
                let before = slot.ecmp_snapshot();
                retain_paths(slot, |p| p.peer != peer, &mut removed, peers, cfg);
                removed.clear();
                let keep = !slot.as_slice().is_empty();
                if !keep || all || !same_set(&before, slot) {
                    on_change(*key);
                }
                keep
            }
        });
    }

    /// Re-run the decision on every multi-path prefix (after a configuration change).
    pub(crate) fn reselect_all(
        &mut self,
        peers: &impl PeerLookup,
        cfg: &MultipathConfig,
        mut on_change: impl FnMut(K),
    ) {
        for (key, slot) in self.map.iter_mut() {
            if let Paths::Many(m) = slot {
                let before = m.paths.get(..m.ecmp).unwrap_or_default().to_vec();
                m.ecmp = reselect(&mut m.paths, peers, cfg);
                if !same_set(&before, slot) {
                    on_change(*key);
                }
            }
        }
    }
}

/// Keep the paths of a multi-path slot for which `keep` holds, moving the others to
/// `removed`, and reselect. Turns the slot into `One` when a single path is left; a slot left
/// with no path must be removed by the caller (only `remove_peer` can empty one).
fn retain_paths(
    slot: &mut Paths,
    mut keep: impl FnMut(&Path) -> bool,
    removed: &mut Vec<Path>,
    peers: &impl PeerLookup,
    cfg: &MultipathConfig,
) {
    let Paths::Many(m) = slot else { return };
    let mut i = 0;
    while i < m.paths.len() {
        if keep(&m.paths[i]) {
            i += 1;
        } else {
            removed.push(m.paths.swap_remove(i));
        }
    }
    if m.paths.len() == 1 {
        if let Some(last) = m.paths.pop() {
            *slot = Paths::One(last);
        }
    } else {
        m.ecmp = reselect(&mut m.paths, peers, cfg);
    }
}

fn same_set(before: &[Path], after: &Paths) -> bool {
    let now = after.as_slice().get(..after.ecmp_len()).unwrap_or_default();
    before.len() == now.len() && before.iter().zip(now).all(|(a, b)| a.same(b))
}

/// An IPv4 table key: network address and length, 5 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct V4Key {
    addr: [u8; 4],
    len: u8,
}

impl Ord for V4Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for V4Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for V4Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.rank());
    }
}

impl V4Key {
    /// Address order, then length: one integer compare instead of five byte compares.
    fn rank(&self) -> u64 {
        u64::from(u32::from_be_bytes(self.addr)) << 8 | u64::from(self.len)
    }

    pub(crate) fn new(n: Ipv4Network) -> Self {
        Self {
            addr: n.network().octets(),
            len: n.prefix(),
        }
    }

    pub(crate) fn prefix(self) -> Option<Prefix> {
        Ipv4Network::new(Ipv4Addr::from(self.addr), self.len)
            .ok()
            .map(Prefix::V4)
    }
}

/// An IPv6 table key: network address and length, 17 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct V6Key {
    addr: [u8; 16],
    len: u8,
}

impl Ord for V6Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for V6Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for V6Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let a = u128::from_be_bytes(self.addr);
        h.write_u64(a as u64);
        h.write_u64((a >> 64) as u64);
        h.write_u8(self.len);
    }
}

impl V6Key {
    /// Address order, then length.
    fn rank(&self) -> (u128, u8) {
        (u128::from_be_bytes(self.addr), self.len)
    }

    pub(crate) fn new(n: Ipv6Network) -> Self {
        Self {
            addr: n.network().octets(),
            len: n.prefix(),
        }
    }

    pub(crate) fn prefix(self) -> Option<Prefix> {
        Ipv6Network::new(Ipv6Addr::from(self.addr), self.len)
            .ok()
            .map(Prefix::V6)
    }
}
