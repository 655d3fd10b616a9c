//! The validated, resolved configuration: plain values, every default filled in.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use std::sync::Arc;

use bgp::policy::{Filter, Policy};
use bgp::wire::{AddPathMode, Family, Prefix};

/// Where the control socket lives unless `[api] socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/bramble/bramble.sock";
/// `node.asn` when absent (first private 2-octet AS, RFC 6996).
pub const DEFAULT_ASN: u32 = 64512;
/// `ipam.path` when absent.
pub const DEFAULT_IPAM_PATH: &str = "/var/lib/bramble/ipam";
/// `ipam.etcd_endpoints` when `store = "etcd"` and the list is absent.
pub const DEFAULT_ETCD_ENDPOINT: &str = "http://127.0.0.1:2379";
/// Default `bgp.peers.add_path_max`.
pub const DEFAULT_ADD_PATH_MAX: u16 = bgp::speaker::DEFAULT_ADD_PATH_MAX;
/// Default `bgp.mesh_lease`, seconds.
pub const DEFAULT_MESH_LEASE: u32 = 10;
/// `ipam.etcd_prefix` when absent.
pub const DEFAULT_ETCD_PREFIX: &str = "/bramble/";
/// `ipam.etcd_timeout` when absent, seconds.
pub const DEFAULT_ETCD_TIMEOUT: u32 = 5;
/// Default `ipam.release_grace`, seconds.
pub const DEFAULT_RELEASE_GRACE: u32 = 300;

/// A whole, valid Bramble configuration.
///
/// Keys beyond DESIGN.md's first sketch (the README lists them): per peer `local_address`,
/// `hold_time`, `connect_retry`, `description`, `password_file` and `next_hop_v6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub node: Node,
    pub api: Api,
    pub bgp: Bgp,
    pub fib: Fib,
    pub ipam: Ipam,
    /// `[[policy]]` entries in file order; peers refer to them by name
    /// (`import_policy` / `export_policy`) and hold them in their filters.
    pub policies: Vec<Arc<Policy>>,
}

impl Config {
    /// The configured BGP neighbours, in file order.
    pub fn peers(&self) -> &[Peer] {
        &self.bgp.peers
    }
}

/// `[node]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Default: the host name.
    pub name: String,
    /// Default: the first global IPv4 address of the host (see [`crate::HostFacts`]).
    pub router_id: Ipv4Addr,
    /// Default 64512.
    pub asn: u32,
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// Default `/run/bramble/bramble.sock`.
    pub socket: PathBuf,
    /// Prometheus endpoint; None = off.
    pub metrics: Option<SocketAddr>,
}

/// What this node originates for its container addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Advertise {
    /// One /32 (or /128) per allocated address.
    #[default]
    HostRoutes,
    /// Each block this node owns, plus /32s borrowed from other nodes' blocks.
    Aggregate,
}

/// `[bgp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bgp {
    /// Where to accept BGP connections; None = do not listen.
    pub listen: Option<SocketAddr>,
    /// Seconds, 0 or 3..=65535 (RFC 4271 §4.2). Default 90.
    pub hold_time: u16,
    pub advertise: Advertise,
    /// Default true.
    pub graceful_restart: bool,
    /// Seconds, 0..=4095 (RFC 4724 §3: a 12-bit field). Default 120.
    pub restart_time: u16,
    /// Seconds, 1..=3600. After a restart that found our routes in the kernel, the longest
    /// wait for End-of-RIB from the peers before route selection and advertisement go ahead
    /// (RFC 4724 §4.1 Selection_Deferral_Time). Default 360.
    pub selection_deferral: u16,
    /// Seconds, 0..=16777215 (RFC 9494 §3: 24 bits); 0 = long-lived graceful restart off.
    /// Sent as our Long-lived Stale Time, and the longest we keep a peer's routes as
    /// long-lived stale after its restart time. Default 0.
    pub llgr_stale_time: u32,
    /// Set = this node is a route reflector (RFC 4456).
    pub cluster_id: Option<Ipv4Addr>,
    /// The node-to-node mesh over the etcd node registry. Default off.
    pub mesh: MeshMode,
    /// TTL in seconds of this node's registry entry (its etcd lease); a node that stops
    /// refreshing it is gone after this long. Default 10.
    pub mesh_lease: u32,
    pub peers: Vec<Peer>,
}

/// `bgp.mesh`: which registered nodes this node peers with automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MeshMode {
    /// `false`: only the configured `[[bgp.peers]]`.
    #[default]
    Off,
    /// `true`: iBGP with every other registered node (route reflectors stay out).
    Full,
    /// `"reflectors"`: iBGP with the registered route reflectors only.
    Reflectors,
}

