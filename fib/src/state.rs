//! The programmer's bookkeeping, free of I/O: desired routes, what we believe the kernel
//! holds, and which destinations need a write. `Programmer` drives it with dumps, plans
//! the writes it returns and feeds the results back.

use std::sync::Arc;
use std::time::Duration;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use ipnetwork::IpNetwork;
use tokio::time::Instant;

use crate::route::{Route, RouteKind};
use crate::table::RouteError;

/// First retry delay of a failed route; doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay of a failed route.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// `now + d`, saturating at a year ahead instead of overflowing.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// One write to the kernel.
pub(crate) use crate::table::RouteWrite as Op;

/// A route body (next hops or blackhole), shared by every destination that has it.
pub(crate) type Kind = Arc<RouteKind>;

/// Routes by destination, bodies shared: 32-byte entries instead of whole routes with a
/// next-hop vector each (a million routes over a few next-hop sets cost about 70 MB per
/// map instead of about 190).
type Routes = HashMap<IpNetwork, Kind>;

/// The route bodies in use, one copy each.
#[derive(Debug, Default)]
pub(crate) struct Kinds {
    set: HashSet<Kind>,
    /// Size after the last sweep.
    swept: usize,
}

/// Fewest interned bodies before a sweep is considered.
const KINDS_SWEEP_MIN: usize = 1024;

impl Kinds {
    /// The shared copy of `kind`. Equal bodies are the same `Arc` while anyone holds one.
    pub(crate) fn intern(&mut self, kind: RouteKind) -> Kind {
        if let Some(k) = self.set.get(&kind) {
            return Arc::clone(k);
        }
        self.insert(Arc::new(kind))
    }

    /// [`Kinds::intern`] for a body interned elsewhere (another `Kinds`).
    pub(crate) fn intern_shared(&mut self, kind: &Kind) -> Kind {
        if let Some(k) = self.set.get(&**kind) {
            return Arc::clone(k);
        }
        self.insert(Arc::clone(kind))
    }

    fn insert(&mut self, k: Kind) -> Kind {
        self.set.insert(Arc::clone(&k));
        if self.set.len() > KINDS_SWEEP_MIN.max(2 * self.swept) {
            // Bodies only the set holds belong to no route any more.
            self.set.retain(|k| Arc::strong_count(k) > 1);
            self.swept = self.set.len();
        }
        k
    }
}

#[derive(Debug, Clone)]
struct Failure {
    error: String,
    attempts: u32,
    retry_at: Instant,
    conflict: bool,
}

/// Desired state, believed kernel state and the work between them.
#[derive(Debug)]
pub(crate) struct Core {
    stale_after: Duration,
    resync: Duration,
    desired: Routes,
    /// Our routes in the kernel as it holds them (next hops resolved, interfaces filled).
    kernel: Routes,
    /// The desired route that produced `kernel[dst]`, for routes we installed ourselves.
    installed_for: Routes,
    kinds: Kinds,
    /// When to delete an owned route that is not desired (graceful-restart window).
    stale: HashMap<IpNetwork, Instant>,
    failed: HashMap<IpNetwork, Failure>,
    dirty: HashSet<IpNetwork>,
    /// Dirty destinations taken out of `dirty` and not planned yet (`plan` takes a batch
    /// at a time). One may be dirty again meanwhile: planned twice, the second is a no-op.
    queue: Vec<IpNetwork>,
    /// Destinations found missing that we had installed: a successful add counts as repair.
    repairing: HashSet<IpNetwork>,
    /// A verifying resync asked for by a route-deleted notification.
    pub(crate) verify_at: Option<Instant>,
    pub(crate) foreign_conflicts: u64,
    pub(crate) repaired: u64,
}

impl Core {
    pub(crate) fn new(stale_after: Duration, resync: Duration) -> Self {
        Self {
            stale_after,
            resync,
            desired: Routes::new(),
            kernel: Routes::new(),
            installed_for: Routes::new(),
            kinds: Kinds::default(),
            stale: HashMap::new(),
            failed: HashMap::new(),
            dirty: HashSet::new(),
            queue: Vec::new(),
            repairing: HashSet::new(),
            verify_at: None,
            foreign_conflicts: 0,
            repaired: 0,
        }
    }

    /// Wants a route to `dst` with the body `kind`, next hops normalized (see
    /// [`Route::normalized`]); replaces any earlier wish for `dst`.
    pub(crate) fn set(&mut self, dst: IpNetwork, kind: &Kind) {
        let kind = self.kinds.intern_shared(kind);
        if self
            .desired
            .get(&dst)
            .is_some_and(|k| Arc::ptr_eq(k, &kind))
        {
            return;
        }
        self.failed.remove(&dst);
        self.dirty.insert(dst);
        self.desired.insert(dst, kind);
    }

