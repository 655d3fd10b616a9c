//! The programmer writes in batches and pipelines them: while the table works on one batch,
//! the answers of the batch before are recorded and the next one is planned. Against a table
//! that takes its time over every batch, with routes changing and going away while batches
//! are in flight: never two batches in flight at once, never a destination twice in a batch,
//! no needless rewrite, and the table ends exactly at the last desired state.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fib::{
    FibConfig, MemoryTable, NextHop, Programmer, Route, RouteError, RouteEvent, RouteTable,
    RouteWrite, TableError, WriteResult,
};
use futures::stream::BoxStream;
use ipnetwork::IpNetwork;

const PROTO: u8 = 196;
/// More than two of the programmer's batches (16 Ki destinations each).
const ROUTES: u32 = 40_000;

/// A [`MemoryTable`] that yields to the scheduler several times inside every batch, as the
/// netlink table does while the kernel works, and records the batches.
#[derive(Clone)]
struct SlowTable {
    inner: MemoryTable,
    in_flight: Arc<AtomicUsize>,
    batches: Arc<Mutex<Vec<Vec<IpNetwork>>>>,
}

impl RouteTable for SlowTable {
    fn dump(&self) -> impl Future<Output = Result<Vec<Route>, TableError>> + Send {
        self.inner.dump()
    }

    fn add(
        &self,
        route: &Route,
        replace: bool,
    ) -> impl Future<Output = Result<Route, RouteError>> + Send {
        self.inner.add(route, replace)
    }

    fn delete(&self, route: &Route) -> impl Future<Output = Result<(), RouteError>> + Send {
        self.inner.delete(route)
    }

    async fn write_batch(&self, writes: &[RouteWrite]) -> Vec<WriteResult> {
        let before = self.in_flight.fetch_add(1, Ordering::SeqCst);
        assert_eq!(before, 0, "two batches in flight at once");
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        let out = self.inner.write_batch(writes).await;
        self.batches
            .lock()
            .unwrap()
            .push(writes.iter().map(RouteWrite::dst).collect());
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        out
    }

    fn subscribe(&self) -> Result<BoxStream<'static, RouteEvent>, TableError> {
        self.inner.subscribe()
    }
}

fn dst(i: u32) -> IpNetwork {
    IpNetwork::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 32).unwrap()
}

fn route(i: u32, gw: u8) -> Route {
    Route::unicast(
        dst(i),
        vec![NextHop::via(IpAddr::V4(Ipv4Addr::new(192, 0, 2, gw)))],
    )
}

#[test]
fn batches_in_flight_never_overlap_and_late_changes_land() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let table = SlowTable {
            inner: MemoryTable::new(PROTO),
            in_flight: Arc::new(AtomicUsize::new(0)),
            batches: Arc::new(Mutex::new(Vec::new())),
        };
        let cfg = FibConfig {
            stale_after: Duration::ZERO,
            ..FibConfig::default()
        };
        let fib = Programmer::spawn_with(table.clone(), &cfg);
        let mut want: BTreeMap<u32, Route> = BTreeMap::new();
        for i in 0..ROUTES {
            fib.set(route(i, 1));
            want.insert(i, route(i, 1));
        }
        // While the first batches are in flight: move every tenth route to another next
        // hop and drop every seventh, some of them in the batch being written.
        let changes = async {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            for i in (0..ROUTES).step_by(10) {
                fib.set(route(i, 2));
                want.insert(i, route(i, 2));
            }
            for i in (0..ROUTES).step_by(7) {
                fib.remove(dst(i));
                want.remove(&i);
            }
        };
        tokio::join!(fib.flush(), changes);
        fib.flush().await;

        let batches = table.batches.lock().unwrap().clone();
        assert!(batches.len() >= 3, "{} batches", batches.len());
        for b in &batches {
            let unique: HashSet<&IpNetwork> = b.iter().collect();
            assert_eq!(unique.len(), b.len(), "a destination twice in one batch");
        }
        // Each destination written at most once per desired state it went through.
        let mut writes: BTreeMap<IpNetwork, usize> = BTreeMap::new();
        for d in batches.iter().flatten() {
            *writes.entry(*d).or_default() += 1;
        }
        let worst = writes.iter().max_by_key(|(_, n)| **n);
        assert!(
            writes.values().all(|&n| n <= 3),
            "a destination rewritten needlessly: {worst:?}"
        );
        let total: usize = writes.values().sum();
        assert!(
            total <= (ROUTES + ROUTES / 10 + ROUTES / 7 + 2) as usize,
            "{total} writes"
        );
        for i in 0..ROUTES {
            let got = table.inner.get(&dst(i)).map(|(r, _)| r.normalized());
            assert_eq!(
                got,
                want.get(&i).map(Route::normalized),
                "{} in the table",
                dst(i)
            );
        }
        let status = fib.status().await;
        assert!(status.failed.is_empty(), "{:?}", status.failed);
        assert_eq!(status.installed.len(), want.len());
        fib.shutdown().await;
    });
}
