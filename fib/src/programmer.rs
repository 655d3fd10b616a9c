//! The `Programmer` task and the `FibHandle` the speaker drives it with.

use foldhash::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use futures::FutureExt;
use ipnetwork::IpNetwork;
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::Instant;

use crate::netlink::NetlinkTable;
use crate::route::Route;
use crate::state::{later, Core, Kind, Kinds, Op};
use crate::table::{RouteError, RouteEvent, RouteTable, TableError, WriteResult};

/// Shortest full-resync interval (a zero interval would dump in a loop).
const MIN_RESYNC: Duration = Duration::from_secs(1);
/// Most destinations written per batch: the route copies, requests and answers of one
/// batch stay small, and the first writes go out while the rest is still arriving (the
/// loop comes back at once while anything is dirty).
const APPLY_BATCH: usize = 16 * 1024;
/// Delay before subscribing again to route notifications after the stream ended.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// How the programmer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibConfig {
    /// Kernel routing table id (254 = main).
    pub table: u32,
    /// `rtm_protocol` that marks our routes (196 = bramble).
    pub protocol: u8,
    /// How long an owned route that nobody wants survives after start before it is
    /// deleted (the graceful-restart window); `Duration::ZERO` deletes at once.
    pub stale_after: Duration,
    /// Interval of the full resync against a dump of the kernel (at least 1 s).
    pub resync: Duration,
}

impl Default for FibConfig {
    fn default() -> Self {
        Self {
            table: 254,
            protocol: 196,
            stale_after: Duration::from_secs(120),
            resync: Duration::from_secs(90),
        }
    }
}

/// Why the programmer could not start.
#[derive(Debug, thiserror::Error)]
pub enum FibError {
    /// `spawn` was called outside a tokio runtime.
    #[error("no tokio runtime to run the FIB programmer on")]
    NoRuntime,
    /// The route table could not be opened.
    #[error(transparent)]
    Table(#[from] TableError),
}

/// A snapshot of the programmer's view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FibStatus {
    /// Desired routes the kernel holds: (the route as asked for, the route as the kernel
    /// holds it — next hops resolved and interfaces filled in).
    pub installed: Vec<(Route, Route)>,
    /// Desired routes (or deletions) the kernel refused, with its error text; retried
    /// with back-off (1 s doubling to 60 s; foreign conflicts at each full resync).
    pub failed: Vec<(IpNetwork, String)>,
    /// Times a destination we wanted was found held by another protocol's route.
    pub foreign_conflicts: u64,
    /// Times a route of ours deleted by someone else was put back.
    pub repaired: u64,
    /// Our routes in the kernel that nobody wants (yet) and that wait for the end of the
    /// graceful-restart window: right after start, the routes a previous run left.
    pub stale: usize,
}

#[derive(Default)]
struct Pending {
    /// Coalesced changes: the last word per destination (`None` = remove), route bodies
    /// shared through `kinds` (a million routes over a few next-hop sets hold a few).
    changes: HashMap<IpNetwork, Option<Kind>>,
    kinds: Kinds,
    /// Number of `set`/`remove` calls so far, plus one for the start-up sync.
    seq: u64,
    closed: bool,
    /// [`FibHandle::end_stale`] was called: delete unwanted routes now.
    end_stale: bool,
    status: Vec<oneshot::Sender<FibStatus>>,
}

struct Shared {
    pending: Mutex<Pending>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }
}

/// Closes the programmer when the last `FibHandle` clone goes.
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The speaker's side of the programmer. Cheap to clone; the programmer stops (leaving
/// the kernel's routes as they are, for the next start to adopt) when the last clone is
/// dropped or on [`FibHandle::shutdown`].
///
/// `set` and `remove` never block and never wait for the kernel: they record the last
/// wish per destination in a map behind a mutex and wake the task. Memory is bounded by
/// the number of distinct destinations, so FIB churn cannot hold up BGP sessions, and a
/// destination changed many times while the task is busy is written once.
#[derive(Clone)]
pub struct FibHandle {
    shared: Arc<Shared>,
    applied: watch::Receiver<u64>,
    _close: Arc<CloseOnDrop>,
}

impl FibHandle {
    fn push(&self, dst: IpNetwork, change: Option<Route>) {
        // Next hops in order, so equal routes share one body.
        let change = change.map(|r| r.normalized().kind);
        let mut pending = self.shared.lock();
        let change = change.map(|kind| pending.kinds.intern(kind));
        pending.changes.insert(dst, change);
        pending.seq += 1;
        drop(pending);
        self.shared.notify.notify_one();
    }

    /// Wants `route` in the kernel (replacing the earlier wish for its destination).
    pub fn set(&self, route: Route) {
        self.push(route.dst, Some(route));
    }

    /// No longer wants a route to `dst`; ours is deleted from the kernel.
    pub fn remove(&self, dst: IpNetwork) {
        self.push(dst, None);
    }

