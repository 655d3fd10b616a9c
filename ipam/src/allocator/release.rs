//! Releases: by address, by handle, and of empty blocks.
//!
//! A release writes the block(s) and the handle record in one store transaction, each
//! compared on the revision read, so it is all there or not at all. (Older versions wrote the
//! block first; a handle entry pointing at a free address is still ignored by readers,
//! finished by the next release of that handle, and reported by `check`.)

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnetwork::IpNetwork;

use super::{ok_if_conflict, write_rec, Allocator, Released};
use crate::addr::Family;
use crate::block::{AllocRecord, Block, BlockRefusal};
use crate::error::IpamError;
use crate::keys;
use crate::records::{AffinityRecord, HandleRecord};
use crate::store::{Revision, Write};

impl Allocator {
    /// Frees `ip`. With `seq`, only if the allocation carries that sequence number
    /// ([`IpamError::StaleSequence`] otherwise). Idempotent: an address that is not allocated
    /// gives `Ok(None)`. Returns once the release is durable.
    pub fn release_ip(&self, ip: IpAddr, seq: Option<u64>) -> Result<Option<Released>, IpamError> {
        let Some(cidr) = self.block_of_ip(ip)? else {
            return Ok(None);
        };
        let Some(rec) = self.retry("release address", || {
            let Some((block, brev, rec)) = self.without(cidr, ip, seq, None)? else {
                return Ok(None);
            };
            let mut writes = vec![write_rec(&keys::block(cidr), Some(brev), Some(&block))?];
            writes.extend(self.handle_without(&rec.handle, ip, rec.seq)?);
            let rev = self.transact(&writes)?;
            self.remember_block(&block, rev);
            Ok(Some(rec))
        })?
        else {
            return Ok(None);
        };
        self.store.flush()?;
        tracing::info!(node = %self.node, %ip, handle = %rec.handle, seq = rec.seq, "released address");
        Ok(Some(Released {
            ip,
            handle: rec.handle,
            seq: rec.seq,
        }))
    }

    /// Frees every address `handle` holds and deletes the handle. Idempotent: an unknown handle
    /// gives an empty list. Returns the freed addresses once the release is durable.
    pub fn release_handle(&self, handle: &str) -> Result<Vec<IpAddr>, IpamError> {
        let key = keys::handle(handle);
        let freed = self.retry("release handle", || {
            let Some((rec, rev)) = self.get_rec::<HandleRecord>(&key)? else {
                return Ok(Vec::new());
            };
            let mut freed = Vec::new();
            let mut blocks = Vec::new();
            let mut writes = Vec::new();
            for entry in rec.entries() {
                if let Some((block, brev, _)) =
                    self.without(entry.block, entry.ip, Some(entry.seq), Some(handle))?
                {
                    writes.push(write_rec(
                        &keys::block(block.cidr),
                        Some(brev),
                        Some(&block),
                    )?);
                    blocks.push(block);
                    freed.push(entry.ip);
                }
            }
            writes.push(write_rec::<HandleRecord>(&key, Some(rev), None)?);
            let written = self.transact(&writes)?;
            for block in &blocks {
                self.remember_block(block, written);
            }
            Ok(freed)
        })?;
        self.store.flush()?;
        tracing::info!(node = %self.node, handle, freed = ?freed, "released handle");
        Ok(freed)
    }

    /// Block `cidr` as read (with its revision) and with `ip` freed, and the allocation freed;
    /// `None` when there is nothing to free. With `handle`, only if that handle holds it (a stale
    /// sequence number is then silently skipped: the address belongs to someone else now).
    fn without(
        &self,
        cidr: IpNetwork,
        ip: IpAddr,
        seq: Option<u64>,
        handle: Option<&str>,
    ) -> Result<Option<(Block, Revision, AllocRecord)>, IpamError> {
        let Some((mut block, rev)) = self.get_rec::<Block>(&keys::block(cidr))? else {
            return Ok(None);
        };
        let Some(ordinal) = block.ordinal(ip) else {
            return Ok(None);
        };
        if let Some(h) = handle {
            if block.allocations.get(&ordinal).map(|r| r.handle.as_str()) != Some(h) {
                return Ok(None);
            }
        }
        match block.release(ordinal, seq) {
            Ok(rec) => Ok(Some((block, rev, rec))),
            Err(BlockRefusal::NotAllocated) => Ok(None),
            Err(BlockRefusal::Stale { .. }) if handle.is_some() => Ok(None),
            Err(BlockRefusal::Stale { current }) => Err(IpamError::StaleSequence {
                ip,
                given: seq.unwrap_or_default(),
                current,
            }),
        }
    }

    /// The write that removes `handle`'s entry for `ip` if it still names allocation `seq`
    /// (deleting the record once it holds nothing); `None` when there is no record.
    fn handle_without(
        &self,
        handle: &str,
        ip: IpAddr,
        seq: u64,
    ) -> Result<Option<Write>, IpamError> {
        let key = keys::handle(handle);
        let Some((mut rec, rev)) = self.get_rec::<HandleRecord>(&key)? else {
            return Ok(None);
        };
        let family = Family::of_ip(ip);
        if rec.get(family).is_some_and(|e| e.ip == ip && e.seq == seq) {
            rec.set(family, None);
        }
        let new = (!rec.is_empty()).then_some(&rec);
        Ok(Some(write_rec(&key, Some(rev), new)?))
    }

    /// Gives back this node's empty blocks, keeping at least one block per pool.
    ///
    /// No clock inside: the first sweep that sees a block empty stamps it with `now`; a later
    /// sweep at least `release_grace` after that stamp deletes it (block first, then the
    /// affinity). Any allocation in between clears the stamp. Returns the released blocks.
    pub fn release_empty_blocks(&self, now: SystemTime) -> Result<Vec<IpNetwork>, IpamError> {
        let now_s = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let grace = self.cfg.release_grace.as_secs();
        let mut per_pool: BTreeMap<Option<IpNetwork>, Vec<(Block, Revision)>> = BTreeMap::new();
        for (block, rev) in self.own_blocks()? {
            per_pool
                .entry(self.pool_of_net(block.cidr).map(|p| p.cidr))
                .or_default()
                .push((block, rev));
        }
        let mut released = Vec::new();
        for blocks in per_pool.into_values() {
            let mut remaining = blocks.len();
            for (mut block, rev) in blocks {
                if remaining <= 1 {
                    break;
                }
                if !block.is_empty() {
                    continue;
                }
                let key = keys::block(block.cidr);
                match block.empty_since {
                    None => {
                        block.empty_since = Some(now_s);
                        ok_if_conflict(self.put_block(&block, Some(rev)))?;
                    }
                    Some(since) if now_s.saturating_sub(since) >= grace => {
                        match self.put_rec::<Block>(&key, Some(rev), None) {
                            Ok(_) => self.forget_own_blocks(),
                            // Someone allocated from it meanwhile: keep it.
                            Err(e) if e.is_conflict() => continue,
                            Err(e) => return Err(e),
                        }
                        let akey = keys::affinity(&self.node, block.cidr);
                        if let Some((_, arev)) = self.get_rec::<AffinityRecord>(&akey)? {
                            ok_if_conflict(self.put_rec::<AffinityRecord>(
                                &akey,
                                Some(arev),
                                None,
                            ))?;
                        }
                        tracing::info!(node = %self.node, block = %block.cidr, "released empty block");
                        remaining -= 1;
                        released.push(block.cidr);
                    }
                    Some(_) => {}
                }
            }
        }
        self.store.flush()?;
        Ok(released)
    }
}