    /// No longer wants a route to `dst`.
    pub(crate) fn remove(&mut self, dst: IpNetwork) {
        if self.desired.remove(&dst).is_some() {
            self.failed.remove(&dst);
            self.dirty.insert(dst);
        }
    }

    fn fulfilled(&self, dst: &IpNetwork, have: &RouteKind) -> bool {
        let Some(want) = self.desired.get(dst) else {
            return false;
        };
        want.is_fulfilled_by(have)
            || (self
                .installed_for
                .get(dst)
                .is_some_and(|i| Arc::ptr_eq(i, want))
                && self
                    .kernel
                    .get(dst)
                    .is_some_and(|k| k.is_fulfilled_by(have)))
    }

    /// Takes a dump of our routes as the truth about the kernel. `initial`: the first dump
    /// after start, whose unwanted routes get the stale delay; unwanted routes found later
    /// are deleted at once.
    pub(crate) fn reconcile(&mut self, dump: Vec<Route>, now: Instant, initial: bool) {
        let mut seen = Routes::new();
        for route in dump {
            if let std::collections::hash_map::Entry::Vacant(v) = seen.entry(route.dst) {
                v.insert(self.kinds.intern(route.kind));
            }
        }
        for (dst, have) in &seen {
            if self.desired.contains_key(dst) {
                if self.fulfilled(dst, have) {
                    // Right in the kernel, whatever an earlier write answered (e.g. an
                    // ACK lost in a batch): nothing has failed any more.
                    self.failed.remove(dst);
                } else {
                    self.installed_for.remove(dst);
                    self.dirty.insert(*dst);
                }
            } else {
                let deadline = if initial {
                    later(now, self.stale_after)
                } else {
                    now
                };
                self.stale.entry(*dst).or_insert(deadline);
                self.dirty.insert(*dst);
            }
        }
        for dst in self.desired.keys() {
            if !seen.contains_key(dst) {
                if self.kernel.contains_key(dst) && !initial {
                    // We had it installed and it is gone: someone deleted it.
                    self.repairing.insert(*dst);
                }
                self.installed_for.remove(dst);
                // Conflicts and failures are retried on every resync.
                if let Some(f) = self.failed.get_mut(dst) {
                    f.retry_at = now;
                }
                self.dirty.insert(*dst);
            }
        }
        self.stale.retain(|dst, _| seen.contains_key(dst));
        self.installed_for.retain(|dst, _| seen.contains_key(dst));
        self.kernel = seen;
    }

    /// A notification says our route `route` was deleted: verify with a dump soon if it
    /// is one we want (our own deletes are of routes we do not want).
    pub(crate) fn on_deleted(&mut self, route: &Route, now: Instant) {
        if self.desired.contains_key(&route.dst) && self.kernel.contains_key(&route.dst) {
            self.verify_at
                .get_or_insert(now + Duration::from_millis(50));
        }
    }

    /// Marks destinations whose stale delay or retry back-off ran out as dirty.
    pub(crate) fn wake_due(&mut self, now: Instant) {
        for (dst, deadline) in &self.stale {
            if *deadline <= now && !self.desired.contains_key(dst) {
                self.dirty.insert(*dst);
            }
        }
        for (dst, failure) in &self.failed {
            if failure.retry_at <= now {
                self.dirty.insert(*dst);
            }
        }
    }

