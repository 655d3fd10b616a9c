//! A block: a run of `2^(bits - block_size)` addresses owned (affine) to at most one node.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::addr::{self, Family};

/// One allocation inside a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocRecord {
    /// The handle that holds the address.
    pub handle: String,
    /// Allocation sequence number: the block's sequence number at allocation time. A release
    /// carrying another number is stale (the address was freed and handed out again).
    pub seq: u64,
    /// The node that allocated it (for a borrowed address, not the block's owner).
    pub node: String,
    /// Free-form attributes: container id, namespace, interface…
    pub attrs: BTreeMap<String, String>,
}

/// The stored block (`blocks/<cidr>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The block's network.
    pub cidr: IpNetwork,
    /// The node the block is affine to; `None` = nobody (an orphan after a node was removed).
    pub affinity: Option<String>,
    /// Block sequence number, incremented by every allocation.
    pub seq: u64,
    /// One bit per ordinal (address index in the block), set = allocated.
    bitmap: Vec<u64>,
    /// The record of every allocated ordinal.
    pub allocations: BTreeMap<u32, AllocRecord>,
    /// When the block was first seen empty by the empty-block sweep (seconds since the epoch).
    pub empty_since: Option<u64>,
}

/// Why an allocation or release inside a block was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BlockRefusal {
    NotAllocated,
    Stale { current: u64 },
}

impl Block {
    /// An empty block affine to `affinity`.
    pub fn new(cidr: IpNetwork, affinity: Option<String>) -> Self {
        let size = addr::net_size(cidr);
        let words = usize::try_from(size.div_ceil(64)).unwrap_or(0);
        Self {
            cidr,
            affinity,
            seq: 0,
            bitmap: vec![0; words],
            allocations: BTreeMap::new(),
            empty_since: None,
        }
    }

    /// Number of addresses (at most 4096: blocks are /20 or longer, /116 or longer).
    pub fn size(&self) -> u32 {
        u32::try_from(addr::net_size(self.cidr)).unwrap_or(u32::MAX)
    }

    /// Allocated addresses.
    pub fn used(&self) -> u32 {
        self.bitmap.iter().map(|w| w.count_ones()).sum()
    }

    /// `true` when nothing is allocated.
    pub fn is_empty(&self) -> bool {
        self.bitmap.iter().all(|w| *w == 0)
    }

    /// The ordinal of `ip`, if it is in this block.
    pub fn ordinal(&self, ip: IpAddr) -> Option<u32> {
        if Family::of_ip(ip) != Family::of_net(self.cidr) || !self.cidr.contains(ip) {
            return None;
        }
        u32::try_from(addr::to_u128(ip) - addr::to_u128(self.cidr.network())).ok()
    }

    /// The address at `ordinal` (callers keep `ordinal < size`).
    pub fn ip(&self, ordinal: u32) -> IpAddr {
        let base = addr::to_u128(self.cidr.network());
        addr::from_u128(base + u128::from(ordinal), Family::of_net(self.cidr))
    }

    /// Whether `ordinal` is allocated.
    pub fn is_allocated(&self, ordinal: u32) -> bool {
        let (w, b) = (ordinal / 64, ordinal % 64);
        self.bitmap
            .get(w as usize)
            .is_some_and(|word| word & (1 << b) != 0)
    }

    /// The first free ordinal whose address `usable` accepts.
    pub(crate) fn first_free(&self, usable: impl Fn(IpAddr) -> bool) -> Option<u32> {
        (0..self.size()).find(|&o| !self.is_allocated(o) && usable(self.ip(o)))
    }

