//! The task that drives one peer's FSM: commands, timers, connections, events.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};
use tracing::{debug, info, warn};

use super::conn::{self, ConnEvent, ConnectError, WriteCmd, CLOSE_TIMEOUT};
use super::{Command, OutSlot, PeerConfig, Security, SessionEvent};
use crate::fsm::{ConnId, Fsm, Input, Output, Timer};
use crate::wire::{
    cease_subcode, encode_message, DecodeContext, EncodeContext, Message, Notification,
};

/// Control messages queued per connection (OPEN, KEEPALIVE, NOTIFICATION).
const URGENT_QUEUE: usize = 32;
/// `PeerHandle::send` buffers queued per connection.
const BULK_QUEUE: usize = 16;
/// Decoded messages between a reader and the peer task.
const CONN_EVENTS: usize = 8;
/// How long a hold timer is postponed while our own backlog holds the peer's messages.
const BACKLOG_GRACE: Duration = Duration::from_secs(1);

struct Conn {
    urgent: mpsc::Sender<WriteCmd>,
    bulk: mpsc::Sender<Bytes>,
    ctx: watch::Sender<Arc<DecodeContext>>,
    encode: EncodeContext,
    negotiated: bool,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    local_addr: Option<SocketAddr>,
}

type ConnectResult = Result<TcpStream, ConnectError>;
type Connecting = Option<(ConnId, JoinHandle<ConnectResult>)>;
type EventTx = mpsc::Sender<(u32, SessionEvent)>;

#[allow(clippy::large_enum_variant)] // one per loop turn, never stored
enum Wake {
    Cmd(Option<Command>),
    Timers,
    Connected(ConnId, Result<ConnectResult, JoinError>),
    Permit(Result<OwnedPermit<(u32, SessionEvent)>, mpsc::error::SendError<()>>),
    Conn(Option<ConnEvent>),
}

pub(super) struct PeerTask {
    key: u32,
    addr: IpAddr,
    remote: SocketAddr,
    local: Option<IpAddr>,
    security: Security,
    fsm: Fsm,
    events: EventTx,
    /// Events not yet accepted by `events`; while non-empty, readers are not polled.
    pending: VecDeque<SessionEvent>,
    cmds: mpsc::Receiver<Command>,
    out: OutSlot,
    timers: HashMap<Timer, Instant>,
    conns: HashMap<ConnId, Conn>,
    next_conn: u64,
    connecting: Connecting,
    conn_tx: mpsc::Sender<ConnEvent>,
    conn_rx: mpsc::Receiver<ConnEvent>,
    /// Writers of closed connections still flushing.
    closing: Vec<JoinHandle<()>>,
}

impl PeerTask {
    pub(super) fn new(
        key: u32,
        cfg: PeerConfig,
        events: EventTx,
        cmds: mpsc::Receiver<Command>,
        out: OutSlot,
    ) -> Self {
        let (conn_tx, conn_rx) = mpsc::channel(CONN_EVENTS);
        PeerTask {
            key,
            addr: cfg.remote_addr,
            remote: SocketAddr::new(cfg.remote_addr, cfg.remote_port),
            local: cfg.local_addr,
            security: Security {
                password: cfg.password.clone(),
                ttl_security: cfg.ttl_security,
            },
            fsm: Fsm::new(cfg.fsm_config()),
            events,
            pending: VecDeque::new(),
            cmds,
            out,
            timers: HashMap::new(),
            conns: HashMap::new(),
            next_conn: 1,
            connecting: None,
            conn_tx,
            conn_rx,
            closing: Vec::new(),
        }
    }

    pub(super) async fn run(mut self) {
        self.input(Input::ManualStart);
        loop {
            match self.wait().await {
                Wake::Cmd(Some(cmd)) => self.command(cmd).await,
                Wake::Cmd(None) => {
                    // Every handle is gone: the peer was removed.
                    let n = // RFC 4486 §4: the peer was removed from the configuration.
                    Notification::cease(cease_subcode::PEER_DECONFIGURED);
                    self.input(Input::ManualStop(Some(n)));
                    self.flush_closing().await;
                    return;
                }
                Wake::Timers => self.fire_timers(),
                Wake::Connected(id, res) => self.connected(id, res),
                Wake::Permit(Ok(permit)) => {
                    if let Some(ev) = self.pending.pop_front() {
                        permit.send((self.key, ev));
                    }
                }
                Wake::Permit(Err(_)) => {
                    debug!(peer = %self.addr, "event receiver gone, stopping");
                    self.input(Input::ManualStop(Some(Notification::cease(
                        cease_subcode::ADMINISTRATIVE_SHUTDOWN,
                    ))));
                    self.flush_closing().await;
                    return;
                }
                Wake::Conn(Some(ev)) => self.conn_event(ev),
                Wake::Conn(None) => {}
            }
            self.closing.retain(|h| !h.is_finished());
        }
    }

