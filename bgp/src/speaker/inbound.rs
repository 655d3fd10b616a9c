//! UPDATEs from peers into the RIB (RFC 4271 §9.1, RFC 7606 treat-as-withdraw).

use std::net::IpAddr;

use crate::rib::{PeerId, RouteAttrs};
use crate::wire::{Family, Nlri, Update};

use super::core::Speaker;
use super::policy_rules::{import_attrs, ImportReject};

impl Speaker {
    pub(crate) fn on_update(&mut self, idx: usize, update: Update) {
        let Some(slot) = self.peers.get(idx) else {
            return;
        };
        if slot.session.is_none() {
            return;
        }
        let id = slot.id;
        let ebgp = slot.ebgp;
        if let Some(family) = update.end_of_rib() {
            tracing::debug!(peer = %slot.address(), ?family, "End-of-RIB received");
            return;
        }
        if !update.discarded.is_empty() {
            tracing::warn!(peer = %slot.address(), discarded = ?update.discarded,
                "RFC 7606: malformed attributes discarded");
        }
        let Update {
            withdrawn,
            attrs,
            mp_reach,
            mp_unreach,
            nlri,
            treat_as_withdraw,
            ..
        } = update;
        for n in withdrawn
            .iter()
            .chain(mp_unreach.iter().flat_map(|u| u.withdrawn.iter()))
        {
            self.withdraw(id, *n);
        }
        if treat_as_withdraw {
            // RFC 7606 §2: every NLRI of the UPDATE is handled as withdrawn.
            tracing::warn!(peer = %self.peers[idx].address(),
                "RFC 7606: malformed UPDATE treated as withdraw");
            for n in nlri
                .iter()
                .chain(mp_reach.iter().flat_map(|r| r.nlri.iter()))
            {
                self.withdraw(id, *n);
            }
            return;
        }
        let (attrs, verdict) = import_attrs(
            attrs,
            self.cfg.asn,
            ebgp,
            self.cfg.router_id,
            self.cfg.cluster_id,
        );
        if !nlri.is_empty() {
            match attrs.next_hop {
                Some(nh) => {
                    let ra = RouteAttrs::new(attrs.clone(), IpAddr::V4(nh));
                    self.import(idx, id, ra, &nlri, verdict);
                }
                None => {
                    // The decoder flags a missing NEXT_HOP as treat-as-withdraw; be safe.
                    for n in &nlri {
                        self.withdraw(id, *n);
                    }
                }
            }
        }
        if let Some(reach) = mp_reach {
            if reach.family == Family::IPV4_UNICAST || reach.family == Family::IPV6_UNICAST {
                let mut a = attrs;
                // The MP next hop replaces NEXT_HOP for these NLRI (RFC 4760 §3).
                a.next_hop = None;
                let ra = RouteAttrs {
                    attrs: a,
                    next_hop: reach.next_hop.global,
                    link_local: reach.next_hop.link_local,
                };
                self.import(idx, id, ra, &reach.nlri, verdict);
            }
        }
    }

    fn import(
        &mut self,
        idx: usize,
        id: PeerId,
        ra: RouteAttrs,
        nlri: &[Nlri],
        verdict: Option<ImportReject>,
    ) {
        let attrs = self.rib.intern(ra);
        for n in nlri {
            let reject = verdict.or_else(|| {
                let slot = &self.peers[idx];
                (!slot.settings.import.permits(&n.prefix, slot.ebgp))
                    .then_some(ImportReject::Filtered)
            });
            let res = match reject {
                None => self.rib.insert(id, *n, attrs.clone()),
                Some(r) => self.rib.insert_rejected(id, *n, attrs.clone(), r.as_str()),
            };
            match res {
                Ok(true) => {
                    self.dirty.insert(n.prefix);
                }
                Ok(false) => {}
                Err(e) => tracing::error!(prefix = %n.prefix, "rib: {e}"),
            }
        }
    }

    fn withdraw(&mut self, id: PeerId, n: Nlri) {
        if self.rib.withdraw(id, n) {
            self.dirty.insert(n.prefix);
        }
    }

    /// RFC 2918 §4: re-send the whole Adj-RIB-Out of the family (done by the next flush).
    pub(crate) fn on_route_refresh(&mut self, idx: usize, family: Family) {
        if let Some(session) = self.peers.get_mut(idx).and_then(|s| s.session.as_mut()) {
            if !session.refresh.contains(&family) {
                session.refresh.push(family);
            }
        }
    }
}
