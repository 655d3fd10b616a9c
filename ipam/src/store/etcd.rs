//! A [`Store`] on etcd (v3 API), shared by every node of a cluster.
//!
//! - Keys are the allocator's keys under a prefix (default `/bramble/`): `blocks/10.244.0.0/26`
//!   is stored as `/bramble/blocks/10.244.0.0/26`. Values are the allocator's bytes, unchanged.
//! - A key's [`Revision`] is etcd's `mod_revision`: the cluster-wide revision of the key's last
//!   write, unique and increasing, so a re-created key never gets an old revision back.
//! - [`Store::compare_and_swap`] is one etcd transaction: `IF mod_revision(key) == expected`
//!   (or `create_revision(key) == 0`, "absent", for `None`) `THEN put` (or delete). A false
//!   comparison is [`StoreError::Conflict`] and changes nothing. [`Store::transact`] is the
//!   same with one comparison and one operation per key (etcd's `--max-txn-ops`, default 128,
//!   bounds how many keys one transaction may carry).
//! - An acknowledged etcd write is committed on a quorum of members and fsynced there, so
//!   [`Store::flush`] has nothing to do.
//!
//! The trait is synchronous and the allocator runs on blocking threads (the agent calls it from
//! `spawn_blocking`), while etcd-client is async: the store owns a small tokio runtime of its
//! own, each call is spawned there and the calling thread waits for its answer. Every call is
//! bounded by [`EtcdOptions::timeout`]: transport failures (a member down, a connection being
//! re-established) are retried inside that bound, and when it passes the call fails with
//! [`StoreError::Timeout`] instead of hanging. The bridge never uses `block_on`, so it is safe
//! from any thread, even one inside another runtime (that thread blocks for at most the bound).
//!
//! Endpoints: the store talks to one member at a time and moves to the next on a transport
//! error or an attempt that takes more than a third of the bound, so a dead or hung member
//! costs one attempt, not every call. Clients require a leader: a member cut off from its
//! quorum answers "unavailable" and the store moves on.
//!
//! A write that timed out is ambiguous (it may have been committed just before the bound).
//! The allocator tolerates that like a crash between two writes: a retry of the same request
//! finds its own handle record, and `bramble ipam check` reports (and `--release` repairs) what
//! an abandoned request left.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, TlsOptions, Txn,
    TxnOp,
};

use super::{Entry, Revision, Store, StoreError, Write};

/// `etcd_prefix` when none is configured.
pub const DEFAULT_PREFIX: &str = "/bramble/";
/// `etcd_timeout` when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Shortest time one attempt of a call gets before the next endpoint is tried.
const MIN_ATTEMPT: Duration = Duration::from_millis(500);
/// Pause between two attempts of a call after a transport error.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Client URLs (`http://10.0.0.1:2379`, `https://…` with TLS).
    pub endpoints: Vec<String>,
    /// Prepended to every key; should end with `/`. Default [`DEFAULT_PREFIX`].
    pub prefix: String,
    /// Bound on every store call, retries included. Default [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// PEM CA bundle that signs the etcd servers' certificates (enables TLS).
    pub ca: Option<PathBuf>,
    /// PEM client certificate (with `key`, for client-certificate authentication).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
}

impl EtcdOptions {
    /// Options for `endpoints` with the default prefix and timeout, without TLS.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            prefix: DEFAULT_PREFIX.to_string(),
            timeout: DEFAULT_TIMEOUT,
            ca: None,
            cert: None,
            key: None,
        }
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the bound on every call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn tls(&self) -> Result<Option<TlsOptions>, StoreError> {
        if self.ca.is_none() && self.cert.is_none() && self.key.is_none() {
            return Ok(None);
        }
        let read = |p: &PathBuf, what: &str| {
            std::fs::read(p).map_err(|e| {
                StoreError::Backend(format!("cannot read etcd {what} {}: {e}", p.display()))
            })
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca, "CA")?));
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read(cert, "certificate")?,
                    read(key, "key")?,
                ));
            }
            (None, None) => {}
            _ => {
                return Err(StoreError::Backend(
                    "etcd client certificate and key must be given together".into(),
                ))
            }
        }
        Ok(Some(tls))
    }
}

/// A [`Store`] on an etcd cluster. Cheap to share behind an `Arc`; every method may be called
/// from many threads at once.
pub struct EtcdStore {
    /// One client per endpoint. tonic's own balancing keeps choosing a member that fails
    /// fast (it looks least loaded), so the store picks the endpoint itself: it sticks to one
    /// until a transport error, then moves to the next.
    clients: Arc<Vec<Client>>,
    current: Arc<AtomicUsize>,
    prefix: String,
    timeout: Duration,
    endpoints: Arc<Vec<String>>,
    // `Option` only so `Drop` can take it: a runtime must not be dropped (which blocks) inside
    // another runtime, `shutdown_background` never blocks.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What one attempt of a call ended with.
enum Attempt<T> {
    Done(T),
    /// The request may not have reached a member (transport, unavailable, no leader): retry.
    Transient(String),
    /// A definite failure.
    Failed(StoreError),
}

/// Whether an etcd-client error is worth another attempt within the bound.
fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                // tonic's own per-request timeout.
                | tonic::Code::Cancelled
                // tonic reports a connection broken mid-request as Unknown.
                | tonic::Code::Unknown
        ),
        _ => false,
    }
}

