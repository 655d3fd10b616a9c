//! [`Exporter`]: one task per Established session that owns the peer's Adj-RIB-Out,
//! encodes what it has pending and writes it, so the speaker's decision process and the
//! encoding of its results run on different cores.
//!
//! The speaker decides, per prefix, what the peer should hold (export policy, next hop,
//! reflection) and hands the results over in batches ([`Op`]s, in order). The task applies
//! them to the Adj-RIB-Out, where changes to one prefix coalesce while the peer's write
//! queue is full, so a slow peer costs memory bounded by the table, never a stalled speaker.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use foldhash::HashMap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::rib::{AdjRibOut, PathKey, PendingUpdates, RouteAttrs};
use crate::wire::{
    encode_announcements, encode_end_of_rib, encode_withdrawals, EncodeContext, Family, MpNextHop,
    Nlri, Prefix,
};

/// Prefixes encoded into one write-queue buffer.
const FLUSH_CHUNK: usize = 20_000;
/// Operations collected before they are handed to the task without waiting for the end of
/// the speaker's turn (an initial dump of a full table goes out while it is being built).
const BATCH_MAX: usize = 65_536;

/// The paths of one prefix under add-path, each named by its source.
type PathSet = Vec<(PathKey, Arc<RouteAttrs>)>;

/// One change to a peer's Adj-RIB-Out, in the order the speaker made it.
#[derive(Debug)]
pub(crate) enum Op {
    Set(Nlri, Arc<RouteAttrs>),
    Remove(Nlri),
    /// Add-path send (RFC 7911): exactly these paths for the prefix (boxed: rare, and the
    /// common variants stay small).
    SetPaths(Box<(Prefix, PathSet)>),
    /// The whole initial table of the family has been handed over (End-of-RIB follows
    /// once it is sent, RFC 4724 §2).
    InitialQueued(Family),
    /// The peer asked for the family again (RFC 2918 / RFC 7313).
    Refresh(Family),
}

/// The speaker's side of a session's export task. Dropping it stops the task.
pub(crate) struct Exporter {
    ops: Vec<Op>,
    tx: mpsc::UnboundedSender<Vec<Op>>,
    adj_out: Arc<Mutex<AdjRibOut>>,
    /// Operations handed over and not yet applied by the task.
    queued: Arc<AtomicUsize>,
    /// The task has ended (its connection closed): what it left unapplied is no backlog.
    ended: Arc<AtomicBool>,
    task: JoinHandle<()>,
    /// Some route was ever handed over (the peer may hold something from us).
    used: bool,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Exporter {
    /// Starts the task for a session whose write queue is `out` (None: the connection is
    /// already gone, and everything handed over is dropped).
    pub(crate) fn spawn(
        peer: IpAddr,
        ctx: EncodeContext,
        enhanced_refresh: bool,
        out: Option<mpsc::Sender<Bytes>>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let adj_out = Arc::new(Mutex::new(AdjRibOut::new()));
        let queued = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicBool::new(false));
        let task = Task {
            peer,
            ctx,
            enhanced_refresh,
            adj_out: adj_out.clone(),
            queued: queued.clone(),
            ended: ended.clone(),
            refresh: Vec::new(),
        };
        let task = tokio::spawn(task.run(rx, out));
        Self {
            ops: Vec::new(),
            tx,
            adj_out,
            queued,
            ended,
            task,
            used: false,
        }
    }

    fn push(&mut self, op: Op) {
        self.ops.push(op);
        if self.ops.len() >= BATCH_MAX {
            self.send();
        }
    }

    /// The peer should now have `attrs` for `nlri`.
    pub(crate) fn set(&mut self, nlri: Nlri, attrs: Arc<RouteAttrs>) {
        self.used = true;
        self.push(Op::Set(nlri, attrs));
    }

    /// The peer should no longer have `nlri`.
    pub(crate) fn remove(&mut self, nlri: Nlri) {
        self.push(Op::Remove(nlri));
    }

    /// Add-path send: the peer should have exactly `paths` for `prefix`.
    pub(crate) fn set_paths(&mut self, prefix: Prefix, paths: Vec<(PathKey, Arc<RouteAttrs>)>) {
        self.used |= !paths.is_empty();
        self.push(Op::SetPaths(Box::new((prefix, paths))));
    }

