//! Graceful restart, restarting-speaker side (RFC 4724 §4.1): after a restart that kept the
//! forwarding state (our routes are still in the kernel), the OPENs carry the Restart State
//! bit and the Forwarding State bit of each family; route selection — and with it every
//! advertisement and every FIB change — waits until each peer has sent End-of-RIB (or the
//! Selection_Deferral_Time runs out). Then the Loc-RIB goes to the FIB (routes that did not
//! change are not written), our routes and End-of-RIB go to the peers, and the FIB sink is
//! told that the forwarding state nobody wants again can go.

use foldhash::{HashMap, HashSet};

use tokio::time::Instant;

use crate::fsm::Negotiated;
use crate::rib::PeerId;
use crate::wire::{Capability, Family, GracefulRestartCap, LlgrCap, LlgrFamily};

use super::api::{GracefulOptions, PeerSettings, SpeakerConfig};
use super::core::{family_name, Speaker};

/// The status line of every peer while route selection is deferred.
const DEFERRED_NOTE: &str =
    "graceful restart: restarting, route selection deferred until End-of-RIB";

/// The restarting speaker's state while route selection is deferred.
#[derive(Debug, Default)]
pub(crate) struct Restarter {
    /// Route selection is deferred (RFC 4724 §4.1).
    deferring: bool,
    /// When the Selection_Deferral_Time runs out.
    deadline: Option<Instant>,
    /// Peers up with graceful restart whose End-of-RIB still lacks for these families.
    awaiting: HashMap<PeerId, HashSet<Family>>,
    /// Peers we no longer wait for: End-of-RIB received for every family, or excluded.
    done: HashSet<PeerId>,
}

impl Restarter {
    /// The state for a speaker started with `restart`; inactive unless it is restarting
    /// with graceful restart configured.
    pub(crate) fn new(graceful_restart: bool, restart: &GracefulOptions) -> Self {
        if !(graceful_restart && restart.restarting) {
            return Self::default();
        }
        Self {
            deferring: true,
            deadline: Some(Instant::now() + restart.selection_deferral),
            ..Self::default()
        }
    }

    /// When the selection deferral timer fires, while it runs.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline.filter(|_| self.deferring)
    }
}

/// The graceful restart capabilities we send to `p`, if configured: GR (RFC 4724 §3) with
/// the Restart State bit when restarting, and then the Forwarding State bit of each family,
/// since our routes stayed in the kernel across the restart; LLGR (RFC 9494 §3) when
/// `llgr_stale_time` is set, with the same F bits.
pub(crate) fn capability(
    cfg: &SpeakerConfig,
    p: &PeerSettings,
    opts: &GracefulOptions,
) -> Vec<Capability> {
    if !cfg.graceful_restart {
        return Vec::new();
    }
    let restarting = opts.restarting;
    let mut caps = vec![Capability::GracefulRestart(GracefulRestartCap {
        restart_state: restarting,
        notification: super::graceful::ADVERTISE_N_BIT,
        restart_time: cfg.restart_time.min(4095),
        families: p.families.iter().map(|f| (*f, restarting)).collect(),
    })];
    if opts.llgr_stale_time > 0 {
        let llgr = LlgrCap {
            families: p
                .families
                .iter()
                .map(|f| LlgrFamily {
                    family: *f,
                    forwarding: restarting,
                    stale_time: opts.llgr_stale_time,
                })
                .collect(),
        };
        caps.push(llgr.to_capability());
    }
    caps
}

impl Speaker {
    /// Whether route selection is deferred (RFC 4724 §4.1): nothing is advertised and the
    /// FIB is not changed.
    pub(crate) fn selection_deferred(&self) -> bool {
        self.graceful.restart.deferring
    }

    /// Called once at start: with no peer to wait for, selection goes ahead at once.
    pub(crate) fn restart_begin(&mut self) {
        if self.graceful.restart.deferring {
            tracing::info!(
                peers = self.peers.len(),
                "graceful restart: restarting with the forwarding state kept; route selection deferred until End-of-RIB"
            );
            for slot in &mut self.peers {
                slot.info = DEFERRED_NOTE.to_string();
            }
            self.restart_check();
        }
    }

