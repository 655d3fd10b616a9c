//! Block affinity: the two-step claim and crash recovery.
//!
//! Claim: (1) write `affinity/<node>/<cidr>` = pending (must not exist); (2) create
//! `blocks/<cidr>` with `affinity = node` (must not exist — this CAS is what decides between
//! two nodes racing for the same block); (3) rewrite the affinity as confirmed.
//! Release: delete the block (CAS on its revision, so it is still empty), then the affinity.
//!
//! A crash leaves at worst a pending affinity without a block, a block whose affinity is still
//! pending, or a confirmed affinity without a block; [`Allocator::own_blocks`] (run by every
//! automatic allocation and by `check_release`) resolves each.

use std::collections::HashSet;

use ipnetwork::IpNetwork;

use super::{ok_if_conflict, Allocator, MAX_ATTEMPTS};
use crate::addr::{self, Family};
use crate::block::Block;
use crate::config::Pool;
use crate::error::IpamError;
use crate::keys;
use crate::records::{AffinityRecord, AffinityState};
use crate::store::Revision;

const PENDING: AffinityRecord = AffinityRecord {
    state: AffinityState::Pending,
};
const CONFIRMED: AffinityRecord = AffinityRecord {
    state: AffinityState::Confirmed,
};

impl Allocator {
    /// This node's blocks (with their revisions) in CIDR order, resolving half-done claims and
    /// releases on the way.
    pub(super) fn own_blocks(&self) -> Result<Vec<(Block, Revision)>, IpamError> {
        let mut out = Vec::new();
        for (key, rec, rev) in
            self.list_rec::<AffinityRecord>(&keys::node_affinities(&self.node))?
        {
            let Some((_, cidr)) = keys::parse_affinity(&key) else {
                continue;
            };
            if let Some(block) = self.resolve_affinity(cidr, rec, rev)? {
                out.push(block);
            }
        }
        *self.own_cache() = super::OwnCache {
            complete: true,
            blocks: out
                .iter()
                .map(|(b, rev)| (b.cidr.to_string(), (b.clone(), *rev)))
                .collect(),
        };
        Ok(out)
    }

    /// Brings one of this node's affinities in line with its block.
    fn resolve_affinity(
        &self,
        cidr: IpNetwork,
        rec: AffinityRecord,
        arev: Revision,
    ) -> Result<Option<(Block, Revision)>, IpamError> {
        let akey = keys::affinity(&self.node, cidr);
        match self.get_rec::<Block>(&keys::block(cidr))? {
            Some((block, brev)) if block.affinity.as_deref() == Some(self.node.as_str()) => {
                if rec.state == AffinityState::Pending {
                    // Crash (or a concurrent claim) between steps 2 and 3: the block is ours.
                    tracing::info!(node = %self.node, block = %cidr, "confirming pending affinity");
                    ok_if_conflict(self.put_rec(&akey, Some(arev), Some(&CONFIRMED)))?;
                }
                Ok(Some((block, brev)))
            }
            other => {
                // Pending without a block (crash between steps 1 and 2), or an affinity whose
                // block is gone (crash during release) or belongs to another node.
                tracing::info!(
                    node = %self.node, block = %cidr, state = ?rec.state,
                    block_owner = ?other.as_ref().map(|(b, _)| b.affinity.clone()),
                    "dropping affinity with no block of ours"
                );
                ok_if_conflict(self.put_rec::<AffinityRecord>(&akey, Some(arev), None))?;
                Ok(None)
            }
        }
    }

    /// Claims `cidr` for this node. `None` = another node got it first.
    pub(super) fn claim(&self, cidr: IpNetwork) -> Result<Option<(Block, Revision)>, IpamError> {
        let claimed = self.claim_steps(cidr);
        if claimed.is_err() {
            // The claim stopped part-way (the store went away between two steps): forget
            // the cached blocks, so the next allocation takes the reading path, whose
            // `own_blocks` settles the half-done claim before any fast batch uses the block.
            self.forget_own_blocks();
        }
        claimed
    }

