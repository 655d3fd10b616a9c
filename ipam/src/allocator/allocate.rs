//! Allocation: by handle, automatic or of a specific address.
//!
//! The handle record (naming the address and its sequence number) and the block are written in
//! one store transaction, each compared on the revision read, so an allocation is all there or
//! not at all. (Older versions wrote the handle first; a handle entry whose block does not
//! carry it is still ignored, overwritten by the next allocation for that handle, and reported
//! by `check`.)

use std::net::IpAddr;

use super::{conflict, write_rec, Allocation, Allocator, Request};
use crate::addr::{self, Family};
use crate::block::Block;
use crate::config::Pool;
use crate::error::IpamError;
use crate::keys;
use crate::records::{HandleAddr, HandleRecord};
use crate::store::Revision;

/// The handle record as read at the start of an attempt.
struct HandleState {
    key: String,
    rec: HandleRecord,
    rev: Option<Revision>,
}

impl Allocator {
    /// Allocates an address for `req.handle`.
    ///
    /// Idempotent: if the handle already holds a live address of the family, that address is
    /// returned (with `req.ip` set, a different held address is [`IpamError::HandleHasAddress`]).
    /// Order for automatic allocation: this node's blocks, then a newly claimed block (unless
    /// `max_blocks_per_node` is reached), then (unless `strict_affinity`) a free address in
    /// another node's block, else [`IpamError::PoolExhausted`]. A specific `req.ip` claims its
    /// block for this node if nobody has it (ignoring `max_blocks_per_node`).
    /// Returns once the store has made the allocation durable.
    pub fn allocate(&self, req: &Request) -> Result<Allocation, IpamError> {
        self.allocate_many(std::slice::from_ref(req))
            .pop()
            .unwrap_or_else(|| self.allocate_slow(req))
    }

    /// [`Allocator::allocate`] from fresh reads of the store.
    pub(super) fn allocate_slow(&self, req: &Request) -> Result<Allocation, IpamError> {
        if req.handle.is_empty() {
            return Err(IpamError::InvalidHandle(req.handle.clone()));
        }
        let family = request_family(req)?;
        let alloc = self.retry("allocate", || self.try_allocate(req, family))?;
        self.store.flush()?;
        tracing::info!(
            node = %self.node, handle = %alloc.handle, ip = %alloc.ip, block = %alloc.block,
            borrowed = alloc.borrowed, seq = alloc.seq, "allocated"
        );
        Ok(alloc)
    }

    fn try_allocate(&self, req: &Request, family: Family) -> Result<Allocation, IpamError> {
        let key = keys::handle(&req.handle);
        let (rec, rev) = match self.get_rec::<HandleRecord>(&key)? {
            Some((rec, rev)) => (rec, Some(rev)),
            None => (HandleRecord::default(), None),
        };
        if let Some(entry) = rec.get(family) {
            if let Some(existing) = self.live_entry(&req.handle, entry)? {
                return match req.ip {
                    Some(ip) if ip != existing.ip => Err(IpamError::HandleHasAddress {
                        handle: req.handle.clone(),
                        existing: existing.ip,
                    }),
                    _ => Ok(existing),
                };
            }
        }
        let handle = HandleState { key, rec, rev };
        match req.ip {
            Some(ip) => self.allocate_specific(req, ip, &handle),
            None => self.allocate_auto(req, family, &handle),
        }
    }

    /// The allocation a handle entry points at, if its block really carries it.
    pub(super) fn live_entry(
        &self,
        handle: &str,
        entry: &HandleAddr,
    ) -> Result<Option<Allocation>, IpamError> {
        let Some((block, _)) = self.get_rec::<Block>(&keys::block(entry.block))? else {
            return Ok(None);
        };
        let Some(rec) = block
            .ordinal(entry.ip)
            .and_then(|o| block.allocations.get(&o))
        else {
            return Ok(None);
        };
        if rec.handle != handle || rec.seq != entry.seq {
            return Ok(None);
        }
        Ok(Some(
            self.allocation(&block, entry.ip, handle, rec.seq, &rec.node),
        ))
    }

    pub(super) fn allocation(
        &self,
        block: &Block,
        ip: IpAddr,
        handle: &str,
        seq: u64,
        node: &str,
    ) -> Allocation {
        Allocation {
            handle: handle.to_string(),
            ip,
            prefix_len: Family::of_ip(ip).bits(),
            pool: self.pool_of_net(block.cidr).map(|p| p.cidr),
            block: block.cidr,
            borrowed: block.affinity.as_deref() != Some(node),
            seq,
        }
    }

