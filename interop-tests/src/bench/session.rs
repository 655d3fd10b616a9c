//! The benchmark's own BGP speakers: feeders that blast pre-encoded UPDATEs and receivers
//! (the monitor, route-reflector clients) that count the /32s they hold.
//!
//! All of them are tokio tasks of one runtime in the feeder namespace; hundreds of sessions
//! cost a few kilobytes each. A session never validates what the DUT sends beyond framing: it
//! is a load generator, not a BGP implementation.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Notify};

use super::wire;
use super::BenchError;

/// Hold time every benchmark speaker offers: long, so a DUT busy with a million routes never
/// expires a session. Keepalives go out every [`KEEPALIVE_EVERY`] regardless.
pub const HOLD_TIME: u16 = 240;
/// How often a speaker sends KEEPALIVE once Established (a third of the hold time or less).
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(30);

/// Which /32s a receiver holds: one bit per address in `base .. base + capacity`, set on
/// announce and cleared on withdraw, so duplicates and implicit replacements count once.
#[derive(Debug)]
pub struct Tracker {
    base: u32,
    bits: Vec<AtomicU64>,
    held: AtomicU64,
    target: AtomicU64,
    /// Announced NLRI seen, duplicates included.
    announced: AtomicU64,
    /// Withdrawn NLRI seen.
    withdrawn: AtomicU64,
    reached: Mutex<Option<Instant>>,
    first: Mutex<Option<Instant>>,
    changed: Notify,
}

impl Tracker {
    /// A tracker for `capacity` addresses from `base`, done when it holds `target`.
    pub fn new(base: u32, capacity: u32, target: u64) -> Arc<Self> {
        let words = (capacity as usize).div_ceil(64);
        Arc::new(Self {
            base,
            bits: (0..words).map(|_| AtomicU64::new(0)).collect(),
            held: AtomicU64::new(0),
            target: AtomicU64::new(target),
            announced: AtomicU64::new(0),
            withdrawn: AtomicU64::new(0),
            reached: Mutex::new(None),
            first: Mutex::new(None),
            changed: Notify::new(),
        })
    }

    fn slot(&self, addr: u32, len: u8) -> Option<(&AtomicU64, u64)> {
        if len != 32 {
            return None;
        }
        let i = addr.checked_sub(self.base)? as usize;
        self.bits.get(i / 64).map(|w| (w, 1u64 << (i % 64)))
    }