    /// Ends the graceful-restart window now (RFC 4724 §4.1, the restarting speaker is done
    /// with route selection): every route of ours a previous run left that nobody has
    /// wanted since is deleted; routes wanted again (set with the same value) are not
    /// touched. Changes queued before this call are applied first.
    pub fn end_stale(&self) {
        let mut pending = self.shared.lock();
        pending.end_stale = true;
        pending.seq += 1;
        drop(pending);
        self.shared.notify.notify_one();
    }

    /// Waits until every change queued before this call has been written to the kernel
    /// (or has failed; failures are retried later). Also waits for the start-up sync.
    /// Returns at once if the programmer has stopped.
    pub async fn flush(&self) {
        let target = self.shared.lock().seq;
        self.shared.notify.notify_one();
        let mut applied = self.applied.clone();
        // Err: the task is gone; nothing more will be applied.
        let _ = applied.wait_for(|done| *done >= target).await;
    }

    /// The programmer's current view; an empty status if it has stopped.
    pub async fn status(&self) -> FibStatus {
        let (tx, rx) = oneshot::channel();
        self.shared.lock().status.push(tx);
        self.shared.notify.notify_one();
        rx.await.unwrap_or_default()
    }

    /// Stops the programmer and waits until its task has ended (its netlink sockets
    /// closed). Routes stay in the kernel.
    pub async fn shutdown(self) {
        self.shared.close();
        let mut applied = self.applied.clone();
        while applied.changed().await.is_ok() {}
    }
}

/// Converges one kernel routing table to the desired routes, owning only the routes of
/// its protocol number. Runs as its own tokio task; see the crate docs.
pub struct Programmer<T: RouteTable> {
    table: T,
    resync: Duration,
    core: Core,
    shared: Arc<Shared>,
    applied: watch::Sender<u64>,
    events: Option<BoxStream<'static, RouteEvent>>,
    resubscribe_at: Option<Instant>,
}

impl Programmer<NetlinkTable> {
    /// Starts the programmer on the kernel through rtnetlink, in the current tokio
    /// runtime and the network namespace of the calling thread.
    pub fn spawn(cfg: FibConfig) -> Result<FibHandle, FibError> {
        tokio::runtime::Handle::try_current().map_err(|_| FibError::NoRuntime)?;
        let table = NetlinkTable::new(cfg.table, cfg.protocol)?;
        Ok(Programmer::spawn_with(table, &cfg))
    }
}

