//! IPAM in the agent: opens the store and the allocator from `[ipam]`, answers the control
//! API's IPAM requests, and keeps what the node originates for its addresses in step with
//! what it holds (see [`crate::advertiser`]).
//!
//! The allocator blocks (sled flushes before acknowledging, etcd waits for its quorum), so
//! every call runs on tokio's blocking pool; the async server never waits on the store.
//!
//! Allocations are batched: requests that arrive while one batch is being committed queue up
//! and go together in the next ([`Allocator::allocate_many`]: one store transaction for the
//! lot), so a burst of CNI ADDs costs a few store round trips, not one each. The advertisement
//! follows each batch from what it allocated, without reading the store again; releases and
//! repairs recompute it from the store. Either way the difference is applied before the
//! answer goes out, so an address is announced by the time its allocation is acknowledged and
//! withdrawn by the time its release is.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bgp::speaker::{Announce, SpeakerHandle};
use bgp::wire::Prefix;
use config::{Advertise, Config, StoreKind};
use fib::Route;
use ipam::{
    Allocation, Allocator, EtcdOptions, EtcdStore, Family, IpamConfig, IpamError, PoolUsage,
    SledStore, Store,
};
use tokio::sync::{oneshot, Mutex};
use tracing::{info, warn};

use crate::advertiser::{desired, Advertiser};
use crate::api::{IpamAddress, Request, Response};
use crate::local_fib::LocalFib;
use crate::origination::{Change, Tracked};

/// Why IPAM could not start (the agent does not start either).
#[derive(Debug, thiserror::Error)]
pub enum IpamStartError {
    #[error("cannot open the etcd IPAM store at {}", .endpoints.join(", "))]
    Etcd {
        endpoints: Vec<String>,
        #[source]
        source: ipam::StoreError,
    },
    #[error("cannot open the IPAM store at {}", .path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: ipam::StoreError,
    },
    #[error("cannot start the IPAM allocator")]
    Allocator(#[source] IpamError),
    #[error("the IPAM start-up task failed: {0}")]
    Task(String),
}

/// The allocator's settings from `[ipam]`.
pub fn ipam_config(cfg: &config::Ipam) -> IpamConfig {
    IpamConfig {
        pools: cfg
            .pools
            .iter()
            .map(|p| ipam::Pool::new(p.cidr).with_block_size(p.block_size))
            .collect(),
        reservations: cfg.reservations.clone(),
        strict_affinity: cfg.strict_affinity,
        max_blocks_per_node: cfg.max_blocks_per_node,
        release_grace: std::time::Duration::from_secs(u64::from(cfg.release_grace)),
    }
}

/// The etcd store's settings from `[ipam]`.
pub fn etcd_options(cfg: &config::Ipam) -> EtcdOptions {
    EtcdOptions {
        endpoints: cfg.etcd_endpoints.clone(),
        prefix: cfg.etcd_prefix.clone(),
        timeout: std::time::Duration::from_secs(u64::from(cfg.etcd_timeout)),
        ca: cfg.etcd_ca.clone(),
        cert: cfg.etcd_cert.clone(),
        key: cfg.etcd_key.clone(),
    }
}

/// Opens the store and the allocator for `node.name`; `None` when no pool is configured
/// (IPAM off).
pub async fn open_allocator(cfg: &Config) -> Result<Option<Arc<Allocator>>, IpamStartError> {
    if cfg.ipam.pools.is_empty() {
        return Ok(None);
    }
    let path = cfg.ipam.path.clone();
    let node = cfg.node.name.clone();
    let ipam_cfg = ipam_config(&cfg.ipam);
    let etcd = (cfg.ipam.store == StoreKind::Etcd).then(|| etcd_options(&cfg.ipam));
    let opened = tokio::task::spawn_blocking(move || {
        let store: Arc<dyn Store> = match etcd {
            // Connecting is lazy: an unreachable etcd does not stop the agent, each
            // allocation fails within the timeout until etcd is back.
            Some(opts) => {
                Arc::new(
                    EtcdStore::open(&opts).map_err(|source| IpamStartError::Etcd {
                        endpoints: opts.endpoints.clone(),
                        source,
                    })?,
                )
            }
            None => Arc::new(
                SledStore::open(&path).map_err(|source| IpamStartError::Store {
                    path: path.clone(),
                    source,
                })?,
            ),
        };
        Allocator::new(store, &node, ipam_cfg).map_err(IpamStartError::Allocator)
    })
    .await
    .map_err(|e| IpamStartError::Task(e.to_string()))??;
    Ok(Some(Arc::new(opened)))
}

