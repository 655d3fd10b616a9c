//! The allocator: pure allocation logic over a [`Store`].
//!
//! Every write is a compare-and-swap on the revision that was read. An operation that meets a
//! conflict starts again from fresh reads (at most [`MAX_ATTEMPTS`] times); each step is
//! idempotent, so a restart after a partial write (or a crash) converges.

mod affinity;
mod allocate;
mod batch;
mod check;
mod release;
mod report;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnetwork::IpNetwork;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::addr::{self, Family};
use crate::block::Block;
use crate::config::{IpamConfig, Pool};
use crate::error::IpamError;
use crate::keys;
use crate::store::{Revision, Store, StoreError, Write};

pub use batch::MAX_BATCH;
pub use check::{
    BlockIssue, BlockIssueKind, CheckReport, DanglingHandle, LeakReason, LeakedAllocation,
};
pub use report::{BlockUsage, NodeHoldings, PoolUsage};

/// Most attempts of one operation before [`IpamError::Contention`].
pub const MAX_ATTEMPTS: u32 = 100;

/// What to allocate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Who holds the address (CNI: `<network>.<container id>.<ifname>`). Required.
    pub handle: String,
    /// Family; `None` = from `pool` or `ip`, else IPv4.
    pub family: Option<Family>,
    /// Allocate only from this configured pool.
    pub pool: Option<IpNetwork>,
    /// Allocate exactly this address.
    pub ip: Option<IpAddr>,
    /// Free-form attributes stored with the allocation.
    pub attrs: BTreeMap<String, String>,
}

impl Request {
    /// A request for any address (IPv4 unless told otherwise) held by `handle`.
    pub fn new(handle: impl Into<String>) -> Self {
        Self {
            handle: handle.into(),
            ..Self::default()
        }
    }

    /// Sets the family.
    pub fn family(mut self, family: Family) -> Self {
        self.family = Some(family);
        self
    }

    /// Restricts the request to one pool.
    pub fn pool(mut self, pool: IpNetwork) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Asks for a specific address.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Adds an attribute.
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attrs.insert(key.into(), value.into());
        self
    }
}

/// An address handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The holder.
    pub handle: String,
    /// The address.
    pub ip: IpAddr,
    /// Prefix length to configure on the interface: always a host prefix (32 / 128), because
    /// Bramble is pure layer 3 — every workload reaches everything through its host.
    pub prefix_len: u8,
    /// The configured pool the block belongs to (`None` if that pool was removed from config).
    pub pool: Option<IpNetwork>,
    /// The block holding the address.
    pub block: IpNetwork,
    /// `true` when the block is affine to another node (the allocating node must announce a /32).
    pub borrowed: bool,
    /// The allocation's sequence number; pass it to [`Allocator::release_ip`] to make the
    /// release refuse an address that was meanwhile freed and reused.
    pub seq: u64,
}

/// An address given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The address.
    pub ip: IpAddr,
    /// Its former holder.
    pub handle: String,
    /// The allocation's sequence number.
    pub seq: u64,
}

/// Allocates and releases addresses for one node. Cheap to share (`&self` everywhere);
/// several allocators (threads, processes, nodes) may work on one store at once.
pub struct Allocator {
    store: Arc<dyn Store>,
    node: String,
    cfg: IpamConfig,
    own: Mutex<OwnCache>,
}

/// This node's blocks as last read or written by this allocator: the starting point of the
/// fast allocation path ([`Allocator::allocate_many`]). Only a hint — every write built on it
/// compares the block's revision, and a conflict sends the operation down the reading path,
/// which refreshes the cache.
#[derive(Debug, Default)]
struct OwnCache {
    /// Set once [`Allocator::own_blocks`] filled `blocks` with every block of this node.
    complete: bool,
    /// By CIDR text, the order in which [`Allocator::own_blocks`] lists them.
    blocks: BTreeMap<String, (Block, Revision)>,
}