    /// Mark `addr/len` held (prefixes outside the range or not /32 are ignored).
    pub fn set(&self, addr: u32, len: u8) {
        self.announced.fetch_add(1, Ordering::Relaxed);
        if let Some((w, m)) = self.slot(addr, len) {
            if w.fetch_or(m, Ordering::Relaxed) & m == 0 {
                self.held.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Mark `addr/len` gone.
    pub fn clear(&self, addr: u32, len: u8) {
        self.withdrawn.fetch_add(1, Ordering::Relaxed);
        if let Some((w, m)) = self.slot(addr, len) {
            if w.fetch_and(!m, Ordering::Relaxed) & m != 0 {
                self.held.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Call after each message: records the first time the target is held, wakes waiters.
    fn after_message(&self) {
        if let Ok(mut f) = self.first.lock() {
            // An empty UPDATE (End-of-RIB, RFC 4724 §2) is not a route.
            if f.is_none() && self.held() > 0 {
                *f = Some(Instant::now());
            }
        }
        if self.held() == self.target.load(Ordering::Relaxed) {
            if let Ok(mut r) = self.reached.lock() {
                if r.is_none() {
                    *r = Some(Instant::now());
                }
            }
        }
        self.changed.notify_waiters();
    }

    /// /32s held now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// (announced, withdrawn) NLRI seen so far, duplicates included.
    pub fn seen(&self) -> (u64, u64) {
        (
            self.announced.load(Ordering::Relaxed),
            self.withdrawn.load(Ordering::Relaxed),
        )
    }

    /// When the current target was first held.
    pub fn reached_at(&self) -> Option<Instant> {
        self.reached.lock().ok().and_then(|r| *r)
    }

    /// When the first UPDATE arrived.
    pub fn first_at(&self) -> Option<Instant> {
        self.first.lock().ok().and_then(|r| *r)
    }

    /// A new target (churn): forgets when the previous one was reached.
    pub fn retarget(&self, target: u64) {
        self.target.store(target, Ordering::Relaxed);
        if let Ok(mut r) = self.reached.lock() {
            *r = None;
        }
        self.after_message();
    }

    /// Wait until exactly the target is held, or `deadline`; returns whether it was reached.
    pub async fn wait(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.changed.notified();
            if self.held() == self.target.load(Ordering::Relaxed) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Also wake now and then: a missed notification costs at most this much.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
        }
    }
}

async fn read_message(
    r: &mut BufReader<OwnedReadHalf>,
    body: &mut Vec<u8>,
) -> Result<u8, BenchError> {
    let mut hdr = [0u8; wire::HEADER_LEN];
    r.read_exact(&mut hdr).await?;
    let len = usize::from(u16::from_be_bytes([hdr[16], hdr[17]]));
    if !(wire::HEADER_LEN..=65535).contains(&len) {
        return Err(BenchError::Protocol(format!("bad message length {len}")));
    }
    body.resize(len - wire::HEADER_LEN, 0);
    r.read_exact(body).await?;
    Ok(hdr[18])
}

async fn expect(r: &mut BufReader<OwnedReadHalf>, want: u8) -> Result<(), BenchError> {
    let mut body = Vec::new();
    loop {
        let kind = read_message(r, &mut body).await?;
        if kind == wire::NOTIFICATION {
            let (code, sub) = (body.first().copied(), body.get(1).copied());
            return Err(BenchError::Protocol(format!(
                "NOTIFICATION {code:?}/{sub:?} during the handshake"
            )));
        }
        if kind == want {
            return Ok(());
        }
    }
}

/// An Established session: the read half (buffered) and the write half.
pub struct Established {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// A TCP connection from `local` to `peer:179` (the socket is made in the namespace of the
/// runtime's threads).
pub async fn tcp_connect(local: Ipv4Addr, peer: Ipv4Addr) -> Result<TcpStream, BenchError> {
    let sock = TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind(SocketAddr::V4(SocketAddrV4::new(local, 0)))?;
    Ok(sock
        .connect(SocketAddr::V4(SocketAddrV4::new(peer, 179)))
        .await?)
}

/// The OPEN / KEEPALIVE exchange on an accepted or connected stream.
pub async fn handshake(
    stream: TcpStream,
    id: Ipv4Addr,
    asn: u32,
    on_open: impl FnOnce(Instant),
) -> Result<Established, BenchError> {
    stream.set_nodelay(true)?;
    let (r, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(256 * 1024, r);
    on_open(Instant::now());
    writer.write_all(&wire::open(asn, HOLD_TIME, id)).await?;
    expect(&mut reader, wire::OPEN).await?;
    writer.write_all(&wire::keepalive()).await?;
    expect(&mut reader, wire::KEEPALIVE).await?;
    Ok(Established { reader, writer })
}

/// What a session's writer task is told to send.
#[derive(Debug)]
pub enum Send {
    /// Pre-encoded UPDATEs; `done` (if any) gets the instant the last byte was written.
    Bytes(Arc<Vec<u8>>, Option<tokio::sync::oneshot::Sender<Instant>>),
}

impl Established {
    /// Split into a reader task counting into `tracker` (if any) and a writer task that sends
    /// what arrives on the returned channel plus KEEPALIVEs. Both end when the connection
    /// does or the channel closes; errors end up in `errors`.
    pub fn run(
        self,
        tracker: Option<Arc<Tracker>>,
        errors: Arc<Mutex<Vec<String>>>,
        label: String,
    ) -> mpsc::UnboundedSender<Send> {
        let Established { reader, writer } = self;
        let (tx, rx) = mpsc::unbounded_channel();
        let err2 = errors.clone();
        let label2 = label.clone();
        tokio::spawn(async move {
            if let Err(e) = read_loop(reader, tracker).await {
                push_err(&err2, format!("{label2}: {e}"));
            }
        });
        tokio::spawn(async move {
            if let Err(e) = write_loop(writer, rx).await {
                push_err(&errors, format!("{label}: {e}"));
            }
        });
        tx
    }
}

fn push_err(errors: &Mutex<Vec<String>>, e: String) {
    if let Ok(mut v) = errors.lock() {
        v.push(e);
    }
}

async fn read_loop(
    mut r: BufReader<OwnedReadHalf>,
    tracker: Option<Arc<Tracker>>,
) -> Result<(), BenchError> {
    let mut body = Vec::with_capacity(wire::MAX_MESSAGE);
    loop {
        let kind = match read_message(&mut r, &mut body).await {
            Ok(k) => k,
            // The harness closes sessions at the end of a run.
            Err(BenchError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        match kind {
            wire::UPDATE => {
                if let Some(t) = &tracker {
                    wire::scan_update(&body, &mut |a, l| t.clear(a, l), &mut |a, l| t.set(a, l))
                        .map_err(|e| BenchError::Protocol(e.to_string()))?;
                    t.after_message();
                }
            }
            wire::NOTIFICATION => {
                let (code, sub) = (body.first().copied(), body.get(1).copied());
                return Err(BenchError::Protocol(format!(
                    "peer sent NOTIFICATION {code:?}/{sub:?}"
                )));
            }
            _ => {}
        }
    }
}

async fn write_loop(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Send>,
) -> Result<(), BenchError> {
    let ka = wire::keepalive();
    let mut tick = tokio::time::interval(KEEPALIVE_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Send::Bytes(bytes, done)) => {
                    w.write_all(&bytes).await?;
                    if let Some(d) = done {
                        let _ = d.send(Instant::now());
                    }
                }
                None => return Ok(()),
            },
            _ = tick.tick() => w.write_all(&ka).await?,
        }
    }
}

/// Accept sessions on `local:179` forever, each counting into `tracker` (the baseline:
/// feeders straight into the monitor). Returns the listener task's handle.
pub fn listen(
    local: Ipv4Addr,
    asn: u32,
    tracker: Arc<Tracker>,
    errors: Arc<Mutex<Vec<String>>>,
) -> Result<tokio::task::JoinHandle<()>, BenchError> {
    let sock = TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind(SocketAddr::V4(SocketAddrV4::new(local, 179)))?;
    let listener = sock.listen(1024)?;
    Ok(tokio::spawn(async move {
        let mut senders = Vec::new();
        while let Ok((stream, from)) = listener.accept().await {
            let tracker = tracker.clone();
            let errors = errors.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                match handshake(stream, local, asn, |_| {}).await {
                    Ok(est) => {
                        let _ = tx.send(est.run(Some(tracker), errors, format!("monitor<-{from}")));
                    }
                    Err(e) => push_err(&errors, format!("monitor<-{from}: {e}")),
                }
            });
            // Keep the writer channels alive for the listener's lifetime.
            senders.push(rx);
        }
        drop(senders);
    }))
}

/// The earliest of the instants reported to it (the first feeder's OPEN).
#[derive(Debug, Default)]
pub struct FirstInstant(Mutex<Option<Instant>>);

impl FirstInstant {
    /// Record `t` if it is the earliest so far.
    pub fn record(&self, t: Instant) {
        if let Ok(mut g) = self.0.lock() {
            match *g {
                Some(x) if x <= t => {}
                _ => *g = Some(t),
            }
        }
    }

    /// Record `t` if it is the latest so far (use one instance per direction).
    pub fn record_latest(&self, t: Instant) {
        if let Ok(mut g) = self.0.lock() {
            match *g {
                Some(x) if x >= t => {}
                _ => *g = Some(t),
            }
        }
    }

    /// The instant kept.
    pub fn get(&self) -> Option<Instant> {
        self.0.lock().ok().and_then(|g| *g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_counts_distinct_and_withdrawals() {
        let t = Tracker::new(1000, 100, 3);
        t.set(1000, 32);
        t.set(1000, 32);
        t.set(1001, 24);
        t.set(5000, 32);
        assert_eq!(t.held(), 1);
        t.set(1001, 32);
        t.set(1099, 32);
        t.after_message();
        assert_eq!(t.held(), 3);
        assert!(t.reached_at().is_some());
        t.clear(1000, 32);
        t.clear(1000, 32);
        assert_eq!(t.held(), 2);
        assert_eq!(t.seen(), (6, 2));
        t.retarget(2);
        assert!(t.reached_at().is_some());
    }
}