/// The agent's IPAM: the allocator and the advertisement of what it hands out.
pub struct IpamService {
    allocator: Arc<Allocator>,
    mode: Advertise,
    speaker: SpeakerHandle,
    fib: Option<LocalFib>,
    origin: Mutex<Origination>,
    /// Held around each allocation batch / release when set (shared store): this node's
    /// requests would all contend for the same block, and on etcd a lost compare-and-swap
    /// costs round trips, so they take turns here and only other nodes can conflict.
    writes: Option<Arc<std::sync::Mutex<()>>>,
    /// Held through each [`IpamService::sync`].
    syncing: Mutex<()>,
    /// Allocation requests waiting for the next batch.
    queue: std::sync::Mutex<Vec<Queued>>,
    /// Held by the task committing batches (at most one at a time).
    committer: Arc<Mutex<()>>,
    /// Set while a block is being claimed ahead of need.
    claiming: Arc<std::sync::atomic::AtomicBool>,
}

/// One allocation request waiting for its batch.
struct Queued {
    req: ipam::Request,
    answer: oneshot::Sender<Result<Allocation, String>>,
}

/// What the node originates, and the holdings it is computed from.
#[derive(Default)]
struct Origination {
    adv: Advertiser,
    tracked: Tracked,
}

impl IpamService {
    /// `fib` is where owned blocks are blackholed (aggregate mode); `None` = FIB disabled.
    pub fn new(
        allocator: Arc<Allocator>,
        mode: Advertise,
        speaker: SpeakerHandle,
        fib: Option<LocalFib>,
    ) -> Self {
        Self {
            allocator,
            mode,
            speaker,
            fib,
            origin: Mutex::default(),
            syncing: Mutex::default(),
            writes: None,
            queue: std::sync::Mutex::default(),
            committer: Arc::default(),
            claiming: Arc::default(),
        }
    }

    /// Makes this node's allocations and releases take turns (for a store shared by nodes).
    pub fn serialize_writes(mut self) -> Self {
        self.writes = Some(Arc::default());
        self
    }

