//! The speaker task: start-up, the event loop, and control requests.

use foldhash::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::fsm::State;
use crate::rib::{PeerId, PeerInfo, Rib, RouteAttrs, LOCAL_PEER};
use crate::session::{self, Listener, PeerConfig, SessionEvent};
use crate::wire::{
    AsPath, Capability, Community, Family, Nlri, Notification, Origin, PathAttrs, Prefix,
};

use super::api::{Announce, GracefulOptions, Request, SpeakerConfig, SpeakerHandle};
use super::peer::{now_secs, PeerSlot, Session};
use super::policy_rules::Target;
use super::{FibSink, SpeakerError};

/// Session events queued for the speaker. Small: a decoded UPDATE takes far more memory
/// than its bytes, which wait in the socket buffers instead (TCP back-pressure).
const SESSION_EVENTS: usize = 64;
/// Session events handled before the speaker propagates changes and flushes.
const EVENT_BATCH: usize = 32;
/// Changes queued for the export tasks, all peers together, above which the speaker stops
/// reading UPDATEs (about 40 bytes each; a reflector hands each route to every client).
const EXPORT_BACKLOG_MAX: usize = 1 << 20;
/// How often a throttled speaker looks at the export backlog again.
const BACKLOG_RECHECK: Duration = Duration::from_millis(1);
/// RFC 4486 §4 Cease subcode 2: Administrative Shutdown.
const CEASE_ADMIN_SHUTDOWN: u8 = 2;

pub(crate) struct Speaker {
    pub cfg: SpeakerConfig,
    pub rib: Rib,
    pub peers: Vec<PeerSlot>,
    /// Prefixes whose best path or ECMP set changed since the last propagation.
    pub dirty: super::dirty::DirtySet,
    pub fib: Option<Box<dyn FibSink>>,
    /// Maximum-prefix warnings given and hold-downs running.
    pub limits: super::inbound::PrefixLimits,
    /// Peers restarting gracefully and their stale routes (RFC 4724 helper).
    pub graceful: super::graceful::GracefulHelper,
    pub listener: Option<Listener>,
    /// Handed to new sessions; also keeps the event channel open when no peer is configured.
    pub events: mpsc::Sender<(u32, SessionEvent)>,
    /// Peer id → index in `peers`.
    pub index: HashMap<PeerId, usize>,
    /// The id the next added peer gets (ids are never reused).
    pub next_peer_id: PeerId,
    /// Pre-policy attributes of paths import policy changed (soft reconfiguration).
    pub soft_in: super::reconfig::SoftIn,
    /// RFC 7313 refreshes in progress from peers.
    pub refresh_state: super::refresh::RefreshState,
    /// How this run started (RFC 4724 restart state), for peers added later.
    pub gr_options: GracefulOptions,
}

impl Speaker {
    pub async fn start(
        cfg: SpeakerConfig,
        fib: Option<Box<dyn FibSink>>,
        restart: GracefulOptions,
    ) -> Result<SpeakerHandle, SpeakerError> {
        let listener = match cfg.listen {
            Some(addr) => Some(
                Listener::bind(addr)
                    .await
                    .map_err(|source| SpeakerError::Listen { addr, source })?,
            ),
            None => None,
        };
        let (ev_tx, ev_rx) = mpsc::channel(SESSION_EVENTS);
        let (req_tx, req_rx) = mpsc::channel(64);
        let mut peers = Vec::with_capacity(cfg.peers.len());
        for (i, settings) in cfg.peers.iter().enumerate() {
            // Peer ids start at 1: 0 is LOCAL_PEER.
            let id = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let handle =
                session::spawn_peer(id, peer_config(&cfg, settings, &restart), ev_tx.clone());
            if let Some(l) = &listener {
                l.register(settings.address, &handle);
            }
            peers.push(PeerSlot::new(id, settings.clone(), handle, cfg.asn));
        }
        let next_peer_id = u32::try_from(peers.len() + 1).unwrap_or(u32::MAX);
        let graceful = super::graceful::GracefulHelper::new(cfg.graceful_restart, &restart);
        let mut speaker = Speaker {
            rib: Rib::new(cfg.asn, cfg.router_id),
            cfg,
            peers,
            dirty: Default::default(),
            fib,
            limits: Default::default(),
            graceful,
            listener,
            events: ev_tx,
            index: HashMap::default(),
            next_peer_id,
            soft_in: Default::default(),
            refresh_state: Default::default(),
            gr_options: restart,
        };
        speaker.reindex();
        speaker.restart_begin();
        tokio::spawn(speaker.run(ev_rx, req_rx));
        Ok(SpeakerHandle::new(req_tx))
    }

