//! Many allocations in one store transaction: the fast path.
//!
//! A node's callers come in bursts (a runtime starting pods), and on etcd every write costs a
//! quorum round trip and an fsync, so committing them one by one queues each behind the
//! others. [`Allocator::allocate_many`] places every automatic request it can in this node's
//! cached blocks and commits them all — each touched block compared on its revision, each new
//! handle record compared as absent — in one transaction, without reading the store first.
//! Whatever it cannot do that way (a specific address, no cached block with room, a handle
//! that already exists, a race lost to another writer) goes down the reading path one by one,
//! exactly as [`Allocator::allocate`] always did.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use super::allocate::request_family;
use super::{write_rec, Allocation, Allocator, Request};
use crate::addr::{self, Family};
use crate::block::Block;
use crate::error::IpamError;
use crate::keys;
use crate::records::{HandleAddr, HandleRecord};
use crate::store::{Revision, StoreError, Write};

/// Most requests one transaction carries: each writes its handle record, and etcd refuses
/// transactions of more than `--max-txn-ops` (default 128) operations.
pub const MAX_BATCH: usize = 64;

/// A request placed in a cached block.
struct Placed {
    index: usize,
    family: Family,
    block: String,
    ip: IpAddr,
    seq: u64,
}

type Slot = Option<Result<Allocation, IpamError>>;

/// Copies of the cached blocks a batch assigns in, by CIDR text, with the revisions read.
type Touched = BTreeMap<String, (Block, Revision)>;

impl Allocator {
    /// Allocates for every request of `reqs`, as [`Allocator::allocate`] would for each, and
    /// returns the results in request order. Requests that can be placed in this node's known
    /// blocks are committed together, up to [`MAX_BATCH`] per store transaction; the others
    /// (and all of them after a lost race) are allocated one by one. Returns once every
    /// successful allocation is durable.
    pub fn allocate_many(&self, reqs: &[Request]) -> Vec<Result<Allocation, IpamError>> {
        let mut out: Vec<Slot> = reqs.iter().map(|_| None).collect();
        // The fast path takes automatic requests, each handle once (a repeated handle gets
        // its address from the reading path, which finds the first one's record).
        let mut seen = HashSet::new();
        let fast: Vec<bool> = reqs
            .iter()
            .map(|r| r.ip.is_none() && !r.handle.is_empty() && seen.insert(r.handle.as_str()))
            .collect();
        loop {
            let pending: Vec<usize> = (0..reqs.len())
                .filter(|&i| fast.get(i) == Some(&true) && out.get(i).is_some_and(Option::is_none))
                .collect();
            for chunk in pending.chunks(MAX_BATCH) {
                self.fast_chunk(reqs, chunk, &mut out);
            }
            // One request the fast path could not take (its blocks are full, it lost a race,
            // it names an address) goes the reading way — which claims a block or refreshes
            // the cache — and the fast path gets another go at the rest.
            let Some((req, slot)) = reqs.iter().zip(out.iter_mut()).find(|(_, s)| s.is_none())
            else {
                break;
            };
            *slot = Some(self.allocate_slow(req));
        }
        out.into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| {
                    Err(IpamError::Store(StoreError::Backend(
                        "allocation skipped".into(),
                    )))
                })
            })
            .collect()
    }

    /// Commits what it can of the requests `chunk` (indices into `reqs`) in one transaction
    /// from the cached blocks and fills those slots of `out`; leaves the others empty.
    fn fast_chunk(&self, reqs: &[Request], chunk: &[usize], out: &mut [Slot]) {
        let Some((placed, touched)) = self.place(reqs, chunk) else {
            return;
        };
        if placed.is_empty() {
            return;
        }
        let writes = match self.batch_writes(reqs, &placed, &touched) {
            Ok(w) => w,
            Err(e) => return fail_all(&placed, out, &e),
        };
        // No read precedes this write: make sure it is not sent into a partition, where it
        // could land after these requests were failed.
        if let Err(e) = self.store.reachable() {
            return fail_all(&placed, out, &IpamError::Store(e));
        }
        let rev = match self.transact(&writes).and_then(|rev| {
            self.store.flush()?;
            Ok(rev)
        }) {
            Ok(rev) => rev,
            Err(e) if e.is_conflict() => {
                // Something changed under the cache (another node borrowed, a retried
                // handle): these requests take the reading path.
                tracing::debug!(node = %self.node, error = %e, "batch lost a race; allocating one by one");
                return;
            }
            // Unavailable or ambiguous (a timeout may have committed): the requests fail as a
            // single allocation would; a retry finds its handle if the write did land.
            Err(e) => return fail_all(&placed, out, &e),
        };
        for (block, _) in touched.values() {
            self.remember_block(block, rev);
        }
        for p in &placed {
            let (Some(req), Some((block, _))) = (reqs.get(p.index), touched.get(&p.block)) else {
                continue;
            };
            let alloc = self.allocation(block, p.ip, &req.handle, p.seq, &self.node);
            tracing::info!(
                node = %self.node, handle = %alloc.handle, ip = %alloc.ip, block = %alloc.block,
                seq = alloc.seq, batch = placed.len(), "allocated"
            );
            if let Some(slot) = out.get_mut(p.index) {
                *slot = Some(Ok(alloc));
            }
        }
    }

    /// Picks an address for each automatic request in copies of the cached blocks. `None`
    /// when the cache does not hold all of this node's blocks yet.
    fn place(&self, reqs: &[Request], chunk: &[usize]) -> Option<(Vec<Placed>, Touched)> {
        let own = self.own_cache();
        if !own.complete {
            return None;
        }
        let usable = |ip: IpAddr| !self.is_reserved(ip);
        let mut touched = Touched::new();
        let mut placed = Vec::new();
        for &index in chunk {
            let Some(req) = reqs.get(index) else {
                continue;
            };
            let Ok(family) = request_family(req) else {
                continue;
            };
            let Ok(pools) = self.candidate_pools(family, req) else {
                continue;
            };
            for (key, (cached, rev)) in &own.blocks {
                if !pools
                    .iter()
                    .any(|p| addr::net_contains(p.cidr, cached.cidr))
                {
                    continue;
                }
                let current = touched.get(key).map_or(cached, |(b, _)| b);
                let Some(ordinal) = current.first_free(usable) else {
                    continue;
                };
                let (block, _) = touched
                    .entry(key.clone())
                    .or_insert_with(|| (cached.clone(), *rev));
                let seq = block.assign(ordinal, &req.handle, &self.node, req.attrs.clone());
                placed.push(Placed {
                    index,
                    family,
                    block: key.clone(),
                    ip: block.ip(ordinal),
                    seq,
                });
                break;
            }
        }
        Some((placed, touched))
    }

    /// The transaction: each touched block over its cached revision, each new handle record
    /// over "absent".
    fn batch_writes(
        &self,
        reqs: &[Request],
        placed: &[Placed],
        touched: &Touched,
    ) -> Result<Vec<Write>, IpamError> {
        let mut writes = Vec::with_capacity(touched.len() + placed.len());
        for (block, rev) in touched.values() {
            writes.push(write_rec(
                &keys::block(block.cidr),
                Some(*rev),
                Some(block),
            )?);
        }
        for p in placed {
            let (Some(req), Some((block, _))) = (reqs.get(p.index), touched.get(&p.block)) else {
                continue;
            };
            let mut rec = HandleRecord::default();
            rec.set(
                p.family,
                Some(HandleAddr {
                    ip: p.ip,
                    block: block.cidr,
                    seq: p.seq,
                }),
            );
            writes.push(write_rec(&keys::handle(&req.handle), None, Some(&rec))?);
        }
        Ok(writes)
    }
}