    /// Peer `idx` is Established while we restart: decides whether we wait for its
    /// End-of-RIB. Returns a note for the status line.
    pub(crate) fn restart_session_up(&mut self, idx: usize, neg: &Negotiated) -> Option<String> {
        if !self.graceful.restart.deferring {
            return None;
        }
        let id = self.peers.get(idx)?.id;
        let r = &mut self.graceful.restart;
        // RFC 4724 §4.1: peers that did not advertise the capability, or that are
        // restarting themselves (Restart State bit), are not waited for.
        let wait = neg
            .graceful_restart
            .as_ref()
            .filter(|cap| !cap.restart_state)
            .is_some()
            && !neg.families.is_empty();
        if wait {
            r.awaiting
                .insert(id, neg.families.iter().copied().collect());
            r.done.remove(&id);
        } else {
            r.awaiting.remove(&id);
            r.done.insert(id);
        }
        self.restart_check();
        self.graceful
            .restart
            .deferring
            .then(|| DEFERRED_NOTE.to_string())
    }

    /// End-of-RIB for `family` from peer `id` while we restart.
    pub(crate) fn restart_end_of_rib(&mut self, id: PeerId, family: Family) {
        let r = &mut self.graceful.restart;
        if !r.deferring {
            return;
        }
        if let Some(families) = r.awaiting.get_mut(&id) {
            families.remove(&family);
            if families.is_empty() {
                r.awaiting.remove(&id);
                r.done.insert(id);
                tracing::info!(
                    peer = id,
                    family = family_name(family),
                    "graceful restart: End-of-RIB received from the peer"
                );
            }
        }
        self.restart_check();
    }

    /// The session of peer `id` went down while we restart: its End-of-RIB, if still
    /// missing, will come on its next session.
    pub(crate) fn restart_session_lost(&mut self, id: PeerId) {
        let r = &mut self.graceful.restart;
        if r.deferring {
            r.awaiting.remove(&id);
        }
    }

    /// The selection deferral timer ran out (RFC 4724 §4.1 (b)).
    pub(crate) fn restart_expire(&mut self, now: Instant) {
        if self.graceful.restart.deadline().is_some_and(|t| t <= now) {
            let waiting = self.peers.len() - self.graceful.restart.done.len().min(self.peers.len());
            tracing::warn!(
                peers_without_end_of_rib = waiting,
                "graceful restart: selection deferral timer expired"
            );
            self.restart_finish();
        }
    }

    /// Ends the deferral once every configured peer is done (RFC 4724 §4.1 (a)).
    fn restart_check(&mut self) {
        let r = &self.graceful.restart;
        if r.deferring && self.peers.iter().all(|p| r.done.contains(&p.id)) {
            tracing::info!("graceful restart: End-of-RIB from every peer");
            self.restart_finish();
        }
    }

    /// Route selection goes ahead: the Loc-RIB reaches the FIB, each Established peer gets
    /// our routes and End-of-RIB (RFC 4724 §4.1), and the FIB sink may drop the forwarding
    /// state nobody wants again.
    fn restart_finish(&mut self) {
        let r = &mut self.graceful.restart;
        r.deferring = false;
        r.deadline = None;
        r.awaiting.clear();
        // RFC 4724 §4.1: the Restart State bit is for the OPENs of the restart only; sessions
        // that come up later (a peer that reconnects) must not claim a restart.
        self.gr_options.restarting = false;
        for slot in &self.peers {
            let cfg = super::core::peer_config(&self.cfg, &slot.settings, &self.gr_options);
            if !slot.handle.set_capabilities(cfg.capabilities) {
                tracing::warn!(peer = %slot.address(), "cannot clear the Restart State bit");
            }
        }
        for idx in 0..self.peers.len() {
            let Some(families) = self.peers[idx]
                .session
                .as_ref()
                .map(|s| s.negotiated.families.clone())
            else {
                continue;
            };
            self.initial_dump(idx, &families);
            let slot = &mut self.peers[idx];
            slot.info = format!("{}; graceful restart complete", slot.info);
        }
        // Every prefix learned so far is in `dirty`: this is the deferred selection.
        self.propagate();
        if let Some(fib) = self.fib.as_mut() {
            fib.restart_complete();
        }
        tracing::info!(
            prefixes = self.rib.entries().count(),
            "graceful restart: route selection done, End-of-RIB sent"
        );
    }
}
