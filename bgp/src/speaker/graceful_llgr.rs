//! Long-lived graceful restart, helper side (RFC 9494 §4.2–4.3): when a restarting peer's
//! restart time runs out and both sides sent the LLGR capability, its stale routes of the
//! families listed with a Long-lived Stale Time stay, marked with the LLGR_STALE community
//! and least preferred (LOCAL_PREF 0), for that time (at most our own `llgr_stale_time`);
//! routes carrying NO_LLGR, and routes of other families, go at once.

use std::sync::Arc;
use std::time::Duration;

use foldhash::HashMap;
use tokio::time::Instant;

use crate::rib::{PeerId, RouteAttrs};
use crate::wire::{Community, Family, Nlri};

use super::core::{family_name, Speaker};
use super::graceful::family_of;

/// What a route becomes in the long-lived stale phase (RFC 9494 §4.3): LLGR_STALE added,
/// and depreferenced with LOCAL_PREF 0 so that any other path wins.
pub(crate) fn long_lived_stale(attrs: &RouteAttrs) -> RouteAttrs {
    let mut out = attrs.clone();
    if !out.attrs.communities.contains(&Community::LLGR_STALE) {
        out.attrs.communities.push(Community::LLGR_STALE);
    }
    out.attrs.local_pref = Some(0);
    out
}

impl Speaker {
    /// The helper deadline of peer `id` passed while its session is down. Returns true when
    /// LLGR handled it (the phase began or goes on); false: the stale routes go as without
    /// LLGR.
    pub(crate) fn llgr_step(&mut self, id: PeerId, now: Instant) -> bool {
        let down = self.peers.iter().any(|p| p.id == id && p.session.is_none());
        let Some(r) = self.graceful.peers.get(&id) else {
            return false;
        };
        if !down {
            // Back but no End-of-RIB within the stale path time: not LLGR's business.
            return false;
        }
        if !r.llgr_until.is_empty() {
            self.llgr_expire(id, now);
            return true;
        }
        if r.llgr.is_some() {
            self.llgr_begin(id, now);
            return true;
        }
        false
    }

    /// The restart time ran out (RFC 9494 §4.2): long-lived stale phase.
    fn llgr_begin(&mut self, id: PeerId, now: Instant) {
        let max = self.graceful.llgr_stale_time;
        let Some(r) = self.graceful.peers.get_mut(&id) else {
            return;
        };
        let until: HashMap<Family, Instant> = r
            .llgr
            .iter()
            .flat_map(|c| c.families.iter())
            .filter(|f| f.stale_time > 0)
            .map(|f| {
                let secs = u64::from(f.stale_time.min(max));
                (f.family, now + Duration::from_secs(secs))
            })
            .collect();
        // Accepted stale paths with their attributes; rejected ones are not used anyway.
        let stale: Vec<(Nlri, Arc<RouteAttrs>)> = self
            .rib
            .adj_in(id)
            .filter(|a| a.rejected.is_none() && r.stale.contains(&a.nlri))
            .map(|a| (a.nlri, Arc::clone(a.attrs)))
            .collect();
        let mut kept = 0usize;
        let mut gone = Vec::new();
        for (nlri, attrs) in stale {
            let listed = until.contains_key(&family_of(&nlri.prefix));
            // RFC 9494 §4.2: NO_LLGR routes and families without a stale time go.
            if !listed || attrs.attrs.communities.contains(&Community::NO_LLGR) {
                gone.push(nlri);
                continue;
            }
            let marked = self.rib.intern(long_lived_stale(&attrs));
            match self.rib.insert(id, nlri, marked) {
                Ok(changed) => {
                    kept += 1;
                    if changed {
                        self.dirty.insert(nlri.prefix);
                    }
                }
                Err(_) => gone.push(nlri),
            }
        }
        let Some(r) = self.graceful.peers.get_mut(&id) else {
            return;
        };
        for n in &gone {
            r.stale.remove(n);
        }
        let longest = until.values().max().copied();
        r.deadline = until.values().min().copied().unwrap_or(now);
        r.llgr_until = until;
        if r.stale.is_empty() || r.llgr_until.is_empty() {
            tracing::info!(peer = id, "long-lived graceful restart: nothing to keep");
            self.end_restart(id);
        } else {
            let secs = longest.map_or(0, |t| t.saturating_duration_since(now).as_secs());
            tracing::info!(
                peer = id,
                kept,
                removed = gone.len(),
                "long-lived graceful restart: routes kept as long-lived stale"
            );
            if let Some(slot) = self.peers.iter_mut().find(|p| p.id == id) {
                slot.info = format!(
                    "long-lived graceful restart: {kept} routes kept as LLGR-stale for {secs} s"
                );
            }
        }
        for n in gone {
            if self.rib.withdraw(id, n) {
                self.dirty.insert(n.prefix);
            }
        }
    }

    /// Families whose Long-lived Stale Time has passed lose their routes.
    fn llgr_expire(&mut self, id: PeerId, now: Instant) {
        let Some(r) = self.graceful.peers.get_mut(&id) else {
            return;
        };
        let expired: Vec<Family> = r
            .llgr_until
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(f, _)| *f)
            .collect();
        for f in &expired {
            r.llgr_until.remove(f);
        }
        let gone: Vec<Nlri> = r
            .stale
            .iter()
            .filter(|n| expired.contains(&family_of(&n.prefix)))
            .copied()
            .collect();
        for n in &gone {
            r.stale.remove(n);
        }
        for f in &expired {
            tracing::info!(
                peer = id,
                family = family_name(*f),
                "long-lived graceful restart: long-lived stale time expired"
            );
        }
        if r.stale.is_empty() || r.llgr_until.is_empty() {
            self.end_restart(id);
            if let Some(slot) = self.peers.iter_mut().find(|p| p.id == id) {
                slot.info =
                    "long-lived graceful restart: stale time expired, routes removed".into();
            }
        } else if let Some(next) = r.llgr_until.values().min() {
            r.deadline = *next;
        }
        for n in gone {
            if self.rib.withdraw(id, n) {
                self.dirty.insert(n.prefix);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PathAttrs;

    #[test]
    fn long_lived_stale_adds_the_community_once_and_depreferences() {
        let attrs = RouteAttrs::new(
            PathAttrs {
                local_pref: Some(200),
                communities: vec![Community(0xfde8_0001)],
                ..Default::default()
            },
            "192.0.2.1".parse().unwrap(),
        );
        let once = long_lived_stale(&attrs);
        assert_eq!(once.attrs.local_pref, Some(0));
        assert_eq!(
            once.attrs.communities,
            vec![Community(0xfde8_0001), Community::LLGR_STALE]
        );
        assert_eq!(long_lived_stale(&once), once);
        assert_eq!(once.next_hop, attrs.next_hop);
    }
}
