//! RFC 4271 §8 finite state machine, sans-IO.
//!
//! [`Fsm::handle`] takes one [`Input`] and the current time and returns what the I/O layer
//! must do ([`Output`]): connect, send, close, arm or stop a timer. There is no clock and no
//! socket here. Connections are named by a [`ConnId`] the I/O layer picks; up to two exist
//! at once (one we initiated, one the peer initiated) until collision detection (§6.8)
//! keeps one of them.

mod negotiate;

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use negotiate::Negotiated;

use crate::wire::{
    cease_subcode, code, fsm_subcode, Capability, Message, Notification, Open, RouteRefresh, Update,
};

/// The hold timer used until the peer's OPEN arrives: "a large value", 4 minutes (RFC 4271 §8).
pub const LARGE_HOLD_TIME: Duration = Duration::from_secs(240);

/// RFC 4271 §8.2.2 session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// A transport connection, named by the I/O layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// The FSM's timers. Hold and keepalive timers run per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    ConnectRetry,
    /// Damping before an automatic restart after an error (GoBGP/BIRD style back-off).
    IdleHold,
    Hold(ConnId),
    Keepalive(ConnId),
}

/// Events fed to [`Fsm::handle`].
// Inputs and outputs are moved once, never stored in bulk: boxing the UPDATE would only add
// an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    ManualStart,
    /// Administrative stop: the NOTIFICATION (if any) is sent on every connection.
    ManualStop(Option<Notification>),
    /// A connection is up; `outgoing` = we initiated it (answer to [`Output::Connect`]).
    TcpConnected(ConnId, bool),
    /// Our outgoing attempt failed (or a connection broke before it was reported up).
    TcpFailed(ConnId),
    TcpClosed(ConnId),
    MessageReceived(ConnId, Message),
    /// The codec rejected what the peer sent; the NOTIFICATION to answer with.
    DecodeError(ConnId, Notification),
    TimerExpired(Timer),
}

/// What the I/O layer must do, in order.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Start an outgoing connection; replaces any attempt still in flight.
    Connect,
    /// Abandon the outgoing attempt in flight, if any.
    CancelConnect,
    SendMessage(ConnId, Message),
    /// Close after flushing what was queued for it.
    CloseConnection(ConnId),
    /// Arm (or re-arm) a timer to fire at the given instant.
    ArmTimer(Timer, Instant),
    StopTimer(Timer),
    StateChanged {
        from: State,
        to: State,
    },
    Established(Box<Negotiated>),
    /// An UPDATE received while Established.
    Update(Update),
    /// A ROUTE-REFRESH received while Established.
    RouteRefresh(RouteRefresh),
    /// The session (or the attempt to bring it up) ended.
    Down {
        reason: String,
    },
}

/// Configuration of one peer's FSM.
#[derive(Debug, Clone)]
pub struct FsmConfig {
    pub local_asn: u32,
    /// Expected in the peer's OPEN (RFC 4271 §6.2 Bad Peer AS).
    pub remote_asn: u32,
    pub router_id: Ipv4Addr,
    /// Offered in OPEN, seconds (0 or ≥ 3).
    pub hold_time: u16,
    /// Never connect; wait for the peer.
    pub passive: bool,
    /// ConnectRetryTime; each use is jittered to 0.75–1.0 × this (RFC 4271 §10).
    pub connect_retry: Duration,
    /// What we send in OPEN.
    pub capabilities: Vec<Capability>,
    /// First IdleHold delay after an error; doubles on each further error.
    pub idle_hold: Duration,
    /// Cap of the IdleHold back-off.
    pub idle_hold_max: Duration,
    /// A session Established this long resets the back-off to `idle_hold`.
    pub idle_hold_reset: Duration,
}

