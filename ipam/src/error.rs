//! Allocator errors.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::addr::Family;
use crate::config::ConfigError;
use crate::store::StoreError;

/// Everything the allocator can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// Invalid pools or reservations.
    #[error("invalid IPAM configuration: {0}")]
    Config(#[from] ConfigError),
    /// Node names are non-empty and contain no `/`.
    #[error("invalid node name {0:?}")]
    InvalidNode(String),
    /// Handles are non-empty.
    #[error("invalid handle {0:?}")]
    InvalidHandle(String),
    /// The request asks for one family and names a pool or address of the other.
    #[error("request mixes address families ({0})")]
    FamilyMismatch(String),
    /// `pool` names no configured pool.
    #[error("no configured pool {0}")]
    UnknownPool(IpNetwork),
    /// The pool is disabled.
    #[error("pool {0} is disabled")]
    PoolDisabled(IpNetwork),
    /// No enabled pool of the family.
    #[error("no enabled {0} pool")]
    NoPool(Family),
    /// Every address of the candidate pools is taken (or unreachable under the rules).
    #[error("{family} pools [{}] exhausted for node {node}: no free address in own blocks, no free block{limit}{borrow}", list(pools))]
    PoolExhausted {
        /// Requested family.
        family: Family,
        /// Pools that were searched.
        pools: Vec<IpNetwork>,
        /// The requesting node.
        node: String,
        /// `", block limit reached"` when max_blocks_per_node stopped a claim.
        limit: &'static str,
        /// `", nothing to borrow"` or `", borrowing disabled (strict affinity)"`.
        borrow: &'static str,
    },
    /// The requested address is in no configured pool.
    #[error("{0} is in no configured pool")]
    NotInPool(IpAddr),
    /// The requested address is reserved.
    #[error("{0} is reserved")]
    Reserved(IpAddr),
    /// The requested address is held by another handle.
    #[error("{ip} is already allocated to handle {handle}")]
    AddressInUse {
        /// The address.
        ip: IpAddr,
        /// Its holder.
        handle: String,
    },
    /// The handle already holds another address of that family.
    #[error("handle {handle} already holds {existing}")]
    HandleHasAddress {
        /// The handle.
        handle: String,
        /// Its current address of the family.
        existing: IpAddr,
    },
    /// Strict affinity: the requested address is in another node's block.
    #[error("{ip} is in block {block} owned by {owner} (strict affinity forbids borrowing)")]
    BlockNotAffine {
        /// The address.
        ip: IpAddr,
        /// Its block.
        block: IpNetwork,
        /// The block's owner.
        owner: String,
    },
    /// A release carried a sequence number that is not the allocation's: the address was
    /// released and handed out again since.
    #[error("stale release of {ip}: sequence {given}, allocation has {current}")]
    StaleSequence {
        /// The address.
        ip: IpAddr,
        /// The release's sequence number.
        given: u64,
        /// The live allocation's.
        current: u64,
    },
    /// Compare-and-swap kept failing.
    #[error("gave up after {attempts} conflicting attempts ({what})")]
    Contention {
        /// What was being done.
        what: &'static str,
        /// How many attempts.
        attempts: u32,
    },
    /// A stored value does not decode.
    #[error("corrupt value at {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// The decode error.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `10.0.0.0/16, 10.1.0.0/16`.
fn list(nets: &[IpNetwork]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl IpamError {
    /// A CAS conflict: the operation restarts from fresh reads.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, IpamError::Store(StoreError::Conflict { .. }))
    }
}