    fn claim_steps(&self, cidr: IpNetwork) -> Result<Option<(Block, Revision)>, IpamError> {
        let akey = keys::affinity(&self.node, cidr);
        let arev = match self.put_rec(&akey, None, Some(&PENDING)) {
            Ok(rev) => rev,
            Err(e) if e.is_conflict() => {
                // We already have an affinity for it (a concurrent claim on this node, or
                // a leftover): settle it instead.
                return match self.get_rec::<AffinityRecord>(&akey)? {
                    Some((rec, rev)) => self.resolve_affinity(cidr, rec, rev),
                    None => Ok(None),
                };
            }
            Err(e) => return Err(e),
        };
        let block = Block::new(cidr, Some(self.node.clone()));
        let brev = match self.put_block(&block, None) {
            Ok(rev) => rev,
            Err(e) if e.is_conflict() => {
                tracing::debug!(node = %self.node, block = %cidr, "lost block claim race");
                ok_if_conflict(self.put_rec::<AffinityRecord>(&akey, Some(arev), None))?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.ensure_confirmed(cidr, Some(arev))?;
        tracing::info!(node = %self.node, block = %cidr, "claimed block");
        Ok(Some((block, brev)))
    }

    /// Makes this node's affinity for `cidr` confirmed, whatever its current state.
    pub(super) fn ensure_confirmed(
        &self,
        cidr: IpNetwork,
        mut expected: Option<Revision>,
    ) -> Result<(), IpamError> {
        let akey = keys::affinity(&self.node, cidr);
        for _ in 0..MAX_ATTEMPTS {
            match self.put_rec(&akey, expected, Some(&CONFIRMED)) {
                Ok(_) => return Ok(()),
                Err(e) if e.is_conflict() => match self.get_rec::<AffinityRecord>(&akey)? {
                    Some((rec, _)) if rec.state == AffinityState::Confirmed => return Ok(()),
                    Some((_, rev)) => expected = Some(rev),
                    None => expected = None,
                },
                Err(e) => return Err(e),
            }
        }
        Err(IpamError::Contention {
            what: "confirm affinity",
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Claims the first block of `pools` that does not exist yet and is not entirely reserved.
    pub(super) fn claim_free_block(
        &self,
        pools: &[&Pool],
    ) -> Result<Option<(Block, Revision)>, IpamError> {
        let existing: HashSet<IpNetwork> = self
            .store
            .list(keys::BLOCKS)?
            .iter()
            .filter_map(|e| e.key.strip_prefix(keys::BLOCKS)?.parse().ok())
            .collect();
        for pool in pools {
            let family = pool.family();
            let (start, end) = addr::net_range(pool.cidr);
            let Some(step) = addr::enclosing(pool.cidr.ip(), pool.block_size).map(addr::net_size)
            else {
                continue;
            };
            let mut cur = start;
            while cur <= end {
                let Ok(cidr) = IpNetwork::new(addr::from_u128(cur, family), pool.block_size) else {
                    break;
                };
                let next = if existing.contains(&cidr) {
                    cur.checked_add(step)
                } else if let Some(r_end) = self.reserved_through(cidr) {
                    // Jump past the reservation: it is a network at least as large as a
                    // block, so its end + 1 is block-aligned.
                    r_end.checked_add(1)
                } else if let Some(claimed) = self.claim(cidr)? {
                    return Ok(Some(claimed));
                } else {
                    cur.checked_add(step)
                };
                match next {
                    Some(n) => cur = n,
                    None => break,
                }
            }
        }
        Ok(None)
    }

    /// The last address of a reservation covering all of `cidr`, if any.
    fn reserved_through(&self, cidr: IpNetwork) -> Option<u128> {
        self.cfg
            .reservations
            .iter()
            .filter(|r| addr::net_contains(**r, cidr))
            .map(|r| addr::net_range(*r).1)
            .max()
    }

    /// How many blocks of `family` this node owns among `blocks`.
    pub(super) fn count_family(blocks: &[(Block, Revision)], family: Family) -> usize {
        blocks
            .iter()
            .filter(|(b, _)| Family::of_net(b.cidr) == family)
            .count()
    }
}