impl FsmConfig {
    /// Defaults: hold 90 s, connect retry 30 s, idle hold 5 s doubling to 120 s, reset
    /// after 60 s Established, active, no capabilities.
    pub fn new(local_asn: u32, remote_asn: u32, router_id: Ipv4Addr) -> Self {
        FsmConfig {
            local_asn,
            remote_asn,
            router_id,
            hold_time: 90,
            passive: false,
            connect_retry: Duration::from_secs(30),
            capabilities: Vec::new(),
            idle_hold: Duration::from_secs(5),
            idle_hold_max: Duration::from_secs(120),
            idle_hold_reset: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ConnState {
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    outgoing: bool,
    state: ConnState,
    negotiated: Option<Negotiated>,
}

/// How a lost connection affects the session when it was the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// Transport trouble or collision: back to Active, retry after ConnectRetry.
    Retry,
    /// Protocol error or NOTIFICATION: Idle with back-off, then restart.
    Error,
}

/// One peer's RFC 4271 §8 state machine.
#[derive(Debug)]
pub struct Fsm {
    cfg: FsmConfig,
    /// Idle, Connect or Active: the state while no connection exists.
    base: State,
    conns: Vec<Conn>,
    /// An outgoing attempt is in flight.
    connecting: bool,
    /// IdleHold is armed and restarts the session when it fires.
    auto_start: bool,
    idle_hold: Duration,
    established_at: Option<Instant>,
    reported: State,
    rng: StdRng,
}

impl Fsm {
    /// A stopped (Idle) FSM; feed it [`Input::ManualStart`].
    pub fn new(cfg: FsmConfig) -> Self {
        Self::with_rng(cfg, StdRng::from_entropy())
    }

    /// Like [`Fsm::new`] with a seeded jitter source, for reproducible tests.
    pub fn with_seed(cfg: FsmConfig, seed: u64) -> Self {
        Self::with_rng(cfg, StdRng::seed_from_u64(seed))
    }

    fn with_rng(cfg: FsmConfig, rng: StdRng) -> Self {
        Fsm {
            idle_hold: cfg.idle_hold,
            cfg,
            base: State::Idle,
            conns: Vec::new(),
            connecting: false,
            auto_start: false,
            established_at: None,
            reported: State::Idle,
            rng,
        }
    }

    pub fn config(&self) -> &FsmConfig {
        &self.cfg
    }

    /// Capabilities for the OPENs sent from now on (e.g. the Restart State bit cleared once a
    /// graceful restart is over, RFC 4724 §4.1).
    pub fn set_capabilities(&mut self, caps: Vec<Capability>) {
        self.cfg.capabilities = caps;
    }

    /// The current state: the most advanced connection's, else Idle/Connect/Active.
    pub fn state(&self) -> State {
        self.conns
            .iter()
            .map(|c| match c.state {
                ConnState::OpenSent => State::OpenSent,
                ConnState::OpenConfirm => State::OpenConfirm,
                ConnState::Established => State::Established,
            })
            .max()
            .unwrap_or(self.base)
    }

    /// The connection carrying the Established session.
    pub fn established_conn(&self) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|c| c.state == ConnState::Established)
            .map(|c| c.id)
    }

    /// What was negotiated on a connection once its peer's OPEN was accepted.
    pub fn negotiated(&self, conn: ConnId) -> Option<&Negotiated> {
        self.conn(conn).and_then(|c| c.negotiated.as_ref())
    }

    /// The delay the next error will wait in Idle before restarting.
    pub fn idle_hold(&self) -> Duration {
        self.idle_hold
    }