    /// [`IpamService::blocking`] under the write lock, if there is one.
    async fn blocking_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Allocator) -> Result<T, IpamError> + Send + 'static,
    ) -> Result<T, String> {
        let writes = self.writes.clone();
        self.blocking(move |a| {
            let _turn = writes
                .as_ref()
                .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
            f(a)
        })
        .await
    }

    /// Runs `f` on the blocking pool; errors become the one-line message the API returns.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Allocator) -> Result<T, IpamError> + Send + 'static,
    ) -> Result<T, String> {
        let allocator = Arc::clone(&self.allocator);
        match tokio::task::spawn_blocking(move || f(&allocator)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the IPAM task failed: {e}")),
        }
    }

    /// Reads what the node holds, and announces / withdraws / blackholes the difference from
    /// what is in place. Failures are logged and the failed part is retried on the next call.
    ///
    /// The read does not hold up allocations: what batches and releases change meanwhile is
    /// laid over the read before it is applied ([`Tracked`]; syncs take turns, so an older
    /// read never lands after a newer one).
    pub async fn sync(&self) {
        let _turn = self.syncing.lock().await;
        let since = self.origin.lock().await.tracked.begin_read();
        let held = self.blocking(|a| a.node_holdings(a.node())).await;
        let held = match held {
            Ok(h) => h,
            Err(e) => {
                warn!(error = %e, "cannot read this node's IPAM holdings; advertisement unchanged");
                return;
            }
        };
        let mut origin = self.origin.lock().await;
        origin.tracked.finish_read(self.mode, since, held);
        self.originate(&mut origin).await;
    }

    /// Applies what this node just allocated or released to the holdings and originates the
    /// difference.
    async fn follow(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let mut origin = self.origin.lock().await;
        let reading = self.syncing.try_lock().is_err();
        if !origin.tracked.apply(self.mode, changes, reading) {
            drop(origin);
            return self.sync().await;
        }
        self.originate(&mut origin).await;
    }

    /// Applies the difference between what the tracked holdings want and what is in place.
    async fn originate(&self, origin: &mut Origination) {
        let Some(held) = origin.tracked.held() else {
            return;
        };
        let adv = &mut origin.adv;
        let plan = adv.plan(&desired(self.mode, held));
        if plan.is_empty() {
            return;
        }
        if let Some(fib) = &self.fib {
            // Blackholes go in before the block is announced and out after it is withdrawn.
            for &block in &plan.blackhole {
                fib.pin(Route::blackhole(block));
            }
            adv.blackholed(&plan.blackhole);
        }
        if !plan.withdraw.is_empty() && self.speak_withdraw(&plan.withdraw).await {
            adv.withdrawn(&plan.withdraw);
        }
        if !plan.announce.is_empty() && self.speak_announce(&plan.announce).await {
            adv.announced(&plan.announce);
        }
        if let Some(fib) = &self.fib {
            for &block in &plan.unblackhole {
                fib.unpin(block);
            }
            adv.unblackholed(&plan.unblackhole);
        }
        tracing::debug!(
            announced = plan.announce.len(),
            withdrawn = plan.withdraw.len(),
            blackholed = plan.blackhole.len(),
            unblackholed = plan.unblackhole.len(),
            "IPAM advertisement updated"
        );
    }

    /// Queues `req` for the next allocation batch and waits for its result.
    async fn allocate(self: &Arc<Self>, req: ipam::Request) -> Result<Allocation, String> {
        let (answer, result) = oneshot::channel();
        self.queued().push(Queued { req, answer });
        self.kick();
        result
            .await
            .map_err(|_| "the IPAM allocation batch was abandoned".to_string())?
    }

    fn queued(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        // A panic while the lock was held cannot leave the queue half-changed.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a task committing the queued requests in batches, unless one is running. The
    /// task is spawned, so a caller that goes away cannot stop a batch half-way.
    fn kick(self: &Arc<Self>) {
        let Ok(turn) = Arc::clone(&self.committer).try_lock_owned() else {
            // The running task takes this request: it checks the queue after it lets go.
            return;
        };
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let batch: Vec<Queued> = {
                    let mut q = this.queued();
                    let n = q.len().min(ipam::MAX_BATCH);
                    q.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                this.commit(batch).await;
                this.claim_ahead();
            }
            drop(turn);
            // A request queued after the last look but before the lock was let go.
            if !this.queued().is_empty() {
                this.kick();
            }
        });
    }

    /// Claims the next block in the background when this node's blocks run low, so that
    /// bursts do not wait for a claim. Outside the write lock: a new block's keys are not
    /// the ones batches write, so batches go on meanwhile.
    fn claim_ahead(&self) {
        use std::sync::atomic::Ordering;
        if self.claiming.swap(true, Ordering::AcqRel) {
            return;
        }
        let allocator = Arc::clone(&self.allocator);
        let claiming = Arc::clone(&self.claiming);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = allocator.claim_ahead() {
                warn!(error = %e, "cannot claim a block ahead of need");
            }
            claiming.store(false, Ordering::Release);
        });
    }

    /// Allocates one batch, originates what it got, then answers each caller.
    async fn commit(&self, batch: Vec<Queued>) {
        let reqs: Vec<ipam::Request> = batch.iter().map(|q| q.req.clone()).collect();
        let started = std::time::Instant::now();
        let results = match self
            .blocking_write(move |a| Ok(a.allocate_many(&reqs)))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                for q in batch {
                    let _ = q.answer.send(Err(e.clone()));
                }
                return;
            }
        };
        let allocated: Vec<Change> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(Change::from))
            .collect();
        let stored = started.elapsed();
        self.follow(&allocated).await;
        tracing::debug!(
            requests = batch.len(), allocated = allocated.len(), ?stored,
            advertised = ?started.elapsed().saturating_sub(stored), "IPAM batch done"
        );
        for (q, r) in batch.into_iter().zip(results) {
            let _ = q.answer.send(r.map_err(|e| e.to_string()));
        }
    }

    /// Releases this node's blocks that stayed empty for the grace period (never a node's
    /// last block), then withdraws what was released.
    pub async fn release_empty_blocks(&self) {
        match self
            .blocking(|a| a.release_empty_blocks(std::time::SystemTime::now()))
            .await
        {
            Ok(released) if !released.is_empty() => {
                info!(blocks = ?released, "released empty blocks");
                self.sync().await;
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot release empty blocks"),
        }
    }

    /// How often [`IpamService::release_empty_blocks`] should run: a fraction of the grace
    /// period, at least every 5 s and at most every 5 min.
    pub fn sweep_interval(&self) -> std::time::Duration {
        (self.allocator.config().release_grace / 4).clamp(
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(300),
        )
    }

    async fn speak_announce(&self, prefixes: &[Prefix]) -> bool {
        let routes = prefixes
            .iter()
            .map(|&prefix| Announce {
                prefix,
                next_hop: None,
                communities: Vec::new(),
            })
            .collect();
        spoke("announce", self.speaker.announce(routes).await)
    }

    async fn speak_withdraw(&self, prefixes: &[Prefix]) -> bool {
        spoke("withdraw", self.speaker.withdraw(prefixes.to_vec()).await)
    }

    /// Answers one IPAM request (any other request is refused).
    pub async fn answer(self: &Arc<Self>, req: Request) -> Response {
        match self.try_answer(req).await {
            Ok(r) => r,
            Err(message) => Response::Error { message },
        }
    }

    async fn try_answer(self: &Arc<Self>, req: Request) -> Result<Response, String> {
        match req {
            Request::IpamAllocate {
                handle,
                pool,
                ip,
                family,
                attrs,
            } => {
                let family = match family {
                    None => None,
                    Some(n) => Some(
                        Family::from_number(n)
                            .ok_or_else(|| format!("family must be 4 or 6, not {n}"))?,
                    ),
                };
                let req = ipam::Request {
                    handle,
                    family,
                    pool,
                    ip,
                    attrs,
                };
                let got = self.allocate(req).await?;
                Ok(Response::Allocated {
                    addresses: vec![api_address(got)],
                })
            }
            Request::IpamRelease { handle, ip } => {
                let freed: Vec<IpAddr> = match (handle, ip) {
                    (Some(handle), None) => {
                        self.blocking_write(move |a| a.release_handle(&handle))
                            .await?
                    }
                    (None, Some(ip)) => self
                        .blocking_write(move |a| a.release_ip(ip, None))
                        .await?
                        .map(|r| r.ip)
                        .into_iter()
                        .collect(),
                    _ => return Err("give exactly one of handle and ip".into()),
                };
                let changes: Vec<Change> = freed.iter().copied().map(Change::Released).collect();
                self.follow(&changes).await;
                Ok(Response::Done { count: freed.len() })
            }
            Request::IpamGet { handle } => {
                let got = self
                    .blocking(move |a| a.handle_allocations(&handle))
                    .await?;
                Ok(Response::Allocated {
                    addresses: got.into_iter().map(api_address).collect(),
                })
            }
            Request::IpamShow => {
                let usage = self.blocking(|a| a.show()).await?;
                Ok(Response::IpamUsage {
                    pools: usage_json(&usage)?,
                })
            }
            Request::IpamCheck {
                live_handles,
                release,
            } => self.check(live_handles, release).await,
            Request::IpamStatus => {
                let (usage, node, cfg) = self
                    .blocking(|a| Ok((a.show()?, a.node().to_string(), a.config().clone())))
                    .await?;
                let free = allocatable(&usage, &node, &cfg);
                if free == 0 {
                    return Err(cannot_allocate(&usage, &node, &cfg));
                }
                Ok(Response::Done {
                    count: usize::try_from(free).unwrap_or(usize::MAX),
                })
            }
            other => Err(format!("not an IPAM request: {other:?}")),
        }
    }

    /// Check (and with `release`, repair); `clean` is the state after the repair.
    async fn check(
        &self,
        live_handles: Option<Vec<String>>,
        release: bool,
    ) -> Result<Response, String> {
        let live: Option<HashSet<String>> = live_handles.map(|v| v.into_iter().collect());
        let (report, clean, released) = self
            .blocking(move |a| {
                if !release {
                    let report = a.check(live.as_ref())?;
                    let clean = report.is_clean();
                    return Ok((report, clean, 0));
                }
                let report = a.check_release(live.as_ref())?;
                let released = report.leaked.len() + report.dangling_handles.len();
                let clean = a.check(live.as_ref())?.is_clean();
                Ok((report, clean, released))
            })
            .await?;
        if released > 0 {
            self.sync().await;
        }
        let report = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        Ok(Response::IpamCheck {
            report,
            clean,
            released,
        })
    }
}

