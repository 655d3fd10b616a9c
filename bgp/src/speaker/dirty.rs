//! [`DirtySet`]: the prefixes whose best path or ECMP set changed since the last
//! propagation, handed out in address order.

use crate::wire::{Ipv4Network, Prefix};
use std::net::Ipv4Addr;

/// Above this many entries (and twice the distinct count at the last compaction), the
/// lists are sorted and deduplicated in place, so a long pause in propagation (deferred
/// selection after a restart, RFC 4724 §4.1) cannot grow them without bound.
const COMPACT_AT: usize = 1 << 16;

/// Changed prefixes: pushed without hashing (IPv4 packed into a `u64`, address then
/// length), sorted and deduplicated when taken. Duplicates are allowed in between.
#[derive(Debug, Default)]
pub(crate) struct DirtySet {
    v4: Vec<u64>,
    other: Vec<Prefix>,
    /// Size after the last compaction.
    compacted: usize,
}

impl DirtySet {
    /// Marks `prefix` as changed.
    pub(crate) fn insert(&mut self, prefix: Prefix) {
        match prefix {
            Prefix::V4(n) => self
                .v4
                .push((u64::from(u32::from(n.network())) << 8) | u64::from(n.prefix())),
            Prefix::V6(_) => self.other.push(prefix),
        }
        let len = self.v4.len() + self.other.len();
        if len >= COMPACT_AT && len >= 2 * self.compacted {
            self.compact();
        }
    }

    fn compact(&mut self) {
        // The stable sort merges runs: each UPDATE's prefixes mostly arrive in order.
        self.v4.sort();
        self.v4.dedup();
        self.other.sort_unstable();
        self.other.dedup();
        self.compacted = self.v4.len() + self.other.len();
    }

    /// Whether nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.other.is_empty()
    }

    /// Every changed prefix once, in address order (IPv4 first); the set is left empty.
    /// Neighbouring prefixes share B-tree nodes in the RIB and Adj-RIBs-Out.
    pub(crate) fn take_sorted(&mut self) -> Vec<Prefix> {
        self.compact();
        self.compacted = 0;
        let mut out = Vec::with_capacity(self.v4.len() + self.other.len());
        out.extend(self.v4.drain(..).map(|k| {
            let addr = Ipv4Addr::from((k >> 8) as u32);
            // Only valid networks are packed; the fallback is never taken.
            let net = Ipv4Network::new(addr, (k & 0xff) as u8)
                .unwrap_or_else(|_| Ipv4Network::from(addr));
            Prefix::V4(net)
        }));
        out.append(&mut self.other);
        out
    }
}

impl Extend<Prefix> for DirtySet {
    fn extend<I: IntoIterator<Item = Prefix>>(&mut self, iter: I) {
        for p in iter {
            self.insert(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_each_prefix_once_in_order() {
        let mut d = DirtySet::default();
        for s in [
            "10.0.0.2/32",
            "2001:db8::/64",
            "10.0.0.0/8",
            "10.0.0.2/32",
            "9.9.9.0/24",
        ] {
            d.insert(s.parse().unwrap());
        }
        assert!(!d.is_empty());
        let got: Vec<String> = d.take_sorted().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            ["9.9.9.0/24", "10.0.0.0/8", "10.0.0.2/32", "2001:db8::/64"]
        );
        assert!(d.is_empty());
        assert!(d.take_sorted().is_empty());
    }

    #[test]
    fn compacts_duplicates_while_growing() {
        let mut d = DirtySet::default();
        for _ in 0..3 {
            for i in 0..COMPACT_AT as u32 {
                d.insert(Prefix::V4(Ipv4Network::from(Ipv4Addr::from(i % 1000))));
            }
        }
        assert!(d.v4.len() < 2 * COMPACT_AT);
        assert_eq!(d.take_sorted().len(), 1000);
    }
}