    /// Marks `ordinal` allocated with a fresh sequence number; returns that number.
    /// The caller has checked the ordinal is free and in range.
    pub(crate) fn assign(
        &mut self,
        ordinal: u32,
        handle: &str,
        node: &str,
        attrs: BTreeMap<String, String>,
    ) -> u64 {
        self.seq += 1;
        let seq = self.seq;
        if let Some(word) = self.bitmap.get_mut((ordinal / 64) as usize) {
            *word |= 1 << (ordinal % 64);
        }
        self.allocations.insert(
            ordinal,
            AllocRecord {
                handle: handle.to_string(),
                seq,
                node: node.to_string(),
                attrs,
            },
        );
        self.empty_since = None;
        seq
    }

    /// Frees `ordinal`. With `seq`, only if the allocation carries that sequence number.
    pub(crate) fn release(
        &mut self,
        ordinal: u32,
        seq: Option<u64>,
    ) -> Result<AllocRecord, BlockRefusal> {
        let current = self
            .allocations
            .get(&ordinal)
            .ok_or(BlockRefusal::NotAllocated)?
            .seq;
        if seq.is_some_and(|s| s != current) {
            return Err(BlockRefusal::Stale { current });
        }
        if let Some(word) = self.bitmap.get_mut((ordinal / 64) as usize) {
            *word &= !(1 << (ordinal % 64));
        }
        self.allocations
            .remove(&ordinal)
            .ok_or(BlockRefusal::NotAllocated)
    }

    /// The bitmap and the allocation records describe the same set of ordinals.
    pub fn is_consistent(&self) -> bool {
        let words_ok =
            self.bitmap.len() == usize::try_from(u128::from(self.size()).div_ceil(64)).unwrap_or(0);
        words_ok
            && self.used() as usize == self.allocations.len()
            && self
                .allocations
                .keys()
                .all(|&o| o < self.size() && self.is_allocated(o))
    }

    /// Rebuilds the bitmap from the allocation records (dropping records out of range).
    pub(crate) fn rebuild_bitmap(&mut self) {
        let size = self.size();
        self.allocations.retain(|&o, _| o < size);
        let mut fresh = Block::new(self.cidr, None).bitmap;
        for &o in self.allocations.keys() {
            if let Some(word) = fresh.get_mut((o / 64) as usize) {
                *word |= 1 << (o % 64);
            }
        }
        self.bitmap = fresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_release_and_sequence() {
        let mut b = Block::new("10.0.0.64/26".parse().unwrap(), Some("n1".into()));
        assert_eq!((b.size(), b.used()), (64, 0));
        let skip: IpAddr = "10.0.0.64".parse().unwrap();
        let o = b.first_free(|ip| ip != skip).unwrap();
        assert_eq!(o, 1);
        let s1 = b.assign(o, "h1", "n1", BTreeMap::new());
        assert!(b.is_allocated(1) && b.is_consistent());
        assert_eq!(b.ordinal("10.0.0.65".parse().unwrap()), Some(1));
        assert_eq!(b.ordinal("10.0.0.128".parse().unwrap()), None);
        assert_eq!(
            b.release(1, Some(s1 + 1)),
            Err(BlockRefusal::Stale { current: s1 })
        );
        assert_eq!(b.release(1, Some(s1)).unwrap().handle, "h1");
        assert_eq!(b.release(1, None), Err(BlockRefusal::NotAllocated));
        let s2 = b.assign(1, "h2", "n1", BTreeMap::new());
        assert!(s2 > s1);
        // A release carrying the first allocation's number must not free the second.
        assert!(b.release(1, Some(s1)).is_err());
        assert!(b.is_consistent());
        b.allocations.remove(&1);
        assert!(!b.is_consistent());
        b.rebuild_bitmap();
        assert!(b.is_consistent() && b.is_empty());
    }

    #[test]
    fn ipv6_block_and_json() {
        let mut b = Block::new("fd00::/122".parse().unwrap(), None);
        b.assign(63, "h", "n", BTreeMap::from([("k".into(), "v".into())]));
        assert_eq!(b.ip(63), "fd00::3f".parse::<IpAddr>().unwrap());
        let json = serde_json::to_vec(&b).unwrap();
        let back: Block = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, b);
    }
}
