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

impl Allocator {
    /// Allocates for every request of `reqs`, as [`Allocator::allocate`] would for each, and
    /// returns the results in request order. Requests that can be placed in this node's known
    /// blocks are committed together, up to [`MAX_BATCH`] per store transaction; the others
    /// (and all of them after a lost race) are allocated one by one. Returns once every
    /// successful allocation is durable.
    pub fn allocate_many(&self, reqs: &[Request]) -> Vec<Result<Allocation, IpamError>> {
        let mut out: Vec<Slot> = reqs.iter().map(|_| None).collect();
        for (chunk, slots) in reqs.chunks(MAX_BATCH).zip(out.chunks_mut(MAX_BATCH)) {
            self.fast_chunk(chunk, slots);
        }
        reqs.iter()
            .zip(out)
            .map(|(req, done)| done.unwrap_or_else(|| self.allocate_slow(req)))
            .collect()
    }

    /// Commits what it can of `reqs` in one transaction from the cached blocks and fills
    /// those slots; leaves the others empty.
    fn fast_chunk(&self, reqs: &[Request], slots: &mut [Slot]) {
        let Some((placed, touched)) = self.place(reqs) else {
            return;
        };
        if placed.is_empty() {
            return;
        }
        let writes = match self.batch_writes(reqs, &placed, &touched) {
            Ok(w) => w,
            Err(e) => return fail_all(&placed, slots, &e),
        };
        let rev = match self.transact(&writes).and_then(|rev| {
            self.store.flush()?;
            Ok(rev)
        }) {
            Ok(rev) => rev,
            Err(e) if e.is_conflict() => {
                // Something changed under the cache (another node borrowed, a retried
                // handle): every request takes the reading path.
                tracing::debug!(node = %self.node, error = %e, "batch lost a race; allocating one by one");
                return;
            }
            // Unavailable or ambiguous (a timeout may have committed): the requests fail as a
            // single allocation would; a retry finds its handle if the write did land.
            Err(e) => return fail_all(&placed, slots, &e),
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
            if let Some(slot) = slots.get_mut(p.index) {
                *slot = Some(Ok(alloc));
            }
        }
    }

    /// Picks an address for each automatic request in copies of the cached blocks. `None`
    /// when the cache does not hold all of this node's blocks yet.
    #[allow(clippy::type_complexity)]
    fn place(
        &self,
        reqs: &[Request],
    ) -> Option<(Vec<Placed>, BTreeMap<String, (Block, Revision)>)> {
        let own = self.own_cache();
        if !own.complete {
            return None;
        }
        let usable = |ip: IpAddr| !self.is_reserved(ip);
        let mut touched: BTreeMap<String, (Block, Revision)> = BTreeMap::new();
        let mut placed = Vec::new();
        let mut handles = HashSet::new();
        for (index, req) in reqs.iter().enumerate() {
            if req.handle.is_empty() || req.ip.is_some() || !handles.insert(req.handle.as_str()) {
                continue;
            }
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
        touched: &BTreeMap<String, (Block, Revision)>,
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
fn fail_all(placed: &[Placed], slots: &mut [Slot], e: &IpamError) {
    for p in placed {
        if let Some(slot) = slots.get_mut(p.index) {
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
