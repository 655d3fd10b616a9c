//! Graceful restart, helper side (RFC 4724 §4.2, RFC 8538): when a peer that negotiated
//! the capability loses its session, its routes stay in the Loc-RIB (and so in the FIB),
//! marked stale, until it comes back and sends End-of-RIB or its restart time runs out.
//! The restarting-speaker side (§4.1) is in `graceful_restart.rs`; the hooks here feed it.

use foldhash::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::fsm::Negotiated;
use crate::rib::PeerId;
use crate::wire::{cease_subcode, Family, GracefulRestartCap, LlgrCap, Nlri, Prefix};

use super::api::GracefulOptions;
use super::core::{family_name, Speaker};
use super::graceful_restart::Restarter;

/// Whether we advertise the RFC 8538 N bit. We do not (yet) send Cease / Hard Reset for an
/// operator's shutdown, so a NOTIFICATION always ends graceful restart on our sessions.
pub(crate) const ADVERTISE_N_BIT: bool = false;

/// Upper bound on the wait for End-of-RIB once the peer is back (RFC 4724 §4.2 lets the
/// helper pick one; 360 s is the common "stale path time").
const STALE_PATH_TIME: Duration = Duration::from_secs(360);

/// One restarting peer.
pub(crate) struct Restarting {
    /// The (prefix, path id) pairs the peer held when its session went down and has not
    /// re-announced since.
    pub(crate) stale: HashSet<Nlri>,
    /// When the stale routes go if nothing else removes them first.
    pub(crate) deadline: Instant,
    /// The session went down in this very event batch: the next `Down` event's reason
    /// decides whether graceful restart applies at all.
    judging: bool,
    /// The peer's Restart Time (seconds), for the status line.
    restart_time: u16,
    /// Both sides advertised the RFC 8538 N bit on the session that went down.
    n_bit: bool,
    /// The peer's LLGR capability on the session that went down, when we sent ours too
    /// (RFC 9494); `graceful_llgr.rs` uses it once the restart time has run out.
    pub(crate) llgr: Option<LlgrCap>,
    /// In the long-lived stale phase: when each family's routes go. Empty otherwise.
    pub(crate) llgr_until: HashMap<Family, Instant>,
}

/// Graceful-restart helper state of every peer.
#[derive(Default)]
pub(crate) struct GracefulHelper {
    pub(crate) peers: HashMap<PeerId, Restarting>,
    /// Our own restart (RFC 4724 §4.1), while route selection is deferred.
    pub(crate) restart: Restarter,
    /// Long-lived graceful restart (RFC 9494): our Long-lived Stale Time, seconds; 0 = off.
    pub(crate) llgr_stale_time: u32,
}

impl GracefulHelper {
    /// Helper state for no peer yet; `restart` says whether this speaker is restarting.
    pub(crate) fn new(graceful_restart: bool, restart: &GracefulOptions) -> Self {
        Self {
            peers: HashMap::default(),
            restart: Restarter::new(graceful_restart, restart),
            llgr_stale_time: if graceful_restart {
                restart.llgr_stale_time
            } else {
                0
            },
        }
    }

    /// The earliest deadline of any restarting peer, or of our own selection deferral.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .map(|r| r.deadline)
            .chain(self.restart.deadline())
            .min()
    }

    /// Whether `nlri` from `peer` is a stale path.
    pub(crate) fn is_stale(&self, peer: PeerId, nlri: &Nlri) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|r| r.stale.contains(nlri))
    }

    /// The peer re-announced or withdrew `nlri`: it is no longer stale (RFC 4724 §4.2).
    pub(crate) fn refreshed(&mut self, peer: PeerId, nlri: &Nlri) {
        if let Some(r) = self.peers.get_mut(&peer) {
            r.stale.remove(nlri);
        }
    }
}

/// Whether a session that ended for `reason` (the session task's `Down` reason) leaves the
/// peer's routes in place. `n_bit`: both sides advertised the RFC 8538 N bit.
pub(crate) fn keeps_routes(reason: &str, n_bit: bool) -> bool {
    if !reason.contains("NOTIFICATION") {
        // A TCP reset or close: the case RFC 4724 §4.2 is about.
        return true;
    }
    // The peer went silent: the same as a lost connection for graceful restart.
    if reason.starts_with("sent NOTIFICATION: Hold Timer Expired") {
        return true;
    }
    // RFC 8538 §3: with the N bit every NOTIFICATION but Cease / Hard Reset keeps the
    // routes; without it (RFC 4724) a NOTIFICATION ends graceful restart.
    n_bit && !reason.contains(&format!("Cease / {}", hard_reset_name()))
}