    async fn wait(&mut self) -> Wake {
        let deadline = self.timers.values().min().copied();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let connecting = &mut self.connecting;
        let connect = async {
            match connecting.as_mut() {
                Some((id, h)) => (*id, h.await),
                None => std::future::pending().await,
            }
        };
        let events = self.events.clone();
        let has_pending = !self.pending.is_empty();
        tokio::select! {
            cmd = self.cmds.recv() => Wake::Cmd(cmd),
            () = sleep => Wake::Timers,
            (id, res) = connect => Wake::Connected(id, res),
            permit = events.reserve_owned(), if has_pending => Wake::Permit(permit),
            ev = self.conn_rx.recv(), if !has_pending => Wake::Conn(ev),
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Start => self.input(Input::ManualStart),
            Command::SetCapabilities(caps) => self.fsm.set_capabilities(caps),
            Command::Stop(n, ack) => {
                info!(peer = %self.addr, "stopping: {}", n);
                self.input(Input::ManualStop(Some(n)));
                self.flush_closing().await;
                let _ = ack.send(());
            }
            Command::Incoming(stream) => {
                if let Err(e) = stream.set_nodelay(true) {
                    debug!(peer = %self.addr, "TCP_NODELAY: {e}");
                }
                debug!(peer = %self.addr, "incoming connection");
                self.add_conn(stream, false);
            }
        }
    }

    async fn flush_closing(&mut self) {
        for h in self.closing.drain(..) {
            let _ = h.await;
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            self.timers.remove(&t);
            // Messages the peer sent may sit in our own backlog (the speaker is slow):
            // that is not the peer's silence, so the hold timer waits for them.
            let backlog = !self.pending.is_empty() || !self.conn_rx.is_empty();
            if matches!(t, Timer::Hold(_)) && backlog {
                self.timers.insert(t, now + BACKLOG_GRACE);
                continue;
            }
            self.input(Input::TimerExpired(t));
        }
    }

    fn connected(&mut self, id: ConnId, res: Result<ConnectResult, JoinError>) {
        self.connecting = None;
        match res {
            Ok(Ok(stream)) => {
                debug!(peer = %self.addr, %id, "connected");
                self.add_conn_with_id(id, stream, true);
            }
            Ok(Err(e @ ConnectError::Setup { .. })) => {
                warn!(peer = %self.addr, %id, "connect failed: {e}");
                self.pending.push_back(SessionEvent::Down {
                    reason: format!("connect failed: {e}"),
                });
                self.input(Input::TcpFailed(id));
            }
            Ok(Err(e)) => {
                debug!(peer = %self.addr, %id, "connect failed: {e}");
                self.input(Input::TcpFailed(id));
            }
            // Aborted attempts are never polled again; anything else is a failure.
            Err(e) => {
                warn!(peer = %self.addr, %id, "connect task failed: {e}");
                self.input(Input::TcpFailed(id));
            }
        }
    }

