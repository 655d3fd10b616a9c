//! Types the control API and the CLI share with the speaker.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::wire::Prefix;

/// Which table `routes` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TableKind {
    AdjIn,
    #[default]
    Loc,
    AdjOut,
    Fib,
}

/// One row of `bramble status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub peer: IpAddr,
    pub asn: u32,
    /// ebgp, ibgp, rr-client, mesh
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 4271 §8.2.2 state name: Idle, Connect, Active, OpenSent, OpenConfirm, Established.
    pub state: String,
    /// Unix seconds of the last state change.
    pub since: u64,
    pub received: u64,
    pub accepted: u64,
    pub advertised: u64,
    /// Why the session is not up (last error, NOTIFICATION sent or received), or what it
    /// negotiated.
    pub info: String,
}

/// One path in a routes listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    pub prefix: Prefix,
    /// The peer the path came from (None = originated by this node).
    pub peer: Option<IpAddr>,
    pub next_hop: Option<IpAddr>,
    pub as_path: Vec<u32>,
    pub origin: String,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    /// In Loc-RIB: this path is the best one.
    pub best: bool,
    /// In Loc-RIB: this path is in the ECMP set.
    pub ecmp: bool,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    /// Why a path is not used (e.g. "as-path loop"), or a FIB error.
    pub note: Option<String>,
}

/// An operator-originated route (`bramble routes announce`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    pub prefix: Prefix,
    pub next_hop: Option<IpAddr>,
    /// "ASN:VAL" strings, already validated.
    pub communities: Vec<(u16, u16)>,
}

/// Requests the speaker answers.
#[derive(Debug)]
pub enum Request {
    Status(oneshot::Sender<Vec<PeerStatus>>),
    Routes {
        table: TableKind,
        peer: Option<IpAddr>,
        reply: oneshot::Sender<Result<Vec<RouteEntry>, String>>,
    },
    Announce(Vec<Announce>, oneshot::Sender<Result<usize, String>>),
    Withdraw(Vec<Prefix>, oneshot::Sender<Result<usize, String>>),
    /// Start a session with a new neighbour (Err when the address is taken).
    AddPeer(Box<PeerSettings>, oneshot::Sender<Result<(), String>>),
    /// Stop and forget a neighbour and its routes; replies whether it existed.
    RemovePeer(IpAddr, oneshot::Sender<bool>),
    /// Send Cease to every peer and stop.
    Shutdown(oneshot::Sender<()>),
    /// Stop for a graceful restart (RFC 4724): no NOTIFICATION, nothing withdrawn; the
    /// speaker stops handling anything and the sessions end when the process exits.
    Detach(oneshot::Sender<()>),
    /// Apply a known peer's new `import` / `export` filters without resetting its session
    /// (soft reconfiguration; other fields of the settings are ignored).
    UpdatePeer(
        Box<PeerSettings>,
        oneshot::Sender<Result<PolicyChange, String>>,
    ),
    /// Ask a peer to re-send its routes (ROUTE-REFRESH; RFC 7313 BoRR/EoRR when
    /// negotiated); replies how many families were asked for.
    RefreshIn(IpAddr, oneshot::Sender<Result<usize, String>>),
}

/// What [`SpeakerHandle::update_peer`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChange {
    pub import_changed: bool,
    pub export_changed: bool,
    /// Paths of the peer's Adj-RIB-In evaluated again.
    pub reevaluated: usize,
    /// Best paths exported to the peer again (only differences are sent).
    pub readvertised: usize,
}

/// A cloneable handle to the speaker task.
#[derive(Debug, Clone)]
pub struct SpeakerHandle {
    tx: mpsc::Sender<Request>,
}

/// The speaker task has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the BGP speaker is not running")]
pub struct SpeakerGone;

impl SpeakerHandle {
    pub fn new(tx: mpsc::Sender<Request>) -> Self {
        Self { tx }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, SpeakerGone> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| SpeakerGone)?;
        rx.await.map_err(|_| SpeakerGone)
    }

    pub async fn status(&self) -> Result<Vec<PeerStatus>, SpeakerGone> {
        self.ask(Request::Status).await
    }

    pub async fn routes(
        &self,
        table: TableKind,
        peer: Option<IpAddr>,
    ) -> Result<Result<Vec<RouteEntry>, String>, SpeakerGone> {
        self.ask(|reply| Request::Routes { table, peer, reply })
            .await
    }

    pub async fn announce(
        &self,
        routes: Vec<Announce>,
    ) -> Result<Result<usize, String>, SpeakerGone> {
        self.ask(|reply| Request::Announce(routes, reply)).await
    }

    pub async fn withdraw(
        &self,
        prefixes: Vec<Prefix>,
    ) -> Result<Result<usize, String>, SpeakerGone> {
        self.ask(|reply| Request::Withdraw(prefixes, reply)).await
    }

    /// Adds a neighbour while the speaker runs (the mesh, config reload).
    pub async fn add_peer(
        &self,
        settings: PeerSettings,
    ) -> Result<Result<(), String>, SpeakerGone> {
        self.ask(|reply| Request::AddPeer(Box::new(settings), reply))
            .await
    }

    /// Removes a neighbour: Cease / Peer De-configured, its routes withdrawn at once.
    pub async fn remove_peer(&self, address: IpAddr) -> Result<bool, SpeakerGone> {
        self.ask(|reply| Request::RemovePeer(address, reply)).await
    }

    /// Applies a peer's new import/export filters without a session reset.
    pub async fn update_peer(
        &self,
        settings: PeerSettings,
    ) -> Result<Result<PolicyChange, String>, SpeakerGone> {
        self.ask(|reply| Request::UpdatePeer(Box::new(settings), reply))
            .await
    }

    /// Sends ROUTE-REFRESH to a peer for each negotiated family.
    pub async fn refresh_in(&self, address: IpAddr) -> Result<Result<usize, String>, SpeakerGone> {
        self.ask(|reply| Request::RefreshIn(address, reply)).await
    }

    pub async fn shutdown(&self) -> Result<(), SpeakerGone> {
        self.ask(Request::Shutdown).await
    }

    /// Stops the speaker for a graceful restart (RFC 4724 §4.1): no NOTIFICATION is sent,
    /// nothing is withdrawn and the speaker handles nothing more; the sessions stay open
    /// until the process exits, and then end as a crash would end them (the TCP
    /// connections close), so the peers keep our routes as stale for our Restart Time.
    /// Only for a process about to exit.
    pub async fn detach(&self) -> Result<(), SpeakerGone> {
        self.ask(Request::Detach).await
    }
}

