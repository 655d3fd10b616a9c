//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipam::{Allocator, Entry, IpamConfig, MemoryStore, Pool, Revision, Store, StoreError};
use ipnetwork::IpNetwork;

pub fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Pools `cidr` with `block` prefix; defaults otherwise.
pub fn cfg(pools: &[(&str, u8)]) -> IpamConfig {
    IpamConfig {
        pools: pools
            .iter()
            .map(|(c, b)| Pool::new(net(c)).with_block_size(*b))
            .collect(),
        release_grace: Duration::from_secs(10),
        ..IpamConfig::default()
    }
}

pub fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

pub fn alloc(store: &Arc<dyn Store>, node: &str, cfg: &IpamConfig) -> Allocator {
    Allocator::new(store.clone(), node, cfg.clone()).unwrap()
}

pub type Fault = Box<dyn Fn(&str, Option<Revision>, Option<&[u8]>) -> bool + Send + Sync>;

/// A store that fails the writes a predicate picks, as if the process died right there.
pub struct FaultyStore {
    pub inner: Arc<dyn Store>,
    pub fault: Mutex<Option<Fault>>,
    pub conflicts: AtomicU64,
    pub yield_before_write: bool,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            fault: Mutex::new(None),
            conflicts: AtomicU64::new(0),
            yield_before_write: false,
        }
    }

    pub fn fail_when(
        &self,
        f: impl Fn(&str, Option<Revision>, Option<&[u8]>) -> bool + Send + Sync + 'static,
    ) {
        *self.fault.lock().unwrap() = Some(Box::new(f));
    }
}

impl Store for FaultyStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Revision)>, StoreError> {
        self.inner.get(key)
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Revision>,
        new: Option<Vec<u8>>,
    ) -> Result<Revision, StoreError> {
        if let Some(f) = self.fault.lock().unwrap().as_ref() {
            if f(key, expected, new.as_deref()) {
                return Err(StoreError::Backend(format!("injected crash writing {key}")));
            }
        }
        if self.yield_before_write {
            std::thread::yield_now();
        }
        let r = self.inner.compare_and_swap(key, expected, new);
        if matches!(r, Err(StoreError::Conflict { .. })) {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn list(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        self.inner.list(prefix)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}