    async fn run(
        mut self,
        mut events: mpsc::Receiver<(u32, SessionEvent)>,
        mut requests: mpsc::Receiver<Request>,
    ) {
        let mut sweep = tokio::time::interval(Duration::from_secs(30));
        loop {
            let gr_deadline = self.graceful.next_deadline();
            // Export tasks behind by too much: take in no more routes until they catch up
            // (their queues would hold the difference; TCP holds it for free).
            let throttled = self.export_backlog() > EXPORT_BACKLOG_MAX;
            tokio::select! {
                biased;
                req = requests.recv() => match req {
                    Some(Request::Shutdown(reply)) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    // Graceful restart (RFC 4724): tell the peers nothing; the sessions end
                    // when the process exits, as in a crash.
                    Some(Request::Detach(reply)) => {
                        tracing::info!("stopping for a graceful restart: no NOTIFICATION sent");
                        self.limits.abort_restarts();
                        let _ = reply.send(());
                        std::future::pending::<()>().await;
                    }
                    Some(req) => self.on_request(req),
                    // Every handle is gone: nobody can ask us anything any more.
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                ev = events.recv(), if !throttled => {
                    let Some((id, ev)) = ev else { return };
                    self.on_event(id, ev);
                    for _ in 1..EVENT_BATCH {
                        match events.try_recv() {
                            Ok((id, ev)) => self.on_event(id, ev),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep(BACKLOG_RECHECK), if throttled => {}
                _ = sweep.tick() => {
                    self.rib.sweep_attrs();
                }
                // A restarting peer's restart time (or End-of-RIB wait) ran out.
                _ = sleep_until_opt(gr_deadline), if gr_deadline.is_some() => {
                    self.gr_expire(tokio::time::Instant::now());
                }
            }
            // RFC 4724 §4.1: no route selection while it is deferred after a restart.
            if !self.selection_deferred() {
                self.propagate();
            }
            self.flush();
        }
    }

    fn on_event(&mut self, id: u32, ev: SessionEvent) {
        let Some(idx) = self.slot_index(id) else {
            return;
        };
        match ev {
            SessionEvent::StateChanged { from, to } => {
                tracing::info!(peer = %self.peers[idx].address(), %from, %to, "session state");
                let slot = &mut self.peers[idx];
                slot.state = to;
                slot.since = now_secs();
                if from == State::Established && to != State::Established {
                    self.session_lost(idx);
                }
            }
            SessionEvent::Established(neg) => self.session_up(idx, neg),
            SessionEvent::Update(update) => self.on_update(idx, update),
            // While selection is deferred after our restart (RFC 4724 §4.1) nothing goes
            // out; the deferred initial dump answers the request.
            SessionEvent::RouteRefresh(_) if self.selection_deferred() => {}
            SessionEvent::RouteRefresh(rr) => self.on_refresh_message(idx, rr),
            SessionEvent::Down { reason } => {
                tracing::info!(peer = %self.peers[idx].address(), %reason, "session down");
                // During a max-prefix hold-down the status keeps saying why.
                let gr = self.judge_down(idx, &reason);
                if !self.limits.holding_down(self.peers[idx].id) {
                    self.peers[idx].info = gr.unwrap_or(reason);
                }
                if self.peers[idx].session.is_some() {
                    self.session_lost(idx);
                }
            }
        }
    }

    fn slot_index(&self, id: u32) -> Option<usize> {
        self.index.get(&id).copied()
    }

    fn session_up(&mut self, idx: usize, neg: Box<crate::fsm::Negotiated>) {
        let slot = &mut self.peers[idx];
        let local_addr = neg
            .local_addr
            .map(|a| a.ip())
            .or(slot.settings.local_address)
            .unwrap_or(match slot.settings.address {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            });
        let info = PeerInfo {
            id: slot.id,
            addr: slot.settings.address,
            asn: neg.peer_open.asn,
            router_id: neg.peer_open.router_id,
            ibgp: !slot.ebgp,
        };
        self.limits.session_up(slot.id);
        if let Err(e) = self.rib.register_peer(info) {
            // A restarting peer whose identity changed: its stale routes cannot stay.
            let id = slot.id;
            self.end_restart(id);
            self.dirty.extend(self.rib.remove_peer(id));
            if self.rib.register_peer(info).is_err() {
                tracing::error!(peer = %self.peers[idx].address(), "cannot register peer: {e}");
            }
        }
        let gr_note = self.gr_session_up(idx, &neg);
        let slot = &mut self.peers[idx];
        slot.info = format!(
            "hold {}s, families {}",
            neg.hold_time,
            neg.families
                .iter()
                .map(|f| family_name(*f))
                .collect::<Vec<_>>()
                .join(",")
        );
        if let Some(note) = gr_note {
            slot.info = format!("{}; {note}", slot.info);
        }
        if let Some(note) = super::peer::add_path_note(&neg) {
            slot.info = format!("{}; {note}", slot.info);
        }
        let target = Target {
            ebgp: slot.ebgp,
            local_asn: self.cfg.asn,
            local_addr,
            local_v6: slot.settings.next_hop_v6,
        };
        let families = neg.families.clone();
        slot.session = Some(Session {
            target,
            out: super::exporter::Exporter::spawn(
                slot.settings.address,
                neg.encode.clone(),
                neg.enhanced_route_refresh,
                slot.handle.bulk_sender(),
            ),
            cache: Default::default(),
            negotiated: neg,
        });
        // After a restart, the dump waits for the deferred route selection.
        if !self.selection_deferred() {
            self.initial_dump(idx, &families);
        }
    }

    /// The session of peer `idx` is gone and its routes with it (no graceful restart).
    pub(crate) fn session_down(&mut self, idx: usize) {
        let slot = &mut self.peers[idx];
        if slot.session.take().is_none() {
            return;
        }
        let id = slot.id;
        self.end_restart(id);
        self.dirty.extend(self.rib.remove_peer(id));
        self.soft_in.forget(id);
        self.refresh_state.forget(id);
    }

    fn on_request(&mut self, req: Request) {
        match req {
            Request::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Request::Routes { table, peer, reply } => {
                let _ = reply.send(self.routes(table, peer));
            }
            Request::Announce(routes, reply) => {
                let _ = reply.send(Ok(self.announce(routes)));
            }
            Request::Withdraw(prefixes, reply) => {
                let mut n = 0;
                for prefix in prefixes {
                    let nlri = Nlri { prefix, path_id: 0 };
                    if self.rib.withdraw(LOCAL_PEER, nlri) {
                        self.dirty.insert(prefix);
                        n += 1;
                    }
                }
                let _ = reply.send(Ok(n));
            }
            Request::AddPeer(settings, reply) => {
                let _ = reply.send(self.add_peer(*settings));
            }
            Request::RemovePeer(address, reply) => {
                let id = self
                    .peers
                    .iter()
                    .find(|p| p.address() == address)
                    .map(|p| p.id);
                let _ = reply.send(self.remove_peer(address));
                if let Some(id) = id {
                    self.soft_in.forget(id);
                    self.refresh_state.forget(id);
                }
            }
            Request::UpdatePeer(settings, reply) => {
                let _ = reply.send(self.update_peer(*settings));
            }
            Request::RefreshIn(address, reply) => {
                let _ = reply.send(self.request_refresh(address));
            }
            Request::Shutdown(_) | Request::Detach(_) => {}
        }
    }

    fn announce(&mut self, routes: Vec<Announce>) -> usize {
        let mut n = 0;
        for a in routes {
            let prefix = crate::policy::masked(a.prefix);
            // Unspecified = "this node": export puts our session address there.
            let next_hop = a.next_hop.unwrap_or(match prefix {
                Prefix::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                Prefix::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            });
            let attrs = PathAttrs {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::default()),
                next_hop: match next_hop {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                },
                communities: a
                    .communities
                    .iter()
                    .map(|&(asn, val)| Community((u32::from(asn) << 16) | u32::from(val)))
                    .collect(),
                ..Default::default()
            };
            let attrs = self.rib.intern(RouteAttrs::new(attrs, next_hop));
            match self
                .rib
                .insert(LOCAL_PEER, Nlri { prefix, path_id: 0 }, attrs)
            {
                Ok(changed) => {
                    if changed {
                        self.dirty.insert(prefix);
                    }
                    n += 1;
                }
                Err(e) => tracing::error!(%prefix, "cannot originate: {e}"),
            }
        }
        n
    }

    async fn shutdown(&mut self) {
        self.limits.abort_restarts();
        // RFC 4486 §4: Cease / Administrative Shutdown to every peer, all at once.
        let cease = Notification::cease(CEASE_ADMIN_SHUTDOWN);
        let stops = self.peers.iter().map(|p| p.handle.stop(cease.clone()));
        let all = futures_join_all(stops);
        if tokio::time::timeout(Duration::from_secs(3), all)
            .await
            .is_err()
        {
            tracing::warn!("some peers did not take the Cease within 3 s");
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits for every future (a tiny join_all, to avoid a dependency for one call).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    for f in set {
        f.await;
    }
}

pub(crate) fn family_name(f: Family) -> &'static str {
    match f {
        Family::IPV4_UNICAST => "ipv4-unicast",
        Family::IPV6_UNICAST => "ipv6-unicast",
        _ => "other",
    }
}

/// What the session task needs for one neighbour.
pub(crate) fn peer_config(
    cfg: &SpeakerConfig,
    p: &super::api::PeerSettings,
    gr: &GracefulOptions,
) -> PeerConfig {
    let mut caps: Vec<Capability> = p
        .families
        .iter()
        .map(|f| Capability::MultiProtocol(*f))
        .collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::EnhancedRouteRefresh);
    caps.push(Capability::FourOctetAs(cfg.asn));
    caps.push(Capability::ExtendedMessage);
    caps.extend(super::peer::add_path_capability(p));
    // RFC 4724 §3: helper always (graceful.rs); R and F bits after a restart
    // (graceful_restart.rs).
    caps.extend(super::graceful_restart::capability(cfg, p, gr));
    PeerConfig {
        remote_addr: p.address,
        remote_port: p.port,
        local_addr: p.local_address,
        local_asn: cfg.asn,
        remote_asn: p.asn,
        router_id: cfg.router_id,
        hold_time: p.hold_time.unwrap_or(cfg.hold_time),
        passive: p.passive,
        connect_retry: Duration::from_secs(u64::from(p.connect_retry.max(1))),
        capabilities: caps,
        password: p.password.clone(),
        ttl_security: p.ttl_security,
    }
}