    /// The initial table of `family` has been handed over.
    pub(crate) fn initial_queued(&mut self, family: Family) {
        self.push(Op::InitialQueued(family));
    }

    /// Re-send everything advertised in `family`.
    pub(crate) fn refresh(&mut self, family: Family) {
        self.push(Op::Refresh(family));
    }

    /// Hands what was collected to the task.
    pub(crate) fn send(&mut self) {
        if !self.ops.is_empty() {
            let n = self.ops.len();
            // Counted before the task can see the batch, so its count never goes below.
            self.queued.fetch_add(n, Ordering::Relaxed);
            if self.tx.send(std::mem::take(&mut self.ops)).is_err() {
                // The task stopped with its connection; nothing is left to tell.
                self.queued.fetch_sub(n, Ordering::Relaxed);
            }
        }
    }

    /// Operations handed over that the task has not applied yet (its backlog).
    pub(crate) fn queued(&self) -> usize {
        if self.ended.load(Ordering::Acquire) {
            return 0;
        }
        self.queued.load(Ordering::Relaxed)
    }

    /// Whether the peer may hold or be about to get a route from us.
    pub(crate) fn used(&self) -> bool {
        self.used
    }

    /// The Adj-RIB-Out as the task has it (changes still in transit are not in it yet).
    pub(crate) fn adj_out(&self) -> MutexGuard<'_, AdjRibOut> {
        lock(&self.adj_out)
    }
}

fn lock(adj_out: &Mutex<AdjRibOut>) -> MutexGuard<'_, AdjRibOut> {
    // A panic elsewhere while holding the lock leaves a table that is still consistent
    // per operation; keep using it.
    adj_out
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Task {
    peer: IpAddr,
    ctx: EncodeContext,
    enhanced_refresh: bool,
    adj_out: Arc<Mutex<AdjRibOut>>,
    queued: Arc<AtomicUsize>,
    ended: Arc<AtomicBool>,
    /// Families to re-send once nothing else is pending.
    refresh: Vec<Family>,
}

impl Drop for Task {
    fn drop(&mut self) {
        // However the task ends (connection closed, speaker gone, aborted), the speaker
        // must not wait for it to take in its backlog.
        self.ended.store(true, Ordering::Release);
    }
}

impl Task {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Vec<Op>>,
        out: Option<mpsc::Sender<Bytes>>,
    ) {
        // No connection: nothing to write, ever; ending the task drops what comes and
        // counts none of it as backlog.
        let Some(out) = out else {
            return;
        };
        loop {
            let Some(buf) = self.next_chunk(&mut rx).await else {
                return;
            };
            // Wait for room in the write queue, applying (and coalescing) changes meanwhile.
            let bytes = buf.freeze();
            loop {
                tokio::select! {
                    biased;
                    permit = out.reserve() => match permit {
                        Ok(permit) => {
                            permit.send(bytes);
                            break;
                        }
                        // The connection closed; the speaker learns it from the session.
                        Err(_) => return,
                    },
                    ops = rx.recv() => match ops {
                        Some(ops) => self.apply(ops),
                        None => return,
                    },
                }
            }
        }
    }

    /// The next bytes to write, waiting for changes when there are none. None: the
    /// speaker dropped the session.
    async fn next_chunk(&mut self, rx: &mut mpsc::UnboundedReceiver<Vec<Op>>) -> Option<BytesMut> {
        loop {
            let buf = self.encode_chunk();
            if !buf.is_empty() {
                return Some(buf);
            }
            let ops = match rx.try_recv() {
                Ok(ops) => ops,
                Err(mpsc::error::TryRecvError::Empty) => rx.recv().await?,
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
            };
            let buf = self.apply_direct(ops);
            if !buf.is_empty() {
                return Some(buf);
            }
        }
    }

    /// With nothing pending, encodes the batch's leading run of direct changes (see
    /// [`crate::rib::Direct`]) at once and queues the rest.
    fn apply_direct(&mut self, ops: Vec<Op>) -> BytesMut {
        self.taken(ops.len());
        let shared = Arc::clone(&self.adj_out);
        let mut adj_out = lock(&shared);
        let mut ops = ops.into_iter().peekable();
        let mut buf = BytesMut::new();
        if let Some(mut run) = adj_out.direct() {
            while let Some(op) = ops.peek() {
                let applied = match op {
                    Op::Set(nlri, attrs) => run.apply(*nlri, Some(attrs)),
                    Op::Remove(nlri) => run.apply(*nlri, None),
                    _ => false,
                };
                if !applied {
                    break;
                }
                ops.next();
            }
            self.encode_updates(&run.finish(), &mut buf);
        }
        self.apply_locked(&mut adj_out, ops);
        buf
    }

    /// `n` operations left the channel: they no longer count as backlog.
    fn taken(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }

    fn apply(&mut self, ops: Vec<Op>) {
        self.taken(ops.len());
        let shared = Arc::clone(&self.adj_out);
        let mut adj_out = lock(&shared);
        self.apply_locked(&mut adj_out, ops.into_iter());
    }

    fn apply_locked(&mut self, adj_out: &mut AdjRibOut, ops: impl Iterator<Item = Op>) {
        for op in ops {
            match op {
                Op::Set(nlri, attrs) => adj_out.set(nlri, attrs),
                Op::Remove(nlri) => adj_out.remove(nlri),
                Op::SetPaths(p) => adj_out.set_paths(p.0, &p.1),
                Op::InitialQueued(family) => adj_out.mark_initial_queued(family),
                Op::Refresh(family) => {
                    if !self.refresh.contains(&family) {
                        self.refresh.push(family);
                    }
                }
            }
        }
    }

    /// The next chunk of pending changes, encoded: up to [`FLUSH_CHUNK`] prefixes, then
    /// (once nothing else is pending) requested re-sends and due End-of-RIB markers.
    fn encode_chunk(&mut self) -> BytesMut {
        let mut adj_out = lock(&self.adj_out);
        let (ctx, peer) = (&self.ctx, self.peer);
        let mut buf = BytesMut::new();
        let pending = adj_out.take_pending_limited(FLUSH_CHUNK);
        self.encode_updates(&pending, &mut buf);
        if adj_out.pending_len() == 0 {
            for family in std::mem::take(&mut self.refresh) {
                resend_family(&adj_out, self.enhanced_refresh, family, ctx, &mut buf, peer);
            }
        }
        for family in adj_out.take_end_of_rib() {
            encode_end_of_rib(family, &mut buf);
        }
        buf
    }
}

