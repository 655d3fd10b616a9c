//! [`Rib`]: the Adj-RIBs-In of every peer and the Loc-RIB, in one table.
//!
//! Accepted paths from all peers live in one per-family table keyed by prefix, with the best
//! path and ECMP set of each prefix kept in front (see `table.rs`): the Adj-RIB-In of a peer
//! is the subset of paths it sent, the Loc-RIB is the front of each entry. Paths that import
//! rejected are kept per peer, with their reason, outside the table: they are listed in
//! `routes --table adj-in` but never take part in the decision.
//!
//! The attributes stored are the ones after import policy (like BIRD without an import
//! table): showing pre-policy attributes would need a second copy of every path.
//!
//! Dropping a peer's routes scans the whole table (no per-peer index: it would cost more
//! memory than the scan costs time, about 10 ms per million prefixes).

use foldhash::{HashMap, HashMapExt};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::rib::attrs::{AttrInterner, RouteAttrs};
use crate::rib::decision::MultipathConfig;
use crate::rib::peer::{PeerCounts, PeerId, PeerInfo, LOCAL_PEER};
use crate::rib::table::{Edit, Path, PeerLookup, Table, V4Key, V6Key};
use crate::wire::{Nlri, Prefix};

mod sorted;

/// Errors from RIB updates (all are caller mistakes, never peer input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    #[error("peer {0} is not registered")]
    UnknownPeer(PeerId),
    #[error("peer id {0} is reserved for locally originated routes")]
    ReservedPeerId(PeerId),
    #[error("peer {0} still has routes; remove them before changing its identity")]
    PeerHasRoutes(PeerId),
}

#[derive(Debug)]
struct PeerState {
    info: PeerInfo,
    accepted: u64,
    rejected: HashMap<Nlri, Rejected>,
}

#[derive(Debug)]
struct Rejected {
    attrs: Arc<RouteAttrs>,
    reason: Arc<str>,
}

#[derive(Debug, Default)]
struct Peers(HashMap<PeerId, PeerState>);

impl PeerLookup for Peers {
    fn info(&self, id: PeerId) -> Option<&PeerInfo> {
        self.0.get(&id).map(|s| &s.info)
    }
}

/// The best path and ECMP set of one prefix.
#[derive(Debug, Clone, Copy)]
pub struct LocEntry<'a> {
    pub prefix: Prefix,
    paths: &'a [Path],
    ecmp: usize,
}

impl<'a> LocEntry<'a> {
    /// The best path.
    pub fn best(&self) -> Option<&'a Path> {
        self.paths.first()
    }

    /// The ECMP set, best path first.
    pub fn ecmp(&self) -> &'a [Path] {
        self.paths.get(..self.ecmp).unwrap_or(self.paths)
    }

    /// Every accepted path for the prefix: the ECMP set first, then the others.
    pub fn paths(&self) -> &'a [Path] {
        self.paths
    }

    /// Every path with its flags, for listings.
    pub fn routes(&self) -> impl Iterator<Item = LocRoute<'a>> + 'a {
        let (prefix, ecmp) = (self.prefix, self.ecmp);
        self.paths
            .iter()
            .enumerate()
            .map(move |(i, path)| LocRoute {
                prefix,
                path,
                best: i == 0,
                ecmp: i < ecmp,
            })
    }
}

/// One Loc-RIB path with its flags (`routes --table loc`).
#[derive(Debug, Clone, Copy)]
pub struct LocRoute<'a> {
    pub prefix: Prefix,
    pub path: &'a Path,
    pub best: bool,
    /// In the ECMP set (the best path is too).
    pub ecmp: bool,
}

/// One path of a peer's Adj-RIB-In (`routes --table adj-in`).
#[derive(Debug, Clone, Copy)]
pub struct AdjInRoute<'a> {
    pub nlri: Nlri,
    pub attrs: &'a Arc<RouteAttrs>,
    /// Why import rejected the path; `None` for accepted paths.
    pub rejected: Option<&'a str>,
}

/// Adj-RIB-In of every peer plus the Loc-RIB, with the attribute interner.
#[derive(Debug)]
pub struct Rib {
    v4: Table<V4Key>,
    v6: Table<V6Key>,
    peers: Peers,
    interner: AttrInterner,
    multipath: MultipathConfig,
    paths: usize,
    /// Report every change to a prefix's paths, not only to its best path and ECMP set
    /// (needed once some peer is sent several paths per prefix, RFC 7911).
    report_all: bool,
}

