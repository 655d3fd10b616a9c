//! Releases: by address, by handle, and of empty blocks.
//!
//! Order of writes: the block first, then the handle record, so a crash in between leaves a
//! handle entry pointing at a free address — ignored by readers, finished by the next release
//! of that handle, reported by `check`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnetwork::IpNetwork;

use super::{ok_if_conflict, Allocator, Released};
use crate::addr::Family;
use crate::block::{AllocRecord, Block, BlockRefusal};
use crate::error::IpamError;
use crate::keys;
use crate::records::{AffinityRecord, HandleRecord};
use crate::store::Revision;

impl Allocator {
    /// Frees `ip`. With `seq`, only if the allocation carries that sequence number
    /// ([`IpamError::StaleSequence`] otherwise). Idempotent: an address that is not allocated
    /// gives `Ok(None)`. Returns once the release is durable.
    pub fn release_ip(&self, ip: IpAddr, seq: Option<u64>) -> Result<Option<Released>, IpamError> {
        let Some(cidr) = self.block_of_ip(ip)? else {
            return Ok(None);
        };
        let Some(rec) = self.retry("release address", || {
            self.release_in_block(cidr, ip, seq, None)
        })?
        else {
            return Ok(None);
        };
        self.retry("release handle entry", || {
            self.drop_handle_entry(&rec.handle, ip, rec.seq)
        })?;
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
        let mut freed = Vec::new();
        self.retry("release handle", || {
            let Some((rec, rev)) = self.get_rec::<HandleRecord>(&key)? else {
                return Ok(());
            };
            for entry in rec.entries() {
                if self
                    .release_in_block(entry.block, entry.ip, Some(entry.seq), Some(handle))?
                    .is_some()
                {
                    freed.push(entry.ip);
                }
            }
            self.put_rec::<HandleRecord>(&key, Some(rev), None)?;
            Ok(())
        })?;
        self.store.flush()?;
        tracing::info!(node = %self.node, handle, freed = ?freed, "released handle");
        Ok(freed)
    }

    /// Frees `ip` in its block; with `handle`, only if that handle holds it (and a stale
    /// sequence number is then silently skipped: the address belongs to someone else now).
    pub(super) fn release_in_block(
        &self,
        cidr: IpNetwork,
        ip: IpAddr,
        seq: Option<u64>,
        handle: Option<&str>,
    ) -> Result<Option<AllocRecord>, IpamError> {
        let key = keys::block(cidr);
        let Some((mut block, rev)) = self.get_rec::<Block>(&key)? else {
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
            Ok(rec) => {
                self.put_block(&block, Some(rev))?;
                Ok(Some(rec))
            }
            Err(BlockRefusal::NotAllocated) => Ok(None),
            Err(BlockRefusal::Stale { .. }) if handle.is_some() => Ok(None),
            Err(BlockRefusal::Stale { current }) => Err(IpamError::StaleSequence {
                ip,
                given: seq.unwrap_or_default(),
                current,
            }),
        }
    }

    /// Removes `handle`'s entry for `ip` if it still names allocation `seq`; deletes the record
    /// once it holds nothing.
    pub(super) fn drop_handle_entry(
        &self,
        handle: &str,
        ip: IpAddr,
        seq: u64,
    ) -> Result<(), IpamError> {
        let key = keys::handle(handle);
        let Some((mut rec, rev)) = self.get_rec::<HandleRecord>(&key)? else {
            return Ok(());
        };
        let family = Family::of_ip(ip);
        if rec.get(family).is_some_and(|e| e.ip == ip && e.seq == seq) {
            rec.set(family, None);
        }
        if rec.is_empty() {
            self.put_rec::<HandleRecord>(&key, Some(rev), None)?;
        } else {
            self.put_rec(&key, Some(rev), Some(&rec))?;
        }
        Ok(())
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