/// Graceful-restart settings beyond `SpeakerConfig::graceful_restart` / `restart_time`: this
/// start as the restarting speaker (RFC 4724 §4.1) and long-lived graceful restart (RFC
/// 9494). The default is a fresh start without LLGR. All ignored when
/// `SpeakerConfig::graceful_restart` is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GracefulOptions {
    /// A previous run left its forwarding state (our routes in the kernel): the OPENs carry
    /// the Restart State bit and the Forwarding State bit of every family; route selection,
    /// advertisement and FIB changes wait for End-of-RIB from the peers (or
    /// `selection_deferral`), then [`crate::speaker::FibSink::restart_complete`] is called.
    /// Ignored when `SpeakerConfig::graceful_restart` is off.
    pub restarting: bool,
    /// The longest wait for End-of-RIB (RFC 4724 §4.1 Selection_Deferral_Time), counted
    /// from start.
    pub selection_deferral: std::time::Duration,
    /// Long-lived graceful restart (RFC 9494), seconds; 0 = off. When set, the LLGR
    /// capability is sent with this Long-lived Stale Time, and a peer's LLGR capability is
    /// honoured as helper: once its restart time has run out, its routes stay as
    /// long-lived stale (LLGR_STALE community, least preferred) for its Long-lived Stale
    /// Time, at most this long; routes carrying NO_LLGR go.
    pub llgr_stale_time: u32,
}

/// Everything the speaker needs to run; the agent builds it from the config file.
#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    pub router_id: Ipv4Addr,
    pub asn: u32,
    /// Where to accept BGP connections; None = do not listen.
    pub listen: Option<std::net::SocketAddr>,
    /// Default hold time offered in OPEN (RFC 4271 §4.2), seconds.
    pub hold_time: u16,
    pub graceful_restart: bool,
    pub restart_time: u16,
    /// RFC 4456 cluster id: when set, this node is a route reflector and the peers with
    /// `rr_client` are its clients.
    pub cluster_id: Option<Ipv4Addr>,
    pub peers: Vec<PeerSettings>,
}

/// One configured neighbour.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    pub address: IpAddr,
    pub asn: u32,
    pub port: u16,
    /// Source address for the TCP connection (None = the kernel chooses).
    pub local_address: Option<IpAddr>,
    pub passive: bool,
    /// Overrides `SpeakerConfig::hold_time` for this peer.
    pub hold_time: Option<u16>,
    pub families: Vec<crate::wire::Family>,
    pub import: crate::policy::Filter,
    pub export: crate::policy::Filter,
    /// Seconds between connection attempts (RFC 4271 §8 ConnectRetryTimer).
    pub connect_retry: u16,
    /// Our IPv6 next hop for IPv6 routes sent over an IPv4 session (None = not sent).
    pub next_hop_v6: Option<std::net::Ipv6Addr>,
    /// TCP MD5 signature key (RFC 2385); the agent reads `password_file` at start.
    pub password: Option<crate::session::Md5Key>,
    /// GTSM (RFC 5082): TTL 255 out, only TTL 255 accepted.
    pub ttl_security: bool,
    /// Most paths the peer may have in its Adj-RIB-In (accepted or not); one more sends
    /// Cease / Maximum Number of Prefixes Reached (RFC 4486 §4). None = no limit.
    pub max_prefixes: Option<u32>,
    /// Seconds the session stays down after the limit was exceeded, then restarts.
    pub max_prefixes_restart: u32,
    /// An iBGP peer that is a route-reflector client of this node (RFC 4456); only has an
    /// effect when `SpeakerConfig::cluster_id` is set.
    pub rr_client: bool,
    /// Add-path (RFC 7911) for the session's families; None = not advertised.
    pub add_path: Option<AddPathSettings>,
}

/// Add-path (RFC 7911) settings of one neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddPathSettings {
    /// What we advertise in the capability: receive several paths, send several, or both.
    pub mode: crate::wire::AddPathMode,
    /// Most paths per prefix sent to the peer when sending was negotiated (at least 1).
    pub max_paths: u16,
}

/// Default [`AddPathSettings::max_paths`].
pub const DEFAULT_ADD_PATH_MAX: u16 = 8;

/// Default [`PeerSettings::max_prefixes_restart`], seconds.
pub const DEFAULT_MAX_PREFIXES_RESTART: u32 = 60;
