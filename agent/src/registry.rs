//! The node registry on etcd: this node's [`NodeInfo`] under `<prefix>nodes/<name>`,
//! attached to a lease it keeps alive, and a watched view of every registered node.
//!
//! A node whose lease lapses (it died, or lost etcd for longer than the TTL) is deleted by
//! etcd and so leaves everyone's view. After an etcd outage the task reconnects with
//! back-off, takes a new lease and registers again; while etcd is away the view keeps the
//! last nodes it saw (sessions already up are left alone).
//!
//! The registry uses the IPAM store's etcd settings (`ipam.etcd_endpoints`, `etcd_prefix`,
//! `etcd_ca` / `etcd_cert` / `etcd_key`, `etcd_timeout`) but keeps its own async connection:
//! the IPAM store's client lives on its own runtime behind a synchronous trait.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity, PutOptions, TlsOptions,
    WatchOptions, WatchResponse,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tracing::{debug, info, warn};

use crate::api::{NodeInfo, NodeMesh, NodeRole};
use crate::lent_watch::LentWatch;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where the registry lives and how long this node's entry outlives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// etcd client URLs.
    pub endpoints: Vec<String>,
    /// Key prefix (ends with `/`); entries are `<prefix>nodes/<name>`.
    pub prefix: String,
    /// Lease TTL, seconds.
    pub lease_ttl: u32,
    /// Bound on connecting and on each request.
    pub timeout: Duration,
    /// TLS: CA bundle, client certificate and key (PEM files).
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl RegistrySettings {
    /// From the config; None when no etcd endpoints are configured (no registry).
    pub fn from_config(cfg: &config::Config) -> Option<Self> {
        if cfg.ipam.etcd_endpoints.is_empty() {
            return None;
        }
        Some(Self {
            endpoints: cfg.ipam.etcd_endpoints.clone(),
            prefix: cfg.ipam.etcd_prefix.clone(),
            lease_ttl: cfg.bgp.mesh_lease,
            timeout: Duration::from_secs(cfg.ipam.etcd_timeout.into()),
            ca: cfg.ipam.etcd_ca.clone(),
            cert: cfg.ipam.etcd_cert.clone(),
            key: cfg.ipam.etcd_key.clone(),
        })
    }

    /// Connection options: timeouts, HTTP/2 keep-alive, TLS when configured. Fails when a
    /// certificate file cannot be read.
    fn connect_options(&self) -> Result<ConnectOptions, SessionError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.timeout)
            // HTTP/2 pings notice a dead etcd even while nothing changes.
            .with_keep_alive(Duration::from_secs(2), self.timeout)
            .with_keep_alive_while_idle(true);
        if self.ca.is_none() && self.cert.is_none() {
            return Ok(options);
        }
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| SessionError::Tls(format!("{}: {e}", p.display())))
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(tls);
        Ok(options)
    }

    fn nodes_prefix(&self) -> String {
        format!("{}nodes/", self.prefix)
    }
}