    fn conn_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Message(id, msg) => {
                if !self.conns.contains_key(&id) {
                    return;
                }
                let is_open = matches!(msg, Message::Open(_));
                let out = self
                    .fsm
                    .handle(Input::MessageReceived(id, msg), Instant::now());
                if is_open {
                    self.set_negotiated(id);
                }
                self.apply(out);
            }
            ConnEvent::DecodeError(id, n) => {
                if self.conns.contains_key(&id) {
                    warn!(peer = %self.addr, %id, "malformed message: {}", n);
                    self.input(Input::DecodeError(id, n));
                }
            }
            ConnEvent::Closed(id, err) => {
                if self.conns.contains_key(&id) {
                    debug!(peer = %self.addr, %id, "connection closed: {err:?}");
                    self.input(Input::TcpClosed(id));
                }
            }
        }
    }

    /// Once the FSM accepted the peer's OPEN, the reader decodes with the negotiated
    /// context. This happens before our KEEPALIVE goes out, so before the peer can send
    /// any UPDATE.
    fn set_negotiated(&mut self, id: ConnId) {
        let (Some(neg), Some(conn)) = (self.fsm.negotiated(id), self.conns.get_mut(&id)) else {
            return;
        };
        if !conn.negotiated {
            conn.negotiated = true;
            conn.encode = neg.encode.clone();
            let _ = conn.ctx.send(Arc::new(neg.decode.clone()));
        }
    }

    fn input(&mut self, input: Input) {
        let out = self.fsm.handle(input, Instant::now());
        self.apply(out);
    }

    fn add_conn(&mut self, stream: TcpStream, outgoing: bool) {
        let id = self.new_id();
        self.add_conn_with_id(id, stream, outgoing);
    }

    fn new_id(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    fn add_conn_with_id(&mut self, id: ConnId, stream: TcpStream, outgoing: bool) {
        let local_addr = stream.local_addr().ok();
        let (rd, wr) = stream.into_split();
        let (ctx, ctx_rx) = watch::channel(Arc::new(DecodeContext::default()));
        let (urgent, urgent_rx) = mpsc::channel(URGENT_QUEUE);
        let (bulk, bulk_rx) = mpsc::channel(BULK_QUEUE);
        let reader = tokio::spawn(conn::reader(rd, id, ctx_rx, self.conn_tx.clone()));
        let writer = tokio::spawn(conn::writer(wr, urgent_rx, bulk_rx));
        self.conns.insert(
            id,
            Conn {
                urgent,
                bulk,
                ctx,
                encode: EncodeContext::default(),
                negotiated: false,
                reader,
                writer,
                local_addr,
            },
        );
        self.input(Input::TcpConnected(id, outgoing));
    }

    fn apply(&mut self, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Connect => {
                    if let Some((old, h)) = self.connecting.take() {
                        h.abort();
                        self.connect_timed_out(old);
                    }
                    let id = self.new_id();
                    debug!(peer = %self.addr, %id, "connecting to {}", self.remote);
                    let h = tokio::spawn(conn::connect(
                        self.remote,
                        self.local,
                        self.security.clone(),
                    ));
                    self.connecting = Some((id, h));
                }
                Output::CancelConnect => {
                    if let Some((_, h)) = self.connecting.take() {
                        h.abort();
                    }
                }
                Output::SendMessage(id, msg) => self.send(id, &msg),
                Output::CloseConnection(id) => self.close(id),
                Output::ArmTimer(t, at) => {
                    self.timers.insert(t, at);
                }
                Output::StopTimer(t) => {
                    self.timers.remove(&t);
                }
                Output::StateChanged { from, to } => {
                    info!(peer = %self.addr, %from, %to, "state changed");
                    self.pending
                        .push_back(SessionEvent::StateChanged { from, to });
                }
                Output::Established(mut neg) => {
                    let conn = self
                        .fsm
                        .established_conn()
                        .and_then(|id| self.conns.get(&id));
                    let bulk = conn.map(|c| c.bulk.clone());
                    neg.local_addr = conn.and_then(|c| c.local_addr);
                    self.set_out(bulk);
                    info!(
                        peer = %self.addr,
                        hold = neg.hold_time,
                        families = ?neg.families,
                        "session established"
                    );
                    self.pending.push_back(SessionEvent::Established(neg));
                }
                Output::Update(u) => self.pending.push_back(SessionEvent::Update(u)),
                Output::RouteRefresh(r) => self.pending.push_back(SessionEvent::RouteRefresh(r)),
                Output::Down { reason } => {
                    self.set_out(None);
                    info!(peer = %self.addr, %reason, "session down");
                    self.pending.push_back(SessionEvent::Down { reason });
                }
            }
        }
    }

    /// The FSM gave up on an outgoing attempt that neither connected nor failed within
    /// ConnectRetryTime: the SYN went unanswered. A TCP MD5 mismatch (RFC 2385 §2: unsigned
    /// or badly signed segments are dropped silently) and a GTSM TTL check (RFC 5082 §3)
    /// both look exactly like that, so the status says which one to suspect.
    fn connect_timed_out(&mut self, id: ConnId) {
        let hint = match (&self.security.password, self.security.ttl_security) {
            (Some(_), true) => " (TCP MD5 and GTSM configured: check the password and that the peer is directly connected with ttl security)",
            (Some(_), false) => " (TCP MD5 configured: check the password)",
            (None, true) => " (GTSM configured: check that the peer is directly connected with ttl security)",
            (None, false) => "",
        };
        let reason = format!("connect to {} timed out{hint}", self.remote);
        info!(peer = %self.addr, %id, "{reason}");
        self.pending.push_back(SessionEvent::Down { reason });
    }

    fn set_out(&self, bulk: Option<mpsc::Sender<Bytes>>) {
        *self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = bulk;
    }

    fn send(&mut self, id: ConnId, msg: &Message) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let mut buf = BytesMut::new();
        if let Err(e) = encode_message(msg, &conn.encode, &mut buf) {
            warn!(peer = %self.addr, %id, "cannot encode {msg:?}: {e}");
            // A NOTIFICATION whose data does not fit still goes out, without the data.
            let Message::Notification(n) = msg else {
                return;
            };
            let bare = Message::Notification(Notification {
                data: Vec::new(),
                ..n.clone()
            });
            buf.clear();
            if encode_message(&bare, &conn.encode, &mut buf).is_err() {
                return;
            }
        }
        if let Err(e) = conn.urgent.try_send(WriteCmd::Bytes(buf.freeze())) {
            warn!(peer = %self.addr, %id, "write queue full, dropping {msg:?}: {e}");
        }
    }

    fn close(&mut self, id: ConnId) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        debug!(peer = %self.addr, %id, "closing connection");
        conn.reader.abort();
        let abort = conn.writer.abort_handle();
        if conn.urgent.try_send(WriteCmd::Close).is_err() {
            abort.abort();
        }
        let writer = conn.writer;
        self.closing.push(tokio::spawn(async move {
            if tokio::time::timeout(CLOSE_TIMEOUT, writer).await.is_err() {
                abort.abort();
            }
        }));
    }
}
