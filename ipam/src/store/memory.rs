//! In-memory store for tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{Entry, Revision, Store, StoreError, Write};

#[derive(Debug, Default)]
struct Inner {
    map: BTreeMap<String, (Vec<u8>, Revision)>,
    last_revision: Revision,
}

/// A [`Store`] in a `BTreeMap` behind a mutex; revisions come from one global counter.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-written (each operation is a
        // single insert/remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Revision)>, StoreError> {
        Ok(self.lock().map.get(key).cloned())
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Revision>,
        new: Option<Vec<u8>>,
    ) -> Result<Revision, StoreError> {
        let mut inner = self.lock();
        let current = inner.map.get(key).map(|(_, rev)| *rev);
        if current != expected {
            return Err(StoreError::Conflict {
                key: key.to_string(),
            });
        }
        inner.last_revision += 1;
        let rev = inner.last_revision;
        match new {
            Some(value) => {
                inner.map.insert(key.to_string(), (value, rev));
            }
            None => {
                inner.map.remove(key);
            }
        }
        Ok(rev)
    }

    fn transact(&self, writes: &[Write]) -> Result<Revision, StoreError> {
        let mut inner = self.lock();
        if let Some(w) = writes
            .iter()
            .find(|w| inner.map.get(&w.key).map(|(_, rev)| *rev) != w.expected)
        {
            return Err(StoreError::Conflict { key: w.key.clone() });
        }
        inner.last_revision += 1;
        let rev = inner.last_revision;
        for w in writes {
            match &w.new {
                Some(value) => {
                    inner.map.insert(w.key.clone(), (value.clone(), rev));
                }
                None => {
                    inner.map.remove(&w.key);
                }
            }
        }
        Ok(rev)
    }

    fn list(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        Ok(self
            .lock()
            .map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, rev))| Entry {
                key: k.clone(),
                value: v.clone(),
                revision: *rev,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_semantics() {
        let s = MemoryStore::new();
        let r1 = s
            .compare_and_swap("a/1", None, Some(b"x".to_vec()))
            .unwrap();
        assert!(matches!(
            s.compare_and_swap("a/1", None, Some(b"y".to_vec())),
            Err(StoreError::Conflict { .. })
        ));
        let r2 = s
            .compare_and_swap("a/1", Some(r1), Some(b"y".to_vec()))
            .unwrap();
        assert!(r2 > r1);
        assert!(s.compare_and_swap("a/1", Some(r1), None).is_err());
        s.compare_and_swap("a/2", None, Some(b"z".to_vec()))
            .unwrap();
        s.compare_and_swap("b/1", None, Some(b"w".to_vec()))
            .unwrap();
        let keys: Vec<_> = s.list("a/").unwrap().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["a/1", "a/2"]);
        s.compare_and_swap("a/1", Some(r2), None).unwrap();
        assert_eq!(s.get("a/1").unwrap(), None);
        // Re-created keys never reuse a revision.
        let r3 = s
            .compare_and_swap("a/1", None, Some(b"x".to_vec()))
            .unwrap();
        assert!(r3 > r2);
    }
}