impl Rib {
    /// An empty RIB; registers [`LOCAL_PEER`] with this node's AS and router id.
    pub fn new(local_asn: u32, router_id: Ipv4Addr) -> Self {
        let mut peers = Peers::default();
        peers.0.insert(
            LOCAL_PEER,
            PeerState {
                info: PeerInfo {
                    id: LOCAL_PEER,
                    addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    asn: local_asn,
                    router_id,
                    ibgp: false,
                },
                accepted: 0,
                rejected: HashMap::new(),
            },
        );
        Self {
            v4: Table::new(),
            v6: Table::new(),
            peers,
            interner: AttrInterner::new(),
            multipath: MultipathConfig::default(),
            paths: 0,
            report_all: false,
        }
    }

    /// When on, [`Rib::insert`], [`Rib::withdraw`], [`Rib::insert_rejected`] and
    /// [`Rib::remove_peer`] report a prefix as changed whenever any of its accepted paths
    /// changed, not only its best path or ECMP set. The speaker turns it on once a peer
    /// negotiated add-path send (RFC 7911), whose Adj-RIB-Out holds paths beyond the ECMP set.
    pub fn set_report_all_paths(&mut self, on: bool) {
        self.report_all = on;
    }

    /// Whether every path change is reported (see [`Rib::set_report_all_paths`]).
    pub fn reports_all_paths(&self) -> bool {
        self.report_all
    }

    // ----- attributes -----

    /// The shared copy of an attribute set.
    pub fn intern(&mut self, attrs: RouteAttrs) -> Arc<RouteAttrs> {
        self.interner.intern(attrs)
    }

    /// The interner, e.g. for attribute sets built for Adj-RIB-Out.
    pub fn interner(&mut self) -> &mut AttrInterner {
        &mut self.interner
    }

    /// Purge attribute sets nobody references; returns how many were dropped.
    pub fn sweep_attrs(&mut self) -> usize {
        self.interner.sweep()
    }

    // ----- peers -----

    /// Register a peer (at session establishment). Re-registering with the same id updates
    /// its info, which is only allowed while it has no routes.
    pub fn register_peer(&mut self, info: PeerInfo) -> Result<(), RibError> {
        if info.id == LOCAL_PEER {
            return Err(RibError::ReservedPeerId(info.id));
        }
        match self.peers.0.get_mut(&info.id) {
            Some(s) if s.info == info => Ok(()),
            Some(s) if s.accepted > 0 || !s.rejected.is_empty() => {
                Err(RibError::PeerHasRoutes(info.id))
            }
            Some(s) => {
                s.info = info;
                Ok(())
            }
            None => {
                self.peers.0.insert(
                    info.id,
                    PeerState {
                        info,
                        accepted: 0,
                        rejected: HashMap::new(),
                    },
                );
                Ok(())
            }
        }
    }

    /// Drop a peer and all its routes; returns the prefixes whose best path or ECMP set
    /// changed. [`LOCAL_PEER`] loses its routes but stays registered.
    pub fn unregister_peer(&mut self, id: PeerId) -> Vec<Prefix> {
        let changed = self.remove_peer(id);
        if id != LOCAL_PEER {
            self.peers.0.remove(&id);
        }
        changed
    }

    /// The decision data of a registered peer.
    pub fn peer(&self, id: PeerId) -> Option<&PeerInfo> {
        self.peers.info(id)
    }