impl<T: RouteTable> Programmer<T> {
    /// Starts the programmer over any route table (e.g. `MemoryTable` in tests). Only
    /// `stale_after` and `resync` of `cfg` are used; the table carries table and protocol.
    /// Panics outside a tokio runtime (as `tokio::spawn` does).
    pub fn spawn_with(table: T, cfg: &FibConfig) -> FibHandle {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                seq: 1,
                ..Pending::default()
            }),
            notify: Notify::new(),
        });
        let (applied_tx, applied_rx) = watch::channel(0);
        let programmer = Programmer {
            table,
            resync: cfg.resync.max(MIN_RESYNC),
            core: Core::new(cfg.stale_after, cfg.resync),
            shared: Arc::clone(&shared),
            applied: applied_tx,
            events: None,
            resubscribe_at: None,
        };
        tokio::spawn(programmer.run());
        FibHandle {
            shared: Arc::clone(&shared),
            applied: applied_rx,
            _close: Arc::new(CloseOnDrop(shared)),
        }
    }

    async fn run(mut self) {
        self.subscribe();
        self.resync_now(true).await;
        let mut next_resync = later(Instant::now(), self.resync);
        loop {
            let (changes, seq, closed, status, end_stale) = {
                let mut p = self.shared.lock();
                (
                    std::mem::take(&mut p.changes),
                    p.seq,
                    p.closed,
                    std::mem::take(&mut p.status),
                    std::mem::take(&mut p.end_stale),
                )
            };
            if closed {
                tracing::debug!("FIB programmer stopping");
                return;
            }
            for tx in status {
                let _ = tx.send(self.status());
            }
            ingest(&mut self.core, changes);
            let now = Instant::now();
            if end_stale {
                let n = self.core.stale_count();
                tracing::info!(
                    routes = n,
                    "graceful restart over: deleting the stale routes nobody wants"
                );
                self.core.end_stale(now);
            }
            if now >= next_resync {
                self.resync_now(false).await;
                next_resync = later(now, self.resync);
            } else if self.core.verify_at.is_some_and(|t| t <= now) {
                self.resync_now(false).await;
            }
            if self.resubscribe_at.is_some_and(|t| t <= now) {
                self.subscribe();
                self.resync_now(false).await;
            }
            self.core.wake_due(now);
            self.apply().await;
            // A batch at a time: everything up to `seq` is written once nothing is dirty.
            if !self.core.has_dirty() {
                self.applied.send_replace(seq);
            }

            let more = {
                let p = self.shared.lock();
                !p.changes.is_empty() || !p.status.is_empty() || p.closed || p.end_stale
            };
            if more || self.core.has_dirty() {
                continue;
            }
            let deadline = [
                Some(next_resync),
                self.core.next_deadline(),
                self.resubscribe_at,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_resync);
            let events = self.events.as_mut();
            tokio::select! {
                _ = self.shared.notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                event = next_event(events) => self.on_event(event),
            }
        }
    }

    fn on_event(&mut self, event: Option<RouteEvent>) {
        let Some(event) = event else {
            tracing::warn!("route notifications ended; subscribing again");
            self.events = None;
            self.resubscribe_at = Some(Instant::now() + RESUBSCRIBE_DELAY);
            return;
        };
        let now = Instant::now();
        let mut next = Some(event);
        // Drain what is already queued, greedily.
        while let Some(RouteEvent::Deleted(route)) = next {
            self.core.on_deleted(&route, now);
            next = self
                .events
                .as_mut()
                .and_then(|s| s.next().now_or_never().flatten());
        }
    }

    fn subscribe(&mut self) {
        match self.table.subscribe() {
            Ok(stream) => {
                self.events = Some(stream);
                self.resubscribe_at = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to route notifications");
                self.resubscribe_at = Some(Instant::now() + RESUBSCRIBE_DELAY);
            }
        }
    }

    async fn resync_now(&mut self, initial: bool) {
        self.core.verify_at = None;
        match self.table.dump().await {
            Ok(routes) => {
                tracing::debug!(routes = routes.len(), initial, "FIB resync");
                self.core.reconcile(routes, Instant::now(), initial);
            }
            Err(e) => tracing::warn!(error = %e, "route dump failed; keeping the last view"),
        }
    }

    /// Writes everything that is due, as one batch (see [`RouteTable::write_batch`]).
    /// Writes what is dirty, a batch at a time, pipelined: while the kernel works on one
    /// batch, the answers of the one before are recorded and the next is planned.
    async fn apply(&mut self) {
        let mut ops = self.core.plan(Instant::now(), APPLY_BATCH, true);
        let mut answered: Option<(Vec<Op>, Vec<WriteResult>)> = None;
        while !ops.is_empty() {
            let started = std::time::Instant::now();
            let count = ops.len();
            let mut next = None;
            let results = {
                let write = self.table.write_batch(&ops);
                tokio::pin!(write);
                loop {
                    tokio::select! {
                        biased;
                        results = &mut write => break results,
                        // The first poll above handed the batch to the kernel's thread.
                        () = std::future::ready(()), if answered.is_some() || next.is_none() => {
                            if let Some((done, results)) = answered.take() {
                                complete(&mut self.core, done, results);
                            }
                            // Only destinations queued already: none of them is in flight.
                            next = Some(self.core.plan(Instant::now(), APPLY_BATCH, false));
                        }
                        // While the kernel works, take in what the speaker queued meanwhile.
                        // A destination in flight that changes is dirty again and written
                        // once more after this batch.
                        () = self.shared.notify.notified() => {
                            let changes = std::mem::take(&mut self.shared.lock().changes);
                            ingest(&mut self.core, changes);
                        }
                    }
                }
            };
            tracing::debug!(writes = count, elapsed = ?started.elapsed(), "FIB writes applied");
            if let Some((done, results)) = answered.take() {
                complete(&mut self.core, done, results);
            }
            answered = Some((ops, results));
            ops = next.unwrap_or_default();
        }
        if let Some((done, results)) = answered {
            complete(&mut self.core, done, results);
        }
    }

    fn status(&self) -> FibStatus {
        FibStatus {
            installed: self.core.installed(),
            failed: self.core.failed(),
            foreign_conflicts: self.core.foreign_conflicts,
            repaired: self.core.repaired,
            stale: self.core.stale_count(),
        }
    }
}

/// Records the kernel's answers to `ops`. One answer per write; a table that answers fewer
/// leaves the rest failed (and retried), never silently dropped.
fn complete(core: &mut Core, ops: Vec<Op>, results: Vec<WriteResult>) {
    let now = Instant::now();
    let mut results = results.into_iter();
    for op in ops {
        let result = results
            .next()
            .unwrap_or_else(|| Err(RouteError::other("no answer from the route table")));
        core.complete(op, result, now);
    }
}

/// Hands queued changes to the bookkeeping.
fn ingest(core: &mut Core, changes: HashMap<IpNetwork, Option<Kind>>) {
    for (dst, change) in changes {
        match change {
            Some(kind) => core.set(dst, &kind),
            None => core.remove(dst),
        }
    }
}

async fn next_event(events: Option<&mut BoxStream<'static, RouteEvent>>) -> Option<RouteEvent> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}
