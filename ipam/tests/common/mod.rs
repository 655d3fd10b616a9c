//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipam::{Allocator, Entry, IpamConfig, MemoryStore, Pool, Revision, Store, StoreError, Write};
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
    /// Calls of [`Store::transact`] that reached the inner store.
    pub transactions: AtomicU64,
    pub yield_before_write: bool,
    /// Faulted writes land, and the call still fails with a timeout: etcd's ambiguous
    /// outcome when the answer is lost on the way back.
    pub land_then_fail: bool,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            fault: Mutex::new(None),
            conflicts: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            yield_before_write: false,
            land_then_fail: false,
        }
    }

    pub fn fail_when(
        &self,
        f: impl Fn(&str, Option<Revision>, Option<&[u8]>) -> bool + Send + Sync + 'static,
    ) {
        *self.fault.lock().unwrap() = Some(Box::new(f));
    }
}

/// The timeout a caller sees when `_landed` went through but its answer was lost.
fn lost_answer<T>(key: &str, _landed: Result<T, StoreError>) -> StoreError {
    StoreError::Timeout {
        what: format!("write {key}"),
        timeout: Duration::from_secs(5),
        last: "injected: answer lost".into(),
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
                if self.land_then_fail {
                    return Err(lost_answer(
                        key,
                        self.inner.compare_and_swap(key, expected, new),
                    ));
                }
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

    fn transact(&self, writes: &[Write]) -> Result<Revision, StoreError> {
        // All or nothing: a fault on any key fails the whole transaction.
        if let Some(f) = self.fault.lock().unwrap().as_ref() {
            if let Some(w) = writes
                .iter()
                .find(|w| f(&w.key, w.expected, w.new.as_deref()))
            {
                if self.land_then_fail {
                    return Err(lost_answer(&w.key, self.inner.transact(writes)));
                }
                return Err(StoreError::Backend(format!(
                    "injected crash writing {}",
                    w.key
                )));
            }
        }
        if self.yield_before_write {
            std::thread::yield_now();
        }
        self.transactions.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.transact(writes);
        if matches!(r, Err(StoreError::Conflict { .. })) {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn list(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        self.inner.list(prefix)
    }

    fn reachable(&self) -> Result<(), StoreError> {
        self.inner.reachable()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

fn w(key: &str, expected: Option<Revision>, new: Option<&str>) -> Write {
    Write {
        key: key.to_string(),
        expected,
        new: new.map(|v| v.as_bytes().to_vec()),
    }
}

/// [`Store::transact`] semantics, on any store: all keys at their expected revisions or
/// nothing written; one revision for every key written; deletes; the conflict names a key.
pub fn check_transact(s: &dyn Store) {
    let r1 = s
        .transact(&[w("t/a", None, Some("a1")), w("t/b", None, Some("b1"))])
        .unwrap();
    assert_eq!(s.get("t/a").unwrap(), Some((b"a1".to_vec(), r1)));
    assert_eq!(s.get("t/b").unwrap(), Some((b"b1".to_vec(), r1)));
    // One stale expectation: nothing changes.
    let stale = s.transact(&[
        w("t/a", Some(r1), Some("a2")),
        w("t/b", Some(r1 + 1000), Some("b2")),
        w("t/c", None, Some("c2")),
    ]);
    assert!(
        matches!(&stale, Err(StoreError::Conflict { key }) if key.starts_with("t/")),
        "{stale:?}"
    );
    assert_eq!(s.get("t/a").unwrap(), Some((b"a1".to_vec(), r1)));
    assert_eq!(s.get("t/c").unwrap(), None);
    // "Must not exist" on an existing key: nothing changes.
    assert!(s
        .transact(&[w("t/c", None, Some("c")), w("t/a", None, Some("x"))])
        .is_err());
    assert_eq!(s.get("t/c").unwrap(), None);
    // Update one, delete one, create one.
    let r2 = s
        .transact(&[
            w("t/a", Some(r1), Some("a2")),
            w("t/b", Some(r1), None),
            w("t/c", None, Some("c2")),
        ])
        .unwrap();
    assert!(r2 > r1);
    let keys: Vec<(String, Revision)> = s
        .list("t/")
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.revision))
        .collect();
    assert_eq!(keys, vec![("t/a".to_string(), r2), ("t/c".to_string(), r2)]);
    // The single-key compare-and-swap sees the transaction's revision.
    assert!(s
        .compare_and_swap("t/a", Some(r2), Some(b"a3".to_vec()))
        .is_ok());
}