    fn allocate_auto(
        &self,
        req: &Request,
        family: Family,
        handle: &HandleState,
    ) -> Result<Allocation, IpamError> {
        let pools = self.candidate_pools(family, req)?;
        let in_pools = |b: &Block| pools.iter().any(|p| addr::net_contains(p.cidr, b.cidr));
        let usable = |ip: IpAddr| !self.is_reserved(ip);

        // 1. Our own blocks.
        let own = self.own_blocks()?;
        for (block, rev) in own.iter().filter(|(b, _)| in_pools(b)) {
            if let Some(o) = block.first_free(usable) {
                return self.commit(req, family, handle, block.clone(), *rev, o);
            }
        }
        // 2. A new block.
        let limit_hit = self
            .cfg
            .max_blocks_per_node
            .is_some_and(|max| Self::count_family(&own, family) >= max as usize);
        if !limit_hit {
            if let Some((block, rev)) = self.claim_free_block(&pools)? {
                if let Some(o) = block.first_free(usable) {
                    return self.commit(req, family, handle, block, rev, o);
                }
            }
        }
        // 3. Borrow from another node's block.
        if !self.cfg.strict_affinity {
            for (_, block, rev) in self.list_rec::<Block>(keys::BLOCKS)? {
                if block.affinity.as_deref() == Some(self.node.as_str()) || !in_pools(&block) {
                    continue;
                }
                if let Some(o) = block.first_free(usable) {
                    return self.commit(req, family, handle, block, rev, o);
                }
            }
        }
        Err(IpamError::PoolExhausted {
            family,
            pools: pools.iter().map(|p| p.cidr).collect(),
            node: self.node.clone(),
            limit: if limit_hit {
                ", block limit reached"
            } else {
                ""
            },
            borrow: if self.cfg.strict_affinity {
                ", borrowing disabled (strict affinity)"
            } else {
                ", nothing to borrow"
            },
        })
    }

    pub(super) fn candidate_pools(
        &self,
        family: Family,
        req: &Request,
    ) -> Result<Vec<&Pool>, IpamError> {
        if let Some(cidr) = req.pool {
            let pool = self
                .cfg
                .pools
                .iter()
                .find(|p| p.cidr == cidr)
                .ok_or(IpamError::UnknownPool(cidr))?;
            if pool.disabled {
                return Err(IpamError::PoolDisabled(cidr));
            }
            return Ok(vec![pool]);
        }
        let pools: Vec<&Pool> = self
            .cfg
            .pools
            .iter()
            .filter(|p| p.family() == family && !p.disabled)
            .collect();
        if pools.is_empty() {
            return Err(IpamError::NoPool(family));
        }
        Ok(pools)
    }

    fn allocate_specific(
        &self,
        req: &Request,
        ip: IpAddr,
        handle: &HandleState,
    ) -> Result<Allocation, IpamError> {
        let pool = self.pool_of_ip(ip).ok_or(IpamError::NotInPool(ip))?;
        if req.pool.is_some_and(|p| p != pool.cidr) {
            return Err(IpamError::NotInPool(ip));
        }
        if pool.disabled {
            return Err(IpamError::PoolDisabled(pool.cidr));
        }
        if self.is_reserved(ip) {
            return Err(IpamError::Reserved(ip));
        }
        let cidr = addr::enclosing(ip, pool.block_size).ok_or(IpamError::NotInPool(ip))?;
        let (block, rev) = match self.get_rec::<Block>(&keys::block(cidr))? {
            Some(found) => found,
            // Lost the race for the block: start over and find it existing.
            None => self
                .claim(cidr)?
                .ok_or_else(|| conflict(keys::block(cidr)))?,
        };
        if self.cfg.strict_affinity && block.affinity.as_deref() != Some(self.node.as_str()) {
            return Err(IpamError::BlockNotAffine {
                ip,
                block: cidr,
                owner: block.affinity.clone().unwrap_or_default(),
            });
        }
        let ordinal = block.ordinal(ip).ok_or(IpamError::NotInPool(ip))?;
        if let Some(rec) = block.allocations.get(&ordinal) {
            return Err(IpamError::AddressInUse {
                ip,
                handle: rec.handle.clone(),
            });
        }
        self.commit(req, Family::of_ip(ip), handle, block, rev, ordinal)
    }

    /// Writes the handle entry and the block in one transaction.
    fn commit(
        &self,
        req: &Request,
        family: Family,
        handle: &HandleState,
        mut block: Block,
        rev: Revision,
        ordinal: u32,
    ) -> Result<Allocation, IpamError> {
        let ip = block.ip(ordinal);
        let seq = block.seq + 1;
        let mut rec = handle.rec.clone();
        rec.set(
            family,
            Some(HandleAddr {
                ip,
                block: block.cidr,
                seq,
            }),
        );
        let assigned = block.assign(ordinal, &req.handle, &self.node, req.attrs.clone());
        debug_assert_eq!(assigned, seq);
        let writes = [
            write_rec(&handle.key, handle.rev, Some(&rec))?,
            write_rec(&keys::block(block.cidr), Some(rev), Some(&block))?,
        ];
        let written = self.transact(&writes)?;
        self.remember_block(&block, written);
        Ok(self.allocation(&block, ip, &req.handle, seq, &self.node))
    }
}

/// The request's family: explicit, else from the pool or address, else IPv4.
pub(super) fn request_family(req: &Request) -> Result<Family, IpamError> {
    let mut family = req.family;
    let implied = [req.pool.map(Family::of_net), req.ip.map(Family::of_ip)];
    for f in implied.into_iter().flatten() {
        match family {
            Some(have) if have != f => {
                return Err(IpamError::FamilyMismatch(format!(
                    "{have} requested, pool {:?} / address {:?} given",
                    req.pool, req.ip
                )))
            }
            _ => family = Some(f),
        }
    }
    Ok(family.unwrap_or(Family::V4))
}