impl Task {
    fn encode_updates(&self, pending: &PendingUpdates, buf: &mut BytesMut) {
        for (family, nlri) in &pending.withdrawals {
            if let Err(e) = encode_withdrawals(*family, nlri, &self.ctx, buf) {
                tracing::error!(peer = %self.peer, "encode: {e}");
            }
        }
        for (attrs, family, nlri) in &pending.announcements {
            encode_group(attrs, *family, nlri, &self.ctx, buf, self.peer);
        }
    }
}

fn encode_group(
    attrs: &RouteAttrs,
    family: Family,
    nlri: &[Nlri],
    ctx: &EncodeContext,
    buf: &mut BytesMut,
    peer: IpAddr,
) {
    let mp = (family != Family::IPV4_UNICAST).then_some(MpNextHop {
        global: attrs.next_hop,
        link_local: attrs.link_local,
    });
    if let Err(e) = encode_announcements(&attrs.attrs, family, mp, nlri, ctx, buf) {
        tracing::error!(%peer, "encode: {e}");
    }
}

/// RFC 2918: everything advertised in `family`, again, grouped by attribute set; RFC 7313:
/// between BoRR and EoRR.
fn resend_family(
    adj_out: &AdjRibOut,
    enhanced: bool,
    family: Family,
    ctx: &EncodeContext,
    buf: &mut BytesMut,
    peer: IpAddr,
) {
    super::refresh::begin_resend(enhanced, family, ctx, buf);
    let mut groups: HashMap<usize, (Arc<RouteAttrs>, Vec<Nlri>)> = HashMap::default();
    for (n, a) in adj_out.iter() {
        if Family::of(&n.prefix) == family {
            groups
                .entry(Arc::as_ptr(a) as usize)
                .or_insert_with(|| (a.clone(), Vec::new()))
                .1
                .push(n);
        }
    }
    for (attrs, nlri) in groups.values() {
        encode_group(attrs, family, nlri, ctx, buf, peer);
    }
    // RFC 7313 §4: EoRR after the routes (End-of-RIB without enhanced route refresh).
    super::refresh::end_resend(enhanced, family, ctx, buf);
}

#[cfg(test)]
#[path = "exporter_tests.rs"]
mod tests;
