//! Loc-RIB changes out to every peer's Adj-RIB-Out, the wire, and the FIB.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::reflector::Reflection;
use crate::rib::{Path, PathKey, PeerId, RouteAttrs, LOCAL_PEER};
use crate::wire::{Community, Family, LlgrCap, Nlri, Prefix};

use super::core::Speaker;
use super::peer::{PeerSlot, EXPORT_CACHE_MAX};
use super::policy_rules::{apply_export_policy, export_attrs, policy_changes, Source};

/// Dirty prefixes looked up in one walk of the Loc-RIB before they are exported.
const LOOKUP_CHUNK: usize = 1024;

/// A changed prefix and what the Loc-RIB now holds for it.
struct Looked {
    prefix: Prefix,
    best: Option<Path>,
    /// Every path, when some peer takes several (RFC 7911).
    all: Vec<Path>,
    /// The FIB's next hops (empty: remove the route), when there is a FIB.
    hops: Vec<IpAddr>,
}

impl Speaker {
    /// Changes handed to the export tasks and not yet taken in by them.
    pub(crate) fn export_backlog(&self) -> usize {
        self.peers
            .iter()
            .filter_map(|p| p.session.as_ref())
            .map(|s| s.out.queued())
            .sum()
    }

    /// Everything a new session should receive, then End-of-RIB (RFC 4724 §2).
    pub(crate) fn initial_dump(&mut self, idx: usize, families: &[Family]) {
        let add_path = self.peers[idx]
            .session
            .as_ref()
            .is_some_and(|s| !s.negotiated.encode.add_path_tx.is_empty());
        if add_path {
            // From now on every path change matters, not only best / ECMP changes.
            self.rib.set_report_all_paths(true);
            let all: Vec<(Prefix, Vec<Path>)> = self
                .rib
                .entries()
                .map(|e| (e.prefix, e.paths().to_vec()))
                .collect();
            for (prefix, paths) in all {
                self.export_one(idx, prefix, &paths);
            }
        } else {
            let best: Vec<(Prefix, Path)> = self
                .rib
                .entries()
                .filter_map(|e| e.best().map(|p| (e.prefix, p.clone())))
                .collect();
            for (prefix, path) in best {
                self.export_one(idx, prefix, std::slice::from_ref(&path));
            }
        }
        if let Some(s) = self.peers[idx].session.as_mut() {
            for f in families {
                s.out.initial_queued(*f);
            }
        }
    }

    /// Pushes every changed prefix to the peers and the FIB.
    pub(crate) fn propagate(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        // In address order: neighbouring prefixes share B-tree nodes (Loc-RIB, Adj-RIB-Out).
        let dirty = self.dirty.take_sorted();
        // Peers that can take a route at all: a peer whose export filter denies everything
        // and that holds nothing from us would only see no-ops.
        let targets: Vec<usize> = (0..self.peers.len())
            .filter(|&i| self.peers.get(i).is_some_and(wants_exports))
            .collect();
        // Some peer takes several paths per prefix (RFC 7911): hand every path over.
        let want_all = self.rib.reports_all_paths();
        let with_fib = self.fib.is_some();
        let mut looked: Vec<Looked> = Vec::with_capacity(LOOKUP_CHUNK);
        let mut memo: Option<(PeerId, Option<PathSource>)> = None;
        for chunk in dirty.chunks(LOOKUP_CHUNK) {
            // One Loc-RIB walk serves the peers and the FIB.
            looked.clear();
            self.rib.lookup_sorted(chunk, |prefix, entry| {
                let mut l = Looked {
                    prefix,
                    best: None,
                    all: Vec::new(),
                    hops: Vec::new(),
                };
                if let Some(e) = entry {
                    l.best = e.best().cloned();
                    if want_all {
                        l.all.extend_from_slice(e.paths());
                    }
                    if with_fib {
                        l.hops = fib_next_hops(e.ecmp());
                    }
                }
                looked.push(l);
            });
            for l in looked.drain(..) {
                let paths = if want_all {
                    &l.all[..]
                } else {
                    l.best.as_slice()
                };
                // Where the best path came from is the same for every peer (and, in runs
                // of prefixes from one peer, for the next prefix).
                let origin = match (paths.first(), memo) {
                    (Some(p), Some((peer, src))) if p.peer == peer => src,
                    (Some(p), _) => {
                        let src = self.source_of(p);
                        memo = Some((p.peer, src));
                        src
                    }
                    (None, _) => None,
                };
                for &idx in &targets {
                    self.export_one_from(idx, l.prefix, paths, origin);
                }
                if let Some(fib) = self.fib.as_mut() {
                    if l.hops.is_empty() {
                        fib.remove(l.prefix);
                    } else {
                        fib.set(l.prefix, l.hops);
                    }
                }
            }
        }
    }

