//! IP address management on a durable block pool (Calico's model).
//!
//! - **Pools** ([`Pool`], IPv4 and IPv6) are cut into **blocks** ([`Block`], /26 and /122 by
//!   default). A block holds a bitmap of its addresses, one [`AllocRecord`] per allocation
//!   (handle, attributes), a block sequence number and a per-allocation sequence number.
//! - A node **claims** a block in two steps (affinity pending → block created → affinity
//!   confirmed) and allocates from its own blocks first, then claims a new one, then (unless
//!   `strict_affinity`) **borrows** a free address from another node's block.
//! - A **handle** holds at most one IPv4 and one IPv6 address; allocating again with the same
//!   handle and family returns the same address.
//! - All logic is in [`Allocator`] over the [`Store`] trait; every write is a compare-and-swap
//!   on a revision, so the same code is correct on [`MemoryStore`], [`SledStore`] and etcd.
//!
//! Key layout: see the `keys` module (`blocks/<cidr>`, `affinity/<node>/<cidr>`,
//! `handles/<id>`; values are JSON). Pools and reservations are configuration, not stored.
//!
//! Durability cost: [`SledStore`] flushes (fsync) before every acknowledged allocation or
//! release; `cargo bench -p ipam` measures allocate+release on both stores.

mod addr;
mod allocator;
mod block;
mod config;
mod error;
mod keys;
mod records;
pub mod store;

pub use addr::Family;
pub use allocator::{
    Allocation, Allocator, BlockIssue, BlockIssueKind, BlockUsage, CheckReport, DanglingHandle,
    LeakReason, LeakedAllocation, PoolUsage, Released, Request, MAX_ATTEMPTS,
};
pub use block::{AllocRecord, Block};
pub use config::{
    ConfigError, IpamConfig, Pool, BLOCK_RANGE_V4, BLOCK_RANGE_V6, DEFAULT_BLOCK_V4,
    DEFAULT_BLOCK_V6,
};
pub use error::IpamError;
pub use records::{AffinityRecord, AffinityState, HandleAddr, HandleRecord};
pub use store::{Entry, MemoryStore, Revision, SledStore, Store, StoreError};
