//! The key-value store the allocator runs on.
//!
//! The allocator only ever reads with [`Store::get`] / [`Store::list`] and writes with
//! [`Store::compare_and_swap`] on the revision it read, so any store with per-key revisions
//! (sled here, etcd's `mod_revision` later) gives the same guarantees.

pub mod etcd;
mod memory;
mod sled_store;

pub use etcd::{EtcdOptions, EtcdStore};
pub use memory::MemoryStore;
pub use sled_store::SledStore;

/// A key's revision. Revisions are unique across the whole store and grow monotonically, so a
/// key that was deleted and re-created never gets back an old revision (no ABA).
pub type Revision = u64;

/// One key with its value and revision, as returned by [`Store::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Full key.
    pub key: String,
    /// Stored bytes.
    pub value: Vec<u8>,
    /// Revision of the last write to this key.
    pub revision: Revision,
}

/// One conditional write of a [`Store::transact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Full key.
    pub key: String,
    /// The revision the key must be at (`None` = it must not exist).
    pub expected: Option<Revision>,
    /// The new value, `None` = delete the key.
    pub new: Option<Vec<u8>>,
}

/// Store failures.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The key's revision was not the expected one (or it existed / did not exist).
    #[error("compare-and-swap conflict on {key}")]
    Conflict {
        /// The contended key.
        key: String,
    },
    /// The store did not answer within its time bound (etcd unreachable, no quorum, …).
    /// Nothing is known to have changed; the caller may try again later.
    #[error("store unavailable: {what} got no answer within {timeout:?}{}", last_error(.last))]
    Timeout {
        /// The operation (`get /bramble/blocks/…`).
        what: String,
        /// The bound.
        timeout: std::time::Duration,
        /// The last transport error seen, if any.
        last: String,
    },
    /// The backend failed (I/O, corruption, …).
    #[error("store backend error: {0}")]
    Backend(String),
}

fn last_error(last: &str) -> String {
    if last.is_empty() {
        String::new()
    } else {
        format!(" (last error: {last})")
    }
}

/// A key-value store with per-key revisions and compare-and-swap.
pub trait Store: Send + Sync {
    /// The value and revision of `key`, if it exists.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Revision)>, StoreError>;

    /// Writes `new` (or deletes the key when `new` is `None`) only if the key's current revision
    /// is `expected` (`None` = the key must not exist). Returns the revision of the write.
    /// A mismatch is [`StoreError::Conflict`] and changes nothing.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Revision>,
        new: Option<Vec<u8>>,
    ) -> Result<Revision, StoreError>;

    /// Applies every write of `writes` (distinct keys) only if every key is at its expected
    /// revision: all or nothing, in one step (one etcd transaction, one sled transaction).
    /// Returns the revision the written keys now carry; a mismatch on any key is
    /// [`StoreError::Conflict`] (naming the first key) and changes nothing.
    fn transact(&self, writes: &[Write]) -> Result<Revision, StoreError>;

    /// Every key starting with `prefix`, in key order.
    fn list(&self, prefix: &str) -> Result<Vec<Entry>, StoreError>;

    /// Checks that the store answers right now, before a write that must not be left in
    /// flight: a write sent into a partition may be delivered after the caller gave up on it
    /// (a timeout is ambiguous), so callers that promise "failed means nothing was stored"
    /// first make sure the store is reachable. Local stores are always reachable.
    fn reachable(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Makes every write done so far durable. The allocator calls it before acknowledging an
    /// allocation or release. In-memory stores do nothing.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
