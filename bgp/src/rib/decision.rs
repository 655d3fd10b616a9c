//! The decision process (RFC 4271 §9.1.2.2 with the RFC 4456 §9 tie-breaks) and ECMP sets.
//!
//! [`compare_at`] is the single comparison, one step at a time; [`compare`] runs the steps in
//! order; [`select`] applies them to a whole candidate set the way RFC 4271 §9.1.2.2 describes
//! it, as successive eliminations. That matters for MED: because MED is compared only between
//! paths from the same neighbour AS, the pairwise order is not transitive, and a pairwise
//! "keep the better one" scan would depend on the order paths arrived in. The elimination does
//! not.
//!
//! Locally originated paths ([`LOCAL_PEER`]) beat every learned path, whatever their
//! attributes: an operator-announced or IPAM route is never displaced by a peer's copy of it.
//! Among several local paths the ordinary steps apply.

use std::cmp::Ordering;

use crate::rib::attrs::RouteAttrs;
use crate::rib::peer::{PeerInfo, LOCAL_PEER};
use crate::wire::{AsPath, Origin, PathAttrs, SegmentType};

/// LOCAL_PREF assumed when the attribute is absent (the usual default).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// One path as the decision process sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub peer: &'a PeerInfo,
    pub attrs: &'a RouteAttrs,
    /// RFC 7911 path identifier (0 without add-path).
    pub path_id: u32,
}

/// The steps of the decision process, in the order they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Locally originated paths first.
    Local,
    /// Highest LOCAL_PREF.
    LocalPref,
    /// Shortest AS_PATH.
    AsPathLen,
    /// Lowest ORIGIN.
    Origin,
    /// Lowest MED, between paths from the same neighbour AS only.
    Med,
    /// eBGP over iBGP.
    PeerType,
    /// Lowest ORIGINATOR_ID, or BGP Identifier of the peer.
    RouterId,
    /// Shortest CLUSTER_LIST.
    ClusterListLen,
    /// Lowest peer address.
    PeerAddr,
    /// Lowest path identifier, then peer id: makes the order total.
    PathId,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 10] = [
        Step::Local,
        Step::LocalPref,
        Step::AsPathLen,
        Step::Origin,
        Step::Med,
        Step::PeerType,
        Step::RouterId,
        Step::ClusterListLen,
        Step::PeerAddr,
        Step::PathId,
    ];

    /// The last step paths of one ECMP set must tie on.
    pub const LAST_ECMP: Step = Step::PeerType;
}

/// AS_PATH length for the decision: AS_SET counts 1 (RFC 4271 §9.1.2.2 a), confederation
/// segments count 0 (RFC 5065 §5.3).
pub fn as_path_len(attrs: &PathAttrs) -> usize {
    attrs.as_path.as_ref().map_or(0, AsPath::length)
}

/// The neighbour AS for MED comparison (RFC 4271 §9.1.2.2 c): the first AS of the AS_PATH
/// after any confederation segments. `None` stands for the local AS: an empty path, or one
/// that starts with an AS_SET (an aggregate).
pub fn neighbor_as(attrs: &PathAttrs) -> Option<u32> {
    let path = attrs.as_path.as_ref()?;
    let seg = path
        .segments
        .iter()
        .find(|s| !matches!(s.kind, SegmentType::ConfedSequence | SegmentType::ConfedSet))?;
    match seg.kind {
        SegmentType::Sequence => seg.asns.first().copied(),
        _ => None,
    }
}

/// Compare two paths at one step. `Less` means `a` is preferred, `Equal` that this step does
/// not tell them apart (for MED also: the paths are not comparable).
pub fn compare_at(step: Step, a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    let (x, y) = (&a.attrs.attrs, &b.attrs.attrs);
    match step {
        // Local origination wins outright (Bramble policy, see module docs).
        Step::Local => (b.peer.id == LOCAL_PEER).cmp(&(a.peer.id == LOCAL_PEER)),
        // RFC 4271 §9.1.2.1: the degree of preference is LOCAL_PREF; higher wins. Absent
        // (e.g. not yet assigned by import) counts as the default 100.
        Step::LocalPref => {
            let lp = |p: &PathAttrs| p.local_pref.unwrap_or(DEFAULT_LOCAL_PREF);
            lp(y).cmp(&lp(x))
        }
        // RFC 4271 §9.1.2.2 a: fewest AS numbers in AS_PATH.
        Step::AsPathLen => as_path_len(x).cmp(&as_path_len(y)),
        // RFC 4271 §9.1.2.2 b: lowest ORIGIN (IGP < EGP < INCOMPLETE); a missing ORIGIN (a
        // malformed UPDATE that got this far) ranks last.
        Step::Origin => {
            let o = |p: &PathAttrs| p.origin.unwrap_or(Origin::Incomplete);
            o(x).cmp(&o(y))
        }
        // RFC 4271 §9.1.2.2 c: lowest MED, only between paths from the same neighbour AS; a
        // missing MED is the lowest value, 0.
        Step::Med => {
            if neighbor_as(x) == neighbor_as(y) {
                x.med.unwrap_or(0).cmp(&y.med.unwrap_or(0))
            } else {
                Ordering::Equal
            }
        }
        // RFC 4271 §9.1.2.2 d: paths from eBGP peers over paths from iBGP peers.
        // (§9.1.2.2 e, interior cost to the next hop, is skipped: Bramble has no IGP.)
        Step::PeerType => a.peer.ibgp.cmp(&b.peer.ibgp),
        // RFC 4271 §9.1.2.2 f with RFC 4456 §9: lowest BGP Identifier, where ORIGINATOR_ID
        // stands in for the peer's identifier when present.
        Step::RouterId => {
            let id = |c: &Candidate<'_>| {
                u32::from(c.attrs.attrs.originator_id.unwrap_or(c.peer.router_id))
            };
            id(a).cmp(&id(b))
        }
        // RFC 4456 §9: shortest CLUSTER_LIST.
        Step::ClusterListLen => x.cluster_list.len().cmp(&y.cluster_list.len()),
        // RFC 4271 §9.1.2.2 g: lowest peer address.
        Step::PeerAddr => a.peer.addr.cmp(&b.peer.addr),
        // Not in the RFC: add-path paths of one peer (or several local paths) still need an
        // order; the lowest path identifier wins, then the lowest peer id.
        Step::PathId => (a.path_id, a.peer.id).cmp(&(b.path_id, b.peer.id)),
    }
}