fn hard_reset_name() -> &'static str {
    crate::wire::Notification::cease(cease_subcode::HARD_RESET)
        .subcode_name()
        .unwrap_or("Hard Reset")
}

pub(crate) fn family_of(prefix: &Prefix) -> Family {
    match prefix {
        Prefix::V4(_) => Family::IPV4_UNICAST,
        Prefix::V6(_) => Family::IPV6_UNICAST,
    }
}

/// The peer's capability, if graceful restart was negotiated on this session.
fn peer_cap(neg: &Negotiated) -> Option<&GracefulRestartCap> {
    neg.graceful_restart.as_ref()
}

impl Speaker {
    /// The Established session of peer `idx` just ended (before the reason is known). With
    /// graceful restart negotiated, the peer's routes of the families in its capability stay,
    /// marked stale, for its restart time; everything else goes now.
    pub(crate) fn session_lost(&mut self, idx: usize) {
        let Some(slot) = self.peers.get_mut(idx) else {
            return;
        };
        let id = slot.id;
        self.restart_session_lost(id);
        let Some(slot) = self.peers.get_mut(idx) else {
            return;
        };
        let cap = slot
            .session
            .as_ref()
            .and_then(|s| peer_cap(&s.negotiated))
            .filter(|_| self.cfg.graceful_restart)
            .cloned();
        // RFC 9494 §4.2: only when both sides sent the LLGR capability.
        let llgr = slot
            .session
            .as_ref()
            .and_then(|s| LlgrCap::find(&s.negotiated.peer_open.capabilities))
            .filter(|_| self.graceful.llgr_stale_time > 0);
        let Some(cap) = cap else {
            self.session_down(idx);
            return;
        };
        slot.session = None;
        // RFC 4724 §4.2: routes of families absent from the capability are deleted.
        let mut stale = HashSet::default();
        let mut gone = Vec::new();
        for r in self.rib.adj_in(id) {
            if cap
                .families
                .iter()
                .any(|(f, _)| *f == family_of(&r.nlri.prefix))
            {
                stale.insert(r.nlri);
            } else {
                gone.push(r.nlri);
            }
        }
        for n in gone {
            if self.rib.withdraw(id, n) {
                self.dirty.insert(n.prefix);
            }
        }
        let restart = Duration::from_secs(u64::from(cap.restart_time));
        tracing::info!(peer = %slot.address(), stale = stale.len(), restart_time = cap.restart_time,
            "graceful restart: keeping the peer's routes as stale");
        slot.info = format!(
            "graceful restart: {} routes kept as stale for {} s",
            stale.len(),
            cap.restart_time
        );
        self.graceful.peers.insert(
            id,
            Restarting {
                stale,
                deadline: Instant::now() + restart,
                judging: true,
                restart_time: cap.restart_time,
                n_bit: ADVERTISE_N_BIT && cap.notification,
                llgr,
                llgr_until: HashMap::default(),
            },
        );
    }

    /// The `Down` event that follows a lost session: a NOTIFICATION may end graceful restart
    /// (RFC 8538 §3). Returns the status line to show, if graceful restart goes on.
    pub(crate) fn judge_down(&mut self, idx: usize, reason: &str) -> Option<String> {
        let id = self.peers.get(idx)?.id;
        let r = self.graceful.peers.get_mut(&id)?;
        let judging = std::mem::replace(&mut r.judging, false);
        if judging && !keeps_routes(reason, r.n_bit) {
            tracing::info!(peer = %self.peers[idx].address(), %reason,
                "graceful restart does not apply: dropping the peer's routes");
            self.end_restart(id);
            return None;
        }
        Some(format!(
            "graceful restart: {} routes kept as stale for {} s; {reason}",
            r.stale.len(),
            r.restart_time
        ))
    }