    /// Decides what peer `idx` should hold for `prefix` given its Loc-RIB paths (best
    /// first, then the rest of the ECMP set, then the others; only the best is needed
    /// unless the peer negotiated add-path send for the family).
    pub(crate) fn export_one(&mut self, idx: usize, prefix: Prefix, paths: &[Path]) {
        let origin = paths.first().and_then(|p| self.source_of(p));
        self.export_one_from(idx, prefix, paths, origin);
    }

    /// [`Speaker::export_one`] with the source of the best path already known.
    fn export_one_from(
        &mut self,
        idx: usize,
        prefix: Prefix,
        paths: &[Path],
        origin: Option<PathSource>,
    ) {
        let add_path = self
            .peers
            .get(idx)
            .and_then(|s| s.session.as_ref())
            .is_some_and(|s| s.negotiated.encode.add_path(Family::of(&prefix)));
        if add_path {
            self.export_paths(idx, prefix, paths);
            return;
        }
        let best = paths.first();
        let cluster_id = self.cfg.cluster_id;
        let Some(slot) = self.peers.get_mut(idx) else {
            return;
        };
        let out = match (best, origin) {
            (Some(path), Some(origin)) => {
                export_for(slot, prefix, path, origin, cluster_id, &mut self.rib)
            }
            _ => None,
        };
        let Some(session) = slot.session.as_mut() else {
            return;
        };
        let nlri = Nlri { prefix, path_id: 0 };
        match out {
            Some(attrs) => session.out.set(nlri, attrs),
            None => session.out.remove(nlri),
        }
    }

    /// Add-path send (RFC 7911): the peer gets up to `add_path_max` of the paths, in Loc-RIB
    /// order (best, ECMP set, others), each passed through the export and reflection rules
    /// on its own, with a stable local path identifier (see [`crate::rib::AdjRibOut::set_paths`]).
    /// Paths that export to the same attribute set (e.g. next hop rewritten to ourselves
    /// for eBGP) are sent once.
    fn export_paths(&mut self, idx: usize, prefix: Prefix, paths: &[Path]) {
        let sources: Vec<Option<PathSource>> = paths.iter().map(|p| self.source_of(p)).collect();
        let cluster_id = self.cfg.cluster_id;
        let Some(slot) = self.peers.get_mut(idx) else {
            return;
        };
        let max = slot
            .settings
            .add_path
            .map_or(1, |a| usize::from(a.max_paths.max(1)));
        let mut out: Vec<(PathKey, Arc<RouteAttrs>)> = Vec::new();
        for (path, origin) in paths.iter().zip(sources) {
            if out.len() >= max {
                break;
            }
            let Some(origin) = origin else { continue };
            let Some(attrs) = export_for(slot, prefix, path, origin, cluster_id, &mut self.rib)
            else {
                continue;
            };
            if !out.iter().any(|(_, a)| Arc::ptr_eq(a, &attrs)) {
                out.push(((path.peer, path.path_id), attrs));
            }
        }
        if let Some(session) = slot.session.as_mut() {
            session.out.set_paths(prefix, out);
        }
    }

    /// Where `path` came from, as the export rules need it.
    fn source_of(&self, path: &Path) -> Option<PathSource> {
        if path.peer == LOCAL_PEER {
            return Some(PathSource {
                source: Source::Local,
                peer: LOCAL_PEER,
                router_id: Ipv4Addr::UNSPECIFIED,
                client: false,
            });
        }
        let info = self.rib.peer(path.peer)?;
        let client = self
            .index
            .get(&path.peer)
            .and_then(|&i| self.peers.get(i))
            .is_some_and(|s| !s.ebgp && s.settings.rr_client);
        Some(PathSource {
            source: if info.ibgp {
                Source::Ibgp
            } else {
                Source::Ebgp
            },
            peer: path.peer,
            router_id: info.router_id,
            client,
        })
    }

