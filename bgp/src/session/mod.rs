//! Sessions: the only code that owns sockets.
//!
//! [`spawn_peer`] starts one tokio task per peer that drives a [`Fsm`](crate::fsm::Fsm):
//! it connects (binding the configured source address first), frames and decodes what the
//! peer sends, writes what the FSM and the speaker send, and runs the FSM's timers. A
//! [`Listener`] accepts connections and hands each to the peer registered for its address.

mod conn;
mod listener;
mod peer;
mod sockopt;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::fsm::FsmConfig;
pub use crate::fsm::{Negotiated, State};
use crate::wire::{Capability, Notification, RouteRefresh, Update};
pub use listener::Listener;
pub use sockopt::{Md5Key, Md5KeyError, GTSM_MIN_TTL, GTSM_TTL, MD5_MAX_KEY_LEN};

/// One neighbour, as the speaker configures it.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub remote_addr: IpAddr,
    pub remote_port: u16,
    /// Source address of outgoing connections (None = the kernel chooses).
    pub local_addr: Option<IpAddr>,
    pub local_asn: u32,
    pub remote_asn: u32,
    pub router_id: Ipv4Addr,
    /// Offered in OPEN, seconds.
    pub hold_time: u16,
    /// Never connect; wait for the peer (through a [`Listener`]).
    pub passive: bool,
    pub connect_retry: Duration,
    /// What we send in OPEN.
    pub capabilities: Vec<Capability>,
    /// TCP MD5 signature key (RFC 2385) for every connection with this peer: set on the
    /// connecting socket, and on the listener by [`Listener::register`].
    pub password: Option<Md5Key>,
    /// GTSM (RFC 5082): send with TTL 255, accept only TTL [`GTSM_MIN_TTL`].
    pub ttl_security: bool,
}

/// The transport protections of one peer, shared by its handles (the listener reads them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub password: Option<Md5Key>,
    pub ttl_security: bool,
}

impl PeerConfig {
    fn fsm_config(&self) -> FsmConfig {
        let mut c = FsmConfig::new(self.local_asn, self.remote_asn, self.router_id);
        c.hold_time = self.hold_time;
        c.passive = self.passive;
        c.connect_retry = self.connect_retry;
        c.capabilities = self.capabilities.clone();
        c
    }
}

/// What a peer task tells the speaker, tagged with the peer's key.
// Moved once per UPDATE; boxing would allocate for every one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    StateChanged {
        from: State,
        to: State,
    },
    Established(Box<Negotiated>),
    /// An UPDATE, including RFC 7606 outcomes (`treat_as_withdraw`, `discarded`).
    Update(Update),
    RouteRefresh(RouteRefresh),
    /// The session, or the attempt to bring it up, ended.
    Down {
        reason: String,
    },
}

/// Why [`PeerHandle::try_send`] did not take the bytes.
#[derive(Debug)]
pub enum TrySend {
    /// The write queue is full; here are the bytes back.
    Full(Bytes),
    /// The peer task has stopped.
    Gone,
}

/// The peer task has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the BGP session task has stopped")]
pub struct SessionGone;

pub(crate) enum Command {
    Start,
    /// Capabilities for the OPENs sent from now on.
    SetCapabilities(Vec<Capability>),
    Stop(Notification, oneshot::Sender<()>),
    Incoming(TcpStream),
}

/// Where [`PeerHandle::send`] writes: the Established connection's bulk queue.
pub(crate) type OutSlot = Arc<Mutex<Option<mpsc::Sender<Bytes>>>>;

/// A cloneable handle to one peer's task. When every handle is dropped, the task sends
/// Cease / Peer De-configured and ends.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    remote: IpAddr,
    cmds: mpsc::Sender<Command>,
    out: OutSlot,
    security: Arc<Security>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Start => f.write_str("Start"),
            Command::SetCapabilities(c) => write!(f, "SetCapabilities({c:?})"),
            Command::Stop(n, _) => write!(f, "Stop({n:?})"),
            Command::Incoming(s) => write!(f, "Incoming({:?})", s.peer_addr().ok()),
        }
    }
}