    /// Peer `idx` is Established: helper side (a restarting peer is back) and
    /// restarting-speaker side (do we wait for its End-of-RIB). Returns a note for the
    /// status line.
    pub(crate) fn gr_session_up(&mut self, idx: usize, neg: &Negotiated) -> Option<String> {
        let helper = self.helper_session_up(idx, neg);
        let restart = self.restart_session_up(idx, neg);
        match (helper, restart) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        }
    }

    /// The restarting peer is back (RFC 4724 §4.2): stale routes of families its new
    /// capability lacks, or claims no preserved forwarding state for, go now; the rest wait
    /// for End-of-RIB. Returns a note for the status line.
    fn helper_session_up(&mut self, idx: usize, neg: &Negotiated) -> Option<String> {
        let id = self.peers.get(idx)?.id;
        let r = self.graceful.peers.get_mut(&id)?;
        r.judging = false;
        let cap = peer_cap(neg);
        // RFC 9494 §4.2: in the long-lived stale phase the new LLGR capability's F bits
        // decide; before it, the GR capability's (RFC 4724 §4.2).
        let llgr_phase = !std::mem::take(&mut r.llgr_until).is_empty();
        let llgr = LlgrCap::find(&neg.peer_open.capabilities);
        let keep = |f: Family| {
            if llgr_phase {
                llgr.as_ref()
                    .and_then(|c| c.family(f))
                    .is_some_and(|e| e.forwarding)
            } else {
                cap.is_some_and(|c| c.families.iter().any(|&(cf, fwd)| cf == f && fwd))
            }
        };
        let drop: Vec<Nlri> = r
            .stale
            .iter()
            .filter(|n| !keep(family_of(&n.prefix)))
            .copied()
            .collect();
        for n in &drop {
            r.stale.remove(n);
        }
        r.deadline = Instant::now() + STALE_PATH_TIME;
        let left = r.stale.len();
        if !drop.is_empty() {
            tracing::info!(peer = %self.peers[idx].address(), dropped = drop.len(),
                "graceful restart: forwarding state not preserved, dropping stale routes");
        }
        for n in drop {
            if self.rib.withdraw(id, n) {
                self.dirty.insert(n.prefix);
            }
        }
        if left == 0 {
            self.graceful.peers.remove(&id);
            return None;
        }
        Some(format!(
            "graceful restart: {left} stale routes await End-of-RIB"
        ))
    }

    /// End-of-RIB for `family` from a peer: its stale routes of that family that were not
    /// re-announced go (RFC 4724 §4.2).
    pub(crate) fn gr_end_of_rib(&mut self, id: PeerId, family: Family) {
        self.helper_end_of_rib(id, family);
        // After the helper's removals, so the deferred selection sees them.
        self.restart_end_of_rib(id, family);
    }

    fn helper_end_of_rib(&mut self, id: PeerId, family: Family) {
        let Some(r) = self.graceful.peers.get_mut(&id) else {
            return;
        };
        let gone: Vec<Nlri> = r
            .stale
            .iter()
            .filter(|n| family_of(&n.prefix) == family)
            .copied()
            .collect();
        for n in &gone {
            r.stale.remove(n);
        }
        if r.stale.is_empty() {
            self.graceful.peers.remove(&id);
        }
        tracing::info!(
            peer = id,
            family = family_name(family),
            removed = gone.len(),
            "graceful restart: End-of-RIB, stale routes removed"
        );
        for n in gone {
            if self.rib.withdraw(id, n) {
                self.dirty.insert(n.prefix);
            }
        }
    }

    /// Removes the stale routes of every peer whose deadline has passed, and ends our own
    /// selection deferral when its timer ran out.
    pub(crate) fn gr_expire(&mut self, now: Instant) {
        self.restart_expire(now);
        let due: Vec<PeerId> = self
            .graceful
            .peers
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            // RFC 9494: the restart time ran out; long-lived stale routes may stay.
            if self.llgr_step(id, now) {
                continue;
            }
            tracing::info!(
                peer = id,
                "graceful restart: timer expired, removing stale routes"
            );
            self.end_restart(id);
            if let Some(slot) = self.peers.iter_mut().find(|p| p.id == id) {
                if slot.session.is_none() {
                    slot.info =
                        "graceful restart: restart time expired, stale routes removed".into();
                }
            }
        }
    }

    /// Drops every stale route of `id` and forgets its restart.
    pub(crate) fn end_restart(&mut self, id: PeerId) {
        let Some(r) = self.graceful.peers.remove(&id) else {
            return;
        };
        for n in r.stale {
            if self.rib.withdraw(id, n) {
                self.dirty.insert(n.prefix);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_endings_keep_routes() {
        assert!(keeps_routes("connection closed by peer", false));
        assert!(keeps_routes("connection failed", false));
        assert!(keeps_routes("sent NOTIFICATION: Hold Timer Expired", false));
        assert!(!keeps_routes(
            "received NOTIFICATION: Cease / Administrative Shutdown",
            false
        ));
        assert!(keeps_routes(
            "received NOTIFICATION: Cease / Administrative Shutdown",
            true
        ));
        assert!(!keeps_routes(
            "received NOTIFICATION: Cease / Hard Reset",
            true
        ));
        assert!(!keeps_routes(
            "sent NOTIFICATION: UPDATE Message Error",
            false
        ));
        assert!(keeps_routes(
            "sent NOTIFICATION: UPDATE Message Error",
            true
        ));
    }
}