    /// Feeds one event; returns the actions for the I/O layer, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::ManualStart => {
                if self.state() == State::Idle {
                    self.start(now, &mut out);
                }
            }
            Input::ManualStop(n) => self.manual_stop(n, &mut out),
            Input::TcpConnected(id, outgoing) => self.tcp_connected(id, outgoing, now, &mut out),
            Input::TcpFailed(id) => {
                if self.conn(id).is_some() {
                    let reason = "connection failed".to_string();
                    self.drop_conn(id, None, reason, Loss::Retry, now, &mut out);
                } else if self.connecting {
                    self.connecting = false;
                    if self.conns.is_empty() && self.base == State::Connect {
                        // The ConnectRetry timer keeps running; its expiry tries again.
                        self.base = State::Active;
                    }
                }
            }
            Input::TcpClosed(id) => {
                let reason = "connection closed by peer".to_string();
                self.drop_conn(id, None, reason, Loss::Retry, now, &mut out);
            }
            Input::MessageReceived(id, msg) => self.message(id, msg, now, &mut out),
            Input::DecodeError(id, n) => {
                let reason = format!("sent NOTIFICATION: {}", n);
                self.drop_conn(id, Some(n), reason, Loss::Error, now, &mut out);
            }
            Input::TimerExpired(t) => self.timer(t, now, &mut out),
        }
        self.sync_state(&mut out);
        out
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.iter().find(|c| c.id == id)
    }

    fn sync_state(&mut self, out: &mut Vec<Output>) {
        let now = self.state();
        if now != self.reported {
            out.push(Output::StateChanged {
                from: self.reported,
                to: now,
            });
            self.reported = now;
        }
    }

    /// 0.75–1.0 × ConnectRetryTime (RFC 4271 §10 jitter).
    fn connect_retry_delay(&mut self) -> Duration {
        self.cfg
            .connect_retry
            .mul_f64(self.rng.gen_range(0.75..=1.0))
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.auto_start {
            self.auto_start = false;
            out.push(Output::StopTimer(Timer::IdleHold));
        }
        if self.cfg.passive {
            // Passive: wait in Active for the peer; never Connect.
            self.base = State::Active;
        } else {
            self.connect(now, out);
        }
    }

    fn connect(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.base = State::Connect;
        self.connecting = true;
        out.push(Output::Connect);
        let at = now + self.connect_retry_delay();
        out.push(Output::ArmTimer(Timer::ConnectRetry, at));
    }

    fn manual_stop(&mut self, n: Option<Notification>, out: &mut Vec<Output>) {
        let was = self.state();
        if self.connecting {
            self.connecting = false;
            out.push(Output::CancelConnect);
        }
        for conn in std::mem::take(&mut self.conns) {
            if let Some(n) = &n {
                out.push(Output::SendMessage(
                    conn.id,
                    Message::Notification(n.clone()),
                ));
            }
            close(conn.id, out);
        }
        out.push(Output::StopTimer(Timer::ConnectRetry));
        if self.auto_start {
            self.auto_start = false;
            out.push(Output::StopTimer(Timer::IdleHold));
        }
        self.base = State::Idle;
        self.established_at = None;
        self.idle_hold = self.cfg.idle_hold;
        if was != State::Idle {
            self.sync_state(out);
            let reason = match &n {
                Some(n) => format!("stopped, sent NOTIFICATION: {}", n),
                None => "stopped".to_string(),
            };
            out.push(Output::Down { reason });
        }
    }

    fn tcp_connected(&mut self, id: ConnId, outgoing: bool, now: Instant, out: &mut Vec<Output>) {
        if outgoing {
            self.connecting = false;
        }
        match self.state() {
            // Idle refuses connections (RFC 4271 §8.2.2).
            State::Idle => close(id, out),
            State::Established => {
                // §6.8: a collision with an Established session closes the new connection;
                // RFC 4486 §4 names the subcode.
                let n = Notification::cease(cease_subcode::CONNECTION_COLLISION_RESOLUTION);
                out.push(Output::SendMessage(id, Message::Notification(n)));
                close(id, out);
            }
            _ => {
                let duplicate = self.conns.iter().any(|c| c.outgoing == outgoing);
                if (outgoing && self.cfg.passive) || duplicate || self.conn(id).is_some() {
                    close(id, out);
                    return;
                }
                if self.conns.is_empty() {
                    out.push(Output::StopTimer(Timer::ConnectRetry));
                }
                self.conns.push(Conn {
                    id,
                    outgoing,
                    state: ConnState::OpenSent,
                    negotiated: None,
                });
                let open = Open {
                    version: 4,
                    asn: self.cfg.local_asn,
                    hold_time: self.cfg.hold_time,
                    router_id: self.cfg.router_id,
                    capabilities: self.cfg.capabilities.clone(),
                };
                out.push(Output::SendMessage(id, Message::Open(open)));
                // §8: until the OPEN arrives, the hold timer runs with a large value.
                out.push(Output::ArmTimer(Timer::Hold(id), now + LARGE_HOLD_TIME));
            }
        }
    }

    fn message(&mut self, id: ConnId, msg: Message, now: Instant, out: &mut Vec<Output>) {
        let Some(conn) = self.conn(id) else {
            return; // a connection already dropped
        };
        let state = conn.state;
        match (state, msg) {
            (_, Message::Notification(n)) => {
                // A collision loser is not an error; anything else is (§8.2.2).
                let loss = if state != ConnState::Established
                    && n.code == code::CEASE
                    && n.subcode == cease_subcode::CONNECTION_COLLISION_RESOLUTION
                {
                    Loss::Retry
                } else {
                    Loss::Error
                };
                let reason = format!("received NOTIFICATION: {}", n);
                self.drop_conn(id, None, reason, loss, now, out);
            }
            (ConnState::OpenSent, Message::Open(open)) => self.open_received(id, open, now, out),
            (ConnState::OpenSent, _) => {
                self.fsm_error(id, fsm_subcode::UNEXPECTED_IN_OPEN_SENT, now, out)
            }
            (ConnState::OpenConfirm, Message::Keepalive) => self.established(id, now, out),
            (ConnState::OpenConfirm, _) => {
                self.fsm_error(id, fsm_subcode::UNEXPECTED_IN_OPEN_CONFIRM, now, out)
            }
            (ConnState::Established, Message::Keepalive) => self.restart_hold(id, now, out),
            (ConnState::Established, Message::Update(u)) => {
                self.restart_hold(id, now, out);
                out.push(Output::Update(u));
            }
            (ConnState::Established, Message::RouteRefresh(r)) => {
                self.restart_hold(id, now, out);
                out.push(Output::RouteRefresh(r));
            }
            (ConnState::Established, Message::Open(_)) => {
                self.fsm_error(id, fsm_subcode::UNEXPECTED_IN_ESTABLISHED, now, out)
            }
        }
    }

    fn fsm_error(&mut self, id: ConnId, subcode: u8, now: Instant, out: &mut Vec<Output>) {
        let n = Notification::new(code::FSM, subcode, Vec::new());
        let reason = format!("sent NOTIFICATION: {}", n);
        self.drop_conn(id, Some(n), reason, Loss::Error, now, out);
    }

    fn open_received(&mut self, id: ConnId, open: Open, now: Instant, out: &mut Vec<Output>) {
        if let Err(n) = negotiate::check_open(&self.cfg, &open) {
            let reason = format!("sent NOTIFICATION: {}", n);
            self.drop_conn(id, Some(n), reason, Loss::Error, now, out);
            return;
        }
        // §6.8 collision detection: the connection initiated by the speaker with the higher
        // BGP Identifier survives; the other is closed with Cease / Collision Resolution.
        let other = self.conns.iter().find(|c| c.id != id).map(|c| c.id);
        if let Some(other) = other {
            let keep_outgoing = u32::from(self.cfg.router_id) > u32::from(open.router_id);
            let this_outgoing = self.conn(id).is_some_and(|c| c.outgoing);
            let n = Notification::cease(cease_subcode::CONNECTION_COLLISION_RESOLUTION);
            let reason = "connection collision resolution".to_string();
            if this_outgoing == keep_outgoing {
                self.drop_conn(other, Some(n), reason, Loss::Retry, now, out);
            } else {
                self.drop_conn(id, Some(n), reason, Loss::Retry, now, out);
                return;
            }
        }
        let neg = negotiate::negotiate(&self.cfg, &open);
        let hold = neg.hold_time;
        let keepalive = neg.keepalive;
        if let Some(conn) = self.conns.iter_mut().find(|c| c.id == id) {
            conn.state = ConnState::OpenConfirm;
            conn.negotiated = Some(neg);
        }
        out.push(Output::SendMessage(id, Message::Keepalive));
        if hold == 0 {
            // RFC 4271 §4.2: hold time 0 = no hold timer, no keepalives.
            out.push(Output::StopTimer(Timer::Hold(id)));
        } else {
            let hold_at = now + Duration::from_secs(hold.into());
            out.push(Output::ArmTimer(Timer::Hold(id), hold_at));
            let ka_at = now + Duration::from_secs(keepalive.into());
            out.push(Output::ArmTimer(Timer::Keepalive(id), ka_at));
        }
    }

    fn established(&mut self, id: ConnId, now: Instant, out: &mut Vec<Output>) {
        // Only one connection carries the session: close any other (§6.8).
        let others: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.id != id)
            .map(|c| c.id)
            .collect();
        for other in others {
            let n = Notification::cease(cease_subcode::CONNECTION_COLLISION_RESOLUTION);
            let reason = "connection collision resolution".to_string();
            self.drop_conn(other, Some(n), reason, Loss::Retry, now, out);
        }
        let Some(conn) = self.conns.iter_mut().find(|c| c.id == id) else {
            return;
        };
        conn.state = ConnState::Established;
        let Some(neg) = conn.negotiated.clone() else {
            return;
        };
        self.established_at = Some(now);
        self.restart_hold(id, now, out);
        self.sync_state(out);
        out.push(Output::Established(Box::new(neg)));
    }

    fn restart_hold(&mut self, id: ConnId, now: Instant, out: &mut Vec<Output>) {
        let hold = self.negotiated(id).map_or(0, |n| n.hold_time);
        if hold > 0 {
            let at = now + Duration::from_secs(hold.into());
            out.push(Output::ArmTimer(Timer::Hold(id), at));
        }
    }

    fn timer(&mut self, t: Timer, now: Instant, out: &mut Vec<Output>) {
        match t {
            Timer::ConnectRetry => {
                let waiting = matches!(self.base, State::Connect | State::Active);
                if self.conns.is_empty() && waiting && !self.cfg.passive {
                    // §8.2.2 Connect/Active: drop the attempt, restart the timer, connect.
                    self.connect(now, out);
                }
            }
            Timer::IdleHold => {
                if self.auto_start && self.state() == State::Idle {
                    self.auto_start = false;
                    self.start(now, out);
                }
            }
            Timer::Hold(id) => {
                if self.conn(id).is_some() {
                    let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new());
                    let reason = format!("sent NOTIFICATION: {}", n);
                    self.drop_conn(id, Some(n), reason, Loss::Error, now, out);
                }
            }
            Timer::Keepalive(id) => {
                let Some(conn) = self.conn(id) else { return };
                let ka = conn.negotiated.as_ref().map_or(0, |n| n.keepalive);
                if conn.state >= ConnState::OpenConfirm && ka > 0 {
                    out.push(Output::SendMessage(id, Message::Keepalive));
                    let at = now + Duration::from_secs(ka.into());
                    out.push(Output::ArmTimer(Timer::Keepalive(id), at));
                }
            }
        }
    }

    /// Drops one connection (sending `n` first). When it carried the session, or was the
    /// last one, the session goes down.
    fn drop_conn(
        &mut self,
        id: ConnId,
        n: Option<Notification>,
        reason: String,
        loss: Loss,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(idx) = self.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let conn = self.conns.remove(idx);
        if let Some(n) = n {
            out.push(Output::SendMessage(id, Message::Notification(n)));
        }
        close(id, out);
        let was_established = conn.state == ConnState::Established;
        if !was_established && !self.conns.is_empty() {
            return; // the other connection carries on
        }
        for other in std::mem::take(&mut self.conns) {
            close(other.id, out);
        }
        if was_established || loss == Loss::Error {
            self.go_idle_with_backoff(now, out);
        } else {
            // Transport trouble before Established: back to Active (§8.2.2 OpenSent).
            self.base = State::Active;
            if !self.cfg.passive {
                let at = now + self.connect_retry_delay();
                out.push(Output::ArmTimer(Timer::ConnectRetry, at));
            }
        }
        self.sync_state(out);
        out.push(Output::Down { reason });
    }

    fn go_idle_with_backoff(&mut self, now: Instant, out: &mut Vec<Output>) {
        if let Some(since) = self.established_at.take() {
            if now.saturating_duration_since(since) >= self.cfg.idle_hold_reset {
                self.idle_hold = self.cfg.idle_hold;
            }
        }
        if self.connecting {
            self.connecting = false;
            out.push(Output::CancelConnect);
        }
        out.push(Output::StopTimer(Timer::ConnectRetry));
        self.base = State::Idle;
        self.auto_start = true;
        out.push(Output::ArmTimer(Timer::IdleHold, now + self.idle_hold));
        self.idle_hold = (self.idle_hold * 2).min(self.cfg.idle_hold_max);
    }
}

fn close(id: ConnId, out: &mut Vec<Output>) {
    out.push(Output::CloseConnection(id));
    out.push(Output::StopTimer(Timer::Hold(id)));
    out.push(Output::StopTimer(Timer::Keepalive(id)));
}