    /// The earliest moment something waits for (stale deadline, retry, verification).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let stale = self
            .stale
            .iter()
            .filter(|(dst, _)| !self.desired.contains_key(dst))
            .map(|(_, t)| *t);
        let retry = self.failed.values().map(|f| f.retry_at);
        stale.chain(retry).chain(self.verify_at).min()
    }

    /// The writes needed now, for at most `limit` destinations (the others stay dirty for
    /// the next call); destinations that must wait stay covered by their timers.
    ///
    /// With `refill` false, only destinations already queued by an earlier call are taken:
    /// none of them is in a batch still being written (a destination that changes while its
    /// write is in flight waits in the dirty set), so the result may be written at once.
    pub(crate) fn plan(&mut self, now: Instant, limit: usize, refill: bool) -> Vec<Op> {
        if self.queue.is_empty() && refill {
            self.queue.extend(self.dirty.drain());
        }
        let from = self.queue.len().saturating_sub(limit);
        let batch: Vec<IpNetwork> = self.queue.drain(from..).collect();
        let mut ops = Vec::with_capacity(batch.len());
        for dst in batch {
            if let Some(want) = self.desired.get(&dst) {
                self.stale.remove(&dst);
                if let Some(have) = self.kernel.get(&dst) {
                    if self.fulfilled(&dst, have) {
                        self.failed.remove(&dst);
                        continue;
                    }
                }
                if self.failed.get(&dst).is_some_and(|f| f.retry_at > now) {
                    continue;
                }
                ops.push(Op::Add {
                    route: Route {
                        dst,
                        kind: RouteKind::clone(want),
                    },
                    replace: self.kernel.contains_key(&dst),
                });
            } else if let Some(have) = self.kernel.get(&dst) {
                if self.stale.get(&dst).is_some_and(|t| *t > now) {
                    continue;
                }
                if self.failed.get(&dst).is_some_and(|f| f.retry_at > now) {
                    continue;
                }
                ops.push(Op::Delete(Route {
                    dst,
                    kind: RouteKind::clone(have),
                }));
            } else {
                self.stale.remove(&dst);
                self.failed.remove(&dst);
            }
        }
        ops
    }

    /// Records the kernel's answer to `op`.
    pub(crate) fn complete(
        &mut self,
        op: Op,
        result: Result<Option<Route>, RouteError>,
        now: Instant,
    ) {
        let dst = op.dst();
        match (op, result) {
            (Op::Add { route, .. }, Ok(installed)) => {
                // Usually the body still desired: share it without a lookup.
                let want = match self.desired.get(&dst) {
                    Some(k) if **k == route.kind => Arc::clone(k),
                    _ => self.kinds.intern(route.kind),
                };
                let have = match installed {
                    Some(r) if r.kind != *want => self.kinds.intern(r.kind),
                    _ => Arc::clone(&want),
                };
                self.kernel.insert(dst, have);
                self.installed_for.insert(dst, want);
                self.failed.remove(&dst);
                self.stale.remove(&dst);
                if self.repairing.remove(&dst) {
                    self.repaired += 1;
                    tracing::info!(dst = %dst, "route deleted by someone else put back");
                }
            }
            (Op::Add { replace: false, .. }, Err(err)) if err.is_exists() => {
                // Another protocol's route holds the destination: never touch it; look
                // again at the next full resync.
                let already = self.failed.get(&dst).is_some_and(|f| f.conflict);
                if !already {
                    self.foreign_conflicts += 1;
                    tracing::warn!(dst = %dst, "destination held by a route of another protocol; left alone");
                }
                self.failed.insert(
                    dst,
                    Failure {
                        error: format!("{err}: destination held by a route of another protocol"),
                        attempts: 1,
                        retry_at: later(now, self.resync),
                        conflict: true,
                    },
                );
            }
            (Op::Delete(_), Ok(_)) => self.forget(dst),
            (Op::Delete(_), Err(err)) if err.is_not_found() => self.forget(dst),
            (op, Err(err)) => {
                let attempts = self.failed.get(&dst).map_or(0, |f| f.attempts) + 1;
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
                    .min(MAX_BACKOFF);
                tracing::warn!(dst = %dst, error = %err, attempts, op = ?op, "route write failed; will retry");
                self.failed.insert(
                    dst,
                    Failure {
                        error: err.message,
                        attempts,
                        retry_at: now + backoff,
                        conflict: false,
                    },
                );
            }
        }
    }

    fn forget(&mut self, dst: IpNetwork) {
        self.kernel.remove(&dst);
        self.installed_for.remove(&dst);
        self.stale.remove(&dst);
        self.failed.remove(&dst);
    }

    /// Desired routes the kernel holds: (desired, as the kernel holds it).
    pub(crate) fn installed(&self) -> Vec<(Route, Route)> {
        self.desired
            .iter()
            .filter(|(dst, _)| !self.failed.contains_key(dst))
            .filter_map(|(dst, want)| {
                self.kernel
                    .get(dst)
                    .filter(|have| self.fulfilled(dst, have))
                    .map(|have| {
                        (
                            Route {
                                dst: *dst,
                                kind: RouteKind::clone(want),
                            },
                            Route {
                                dst: *dst,
                                kind: RouteKind::clone(have),
                            },
                        )
                    })
            })
            .collect()
    }

    /// Destinations whose last write failed, with the kernel's error text.
    pub(crate) fn failed(&self) -> Vec<(IpNetwork, String)> {
        self.failed
            .iter()
            .map(|(dst, f)| (*dst, f.error.clone()))
            .collect()
    }

    /// Owned routes in the kernel that nobody wants yet and that wait for their stale
    /// deadline: at start, the routes a previous run left (graceful restart).
    pub(crate) fn stale_count(&self) -> usize {
        self.stale
            .keys()
            .filter(|dst| !self.desired.contains_key(dst))
            .count()
    }

    /// Ends the graceful-restart window early (RFC 4724 §4.1: the restarting speaker
    /// removes its stale forwarding state once route selection is done): every owned
    /// route nobody wants is deleted now; wanted ones are untouched.
    pub(crate) fn end_stale(&mut self, now: Instant) {
        for (dst, deadline) in &mut self.stale {
            if !self.desired.contains_key(dst) {
                *deadline = now;
                self.dirty.insert(*dst);
            }
        }
    }

    /// Whether anything is left to write now.
    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty() || !self.queue.is_empty()
    }
}
