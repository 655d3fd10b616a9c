//! What `bramble status` and `bramble routes` show.

use std::net::IpAddr;

use crate::rib::{RouteAttrs, LOCAL_PEER};
use crate::wire::{Nlri, Origin, Prefix, SegmentType};

use super::api::{PeerStatus, RouteEntry, TableKind};
use super::core::Speaker;

impl Speaker {
    pub(crate) fn status(&self) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .map(|p| {
                let counts = self.rib.counts(p.id).unwrap_or_default();
                PeerStatus {
                    peer: p.address(),
                    asn: p.settings.asn,
                    kind: p.kind().to_string(),
                    state: p.state.to_string(),
                    since: p.since,
                    received: counts.received,
                    accepted: counts.accepted,
                    advertised: p
                        .session
                        .as_ref()
                        .map_or(0, |s| s.out.adj_out().advertised_len() as u64),
                    info: p.info.clone(),
                }
            })
            .collect()
    }

    pub(crate) fn routes(
        &self,
        table: TableKind,
        peer: Option<IpAddr>,
    ) -> Result<Vec<RouteEntry>, String> {
        let slot = match peer {
            Some(addr) => Some(
                self.peers
                    .iter()
                    .find(|p| p.address() == addr)
                    .ok_or_else(|| format!("no such peer {addr}"))?,
            ),
            None => None,
        };
        let peer_addr = |id| {
            (id != LOCAL_PEER)
                .then(|| self.rib.peer(id).map(|i| i.addr))
                .flatten()
        };
        match table {
            TableKind::Loc => Ok(sorted(
                self.rib
                    .loc_routes()
                    .filter(|r| slot.is_none_or(|s| r.path.peer == s.id))
                    .map(|r| {
                        let mut e = entry(r.prefix, &r.path.attrs, peer_addr(r.path.peer));
                        e.best = r.best;
                        // A one-path "set" is not multipath.
                        e.ecmp = r.ecmp && self.rib.ecmp(&r.prefix).len() > 1;
                        let nlri = Nlri {
                            prefix: r.prefix,
                            path_id: r.path.path_id,
                        };
                        if self.graceful.is_stale(r.path.peer, &nlri) {
                            // RFC 4724 §4.2: kept from a restarting peer's last session.
                            e.note = Some("stale".into());
                        }
                        e
                    })
                    .collect::<Vec<_>>(),
            )),
            TableKind::AdjIn => {
                let mut out = Vec::new();
                for (idx, p) in self
                    .peers
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| slot.is_none_or(|s| s.id == p.id))
                {
                    for r in self.rib.adj_in(p.id) {
                        // Adj-RIB-In shows what the peer sent (pre-policy); the note says which
                        // policy rule rejected or accepted it.
                        let sent = self.pre_policy(idx, &r.nlri).map_or(r.attrs, |a| a);
                        let mut e = entry(r.nlri.prefix, sent, Some(p.address()));
                        let policy = || self.accepted_note(idx, &r.nlri, r.attrs);
                        e.note = r.rejected.map(str::to_string).or_else(policy).or_else(|| {
                            self.graceful
                                .is_stale(p.id, &r.nlri)
                                .then(|| "stale".to_string())
                        });
                        out.push(e);
                    }
                }
                Ok(sorted(out))
            }
            TableKind::AdjOut => {
                let mut out = Vec::new();
                for p in self
                    .peers
                    .iter()
                    .filter(|p| slot.is_none_or(|s| s.id == p.id))
                {
                    if let Some(s) = &p.session {
                        out.extend(
                            s.out
                                .adj_out()
                                .iter()
                                .map(|(n, a)| entry(n.prefix, a, Some(p.address()))),
                        );
                    }
                }
                Ok(sorted(out))
            }
            TableKind::Fib => Err("the FIB table is served by the agent".into()),
        }
    }
}

/// Listings in address order: IPv4 first, then by address and length.
fn sorted(mut routes: Vec<RouteEntry>) -> Vec<RouteEntry> {
    routes.sort_by_key(|r| (r.prefix.is_ipv6(), r.prefix.network(), r.prefix.prefix()));
    routes
}

fn entry(prefix: Prefix, a: &RouteAttrs, peer: Option<IpAddr>) -> RouteEntry {
    let attrs = &a.attrs;
    RouteEntry {
        prefix,
        peer,
        next_hop: (!a.next_hop.is_unspecified()).then_some(a.next_hop),
        as_path: attrs
            .as_path
            .iter()
            .flat_map(|p| p.segments.iter())
            .filter(|s| matches!(s.kind, SegmentType::Sequence | SegmentType::Set))
            .flat_map(|s| s.asns.iter().copied())
            .collect(),
        origin: match attrs.origin {
            Some(Origin::Igp) => "igp",
            Some(Origin::Egp) => "egp",
            Some(Origin::Incomplete) | None => "incomplete",
        }
        .to_string(),
        med: attrs.med,
        local_pref: attrs.local_pref,
        communities: attrs
            .communities
            .iter()
            .map(|c| format!("{}:{}", c.0 >> 16, c.0 & 0xffff))
            .collect(),
        large_communities: attrs
            .large_communities
            .iter()
            .map(|c| format!("{}:{}:{}", c.global, c.local1, c.local2))
            .collect(),
        best: false,
        ecmp: false,
        originator_id: attrs.originator_id,
        cluster_list: attrs.cluster_list.clone(),
        note: None,
    }
}
