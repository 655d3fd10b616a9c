//! Interned route attributes: every distinct attribute set (with its next hop) exists once.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use crate::wire::PathAttrs;

/// The attributes of a path plus the next hop it travels with (the IPv4 NEXT_HOP attribute or
/// the MP_REACH_NLRI next hop, RFC 4760 §3). Shared as `Arc<RouteAttrs>` via [`AttrInterner`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    pub attrs: PathAttrs,
    pub next_hop: IpAddr,
    /// IPv6 link-local next hop (RFC 2545 §3), if the peer sent one.
    pub link_local: Option<Ipv6Addr>,
}

impl RouteAttrs {
    /// Attributes with a next hop and no link-local address.
    pub fn new(attrs: PathAttrs, next_hop: IpAddr) -> Self {
        Self {
            attrs,
            next_hop,
            link_local: None,
        }
    }
}

/// Hands out one shared `Arc<RouteAttrs>` per distinct attribute set.
///
/// Entries that nobody else references are purged: [`AttrInterner::release`] drops one at once
/// when the caller gives up what may be the last outside reference, and [`AttrInterner::sweep`]
/// (also run automatically whenever the set has doubled since the last sweep) drops all
/// entries whose only reference is the interner's.
#[derive(Debug)]
pub struct AttrInterner {
    set: HashSet<Arc<RouteAttrs>>,
    /// Size after the last sweep; an automatic sweep runs when the set doubles past it.
    swept_len: usize,
}

/// Below this size the automatic sweep never runs.
const MIN_SWEEP_LEN: usize = 1024;

impl Default for AttrInterner {
    fn default() -> Self {
        Self::new()
    }
}

impl AttrInterner {
    pub fn new() -> Self {
        Self {
            set: HashSet::new(),
            swept_len: 0,
        }
    }

    /// The shared copy of `attrs`, created if this set is new.
    pub fn intern(&mut self, attrs: RouteAttrs) -> Arc<RouteAttrs> {
        if let Some(a) = self.set.get(&attrs) {
            return Arc::clone(a);
        }
        if self.set.len() >= MIN_SWEEP_LEN.max(self.swept_len * 2) {
            self.sweep();
        }
        let a = Arc::new(attrs);
        self.set.insert(Arc::clone(&a));
        a
    }

    /// Give up `attrs`; when it was the last reference outside the interner, the entry is
    /// purged now rather than at the next sweep.
    pub fn release(&mut self, attrs: Arc<RouteAttrs>) {
        // Ours plus the caller's: nobody else holds it. Only pointer-identical entries are
        // removed, so a foreign Arc with equal contents never evicts the interned one.
        if Arc::strong_count(&attrs) == 2 {
            if let Some(ours) = self.set.get(&*attrs) {
                if Arc::ptr_eq(ours, &attrs) {
                    self.set.remove(&*attrs);
                }
            }
        }
    }

    /// Drop every entry that only the interner still references; returns how many.
    pub fn sweep(&mut self) -> usize {
        let before = self.set.len();
        self.set.retain(|a| Arc::strong_count(a) > 1);
        self.swept_len = self.set.len();
        before - self.set.len()
    }

    /// Number of distinct attribute sets held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn attrs(med: u32) -> RouteAttrs {
        RouteAttrs::new(
            PathAttrs {
                med: Some(med),
                ..Default::default()
            },
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        )
    }

    #[test]
    fn equal_sets_share_one_arc() {
        let mut i = AttrInterner::new();
        let a = i.intern(attrs(1));
        let b = i.intern(attrs(1));
        let c = i.intern(attrs(2));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn next_hop_is_part_of_identity() {
        let mut i = AttrInterner::new();
        let a = i.intern(attrs(1));
        let mut other = attrs(1);
        other.next_hop = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        assert!(!Arc::ptr_eq(&a, &i.intern(other)));
    }

    #[test]
    fn release_purges_last_reference_only() {
        let mut i = AttrInterner::new();
        let a = i.intern(attrs(1));
        let b = Arc::clone(&a);
        i.release(a);
        assert_eq!(i.len(), 1, "b still holds it");
        i.release(b);
        assert!(i.is_empty());
    }

    #[test]
    fn release_of_foreign_equal_arc_keeps_interned_one() {
        let mut i = AttrInterner::new();
        let a = i.intern(attrs(1));
        let foreign = Arc::new(attrs(1));
        let _second = Arc::clone(&foreign);
        i.release(foreign);
        assert_eq!(i.len(), 1);
        drop(a);
    }

    #[test]
    fn sweep_drops_unreferenced() {
        let mut i = AttrInterner::new();
        let keep = i.intern(attrs(1));
        drop(i.intern(attrs(2)));
        assert_eq!(i.sweep(), 1);
        assert_eq!(i.len(), 1);
        assert!(Arc::ptr_eq(&keep, &i.intern(attrs(1))));
    }

    #[test]
    fn automatic_sweep_bounds_garbage() {
        let mut i = AttrInterner::new();
        for med in 0..10 * MIN_SWEEP_LEN as u32 {
            drop(i.intern(attrs(med)));
        }
        assert!(i.len() <= MIN_SWEEP_LEN + 1, "{}", i.len());
    }
}