impl PeerHandle {
    /// The peer's address.
    pub fn remote(&self) -> IpAddr {
        self.remote
    }

    /// The peer's TCP MD5 key and GTSM setting.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// Queues one or more whole, encoded BGP messages. Only while Established; otherwise
    /// (or if the session drops meanwhile) the bytes are dropped. Waits while the write
    /// queue is full.
    pub async fn send(&self, bytes: Bytes) -> Result<(), SessionGone> {
        if self.cmds.is_closed() {
            return Err(SessionGone);
        }
        let tx = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(tx) = tx {
            // An error means the connection closed under us: dropped, as documented.
            let _ = tx.send(bytes).await;
        }
        Ok(())
    }

    /// Like [`PeerHandle::send`] but never waits: when the write queue is full the bytes
    /// come back as `Err`, so the caller can keep them and try again later (the speaker
    /// does, so one slow peer never stalls the others).
    pub fn try_send(&self, bytes: Bytes) -> Result<(), TrySend> {
        if self.cmds.is_closed() {
            return Err(TrySend::Gone);
        }
        let tx = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        match tx.map(|tx| tx.try_send(bytes)) {
            Some(Err(mpsc::error::TrySendError::Full(bytes))) => Err(TrySend::Full(bytes)),
            // Not Established, or the connection closed under us: dropped, as documented.
            _ => Ok(()),
        }
    }

    /// The Established connection's write queue, if there is one now. Writes through it
    /// end with that connection: they can never reach a later one.
    pub(crate) fn bulk_sender(&self) -> Option<mpsc::Sender<Bytes>> {
        if self.cmds.is_closed() {
            return None;
        }
        self.out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Sends `notification` on every connection, closes them and stays Idle until
    /// [`PeerHandle::start`]. Returns once the NOTIFICATION was written (or gave up).
    pub async fn stop(&self, notification: Notification) {
        let (ack, done) = oneshot::channel();
        if self
            .cmds
            .send(Command::Stop(notification, ack))
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Replaces the capabilities of the OPENs the session sends from now on (the current
    /// connection is not touched). Never waits; returns false when the task's command queue
    /// is full or the task is gone.
    pub fn set_capabilities(&self, caps: Vec<Capability>) -> bool {
        self.cmds.try_send(Command::SetCapabilities(caps)).is_ok()
    }

    /// Starts the session (ManualStart). [`spawn_peer`] already starts it; this undoes
    /// [`PeerHandle::stop`]. A no-op unless Idle.
    pub async fn start(&self) {
        let _ = self.cmds.send(Command::Start).await;
    }

    /// Hands an accepted connection from this peer to its task. Dropped (closed) when the
    /// task is busy or gone.
    pub fn accept(&self, stream: TcpStream) {
        if let Err(e) = self.cmds.try_send(Command::Incoming(stream)) {
            tracing::warn!(peer = %self.remote, "dropping incoming connection: {e}");
        }
    }
}

/// Starts the task for one peer and sends it ManualStart. Events arrive on `events` tagged
/// with `key`; the task stops reading from the socket while `events` is full.
pub fn spawn_peer(
    key: u32,
    cfg: PeerConfig,
    events: mpsc::Sender<(u32, SessionEvent)>,
) -> PeerHandle {
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let out: OutSlot = Arc::new(Mutex::new(None));
    let handle = PeerHandle {
        remote: cfg.remote_addr,
        cmds: cmd_tx,
        out: out.clone(),
        security: Arc::new(Security {
            password: cfg.password.clone(),
            ttl_security: cfg.ttl_security,
        }),
    };
    let task = peer::PeerTask::new(key, cfg, events, cmd_rx, out);
    tokio::spawn(task.run());
    handle
}
