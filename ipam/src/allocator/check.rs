//! Consistency check (`bramble ipam check`, CNI GC) and its repair.
//!
//! The check reads a snapshot; operations in flight on other allocators may show up as issues
//! (a handle written a moment before its block). The repair only ever acts through CAS on what
//! it re-reads: leaked addresses are released with their sequence number (an address reused
//! meanwhile is left alone), and only this node's affinities are rewritten.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::Serialize;

use super::Allocator;
use crate::addr::Family;
use crate::block::Block;
use crate::error::IpamError;
use crate::keys;
use crate::records::{AffinityRecord, AffinityState, HandleAddr, HandleRecord};

/// Why an allocation is considered leaked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LeakReason {
    /// No handle record names its handle.
    NoHandleRecord,
    /// The handle record holds another address (or another allocation of this one).
    HandleHoldsOther,
    /// Allocated by this node, and its handle is not in the live set given to `check`.
    HandleNotLive,
}

/// An allocation with no live handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeakedAllocation {
    /// The address.
    pub ip: IpAddr,
    /// Its block.
    pub block: IpNetwork,
    /// The handle in the allocation record.
    pub handle: String,
    /// The allocation's sequence number.
    pub seq: u64,
    /// The node that allocated it.
    pub node: String,
    /// Why it is leaked.
    pub reason: LeakReason,
}

/// A handle entry with no allocation behind it (`entry: None` = a record holding nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DanglingHandle {
    /// The handle.
    pub handle: String,
    /// The entry whose block does not carry it.
    pub entry: Option<HandleAddr>,
}

/// How a block and its affinity disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum BlockIssueKind {
    /// Pending affinity and no block (claim interrupted before the block was created).
    PendingWithoutBlock,
    /// Pending affinity for a block that is the node's (claim interrupted before confirming).
    PendingNotConfirmed,
    /// Confirmed affinity and no block (release interrupted).
    AffinityWithoutBlock,
    /// Affinity for a block that is affine to someone else (or nobody).
    BlockOwnedByOther(Option<String>),
    /// Block affine to a node that has no affinity record for it.
    BlockWithoutAffinity,
    /// The block's bitmap and allocation records disagree.
    BitmapMismatch,
}

/// One block/affinity disagreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockIssue {
    /// The block.
    pub block: IpNetwork,
    /// The node concerned (affinity holder or block owner).
    pub node: Option<String>,
    /// What is wrong.
    pub kind: BlockIssueKind,
}

/// Result of [`Allocator::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Allocations with no live handle.
    pub leaked: Vec<LeakedAllocation>,
    /// Handles with no allocation.
    pub dangling_handles: Vec<DanglingHandle>,
    /// Blocks whose affinity and contents disagree.
    pub block_issues: Vec<BlockIssue>,
}

impl CheckReport {
    /// Nothing to report.
    pub fn is_clean(&self) -> bool {
        self.leaked.is_empty() && self.dangling_handles.is_empty() && self.block_issues.is_empty()
    }
}

