//! [`ipam::Store::transact`] on the memory store and on a real sled database (the etcd store
//! runs the same check in `etcd_store.rs`).

mod common;

use ipam::{MemoryStore, SledStore, Store};

#[test]
fn memory_store_transactions_are_all_or_nothing() {
    common::check_transact(&MemoryStore::new());
}

#[test]
fn sled_store_transactions_are_all_or_nothing_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let rev = {
        let s = SledStore::open(dir.path()).unwrap();
        common::check_transact(&s);
        s.flush().unwrap();
        s.get("t/c").unwrap().map(|(_, rev)| rev)
    };
    // Reopened (sled may hold its lock for a moment after the drop), the writes are there.
    let s = (0..50)
        .find_map(|_| {
            SledStore::open(dir.path()).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                None
            })
        })
        .unwrap();
    assert_eq!(s.get("t/c").unwrap().map(|(_, rev)| rev), rev);
    assert_eq!(s.list("t/").unwrap().len(), 2);
}