fn attempt<T>(r: Result<T, etcd_client::Error>) -> Attempt<T> {
    match r {
        Ok(v) => Attempt::Done(v),
        Err(e) if transient(&e) => Attempt::Transient(e.to_string()),
        Err(e) => Attempt::Failed(StoreError::Backend(format!("etcd: {e}"))),
    }
}

fn to_i64(rev: Revision) -> Result<i64, StoreError> {
    i64::try_from(rev).map_err(|_| StoreError::Backend(format!("revision {rev} out of range")))
}

fn to_rev(rev: i64) -> Result<Revision, StoreError> {
    Revision::try_from(rev)
        .map_err(|_| StoreError::Backend(format!("etcd returned revision {rev}")))
}

impl EtcdStore {
    /// A store on `opts.endpoints`. Connecting is lazy: an unreachable cluster is not an error
    /// here, each call fails within the timeout until it is reachable.
    pub fn open(opts: &EtcdOptions) -> Result<Self, StoreError> {
        if opts.endpoints.is_empty() {
            return Err(StoreError::Backend("no etcd endpoints configured".into()));
        }
        if opts.timeout.is_zero() {
            return Err(StoreError::Backend("etcd timeout must be positive".into()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ipam-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot start the etcd runtime: {e}")))?;
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(opts.timeout)
            .with_timeout(opts.timeout)
            // Detect a dead connection (member gone, link cut) without waiting for TCP.
            .with_keep_alive(Duration::from_secs(2), opts.timeout)
            .with_keep_alive_while_idle(true)
            // Refuse answers from a member cut off from its cluster's leader.
            .with_require_leader(true);
        if let Some(tls) = opts.tls()? {
            connect = connect.with_tls(tls);
        }
        let endpoints = opts.endpoints.clone();
        let (tx, rx) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            let mut clients = Vec::new();
            for e in &endpoints {
                match Client::connect([e], Some(connect.clone())).await {
                    Ok(c) => clients.push(c),
                    Err(err) => {
                        let _ = tx.send(Err(format!("{e}: {err}")));
                        return;
                    }
                }
            }
            let _ = tx.send(Ok(clients));
        });
        let clients = rx
            .recv_timeout(opts.timeout)
            .map_err(|_| StoreError::Timeout {
                what: "connect".into(),
                timeout: opts.timeout,
                last: String::new(),
            })?
            .map_err(|e| StoreError::Backend(format!("etcd connect: {e}")))?;
        Ok(Self {
            clients: Arc::new(clients),
            current: Arc::new(AtomicUsize::new(0)),
            prefix: opts.prefix.clone(),
            timeout: opts.timeout,
            endpoints: Arc::new(opts.endpoints.clone()),
            runtime: Some(runtime),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The bound on every call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs `op` (one attempt of a call) on the store's runtime until it is done, fails
    /// definitely, or the timeout passes; waits for the answer on this thread.
    fn call<T, F, Fut>(&self, what: String, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Attempt<T>> + Send,
    {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Backend("etcd store is shut down".into()));
        };
        let timeout = self.timeout;
        let clients = Arc::clone(&self.clients);
        let current = Arc::clone(&self.current);
        let endpoints = Arc::clone(&self.endpoints);
        let (tx, rx) = mpsc::sync_channel(1);
        let task_what = what.clone();
        runtime.spawn(async move {
            let deadline = Instant::now() + timeout;
            let result = loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let i = current.load(Ordering::Relaxed) % clients.len().max(1);
                let (Some(client), Some(endpoint)) = (clients.get(i), endpoints.get(i)) else {
                    break Err(StoreError::Backend("no etcd endpoints".into()));
                };
                // One attempt gets a share of the bound, so a hung member leaves time to try
                // another.
                let budget = left.min((timeout / 3).max(MIN_ATTEMPT));
                let failure = match tokio::time::timeout(budget, op(client.clone())).await {
                    Ok(Attempt::Done(v)) => break Ok(v),
                    Ok(Attempt::Failed(e)) => break Err(e),
                    Ok(Attempt::Transient(e)) => e,
                    Err(_) => format!("{endpoint} did not answer within {budget:?}"),
                };
                tracing::debug!(what = %task_what, error = %failure, "etcd call failed, trying the next endpoint");
                // Move on from this endpoint, unless another call already did.
                let _ = current.compare_exchange(
                    i,
                    (i + 1) % clients.len(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                if Instant::now() + RETRY_PAUSE >= deadline {
                    break Err(StoreError::Timeout {
                        what: task_what,
                        timeout,
                        last: failure,
                    });
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            };
            let _ = tx.send(result);
        });
        // The task answers by its deadline; the margin covers a runtime slow to schedule it.
        match rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout {
                what,
                timeout,
                last: "no answer from the etcd client task".into(),
            }),
        }
    }
}

impl Store for EtcdStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Revision)>, StoreError> {
        let full = self.full(key);
        let kv = self.call(format!("get {full}"), move |mut c| {
            let full = full.clone();
            async move {
                attempt(c.get(full, None).await).map_or_done(|mut resp| {
                    resp.take_kvs()
                        .into_iter()
                        .next()
                        .map(|kv| (kv.value().to_vec(), kv.mod_revision()))
                })
            }
        })?;
        match kv {
            Some((value, rev)) => Ok(Some((value, to_rev(rev)?))),
            None => Ok(None),
        }
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Revision>,
        new: Option<Vec<u8>>,
    ) -> Result<Revision, StoreError> {
        self.transact(&[Write {
            key: key.to_string(),
            expected,
            new,
        }])
    }

    fn transact(&self, writes: &[Write]) -> Result<Revision, StoreError> {
        let Some(first) = writes.first() else {
            return Err(StoreError::Backend("empty transaction".into()));
        };
        let mut compares = Vec::with_capacity(writes.len());
        let mut ops = Vec::with_capacity(writes.len());
        for w in writes {
            let full = self.full(&w.key);
            compares.push(match w.expected {
                // etcd compares an absent key as create_revision 0.
                None => Compare::create_revision(full.clone(), CompareOp::Equal, 0),
                Some(rev) => Compare::mod_revision(full.clone(), CompareOp::Equal, to_i64(rev)?),
            });
            ops.push(match &w.new {
                Some(value) => TxnOp::put(full, value.clone(), None),
                None => TxnOp::delete(full, None),
            });
        }
        let full = self.full(&first.key);
        let txn = Txn::new().when(compares).and_then(ops);
        let what = match writes.len() {
            1 => format!("compare-and-swap {full}"),
            n => format!("transaction on {full} and {} other keys", n - 1),
        };
        let (ok, rev) = self.call(what, move |mut c| {
            let txn = txn.clone();
            async move {
                attempt(c.txn(txn).await).map_or_done(|resp| {
                    let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                    (resp.succeeded(), rev)
                })
            }
        })?;
        if !ok {
            return Err(StoreError::Conflict {
                key: first.key.clone(),
            });
        }
        // The transaction's header revision is the store revision it created: the new
        // mod_revision of every key it wrote (or, for a delete, a revision later than any the
        // key had).
        to_rev(rev)
    }

    fn reachable(&self) -> Result<(), StoreError> {
        // A serializable read is answered by the member alone (no quorum round), and with
        // `require_leader` only by a member that has a leader.
        let key = self.full("reachable");
        self.call(format!("read {key}"), move |mut c| {
            let key = key.clone();
            async move {
                let opts = GetOptions::new().with_serializable().with_keys_only();
                attempt(c.get(key, Some(opts)).await).map_or_done(|_| ())
            }
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        let full = self.full(prefix);
        let kvs = self.call(format!("list {full}"), move |mut c| {
            let full = full.clone();
            async move {
                // etcd returns a range in key order.
                attempt(c.get(full, Some(GetOptions::new().with_prefix())).await)
                    .map_or_done(|mut resp| resp.take_kvs())
            }
        })?;
        kvs.into_iter()
            .map(|kv| {
                let key = kv
                    .key_str()
                    .map_err(|e| StoreError::Backend(format!("etcd key is not UTF-8: {e}")))?;
                let key = key
                    .strip_prefix(self.prefix.as_str())
                    .unwrap_or(key)
                    .to_string();
                Ok(Entry {
                    key,
                    value: kv.value().to_vec(),
                    revision: to_rev(kv.mod_revision())?,
                })
            })
            .collect()
    }
}

impl<T> Attempt<T> {
    fn map_or_done<U>(self, f: impl FnOnce(T) -> U) -> Attempt<U> {
        match self {
            Attempt::Done(v) => Attempt::Done(f(v)),
            Attempt::Transient(e) => Attempt::Transient(e),
            Attempt::Failed(e) => Attempt::Failed(e),
        }
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_needs_cert_and_key_together() {
        let mut o = EtcdOptions::new(vec!["https://127.0.0.1:2379".into()]);
        assert!(o.tls().unwrap().is_none());
        o.cert = Some("/nonexistent/cert.pem".into());
        let e = o.tls().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("together"), "{e}");
    }

    #[test]
    fn open_refuses_no_endpoints() {
        assert!(EtcdStore::open(&EtcdOptions::new(Vec::new())).is_err());
    }
}