/// Fails every placed request with (a copy of) `e`.
fn fail_all(placed: &[Placed], out: &mut [Slot], e: &IpamError) {
    for p in placed {
        if let Some(slot) = out.get_mut(p.index) {
            *slot = Some(Err(copy_error(e)));
        }
    }
}

/// The same failure for another request of the batch.
fn copy_error(e: &IpamError) -> IpamError {
    match e {
        IpamError::Store(s) => IpamError::Store(s.clone()),
        other => IpamError::Store(StoreError::Backend(other.to_string())),
    }
}

impl Allocator {
    /// Claims a block ahead of need, off the allocation path: for each pool this node already
    /// has blocks in, when its blocks there have fewer free addresses left than half a block
    /// (at most [`MAX_BATCH`]), claims the pool's next free block (unless
    /// `max_blocks_per_node` is reached, or half of the pool's blocks are claimed already:
    /// when blocks grow scarce, nodes claim only when they must, so none is left to borrow
    /// because another claimed early). A burst then never waits for a claim's round trips.
    /// The claimed block is kept like any other: released after `release_grace` if it stays
    /// empty (unless it is the node's last). Returns the blocks claimed.
    pub fn claim_ahead(&self) -> Result<Vec<ipnetwork::IpNetwork>, IpamError> {
        let low_pools: Vec<&crate::config::Pool> = {
            let own = self.own_cache();
            if !own.complete {
                return Ok(Vec::new());
            }
            self.cfg
                .pools
                .iter()
                .filter(|p| !p.disabled)
                .filter(|pool| {
                    let mut mine = own
                        .blocks
                        .values()
                        .filter(|(b, _)| addr::net_contains(pool.cidr, b.cidr))
                        .peekable();
                    if mine.peek().is_none() {
                        return false;
                    }
                    let free: u64 = mine
                        .map(|(b, _)| u64::from(b.size().saturating_sub(b.used())))
                        .sum();
                    let block = addr::enclosing(pool.cidr.ip(), pool.block_size)
                        .map_or(0, |b| u64::try_from(addr::net_size(b)).unwrap_or(u64::MAX));
                    free < (block / 2).min(MAX_BATCH as u64)
                })
                .collect()
        };
        if low_pools.is_empty() {
            return Ok(Vec::new());
        }
        let existing: Vec<ipnetwork::IpNetwork> = self
            .store
            .list(keys::BLOCKS)?
            .iter()
            .filter_map(|e| e.key.strip_prefix(keys::BLOCKS)?.parse().ok())
            .collect();
        let mut claimed = Vec::new();
        for pool in low_pools {
            let size = |net| addr::net_size(net);
            let pool_blocks = addr::enclosing(pool.cidr.ip(), pool.block_size)
                .map_or(0, |b| size(pool.cidr) / size(b).max(1));
            let taken = existing
                .iter()
                .filter(|b| addr::net_contains(pool.cidr, **b))
                .count() as u128;
            if taken.saturating_mul(2) >= pool_blocks {
                continue;
            }
            let family = pool.family();
            if let Some(max) = self.cfg.max_blocks_per_node {
                let count = self
                    .own_cache()
                    .blocks
                    .values()
                    .filter(|(b, _)| Family::of_net(b.cidr) == family)
                    .count();
                if count >= max as usize {
                    continue;
                }
            }
            if let Some((block, _)) = self.claim_free_block(&[pool])? {
                tracing::info!(node = %self.node, block = %block.cidr, "claimed a block ahead of need");
                claimed.push(block.cidr);
            }
        }
        if !claimed.is_empty() {
            self.store.flush()?;
        }
        Ok(claimed)
    }
}