impl std::fmt::Debug for Allocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Allocator")
            .field("node", &self.node)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Allocator {
    /// An allocator for `node` (non-empty, no `/`), with validated configuration.
    pub fn new(store: Arc<dyn Store>, node: &str, cfg: IpamConfig) -> Result<Self, IpamError> {
        if node.is_empty() || node.contains('/') {
            return Err(IpamError::InvalidNode(node.to_string()));
        }
        cfg.validate()?;
        Ok(Self {
            store,
            node: node.to_string(),
            cfg,
            own: Mutex::default(),
        })
    }

    /// This allocator's node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The configuration in use.
    pub fn config(&self) -> &IpamConfig {
        &self.cfg
    }

    // ----- store helpers -----

    fn get_rec<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, Revision)>, IpamError> {
        match self.store.get(key)? {
            Some((raw, rev)) => Ok(Some((decode(key, &raw)?, rev))),
            None => Ok(None),
        }
    }

    fn put_rec<T: Serialize>(
        &self,
        key: &str,
        expected: Option<Revision>,
        value: Option<&T>,
    ) -> Result<Revision, IpamError> {
        let w = write_rec(key, expected, value)?;
        Ok(self.store.compare_and_swap(key, expected, w.new)?)
    }

    fn list_rec<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T, Revision)>, IpamError> {
        self.store
            .list(prefix)?
            .into_iter()
            .map(|e| Ok((e.key.clone(), decode(&e.key, &e.value)?, e.revision)))
            .collect()
    }

    fn own_cache(&self) -> MutexGuard<'_, OwnCache> {
        // The cache is a hint: a panic while it was held cannot make it unsafe to use.
        self.own.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `block` at `rev` (just read or written) in the cache of this node's blocks.
    fn remember_block(&self, block: &Block, rev: Revision) {
        let mut own = self.own_cache();
        if block.affinity.as_deref() == Some(self.node.as_str()) {
            own.blocks
                .insert(block.cidr.to_string(), (block.clone(), rev));
        } else {
            own.blocks.remove(&block.cidr.to_string());
        }
    }

    /// Forgets the cache: the next allocation reads this node's blocks again.
    fn forget_own_blocks(&self) {
        *self.own_cache() = OwnCache::default();
    }

    /// Writes `block` over revision `expected` and keeps the cache in step.
    fn put_block(&self, block: &Block, expected: Option<Revision>) -> Result<Revision, IpamError> {
        match self.put_rec(&keys::block(block.cidr), expected, Some(block)) {
            Ok(rev) => {
                self.remember_block(block, rev);
                Ok(rev)
            }
            Err(e) => {
                if e.is_conflict() {
                    self.forget_own_blocks();
                }
                Err(e)
            }
        }
    }

    /// [`Store::transact`]; a conflict forgets the block cache (something changed under it).
    fn transact(&self, writes: &[Write]) -> Result<Revision, IpamError> {
        self.store.transact(writes).map_err(|e| {
            if matches!(e, StoreError::Conflict { .. }) {
                self.forget_own_blocks();
            }
            IpamError::Store(e)
        })
    }

    /// Runs `f` until it does not hit a CAS conflict.
    fn retry<T>(
        &self,
        what: &'static str,
        mut f: impl FnMut() -> Result<T, IpamError>,
    ) -> Result<T, IpamError> {
        for attempt in 1..=MAX_ATTEMPTS {
            match f() {
                Err(e) if e.is_conflict() => {
                    tracing::debug!(node = %self.node, what, attempt, error = %e, "retrying after conflict");
                    std::thread::yield_now();
                }
                other => return other,
            }
        }
        Err(IpamError::Contention {
            what,
            attempts: MAX_ATTEMPTS,
        })
    }

    // ----- pool helpers -----

    fn pool_of_net(&self, net: IpNetwork) -> Option<&Pool> {
        self.cfg
            .pools
            .iter()
            .find(|p| addr::net_contains(p.cidr, net))
    }

    fn pool_of_ip(&self, ip: IpAddr) -> Option<&Pool> {
        self.cfg.pools.iter().find(|p| p.cidr.contains(ip))
    }

    fn is_reserved(&self, ip: IpAddr) -> bool {
        self.cfg.reservations.iter().any(|r| r.contains(ip))
    }

    /// The block that holds (or would hold) `ip`: from its pool, else from the stored blocks
    /// (a pool removed from config still has its blocks).
    fn block_of_ip(&self, ip: IpAddr) -> Result<Option<IpNetwork>, IpamError> {
        if let Some(pool) = self.pool_of_ip(ip) {
            return Ok(addr::enclosing(ip, pool.block_size));
        }
        Ok(self
            .store
            .list(keys::BLOCKS)?
            .iter()
            .filter_map(|e| e.key.strip_prefix(keys::BLOCKS)?.parse::<IpNetwork>().ok())
            .find(|cidr| cidr.contains(ip)))
    }
}

/// One write of a transaction: `value` as JSON (or a delete) over revision `expected`.
fn write_rec<T: Serialize>(
    key: &str,
    expected: Option<Revision>,
    value: Option<&T>,
) -> Result<Write, IpamError> {
    let new = match value {
        Some(v) => Some(serde_json::to_vec(v).map_err(|e| IpamError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })?),
        None => None,
    };
    Ok(Write {
        key: key.to_string(),
        expected,
        new,
    })
}

fn decode<T: DeserializeOwned>(key: &str, raw: &[u8]) -> Result<T, IpamError> {
    serde_json::from_slice(raw).map_err(|e| IpamError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

/// A conflict error for `key`, used to restart an operation that lost a race.
fn conflict(key: String) -> IpamError {
    IpamError::Store(StoreError::Conflict { key })
}

/// Ignores a conflict (someone else already made the change).
fn ok_if_conflict(r: Result<Revision, IpamError>) -> Result<(), IpamError> {
    match r {
        Err(e) if !e.is_conflict() => Err(e),
        _ => Ok(()),
    }
}