impl Allocator {
    /// Reports leaked allocations, dangling handles and block/affinity disagreements across the
    /// whole store. With `live_handles` (CNI GC's valid attachments on this node), this node's
    /// allocations whose handle is not in the set are reported as leaked too.
    pub fn check(&self, live_handles: Option<&HashSet<String>>) -> Result<CheckReport, IpamError> {
        let blocks: BTreeMap<IpNetwork, Block> = self
            .list_rec::<Block>(keys::BLOCKS)?
            .into_iter()
            .map(|(_, b, _)| (b.cidr, b))
            .collect();
        let handles: BTreeMap<String, HandleRecord> = self
            .list_rec::<HandleRecord>(keys::HANDLES)?
            .into_iter()
            .filter_map(|(k, h, _)| Some((keys::parse_handle(&k)?.to_string(), h)))
            .collect();
        let mut affinities = BTreeSet::new();
        let mut report = CheckReport::default();

        for (key, rec, _) in self.list_rec::<AffinityRecord>(keys::AFFINITY)? {
            let Some((node, cidr)) = keys::parse_affinity(&key) else {
                continue;
            };
            affinities.insert((node.to_string(), cidr));
            let kind = match (blocks.get(&cidr), rec.state) {
                (None, AffinityState::Pending) => Some(BlockIssueKind::PendingWithoutBlock),
                (None, AffinityState::Confirmed) => Some(BlockIssueKind::AffinityWithoutBlock),
                (Some(b), _) if b.affinity.as_deref() != Some(node) => {
                    Some(BlockIssueKind::BlockOwnedByOther(b.affinity.clone()))
                }
                (Some(_), AffinityState::Pending) => Some(BlockIssueKind::PendingNotConfirmed),
                (Some(_), AffinityState::Confirmed) => None,
            };
            if let Some(kind) = kind {
                report.block_issues.push(BlockIssue {
                    block: cidr,
                    node: Some(node.to_string()),
                    kind,
                });
            }
        }

        for block in blocks.values() {
            if let Some(owner) = &block.affinity {
                if !affinities.contains(&(owner.clone(), block.cidr)) {
                    report.block_issues.push(BlockIssue {
                        block: block.cidr,
                        node: Some(owner.clone()),
                        kind: BlockIssueKind::BlockWithoutAffinity,
                    });
                }
            }
            if !block.is_consistent() {
                report.block_issues.push(BlockIssue {
                    block: block.cidr,
                    node: block.affinity.clone(),
                    kind: BlockIssueKind::BitmapMismatch,
                });
            }
            for (&ordinal, rec) in &block.allocations {
                let ip = block.ip(ordinal);
                let reason = match handles.get(&rec.handle).map(|h| h.get(Family::of_ip(ip))) {
                    None => Some(LeakReason::NoHandleRecord),
                    Some(Some(e)) if e.ip == ip && e.seq == rec.seq => None,
                    Some(_) => Some(LeakReason::HandleHoldsOther),
                };
                let not_live = live_handles
                    .is_some_and(|live| rec.node == self.node && !live.contains(&rec.handle));
                let reason = reason.or(not_live.then_some(LeakReason::HandleNotLive));
                if let Some(reason) = reason {
                    report.leaked.push(LeakedAllocation {
                        ip,
                        block: block.cidr,
                        handle: rec.handle.clone(),
                        seq: rec.seq,
                        node: rec.node.clone(),
                        reason,
                    });
                }
            }
        }

        for (handle, rec) in &handles {
            if rec.is_empty() {
                report.dangling_handles.push(DanglingHandle {
                    handle: handle.clone(),
                    entry: None,
                });
            }
            for entry in rec.entries() {
                let live = blocks.get(&entry.block).is_some_and(|b| {
                    b.ordinal(entry.ip)
                        .and_then(|o| b.allocations.get(&o))
                        .is_some_and(|r| &r.handle == handle && r.seq == entry.seq)
                });
                if !live {
                    report.dangling_handles.push(DanglingHandle {
                        handle: handle.clone(),
                        entry: Some(*entry),
                    });
                }
            }
        }
        Ok(report)
    }

    /// Runs [`Allocator::check`] and repairs what it found: releases leaked allocations (by
    /// sequence number), clears dangling handle entries, resolves this node's affinities and
    /// rebuilds inconsistent bitmaps. Other nodes' affinities are only reported (their own
    /// allocator resolves them). Returns the report that was acted on.
    pub fn check_release(
        &self,
        live_handles: Option<&HashSet<String>>,
    ) -> Result<CheckReport, IpamError> {
        let report = self.check(live_handles)?;
        for leak in &report.leaked {
            match self.release_ip(leak.ip, Some(leak.seq)) {
                Ok(_) | Err(IpamError::StaleSequence { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for dangling in &report.dangling_handles {
            self.retry("clear dangling handle", || self.clear_dangling(dangling))?;
        }
        let mine = |i: &&BlockIssue| i.node.as_deref() == Some(self.node.as_str());
        if report
            .block_issues
            .iter()
            .filter(mine)
            .any(|i| i.kind != BlockIssueKind::BlockWithoutAffinity)
        {
            self.own_blocks()?;
        }
        for issue in &report.block_issues {
            match issue.kind {
                BlockIssueKind::BlockWithoutAffinity if mine(&issue) => {
                    self.ensure_confirmed(issue.block, None)?
                }
                BlockIssueKind::BitmapMismatch => self.retry("rebuild bitmap", || {
                    let key = keys::block(issue.block);
                    let Some((mut block, rev)) = self.get_rec::<Block>(&key)? else {
                        return Ok(());
                    };
                    if !block.is_consistent() {
                        block.rebuild_bitmap();
                        self.put_block(&block, Some(rev))?;
                    }
                    Ok(())
                })?,
                _ => {}
            }
        }
        self.store.flush()?;
        if !report.is_clean() {
            tracing::info!(
                node = %self.node, leaked = report.leaked.len(), dangling = report.dangling_handles.len(),
                block_issues = report.block_issues.len(), "check repaired"
            );
        }
        Ok(report)
    }

    /// Removes a dangling handle entry if, re-read, it is still dangling.
    fn clear_dangling(&self, dangling: &DanglingHandle) -> Result<(), IpamError> {
        let key = keys::handle(&dangling.handle);
        let Some((mut rec, rev)) = self.get_rec::<HandleRecord>(&key)? else {
            return Ok(());
        };
        if let Some(entry) = dangling.entry {
            let family = Family::of_ip(entry.ip);
            if rec.get(family) != Some(&entry)
                || self.live_entry(&dangling.handle, &entry)?.is_some()
            {
                return Ok(());
            }
            rec.set(family, None);
        }
        if rec.is_empty() {
            self.put_rec::<HandleRecord>(&key, Some(rev), None)?;
        } else {
            self.put_rec(&key, Some(rev), Some(&rec))?;
        }
        Ok(())
    }
}