/// Logs a failed speaker call; true when it was taken.
fn spoke(what: &str, r: Result<Result<usize, String>, bgp::speaker::SpeakerGone>) -> bool {
    match r {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            warn!(error = %e, "IPAM {what} refused by the speaker");
            false
        }
        Err(e) => {
            warn!(error = %e, "IPAM {what}: the speaker is gone");
            false
        }
    }
}

fn api_address(a: Allocation) -> IpamAddress {
    IpamAddress {
        handle: a.handle,
        ip: a.ip,
        prefix_len: a.prefix_len,
        pool: a.pool,
        block: a.block,
        borrowed: a.borrowed,
        seq: a.seq,
    }
}

/// The usage as JSON. Counts are `u128` (IPv6 pools); a count beyond `u64` becomes a JSON
/// float (what any JSON reader would make of it anyway) rather than an error.
fn usage_json(usage: &[PoolUsage]) -> Result<serde_json::Value, String> {
    serde_json::to_string(usage)
        .and_then(|s| serde_json::from_str(&s))
        .map_err(|e| e.to_string())
}

/// How many addresses `node` could still get under the rules: free addresses in its own
/// blocks, the addresses of blocks nobody has claimed yet (unless the node reached
/// `max_blocks_per_node` for the family), and, without strict affinity, free addresses in
/// other nodes' blocks. Reserved addresses in unclaimed blocks are not subtracted.
pub fn allocatable(usage: &[PoolUsage], node: &str, cfg: &IpamConfig) -> u128 {
    let owned = |v4: bool| {
        usage
            .iter()
            .filter(|u| u.pool.is_ipv4() == v4)
            .flat_map(|u| &u.blocks)
            .filter(|b| b.owner.as_deref() == Some(node))
            .count()
    };
    let may_claim = |v4: bool| match cfg.max_blocks_per_node {
        None => true,
        Some(max) => owned(v4) < usize::try_from(max).unwrap_or(usize::MAX),
    };
    let mut total: u128 = 0;
    for u in usage.iter().filter(|u| !u.disabled) {
        let mine = |b: &&ipam::BlockUsage| b.owner.as_deref() == Some(node);
        let own_free: u128 = u
            .blocks
            .iter()
            .filter(mine)
            .map(|b| u128::from(b.free))
            .sum();
        let claimed: u128 = u.blocks.iter().map(|b| u128::from(b.size)).sum();
        let unclaimed = if may_claim(u.pool.is_ipv4()) {
            u.size.saturating_sub(claimed)
        } else {
            0
        };
        let borrowable: u128 = if cfg.strict_affinity {
            0
        } else {
            u.blocks
                .iter()
                .filter(|b| !mine(b))
                .map(|b| u128::from(b.free))
                .sum()
        };
        total = total
            .saturating_add(own_free)
            .saturating_add(unclaimed)
            .saturating_add(borrowable);
    }
    total
}

