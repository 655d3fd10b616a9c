//! Durable store on sled.
//!
//! Each value is stored as `revision (8 bytes, big endian) ‖ payload`; revisions come from
//! `sled::Db::generate_id`, which is unique and increasing across restarts, so a re-created key
//! never gets an old revision back. A write is a sled compare-and-swap on the exact old bytes,
//! after checking the revision they carry.
//!
//! Durability: sled writes go to its log in memory and reach the disk on `flush` (or its
//! background flusher, every 500 ms by default). The allocator calls [`Store::flush`] before it
//! acknowledges an allocation or release, so an acknowledged allocation survives a crash. The
//! cost is one `fsync` per operation: see `benches/alloc.rs` and the crate README section in
//! `lib.rs` for measured numbers.

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{Entry, Revision, Store, StoreError, Write};

/// A [`Store`] on a sled database directory. sled locks the directory: one process at a time.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// `revision ‖ payload`, as stored.
fn stored(rev: Revision, payload: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(8 + payload.len());
    raw.extend_from_slice(&rev.to_be_bytes());
    raw.extend_from_slice(payload);
    raw
}

fn split(key: &[u8], raw: &[u8]) -> Result<(Vec<u8>, Revision), StoreError> {
    let (rev, payload) = raw.split_at_checked(8).ok_or_else(|| {
        StoreError::Backend(format!(
            "value of {} is shorter than its revision header",
            String::from_utf8_lossy(key)
        ))
    })?;
    let mut buf = [0u8; 8];
    buf.copy_from_slice(rev);
    Ok((payload.to_vec(), u64::from_be_bytes(buf)))
}

impl SledStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = sled::open(path).map_err(backend)?;
        Ok(Self { db })
    }

    fn next_revision(&self) -> Result<Revision, StoreError> {
        // generate_id starts at 0; revisions start at 1.
        Ok(self.db.generate_id().map_err(backend)? + 1)
    }
}

impl Store for SledStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Revision)>, StoreError> {
        match self.db.get(key).map_err(backend)? {
            Some(raw) => Ok(Some(split(key.as_bytes(), &raw)?)),
            None => Ok(None),
        }
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Revision>,
        new: Option<Vec<u8>>,
    ) -> Result<Revision, StoreError> {
        let conflict = || StoreError::Conflict {
            key: key.to_string(),
        };
        let old = self.db.get(key).map_err(backend)?;
        let current = match &old {
            Some(raw) => Some(split(key.as_bytes(), raw)?.1),
            None => None,
        };
        if current != expected {
            return Err(conflict());
        }
        let rev = self.next_revision()?;
        let new_raw = new.map(|payload| stored(rev, &payload));
        // sled compares the exact old bytes, which embed the revision: a concurrent writer in
        // between makes this fail.
        match self
            .db
            .compare_and_swap(key, old, new_raw)
            .map_err(backend)?
        {
            Ok(()) => Ok(rev),
            Err(_) => Err(conflict()),
        }
    }

    fn transact(&self, writes: &[Write]) -> Result<Revision, StoreError> {
        let rev = self.next_revision()?;
        // A sled transaction excludes every other write to the tree while it commits, and
        // re-runs this closure if another transaction got in between.
        let done = self.db.transaction(|tx| {
            for w in writes {
                let current = match tx.get(w.key.as_bytes())? {
                    Some(raw) => Some(
                        split(w.key.as_bytes(), &raw)
                            .map_err(ConflictableTransactionError::Abort)?
                            .1,
                    ),
                    None => None,
                };
                if current != w.expected {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict {
                        key: w.key.clone(),
                    }));
                }
                match &w.new {
                    Some(payload) => {
                        tx.insert(w.key.as_bytes(), stored(rev, payload))?;
                    }
                    None => {
                        tx.remove(w.key.as_bytes())?;
                    }
                }
            }
            Ok(())
        });
        match done {
            Ok(()) => Ok(rev),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(backend(e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        self.db
            .scan_prefix(prefix)
            .map(|item| {
                let (k, raw) = item.map_err(backend)?;
                let (value, revision) = split(&k, &raw)?;
                let key = String::from_utf8(k.to_vec()).map_err(backend)?;
                Ok(Entry {
                    key,
                    value,
                    revision,
                })
            })
            .collect()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let r1;
        {
            let s = SledStore::open(dir.path()).unwrap();
            r1 = s
                .compare_and_swap("k/1", None, Some(b"v1".to_vec()))
                .unwrap();
            assert!(s
                .compare_and_swap("k/1", None, Some(b"v".to_vec()))
                .is_err());
            assert!(s.compare_and_swap("k/1", Some(r1 + 7), None).is_err());
            s.compare_and_swap("k/2", None, Some(b"v2".to_vec()))
                .unwrap();
            s.flush().unwrap();
        }
        // sled's background flusher may still hold the file lock for a moment after the
        // drop (WouldBlock): retry briefly, as a restarted process would not need to.
        let mut tries = 0;
        let s = loop {
            match SledStore::open(dir.path()) {
                Ok(s) => break s,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopen failed: {e}"),
            }
        };
        assert_eq!(s.get("k/1").unwrap(), Some((b"v1".to_vec(), r1)));
        assert_eq!(s.list("k/").unwrap().len(), 2);
        let r2 = s.compare_and_swap("k/1", Some(r1), None).unwrap();
        assert!(r2 > r1);
        let r3 = s
            .compare_and_swap("k/1", None, Some(b"again".to_vec()))
            .unwrap();
        assert!(r3 > r2);
    }
}
