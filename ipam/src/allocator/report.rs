//! Read-only views: usage, owned blocks, borrowed addresses, a handle's addresses.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::Serialize;

use super::{Allocation, Allocator};
use crate::addr;
use crate::block::Block;
use crate::error::IpamError;
use crate::keys;
use crate::records::HandleRecord;

/// Usage of one block. `used + reserved + free == size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockUsage {
    /// The block.
    pub cidr: IpNetwork,
    /// The node it is affine to.
    pub owner: Option<String>,
    /// Addresses in the block.
    pub size: u32,
    /// Allocated addresses.
    pub used: u32,
    /// Reserved addresses that are not allocated.
    pub reserved: u32,
    /// Addresses that can still be handed out.
    pub free: u32,
}

/// Usage of one pool. `used + reserved + free == size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolUsage {
    /// The pool.
    pub pool: IpNetwork,
    /// Its block prefix length.
    pub block_size: u8,
    /// Whether it is disabled.
    pub disabled: bool,
    /// Addresses in the pool (saturates for absurdly large IPv6 pools).
    pub size: u128,
    /// Allocated addresses.
    pub used: u128,
    /// Reserved addresses that are not allocated.
    pub reserved: u128,
    /// Addresses that can still be handed out.
    pub free: u128,
    /// Blocks that exist, in CIDR order.
    pub blocks: Vec<BlockUsage>,
}

/// What one node holds, as [`Allocator::node_holdings`] reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeHoldings {
    /// Blocks affine to the node ([`Allocator::owned_blocks`]).
    pub owned_blocks: Vec<IpNetwork>,
    /// Its addresses in other nodes' blocks ([`Allocator::borrowed_addresses`]).
    pub borrowed: Vec<IpAddr>,
    /// Other nodes' addresses in its blocks ([`Allocator::lent_addresses`]).
    pub lent: Vec<IpAddr>,
    /// Every address it allocated ([`Allocator::node_addresses`]).
    pub addresses: Vec<IpAddr>,
}

impl Allocator {
    /// Usage of every configured pool (`bramble ipam show`).
    pub fn show(&self) -> Result<Vec<PoolUsage>, IpamError> {
        let blocks: Vec<Block> = self
            .list_rec::<Block>(keys::BLOCKS)?
            .into_iter()
            .map(|(_, b, _)| b)
            .collect();
        let mut out = Vec::new();
        for pool in &self.cfg.pools {
            let mut usage = PoolUsage {
                pool: pool.cidr,
                block_size: pool.block_size,
                disabled: pool.disabled,
                size: addr::net_size(pool.cidr),
                used: 0,
                reserved: 0,
                free: 0,
                blocks: Vec::new(),
            };
            let mut reserved_and_used: u128 = 0;
            for block in blocks
                .iter()
                .filter(|b| addr::net_contains(pool.cidr, b.cidr))
            {
                let used = block.used();
                let reserved_used = block
                    .allocations
                    .keys()
                    .filter(|&&o| self.is_reserved(block.ip(o)))
                    .count() as u32;
                let reserved_all = (0..block.size())
                    .filter(|&o| self.is_reserved(block.ip(o)))
                    .count() as u32;
                let reserved = reserved_all.saturating_sub(reserved_used);
                reserved_and_used += u128::from(reserved_used);
                usage.used += u128::from(used);
                usage.blocks.push(BlockUsage {
                    cidr: block.cidr,
                    owner: block.affinity.clone(),
                    size: block.size(),
                    used,
                    reserved,
                    free: block.size().saturating_sub(used + reserved),
                });
            }
            usage.reserved = self
                .reserved_in(pool.cidr)
                .saturating_sub(reserved_and_used);
            usage.free = usage.size.saturating_sub(usage.used + usage.reserved);
            out.push(usage);
        }
        Ok(out)
    }