/// Why [`allocatable`] is zero, in one line.
fn cannot_allocate(usage: &[PoolUsage], node: &str, cfg: &IpamConfig) -> String {
    if usage.iter().all(|u| u.disabled) {
        return "no enabled IPAM pool".into();
    }
    let pools: Vec<String> = usage.iter().map(|u| u.pool.to_string()).collect();
    let mut why = format!(
        "cannot allocate: every pool ({}) is exhausted for node {node}",
        pools.join(", ")
    );
    if cfg.max_blocks_per_node.is_some() {
        why.push_str(" (block limit max_blocks_per_node may be reached)");
    }
    if cfg.strict_affinity {
        why.push_str(" (strict affinity: no borrowing)");
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipam::MemoryStore;

    fn alloc(store: &Arc<MemoryStore>, node: &str, cfg: &IpamConfig) -> Allocator {
        let store: Arc<dyn Store> = store.clone();
        Allocator::new(store, node, cfg.clone()).unwrap()
    }

    fn cfg(strict: bool, max: Option<u32>) -> IpamConfig {
        IpamConfig {
            strict_affinity: strict,
            max_blocks_per_node: max,
            ..IpamConfig::with_pools(vec![
                ipam::Pool::new("10.0.0.0/29".parse().unwrap()).with_block_size(30)
            ])
        }
    }

    #[test]
    fn allocatable_follows_the_rules() {
        let store = Arc::new(MemoryStore::new());
        let c = cfg(false, None);
        let a = alloc(&store, "a", &c);
        let b = alloc(&store, "b", &c);
        assert_eq!(allocatable(&a.show().unwrap(), "a", &c), 8);
        a.allocate(&ipam::Request::new("a0")).unwrap();
        b.allocate(&ipam::Request::new("b0")).unwrap();
        // a: 3 free in its block, none unclaimed, 3 borrowable from b's.
        assert_eq!(allocatable(&a.show().unwrap(), "a", &c), 6);
        let strict = cfg(true, None);
        assert_eq!(allocatable(&a.show().unwrap(), "a", &strict), 3);
        // Block limit: a node with one block and max 1 cannot claim the other.
        let fresh = Arc::new(MemoryStore::new());
        let limited = cfg(true, Some(1));
        let x = alloc(&fresh, "x", &limited);
        for i in 0..4 {
            x.allocate(&ipam::Request::new(format!("x{i}"))).unwrap();
        }
        let usage = x.show().unwrap();
        assert_eq!(allocatable(&usage, "x", &limited), 0);
        assert_eq!(allocatable(&usage, "x", &cfg(true, None)), 4);
        let why = cannot_allocate(&usage, "x", &limited);
        assert!(why.contains("10.0.0.0/29") && why.contains("max_blocks_per_node"));
    }

    #[test]
    fn config_maps_onto_the_allocator() {
        let cfg = config::parse_with_host(
            r#"
[node]
name = "n"
router_id = "192.0.2.1"
[ipam]
strict_affinity = true
max_blocks_per_node = 3
reservations = ["10.244.0.1"]
[[ipam.pools]]
cidr = "10.244.0.0/16"
block_size = 28
"#,
            "t.toml",
            &config::HostFacts::default(),
        )
        .unwrap();
        let c = ipam_config(&cfg.ipam);
        assert_eq!(
            c.pools,
            vec![ipam::Pool::new("10.244.0.0/16".parse().unwrap()).with_block_size(28)]
        );
        assert_eq!(c.reservations, vec!["10.244.0.1/32".parse().unwrap()]);
        assert!(c.strict_affinity);
        assert_eq!(c.max_blocks_per_node, Some(3));
    }
}