    /// Every registered peer, [`LOCAL_PEER`] included.
    pub fn peers(&self) -> impl Iterator<Item = &PeerInfo> + '_ {
        self.peers.0.values().map(|s| &s.info)
    }

    /// Received and accepted path counts of a peer.
    pub fn counts(&self, id: PeerId) -> Option<PeerCounts> {
        self.peers.0.get(&id).map(|s| PeerCounts {
            received: s.accepted + s.rejected.len() as u64,
            accepted: s.accepted,
        })
    }

    // ----- ECMP -----

    /// The multipath rules in force.
    pub fn multipath(&self) -> MultipathConfig {
        self.multipath
    }

    /// Change the multipath rules; returns the prefixes whose ECMP set changed.
    pub fn set_multipath(&mut self, cfg: MultipathConfig) -> Vec<Prefix> {
        self.multipath = cfg;
        let mut changed = Vec::new();
        self.v4.reselect_all(&self.peers, &cfg, |k| {
            changed.extend(k.prefix());
        });
        self.v6.reselect_all(&self.peers, &cfg, |k| {
            changed.extend(k.prefix());
        });
        changed
    }

    // ----- updates -----

    /// A path from `peer` that passed import. Replaces any earlier path (accepted or
    /// rejected) with the same peer and path id. Returns whether the prefix's best path or
    /// ECMP set changed.
    pub fn insert(
        &mut self,
        peer: PeerId,
        nlri: Nlri,
        attrs: Arc<RouteAttrs>,
    ) -> Result<bool, RibError> {
        let state = self
            .peers
            .0
            .get_mut(&peer)
            .ok_or(RibError::UnknownPeer(peer))?;
        // Most peers have nothing rejected: skip hashing the prefix.
        if let Some(r) = (!state.rejected.is_empty())
            .then(|| state.rejected.remove(&nlri))
            .flatten()
        {
            self.interner.release(r.attrs);
        }
        let new_attrs = Arc::as_ptr(&attrs);
        let path = Path {
            attrs,
            peer,
            path_id: nlri.path_id,
        };
        let edit = match nlri.prefix {
            Prefix::V4(n) => self
                .v4
                .insert(V4Key::new(n), path, &self.peers, &self.multipath),
            Prefix::V6(n) => self
                .v6
                .insert(V6Key::new(n), path, &self.peers, &self.multipath),
        };
        // A no-op insert hands back a path with the same attribute set.
        let touched = edit
            .old
            .as_ref()
            .is_none_or(|o| !std::ptr::eq(Arc::as_ptr(&o.attrs), new_attrs));
        Ok(self.account(peer, edit, true, touched))
    }

    /// A path from `peer` that import rejected (`reason`, e.g. "as-path loop"): kept for
    /// listing only. Replaces an accepted path with the same peer and path id, so the
    /// return value says whether the best path or ECMP set changed.
    pub fn insert_rejected(
        &mut self,
        peer: PeerId,
        nlri: Nlri,
        attrs: Arc<RouteAttrs>,
        reason: impl Into<Arc<str>>,
    ) -> Result<bool, RibError> {
        if !self.peers.0.contains_key(&peer) {
            return Err(RibError::UnknownPeer(peer));
        }
        let edit = self.remove_path(peer, nlri);
        let touched = edit.old.is_some();
        let changed = self.account(peer, edit, false, touched);
        if let Some(state) = self.peers.0.get_mut(&peer) {
            let reason = reason.into();
            if let Some(old) = state.rejected.insert(nlri, Rejected { attrs, reason }) {
                self.interner.release(old.attrs);
            }
        }
        Ok(changed)
    }

    /// Withdraw the path `peer` sent for `nlri` (accepted or rejected). Returns whether the
    /// prefix's best path or ECMP set changed. Unknown peers and paths are ignored.
    pub fn withdraw(&mut self, peer: PeerId, nlri: Nlri) -> bool {
        if let Some(r) = self
            .peers
            .0
            .get_mut(&peer)
            .and_then(|s| s.rejected.remove(&nlri))
        {
            self.interner.release(r.attrs);
        }
        let edit = self.remove_path(peer, nlri);
        let touched = edit.old.is_some();
        self.account(peer, edit, false, touched)
    }

    /// Remove every path of `peer` (session down), keeping it registered. Returns the
    /// prefixes whose best path or ECMP set changed; the next best paths are promoted.
    pub fn remove_peer(&mut self, peer: PeerId) -> Vec<Prefix> {
        let Some(state) = self.peers.0.get_mut(&peer) else {
            return Vec::new();
        };
        let had_rejected = !state.rejected.is_empty();
        state.rejected = HashMap::new();
        let accepted = std::mem::take(&mut state.accepted);
        let mut changed = Vec::new();
        if accepted > 0 {
            self.paths = self.paths.saturating_sub(accepted as usize);
            let all = self.report_all;
            self.v4
                .remove_peer(peer, &self.peers, &self.multipath, all, |k| {
                    changed.extend(k.prefix())
                });
            self.v6
                .remove_peer(peer, &self.peers, &self.multipath, all, |k| {
                    changed.extend(k.prefix())
                });
        }
        if accepted > 0 || had_rejected {
            self.interner.sweep();
        }
        changed
    }

    fn remove_path(&mut self, peer: PeerId, nlri: Nlri) -> Edit {
        match nlri.prefix {
            Prefix::V4(n) => self.v4.remove(
                V4Key::new(n),
                peer,
                nlri.path_id,
                &self.peers,
                &self.multipath,
            ),
            Prefix::V6(n) => self.v6.remove(
                V6Key::new(n),
                peer,
                nlri.path_id,
                &self.peers,
                &self.multipath,
            ),
        }
    }

    /// Keep the counters right after an edit and release the replaced attributes. `touched`:
    /// some path of the prefix really changed (reported when `report_all` is on).
    fn account(&mut self, peer: PeerId, edit: Edit, added: bool, touched: bool) -> bool {
        let delta: i64 = i64::from(added) - i64::from(edit.old.is_some());
        if let Some(state) = self.peers.0.get_mut(&peer) {
            state.accepted = state.accepted.saturating_add_signed(delta);
        }
        self.paths = self.paths.saturating_add_signed(delta as isize);
        if let Some(old) = edit.old {
            self.interner.release(old.attrs);
        }
        edit.changed || (self.report_all && touched)
    }

    // ----- queries -----

    /// The Loc-RIB entry of a prefix.
    pub fn get(&self, prefix: &Prefix) -> Option<LocEntry<'_>> {
        let (prefix, slot) = match prefix {
            Prefix::V4(n) => {
                let k = V4Key::new(*n);
                (k.prefix()?, self.v4.map.get(&k)?)
            }
            Prefix::V6(n) => {
                let k = V6Key::new(*n);
                (k.prefix()?, self.v6.map.get(&k)?)
            }
        };
        Some(LocEntry {
            prefix,
            paths: slot.as_slice(),
            ecmp: slot.ecmp_len(),
        })
    }

    /// The best path of a prefix.
    pub fn best(&self, prefix: &Prefix) -> Option<&Path> {
        self.get(prefix).and_then(|e| e.best())
    }

    /// The ECMP set of a prefix (empty when the prefix is unreachable).
    pub fn ecmp(&self, prefix: &Prefix) -> &[Path] {
        self.get(prefix).map_or(&[], |e| e.ecmp())
    }

    /// Every Loc-RIB entry, IPv4 then IPv6, in no particular order within a family.
    pub fn entries(&self) -> impl Iterator<Item = LocEntry<'_>> + '_ {
        let v4 = self.v4.map.iter().filter_map(|(k, s)| {
            Some(LocEntry {
                prefix: k.prefix()?,
                paths: s.as_slice(),
                ecmp: s.ecmp_len(),
            })
        });
        let v6 = self.v6.map.iter().filter_map(|(k, s)| {
            Some(LocEntry {
                prefix: k.prefix()?,
                paths: s.as_slice(),
                ecmp: s.ecmp_len(),
            })
        });
        v4.chain(v6)
    }

    /// Every path of every prefix with its best / ECMP flags (`routes --table loc`).
    pub fn loc_routes(&self) -> impl Iterator<Item = LocRoute<'_>> + '_ {
        self.entries().flat_map(|e| e.routes())
    }

    /// The Adj-RIB-In of `peer`: its accepted paths, then its rejected ones with their
    /// reasons. Scans the table.
    pub fn adj_in(&self, peer: PeerId) -> impl Iterator<Item = AdjInRoute<'_>> + '_ {
        let accepted = self.entries().flat_map(move |e| {
            e.paths
                .iter()
                .filter(move |p| p.peer == peer)
                .map(move |p| AdjInRoute {
                    nlri: Nlri {
                        prefix: e.prefix,
                        path_id: p.path_id,
                    },
                    attrs: &p.attrs,
                    rejected: None,
                })
        });
        let rejected = self
            .peers
            .0
            .get(&peer)
            .into_iter()
            .flat_map(|s| s.rejected.iter())
            .map(|(nlri, r)| AdjInRoute {
                nlri: *nlri,
                attrs: &r.attrs,
                rejected: Some(&*r.reason),
            });
        accepted.chain(rejected)
    }

    /// Number of prefixes with at least one accepted path.
    pub fn len(&self) -> usize {
        self.v4.map.len() + self.v6.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of accepted paths across all prefixes and peers.
    pub fn path_count(&self) -> usize {
        self.paths
    }
}