    /// Number of distinct reserved addresses inside `net`.
    fn reserved_in(&self, net: IpNetwork) -> u128 {
        let (ns, ne) = addr::net_range(net);
        let mut ranges: Vec<(u128, u128)> = self
            .cfg
            .reservations
            .iter()
            .filter(|r| addr::nets_overlap(**r, net))
            .map(|r| {
                let (rs, re) = addr::net_range(*r);
                (rs.max(ns), re.min(ne))
            })
            .collect();
        ranges.sort_unstable();
        let mut total: u128 = 0;
        let mut covered_to: Option<u128> = None;
        for (s, e) in ranges {
            let s = match covered_to {
                Some(c) if c >= e => continue,
                Some(c) if c >= s => c + 1,
                _ => s,
            };
            total = total.saturating_add(e - s + 1);
            covered_to = Some(e);
        }
        total
    }

    /// Everything the advertiser needs about `node`, from one read of the blocks.
    pub fn node_holdings(&self, node: &str) -> Result<NodeHoldings, IpamError> {
        let mut out = NodeHoldings::default();
        for (_, block, _) in self.list_rec::<Block>(keys::BLOCKS)? {
            let own = block.affinity.as_deref() == Some(node);
            if own {
                out.owned_blocks.push(block.cidr);
            }
            for (&o, r) in &block.allocations {
                let ip = block.ip(o);
                match (own, r.node == node) {
                    (true, false) => out.lent.push(ip),
                    (false, true) => {
                        out.borrowed.push(ip);
                        out.addresses.push(ip);
                    }
                    (true, true) => out.addresses.push(ip),
                    (false, false) => {}
                }
            }
        }
        Ok(out)
    }

    /// Blocks affine to `node`, in CIDR order (the advertiser announces these as aggregates).
    pub fn owned_blocks(&self, node: &str) -> Result<Vec<IpNetwork>, IpamError> {
        Ok(self
            .list_rec::<Block>(keys::BLOCKS)?
            .into_iter()
            .filter(|(_, b, _)| b.affinity.as_deref() == Some(node))
            .map(|(_, b, _)| b.cidr)
            .collect())
    }

    /// Addresses allocated by `node` inside blocks affine to another node (or to none): the
    /// advertiser announces these as host routes.
    pub fn borrowed_addresses(&self, node: &str) -> Result<Vec<IpAddr>, IpamError> {
        let mut out = Vec::new();
        for (_, block, _) in self.list_rec::<Block>(keys::BLOCKS)? {
            if block.affinity.as_deref() == Some(node) {
                continue;
            }
            out.extend(
                block
                    .allocations
                    .iter()
                    .filter(|(_, r)| r.node == node)
                    .map(|(&o, _)| block.ip(o)),
            );
        }
        Ok(out)
    }

    /// Addresses held by other nodes inside blocks affine to `node` (they borrowed them): the
    /// advertiser keeps its blackhole for the block off these.
    pub fn lent_addresses(&self, node: &str) -> Result<Vec<IpAddr>, IpamError> {
        let mut out = Vec::new();
        for (_, block, _) in self.list_rec::<Block>(keys::BLOCKS)? {
            if block.affinity.as_deref() != Some(node) {
                continue;
            }
            out.extend(
                block
                    .allocations
                    .iter()
                    .filter(|(_, r)| r.node != node)
                    .map(|(&o, _)| block.ip(o)),
            );
        }
        Ok(out)
    }

    /// Every address allocated by `node`, in its own blocks and borrowed ones, in block
    /// order (the advertiser announces these as host routes in host-routes mode).
    pub fn node_addresses(&self, node: &str) -> Result<Vec<IpAddr>, IpamError> {
        let mut out = Vec::new();
        for (_, block, _) in self.list_rec::<Block>(keys::BLOCKS)? {
            out.extend(
                block
                    .allocations
                    .iter()
                    .filter(|(_, r)| r.node == node)
                    .map(|(&o, _)| block.ip(o)),
            );
        }
        Ok(out)
    }

    /// The live addresses `handle` holds (CNI CHECK), IPv4 first.
    pub fn handle_allocations(&self, handle: &str) -> Result<Vec<Allocation>, IpamError> {
        let Some((rec, _)) = self.get_rec::<HandleRecord>(&keys::handle(handle))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in rec.entries() {
            if let Some(a) = self.live_entry(handle, entry)? {
                out.push(a);
            }
        }
        Ok(out)
    }
}