/// This node's registry entry, from the config.
pub fn own_info(cfg: &config::Config) -> NodeInfo {
    let port = cfg.bgp.listen.map_or(179, |l| l.port());
    NodeInfo {
        name: cfg.node.name.clone(),
        router_id: cfg.node.router_id,
        asn: cfg.node.asn,
        addresses: vec![bgp_address(cfg.bgp.listen, cfg.node.router_id.into())],
        port,
        role: if cfg.bgp.cluster_id.is_some() {
            NodeRole::Reflector
        } else {
            NodeRole::Node
        },
        mesh: match cfg.bgp.mesh {
            config::MeshMode::Off => NodeMesh::Off,
            config::MeshMode::Full => NodeMesh::Full,
            config::MeshMode::Reflectors => NodeMesh::Reflectors,
        },
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// The address other nodes reach our BGP listener at: the listen address when it is a
/// specific one, else the router id.
fn bgp_address(listen: Option<SocketAddr>, router_id: IpAddr) -> IpAddr {
    match listen {
        Some(l) if !l.ip().is_unspecified() => l.ip(),
        _ => router_id,
    }
}

/// The registry as this node sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Registered nodes by name (this one included once it is registered).
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Connected to etcd and registered now; when false, `nodes` is the last view.
    pub connected: bool,
}

/// Why a registry session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd did not answer {0} in time")]
    Timeout(&'static str),
    #[error("cannot read an etcd TLS file: {0}")]
    Tls(String),
    #[error("no etcd endpoints configured")]
    NoEndpoints,
    #[error("the lease expired")]
    LeaseExpired,
    #[error("our registry entry was deleted")]
    Deleted,
    #[error("the {0} stream ended")]
    StreamEnded(&'static str),
    #[error("the watch was cancelled: {0}")]
    WatchCancelled(String),
}

/// A running registry task: its view, and how to stop it.
#[derive(Debug)]
pub struct Registry {
    view: watch::Receiver<NodeView>,
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Registry {
    /// Starts registering `me` and watching the registry (and, with `lent`, the IPAM blocks).
    /// Must run inside a tokio runtime.
    pub fn spawn(settings: RegistrySettings, me: NodeInfo, lent: Option<LentWatch>) -> Self {
        let (view_tx, view) = watch::channel(NodeView::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(settings, me, view_tx, stop_rx, lent));
        Self {
            view,
            stop,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// A receiver of the current view (changes wake it).
    pub fn subscribe(&self) -> watch::Receiver<NodeView> {
        self.view.clone()
    }

    /// The current view.
    pub fn view(&self) -> NodeView {
        self.view.borrow().clone()
    }

    /// Stops the task and revokes this node's lease (best effort), so the other nodes see
    /// it leave at once rather than after the TTL.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            if let Err(e) = task.await {
                warn!(error = %e, "node registry task failed");
            }
        }
    }
}

/// The registry and, when `bgp.mesh` is on, the mesh that follows it.
#[derive(Debug)]
pub struct Cluster {
    pub registry: Registry,
    pub mesh: Option<crate::mesh::Mesh>,
}

impl Cluster {
    /// Starts the registry (when etcd endpoints are configured) and the mesh (when
    /// `bgp.mesh` is on). Must run inside a tokio runtime.
    /// `lent` follows the IPAM blocks over the same connection.
    pub fn start(
        cfg: &config::Config,
        speaker: &bgp::speaker::SpeakerHandle,
        lent: Option<LentWatch>,
    ) -> Option<std::sync::Arc<Self>> {
        let settings = RegistrySettings::from_config(cfg)?;
        let me = own_info(cfg);
        info!(
            endpoints = ?settings.endpoints,
            prefix = %settings.prefix,
            lease_ttl = settings.lease_ttl,
            mesh = ?cfg.bgp.mesh,
            "node registry on etcd"
        );
        let registry = Registry::spawn(settings, me.clone(), lent);
        let mesh = (cfg.bgp.mesh != config::MeshMode::Off).then(|| {
            let export = bgp::policy::Filter {
                rules: (!cfg.ipam.pools.is_empty()).then(|| {
                    cfg.ipam
                        .pools
                        .iter()
                        .map(|p| crate::daemon::pool_rule(p.cidr))
                        .collect()
                }),
                policy: None,
            };
            let template = crate::mesh::MeshTemplate {
                local_address: me.addresses.first().copied(),
                export,
            };
            crate::mesh::Mesh::spawn(me, template, speaker.clone(), registry.subscribe())
        });
        Some(std::sync::Arc::new(Self { registry, mesh }))
    }

    /// Stops following the registry and leaves it (the lease is revoked).
    pub async fn stop(&self) {
        if let Some(mesh) = &self.mesh {
            mesh.stop();
        }
        self.registry.stop().await;
    }
}

/// What outlives one connection: the lease (kept across reconnections while etcd still
/// has it, so a failover to another member does not make this node leave and come back),
/// the last client (to revoke the lease on stop) and which endpoint to try next.
#[derive(Default)]
struct Held {
    lease: Option<i64>,
    client: Option<Client>,
    /// Index into the endpoints. One endpoint per connection: tonic's balancing across
    /// several keeps picking a member that refuses connections, so the registry moves to
    /// the next endpoint itself after a failure.
    next: usize,
}

async fn run(
    settings: RegistrySettings,
    me: NodeInfo,
    view: watch::Sender<NodeView>,
    mut stop: watch::Receiver<bool>,
    mut lent: Option<LentWatch>,
) {
    let mut held = Held::default();
    let mut backoff = Duration::from_millis(250);
    loop {
        let started = Instant::now();
        let ended = tokio::select! {
            e = session(&settings, &me, &view, &mut held, lent.as_mut()) => e,
            _ = stop.changed() => break,
        };
        view.send_modify(|v| v.connected = false);
        held.next = held.next.wrapping_add(1);
        warn!(error = %ended, "node registry: lost etcd, retrying");
        if started.elapsed() > MAX_BACKOFF.max(settings.timeout) * 2 {
            backoff = Duration::from_millis(250);
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    if let (Some(mut client), Some(lease)) = (held.client.take(), held.lease.take()) {
        match timeout(settings.timeout, client.lease_revoke(lease)).await {
            Ok(Ok(_)) => info!(node = %me.name, "left the node registry"),
            Ok(Err(e)) => debug!(error = %e, "lease revoke failed"),
            Err(_) => debug!("lease revoke timed out"),
        }
    }
}

/// One connection to etcd: register, load the registry, then follow it until something
/// fails. Only returns with the reason it ended.
async fn session(
    settings: &RegistrySettings,
    me: &NodeInfo,
    view: &watch::Sender<NodeView>,
    held: &mut Held,
    lent: Option<&mut LentWatch>,
) -> SessionError {
    match session_inner(settings, me, view, held, lent).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

async fn session_inner(
    settings: &RegistrySettings,
    me: &NodeInfo,
    view: &watch::Sender<NodeView>,
    held: &mut Held,
    mut lent: Option<&mut LentWatch>,
) -> Result<Never, SessionError> {
    let options = settings.connect_options()?;
    let t = settings.timeout;
    let Some(endpoint) = settings
        .endpoints
        .get(held.next % settings.endpoints.len().max(1))
    else {
        return Err(SessionError::NoEndpoints);
    };
    let mut client = deadline(
        t,
        "connect",
        Client::connect([endpoint.as_str()], Some(options)),
    )
    .await?;
    held.client = Some(client.clone());
    // Keep the lease of an earlier connection while etcd still has it; else take a new one.
    let ttl = i64::from(settings.lease_ttl);
    let alive = match held.lease {
        Some(id) => {
            deadline(t, "lease lookup", client.lease_time_to_live(id, None))
                .await?
                .ttl()
                > 0
        }
        None => false,
    };
    let lease = match held.lease {
        Some(id) if alive => id,
        _ => {
            let id = deadline(t, "lease grant", client.lease_grant(ttl, None))
                .await?
                .id();
            held.lease = Some(id);
            id
        }
    };
    let key = format!("{}{}", settings.nodes_prefix(), me.name);
    let value = serde_json::to_vec(me).unwrap_or_default();
    // Another live node under our name (another lease, other addresses) is overwritten;
    // say so, node names must be unique.
    let existing = deadline(t, "get", client.get(key.clone(), None)).await?;
    if let Some(kv) = existing.kvs().first() {
        let ours = kv.lease() == lease;
        let other = decode(&settings.nodes_prefix(), kv.key(), kv.value());
        if !ours && other.is_some_and(|o| o.addresses != me.addresses) {
            warn!(node = %me.name, "another node is registered under this name; replacing its entry");
        }
    }
    deadline(
        t,
        "put",
        client.put(
            key.clone(),
            value,
            Some(PutOptions::new().with_lease(lease)),
        ),
    )
    .await?;
    let (mut keeper, mut keep_alive) =
        deadline(t, "lease keep-alive", client.lease_keep_alive(lease)).await?;

    let prefix = settings.nodes_prefix();
    let resp = deadline(
        t,
        "get",
        client.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut nodes = BTreeMap::new();
    for kv in resp.kvs() {
        if let Some(info) = decode(&prefix, kv.key(), kv.value()) {
            nodes.insert(info.name.clone(), info);
        }
    }
    info!(
        node = %me.name,
        endpoint = %endpoint,
        lease,
        ttl,
        nodes = nodes.len(),
        "registered in the node registry"
    );
    view.send_replace(NodeView {
        nodes,
        connected: true,
    });
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut events = deadline(t, "watch", client.watch(prefix.clone(), Some(options))).await?;
    // The IPAM blocks, from the same revision: what this node lends (aggregate mode).
    let blocks_prefix = format!("{}blocks/", settings.prefix);
    let mut blocks = match lent.as_deref_mut() {
        Some(l) => {
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(revision + 1);
            let stream = deadline(t, "watch", client.watch(blocks_prefix, Some(options))).await?;
            // Events before this watch were not seen: a full read is due.
            l.restart();
            Some(stream)
        }
        None => None,
    };

    // Refresh three times per TTL; a lease that has not been refreshed for a whole TTL is
    // gone on the etcd side too.
    let period = Duration::from_millis(u64::from(settings.lease_ttl) * 1000 / 3);
    let mut tick = tokio::time::interval(period);
    let mut refreshed = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if refreshed.elapsed() > Duration::from_secs(settings.lease_ttl.into()) {
                    return Err(SessionError::LeaseExpired);
                }
                deadline(t, "keep-alive", keeper.keep_alive()).await?;
            }
            m = keep_alive.message() => match m? {
                Some(r) if r.ttl() > 0 => refreshed = Instant::now(),
                Some(_) => return Err(SessionError::LeaseExpired),
                None => return Err(SessionError::StreamEnded("keep-alive")),
            },
            m = events.message() => match m? {
                Some(resp) => apply(&prefix, &me.name, &resp, view)?,
                None => return Err(SessionError::StreamEnded("watch")),
            },
            m = next_block_event(&mut blocks) => match m? {
                Some(resp) => {
                    if resp.canceled() {
                        return Err(SessionError::WatchCancelled(resp.cancel_reason().into()));
                    }
                    if let Some(l) = lent.as_deref_mut() {
                        for ev in resp.events() {
                            let Some(kv) = ev.kv() else { continue };
                            match ev.event_type() {
                                EventType::Put => l.put(kv.key(), kv.value()),
                                EventType::Delete => l.delete(kv.key()),
                            }
                        }
                    }
                }
                None => return Err(SessionError::StreamEnded("blocks watch")),
            },
        }
    }
}

/// The next message of the blocks watch; never ready without one.
async fn next_block_event(
    stream: &mut Option<etcd_client::WatchStream>,
) -> Result<Option<WatchResponse>, etcd_client::Error> {
    match stream {
        Some(s) => s.message().await,
        None => std::future::pending().await,
    }
}

/// Applies one watch response to the view.
fn apply(
    prefix: &str,
    own_name: &str,
    resp: &WatchResponse,
    view: &watch::Sender<NodeView>,
) -> Result<(), SessionError> {
    if resp.canceled() {
        return Err(SessionError::WatchCancelled(resp.cancel_reason().into()));
    }
    let mut own_deleted = false;
    view.send_if_modified(|v| {
        let mut changed = false;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            match ev.event_type() {
                EventType::Put => {
                    if let Some(info) = decode(prefix, kv.key(), kv.value()) {
                        if v.nodes.get(&info.name) != Some(&info) {
                            info!(node = %info.name, address = ?info.addresses, "node registered");
                            v.nodes.insert(info.name.clone(), info);
                            changed = true;
                        }
                    }
                }
                EventType::Delete => {
                    let Some(name) = name_of(prefix, kv.key()) else {
                        continue;
                    };
                    if name == own_name {
                        own_deleted = true;
                    }
                    if v.nodes.remove(name).is_some() {
                        info!(node = %name, "node left the registry");
                        changed = true;
                    }
                }
            }
        }
        changed
    });
    if own_deleted {
        // Our lease lapsed (or someone deleted the key): register again.
        return Err(SessionError::Deleted);
    }
    Ok(())
}

/// The node name in a registry key, when the key is one.
fn name_of<'k>(prefix: &str, key: &'k [u8]) -> Option<&'k str> {
    let key = std::str::from_utf8(key).ok()?;
    let name = key.strip_prefix(prefix)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// A registry entry, when it is one and well formed (other nodes write these: a bad one is
/// logged and skipped).
fn decode(prefix: &str, key: &[u8], value: &[u8]) -> Option<NodeInfo> {
    let name = name_of(prefix, key)?;
    match serde_json::from_slice::<NodeInfo>(value) {
        Ok(info) if info.name == name => Some(info),
        Ok(info) => {
            warn!(key = name, name = %info.name, "registry entry names another node; ignored");
            None
        }
        Err(e) => {
            warn!(key = name, error = %e, "unreadable registry entry; ignored");
            None
        }
    }
}

async fn deadline<T>(
    t: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, SessionError> {
    match timeout(t, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(SessionError::Timeout(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            router_id: "192.0.2.1".parse().unwrap(),
            asn: 64512,
            addresses: vec!["192.0.2.1".parse().unwrap()],
            port: 179,
            role: NodeRole::Node,
            mesh: NodeMesh::Full,
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn keys_and_entries() {
        let p = "/bramble/nodes/";
        assert_eq!(name_of(p, b"/bramble/nodes/n1"), Some("n1"));
        assert_eq!(name_of(p, b"/bramble/nodes/"), None);
        assert_eq!(name_of(p, b"/bramble/nodes/a/b"), None);
        assert_eq!(name_of(p, b"/other/n1"), None);
        assert_eq!(name_of(p, &[0xff, 0xfe]), None);
        let v = serde_json::to_vec(&info("n1")).unwrap();
        assert_eq!(decode(p, b"/bramble/nodes/n1", &v), Some(info("n1")));
        // The key is authoritative: an entry naming another node is skipped.
        assert_eq!(decode(p, b"/bramble/nodes/n2", &v), None);
        assert_eq!(decode(p, b"/bramble/nodes/n1", b"{not json"), None);
    }

    #[test]
    fn own_entry_from_the_config() {
        let host = config::HostFacts::default();
        let text = |bgp: &str| {
            format!(
                "[node]\nname = \"n1\"\nrouter_id = \"192.0.2.7\"\n[bgp]\n{bgp}\n\
                 [ipam]\netcd_endpoints = [\"http://127.0.0.1:2379\"]\n"
            )
        };
        let cfg = config::parse_with_host(
            &text("listen = \"0.0.0.0:1179\"\nmesh = true\nmesh_lease = 4"),
            "t.toml",
            &host,
        )
        .unwrap();
        let me = own_info(&cfg);
        assert_eq!(me.addresses, vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            (me.port, me.role, me.mesh),
            (1179, NodeRole::Node, NodeMesh::Full)
        );
        let s = RegistrySettings::from_config(&cfg).unwrap();
        assert_eq!(
            (s.lease_ttl, s.nodes_prefix()),
            (4, "/bramble/nodes/".into())
        );
        let cfg = config::parse_with_host(
            &text("listen = \"198.51.100.1\"\ncluster_id = \"1.1.1.1\"\nmesh = \"reflectors\""),
            "t.toml",
            &host,
        )
        .unwrap();
        let me = own_info(&cfg);
        assert_eq!(
            me.addresses,
            vec!["198.51.100.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            (me.role, me.mesh),
            (NodeRole::Reflector, NodeMesh::Reflectors)
        );
        let no_etcd = config::parse_with_host(
            "[node]\nname = \"n\"\nrouter_id = \"192.0.2.7\"\n",
            "t.toml",
            &host,
        )
        .unwrap();
        assert_eq!(RegistrySettings::from_config(&no_etcd), None);
    }
}