    /// Hands every session's collected changes to its export task (see
    /// [`super::exporter`]), which encodes and writes them.
    pub(crate) fn flush(&mut self) {
        for slot in &mut self.peers {
            if let Some(session) = slot.session.as_mut() {
                session.out.send();
            }
        }
    }
}

/// Whether `slot` has a session that could take or lose a route: not when its export filter
/// denies everything and it holds (and is about to get) nothing from us.
fn wants_exports(slot: &PeerSlot) -> bool {
    let Some(session) = slot.session.as_ref() else {
        return false;
    };
    !slot.settings.export.denies_all(slot.ebgp) || session.out.used()
}

/// The kernel next hops of an ECMP set: learned paths only (our own routes are not
/// installed), distinct.
fn fib_next_hops(ecmp: &[Path]) -> Vec<IpAddr> {
    let mut hops: Vec<IpAddr> = ecmp
        .iter()
        .filter(|p| p.peer != LOCAL_PEER && !p.attrs.next_hop.is_unspecified())
        .map(|p| p.attrs.next_hop)
        .collect();
    hops.sort();
    hops.dedup();
    hops
}

/// The source of a best path: its kind and, for learned paths, the peer (RFC 4456 needs
/// its router id and whether it is a client).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathSource {
    source: Source,
    peer: PeerId,
    router_id: Ipv4Addr,
    client: bool,
}

/// The attributes `slot`'s peer gets for `path`, or None.
fn export_for(
    slot: &mut PeerSlot,
    prefix: Prefix,
    path: &Path,
    origin: PathSource,
    cluster_id: Option<Ipv4Addr>,
    rib: &mut crate::rib::Rib,
) -> Option<Arc<RouteAttrs>> {
    // Never send a route back to the peer it came from (RFC 4456 §6: nor to the
    // originating client).
    if path.peer == slot.id {
        return None;
    }
    let session = slot.session.as_mut()?;
    if !session.negotiated.families.contains(&Family::of(&prefix)) {
        return None;
    }
    // RFC 9494 §4.5: long-lived stale routes go only to peers that sent the LLGR capability.
    if path
        .attrs
        .attrs
        .communities
        .contains(&Community::LLGR_STALE)
        && LlgrCap::find(&session.negotiated.peer_open.capabilities).is_none()
    {
        return None;
    }
    let decision = match slot
        .settings
        .export
        .evaluate(&prefix, &path.attrs.attrs, slot.ebgp)
    {
        crate::policy::Verdict::Reject(_) => return None,
        crate::policy::Verdict::Accept(d) => d,
    };
    // Route reflection applies from an iBGP peer to an iBGP peer when we have a cluster id.
    let rr = match cluster_id {
        Some(cluster_id) if origin.source == Source::Ibgp && !slot.ebgp => Some(Reflection {
            cluster_id,
            from_client: origin.client,
            from_router_id: origin.router_id,
            to_client: slot.settings.rr_client,
        }),
        _ => None,
    };
    let from = match rr {
        Some(_) => (u64::from(origin.peer) << 32) | u64::from(u32::from(origin.router_id)),
        None => 0,
    };
    // An export policy rule that changes attributes: not cached (the result depends on the
    // rule, not only on the attribute set).
    if let Some(d) = decision.filter(|d| policy_changes(&slot.settings.export, *d)) {
        let mut out = export_attrs(&path.attrs, origin.source, &session.target, rr.as_ref())?;
        apply_export_policy(&slot.settings.export, d, &mut out, &session.target);
        return Some(rib.intern(out));
    }
    let key = (Arc::as_ptr(&path.attrs) as usize, origin.source as u8, from);
    if let Some((_, out)) = session.cache.get(&key) {
        return out.clone();
    }
    let out = export_attrs(&path.attrs, origin.source, &session.target, rr.as_ref())
        .map(|a| rib.intern(a));
    if session.cache.len() >= EXPORT_CACHE_MAX {
        session.cache.clear();
    }
    session.cache.insert(key, (path.attrs.clone(), out.clone()));
    out
}