/// The TCP MD5 key of a peer (RFC 2385): inline, or read from a file at connect time.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    Inline(String),
    File(PathBuf),
}

impl fmt::Debug for Password {
    // Never print the key itself into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::Inline(_) => f.write_str("Inline(<redacted>)"),
            Password::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// One `[[bgp.peers]]` entry with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub address: IpAddr,
    pub asn: u32,
    /// Default 179.
    pub port: u16,
    /// Default false: connect as well as accept.
    pub passive: bool,
    pub password: Option<Password>,
    /// GTSM (RFC 5082). Default false.
    pub ttl_security: bool,
    /// RFC 4456 client of this reflector. Default false.
    pub rr_client: bool,
    /// Add-path (RFC 7911) mode advertised for the peer's families: `"receive"`, `"send"`
    /// or `"both"`. Default None (not advertised).
    pub add_path: Option<AddPathMode>,
    /// Most paths per prefix sent when add-path send is negotiated, 1..=64. Default 8.
    pub add_path_max: u16,
    pub max_prefixes: Option<u32>,
    /// Seconds a session stays down after exceeding `max_prefixes` before it restarts
    /// (extra). Default 60.
    pub max_prefixes_restart: u32,
    /// Default both IPv4 and IPv6 unicast.
    pub families: Vec<Family>,
    /// `import` prefix list and `import_policy`; both absent = `Filter::default()` (deny for
    /// eBGP, RFC 8212).
    pub import: Filter,
    /// As written in the file. The agent applies a default when the list is absent and
    /// `[[ipam.pools]]` are configured: only prefixes inside a pool (`POOL le 32` /
    /// `POOL le 128`) are exported.
    pub export: Filter,
    /// Source address of the TCP connection (extra). None = the kernel chooses.
    pub local_address: Option<IpAddr>,
    /// Overrides `bgp.hold_time` for this peer (extra).
    pub hold_time: Option<u16>,
    /// Seconds between connection attempts (extra). Default 5.
    pub connect_retry: u16,
    /// Free text shown by `bramble status` (extra).
    pub description: Option<String>,
    /// Our IPv6 next hop for IPv6 routes sent over an IPv4 session (extra). None = not sent.
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl Peer {
    /// True when the peer is in another AS than `node_asn`.
    pub fn is_ebgp(&self, node_asn: u32) -> bool {
        self.asn != node_asn
    }
}

/// `[fib]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fib {
    /// Default true.
    pub enabled: bool,
    /// Kernel routing table. Default 254 (main).
    pub table: u32,
    /// `rtm_protocol` that marks Bramble's routes. Default 196.
    pub protocol: u8,
}

/// Which IPAM store backs the allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    #[default]
    Sled,
    Etcd,
}

/// `[ipam]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipam {
    pub store: StoreKind,
    /// Default `/var/lib/bramble/ipam`.
    pub path: PathBuf,
    /// Used when `store` is etcd; default `http://127.0.0.1:2379` then, else empty.
    /// `http://` or `https://` URLs.
    pub etcd_endpoints: Vec<String>,
    /// Prefix of every IPAM key in etcd; starts and ends with `/`. Default `/bramble/`.
    pub etcd_prefix: String,
    /// PEM CA bundle for the etcd servers' certificates (TLS; endpoints must be https).
    pub etcd_ca: Option<PathBuf>,
    /// PEM client certificate for etcd (given together with `etcd_key`).
    pub etcd_cert: Option<PathBuf>,
    /// PEM private key of `etcd_cert`.
    pub etcd_key: Option<PathBuf>,
    /// Seconds an etcd call (and so an allocation) may take before it fails. Default 5.
    pub etcd_timeout: u32,
    /// Default false.
    pub strict_affinity: bool,
    /// Most blocks this node may own per address family; None (default) = unlimited.
    pub max_blocks_per_node: Option<u32>,
    /// Networks never handed out (gateways, service addresses); masked CIDRs. Default none.
    pub reservations: Vec<Prefix>,
    /// Seconds a block must stay empty before it goes back to the pool (a node's last block
    /// is kept). Default 300.
    pub release_grace: u32,
    /// When non-empty, the agent allocates from these, and a peer without an `export` list
    /// exports only prefixes inside them (see [`Peer::export`]).
    pub pools: Vec<Pool>,
}

/// One `[[ipam.pools]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Masked (no host bits).
    pub cidr: Prefix,
    /// Prefix length of a block: 20..=32 for IPv4 (default 26), 116..=128 for IPv6
    /// (default 122).
    pub block_size: u8,
}