/// Run the steps in order: the first step that tells `a` and `b` apart, and which one it
/// prefers (`Less` = `a`). `None` when they tie on every step (the same path).
///
/// Pairwise and therefore not transitive across neighbour ASes (see module docs); use
/// [`select`] to choose among more than two paths.
pub fn compare(a: &Candidate<'_>, b: &Candidate<'_>) -> Option<(Step, Ordering)> {
    Step::ALL.iter().find_map(|&s| match compare_at(s, a, b) {
        Ordering::Equal => None,
        o => Some((s, o)),
    })
}

/// How ECMP sets are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipathConfig {
    /// Most paths in an ECMP set (1 = no multipath).
    pub max_paths: usize,
    /// Allow paths from different neighbour ASes in one set (what vendors call "as-path
    /// multipath-relax"). Off by default: members must share the best path's neighbour AS.
    pub relax_neighbor_as: bool,
}

impl Default for MultipathConfig {
    fn default() -> Self {
        Self {
            max_paths: 16,
            relax_neighbor_as: false,
        }
    }
}

/// The outcome of [`select`]: indices into the candidate slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The ECMP set, best path first, then the others in decision order. Never empty when
    /// there was a candidate.
    pub ecmp: Vec<usize>,
}

impl Selection {
    /// The best path, if there was any candidate.
    pub fn best(&self) -> Option<usize> {
        self.ecmp.first().copied()
    }
}

/// Choose the best path and its ECMP set.
///
/// RFC 4271 §9.1.2.2: each step removes the paths that are worse than some remaining path at
/// that step. The paths that survive up to and including eBGP/iBGP form the ECMP pool: equal
/// on LOCAL_PREF, AS_PATH length, ORIGIN, MED (within a neighbour AS) and peer type, and so
/// differing only in router id, cluster list or peer address. The remaining steps order the
/// pool; its first path is the best. The ECMP set is the best plus the pool members with the
/// same neighbour AS (unless relaxed), capped at `max_paths`.
pub fn select(cands: &[Candidate<'_>], cfg: &MultipathConfig) -> Selection {
    if cands.len() <= 1 {
        return Selection {
            ecmp: (0..cands.len()).collect(),
        };
    }
    let mut alive: Vec<usize> = (0..cands.len()).collect();
    for step in Step::ALL.into_iter().take_while(|&s| s <= Step::LAST_ECMP) {
        eliminate(step, cands, &mut alive);
    }
    // The remaining steps are plain keys, so this sort is a total order.
    alive.sort_by(|&i, &j| {
        Step::ALL
            .into_iter()
            .filter(|&s| s > Step::LAST_ECMP)
            .map(|s| compare_at(s, &cands[i], &cands[j]))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    if let Some(&best) = alive.first() {
        let nas = neighbor_as(&cands[best].attrs.attrs);
        alive.retain(|&i| cfg.relax_neighbor_as || neighbor_as(&cands[i].attrs.attrs) == nas);
    }
    alive.truncate(cfg.max_paths.max(1));
    Selection { ecmp: alive }
}

/// Keep only the paths no other remaining path beats at `step`.
fn eliminate(step: Step, cands: &[Candidate<'_>], alive: &mut Vec<usize>) {
    if alive.len() <= 1 {
        return;
    }
    if step == Step::Med {
        // Not transitive across neighbour ASes: compare every pair (sets are small).
        let snapshot = alive.clone();
        alive.retain(|&i| {
            !snapshot
                .iter()
                .any(|&j| compare_at(step, &cands[j], &cands[i]) == Ordering::Less)
        });
        return;
    }
    // Every other step is a total preorder: find the best value, keep its ties.
    let mut best = alive[0];
    for &i in alive.iter().skip(1) {
        if compare_at(step, &cands[i], &cands[best]) == Ordering::Less {
            best = i;
        }
    }
    alive.retain(|&i| compare_at(step, &cands[i], &cands[best]) != Ordering::Greater);
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
