//! allocate + release_handle round trips on MemoryStore and SledStore (with and without the
//! per-operation flush), reported as round trips per second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipam::{
    Allocator, Entry, IpamConfig, MemoryStore, Pool, Revision, SledStore, Store, StoreError, Write,
};

/// SledStore without the durability flush: shows what the fsync costs.
struct NoFlush(SledStore);

impl Store for NoFlush {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Revision)>, StoreError> {
        self.0.get(key)
    }
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Revision>,
        new: Option<Vec<u8>>,
    ) -> Result<Revision, StoreError> {
        self.0.compare_and_swap(key, expected, new)
    }
    fn transact(&self, writes: &[Write]) -> Result<Revision, StoreError> {
        self.0.transact(writes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        self.0.list(prefix)
    }
}

fn allocator(store: Arc<dyn Store>) -> Allocator {
    let cfg = IpamConfig::with_pools(vec![Pool::new("10.0.0.0/16".parse().unwrap())]);
    let a = Allocator::new(store, "bench", cfg).unwrap();
    // A warm node: one block with a few long-lived allocations.
    for i in 0..10 {
        a.allocate(&ipam::Request::new(format!("static{i}")))
            .unwrap();
    }
    a
}

fn round_trip(c: &mut Criterion, name: &str, a: &Allocator, samples: usize, secs: u64) {
    let n = AtomicU64::new(0);
    let mut group = c.benchmark_group("allocate+release");
    group.throughput(Throughput::Elements(1));
    group
        .sample_size(samples)
        .measurement_time(Duration::from_secs(secs));
    group.bench_function(name, |b| {
        b.iter(|| {
            let h = format!("h{}", n.fetch_add(1, Ordering::Relaxed));
            let got = a.allocate(&ipam::Request::new(&h)).unwrap();
            assert_eq!(a.release_handle(&h).unwrap(), vec![got.ip]);
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let mem = allocator(Arc::new(MemoryStore::new()));
    round_trip(c, "memory", &mem, 50, 3);

    let dir = tempfile::tempdir().unwrap();
    let sled = allocator(Arc::new(SledStore::open(dir.path().join("flush")).unwrap()));
    round_trip(c, "sled (flush per op)", &sled, 10, 5);

    let raw = allocator(Arc::new(NoFlush(
        SledStore::open(dir.path().join("noflush")).unwrap(),
    )));
    round_trip(c, "sled (no flush)", &raw, 20, 3);
}

criterion_group!(benches, bench);
criterion_main!(benches);
