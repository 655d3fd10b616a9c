//! Unit tests of the decision process, one per step plus set selection.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::wire::{AsPath, AsSegment, Origin, PathAttrs, SegmentType};

fn peer(id: u32, last: u8, ibgp: bool) -> PeerInfo {
    PeerInfo {
        id,
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
        asn: if ibgp { 64512 } else { 65000 + u32::from(last) },
        router_id: Ipv4Addr::new(10, 0, 0, last),
        ibgp,
    }
}

fn seq(asns: &[u32]) -> AsSegment {
    AsSegment {
        kind: SegmentType::Sequence,
        asns: asns.to_vec(),
    }
}

fn path(segs: Vec<AsSegment>) -> Option<AsPath> {
    Some(AsPath { segments: segs })
}

fn base() -> PathAttrs {
    PathAttrs {
        origin: Some(Origin::Igp),
        as_path: path(vec![seq(&[65001])]),
        ..Default::default()
    }
}

fn ra(attrs: PathAttrs) -> RouteAttrs {
    RouteAttrs::new(attrs, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)))
}

fn cand<'a>(p: &'a PeerInfo, a: &'a RouteAttrs) -> Candidate<'a> {
    Candidate {
        peer: p,
        attrs: a,
        path_id: 0,
    }
}

/// Asserts that `a` beats `b` at exactly `step`, and symmetrically.
fn beats(step: Step, pa: &PeerInfo, a: PathAttrs, pb: &PeerInfo, b: PathAttrs) {
    let (a, b) = (ra(a), ra(b));
    assert_eq!(
        compare(&cand(pa, &a), &cand(pb, &b)),
        Some((step, Ordering::Less))
    );
    assert_eq!(
        compare(&cand(pb, &b), &cand(pa, &a)),
        Some((step, Ordering::Greater))
    );
    let cfg = MultipathConfig {
        max_paths: 1,
        ..Default::default()
    };
    let s = select(&[cand(pb, &b), cand(pa, &a)], &cfg);
    assert_eq!(s.best(), Some(1));
}

#[test]
fn local_origination_beats_everything() {
    let local = PeerInfo {
        id: LOCAL_PEER,
        ..peer(0, 1, false)
    };
    let learned = peer(1, 2, false);
    let worse = PathAttrs {
        local_pref: Some(10),
        origin: Some(Origin::Incomplete),
        ..base()
    };
    let better = PathAttrs {
        local_pref: Some(1000),
        ..base()
    };
    beats(Step::Local, &local, worse, &learned, better);
}

#[test]
fn higher_local_pref_wins_and_absent_is_100() {
    let (p1, p2) = (peer(1, 1, true), peer(2, 2, true));
    let hi = PathAttrs {
        local_pref: Some(200),
        as_path: path(vec![seq(&[1, 2, 3, 4])]),
        ..base()
    };
    beats(Step::LocalPref, &p2, hi, &p1, base());
    let low = PathAttrs {
        local_pref: Some(99),
        ..base()
    };
    beats(Step::LocalPref, &p2, base(), &p1, low);
}

#[test]
fn shorter_as_path_wins() {
    let (p1, p2) = (peer(1, 1, false), peer(2, 2, false));
    let long = PathAttrs {
        as_path: path(vec![seq(&[65001, 65002])]),
        ..base()
    };
    beats(Step::AsPathLen, &p2, base(), &p1, long);
}

#[test]
fn as_set_counts_one_and_confed_zero() {
    let attrs = PathAttrs {
        as_path: path(vec![
            AsSegment {
                kind: SegmentType::ConfedSequence,
                asns: vec![1, 2, 3],
            },
            seq(&[10, 11]),
            AsSegment {
                kind: SegmentType::Set,
                asns: vec![20, 21, 22],
            },
            AsSegment {
                kind: SegmentType::ConfedSet,
                asns: vec![4],
            },
        ]),
        ..Default::default()
    };
    assert_eq!(as_path_len(&attrs), 3);
    assert_eq!(neighbor_as(&attrs), Some(10));
    assert_eq!(as_path_len(&PathAttrs::default()), 0);
}

#[test]
fn neighbor_as_is_local_for_empty_or_set_first() {
    assert_eq!(neighbor_as(&PathAttrs::default()), None);
    let agg = PathAttrs {
        as_path: path(vec![AsSegment {
            kind: SegmentType::Set,
            asns: vec![1, 2],
        }]),
        ..Default::default()
    };
    assert_eq!(neighbor_as(&agg), None);
}

#[test]
fn lower_origin_wins() {
    let (p1, p2) = (peer(1, 1, false), peer(2, 2, false));
    let egp = PathAttrs {
        origin: Some(Origin::Egp),
        ..base()
    };
    let inc = PathAttrs {
        origin: Some(Origin::Incomplete),
        ..base()
    };
    beats(Step::Origin, &p2, base(), &p1, egp.clone());
    beats(Step::Origin, &p2, egp, &p1, inc);
    let missing = PathAttrs {
        origin: None,
        ..base()
    };
    let egp = PathAttrs {
        origin: Some(Origin::Egp),
        ..base()
    };
    beats(Step::Origin, &p2, egp, &p1, missing);
}

#[test]
fn lower_med_wins_within_same_neighbor_as_missing_is_zero() {
    let (p1, p2) = (peer(1, 1, false), peer(2, 2, false));
    let med = |m| PathAttrs {
        med: Some(m),
        ..base()
    };
    beats(Step::Med, &p2, med(5), &p1, med(10));
    beats(Step::Med, &p2, base(), &p1, med(1));
}

#[test]
fn med_ignored_across_neighbor_as() {
    let (p1, p2) = (peer(1, 1, false), peer(2, 2, false));
    let a = ra(PathAttrs {
        med: Some(1000),
        as_path: path(vec![seq(&[65001])]),
        ..base()
    });
    let b = ra(PathAttrs {
        med: Some(1),
        as_path: path(vec![seq(&[65002])]),
        ..base()
    });
    // Decided by router id (p1 lower), not by MED.
    assert_eq!(
        compare(&cand(&p1, &a), &cand(&p2, &b)),
        Some((Step::RouterId, Ordering::Less))
    );
}

#[test]
fn ebgp_beats_ibgp() {
    let (ibgp, ebgp) = (peer(1, 1, true), peer(2, 2, false));
    beats(Step::PeerType, &ebgp, base(), &ibgp, base());
}

#[test]
fn lower_router_id_wins_originator_id_replaces_it() {
    let (p1, p2) = (peer(1, 1, true), peer(2, 2, true));
    beats(Step::RouterId, &p1, base(), &p2, base());
    // p1 reflects a path whose originator has a higher id than p2's router id.
    let reflected = PathAttrs {
        originator_id: Some(Ipv4Addr::new(10, 0, 0, 9)),
        ..base()
    };
    beats(Step::RouterId, &p2, base(), &p1, reflected);
}

#[test]
fn shorter_cluster_list_wins() {
    let (p1, p2) = (peer(1, 1, true), peer(2, 2, true));
    let orig = Some(Ipv4Addr::new(10, 9, 9, 9));
    let short = PathAttrs {
        originator_id: orig,
        cluster_list: vec![Ipv4Addr::new(1, 1, 1, 1)],
        ..base()
    };
    let long = PathAttrs {
        originator_id: orig,
        cluster_list: vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2)],
        ..base()
    };
    beats(Step::ClusterListLen, &p2, short, &p1, long);
}

#[test]
fn lower_peer_address_wins() {
    let p1 = peer(1, 1, true);
    // Same router id (so only the address differs).
    let p2 = PeerInfo {
        router_id: p1.router_id,
        ..peer(2, 2, true)
    };
    beats(Step::PeerAddr, &p1, base(), &p2, base());
}

#[test]
fn path_id_breaks_remaining_ties() {
    let p = peer(1, 1, true);
    let a = ra(base());
    let x = Candidate {
        path_id: 1,
        ..cand(&p, &a)
    };
    let y = Candidate {
        path_id: 2,
        ..cand(&p, &a)
    };
    assert_eq!(compare(&x, &y), Some((Step::PathId, Ordering::Less)));
    assert_eq!(compare(&x, &x), None);
}

#[test]
fn ecmp_set_holds_paths_equal_through_peer_type() {
    let peers: Vec<PeerInfo> = (1..=4).map(|i| peer(i, i as u8, false)).collect();
    let same = ra(base());
    let worse_med = ra(PathAttrs {
        med: Some(7),
        ..base()
    });
    let cands = [
        cand(&peers[2], &same),
        cand(&peers[0], &same),
        cand(&peers[3], &worse_med),
        cand(&peers[1], &same),
    ];
    let s = select(&cands, &MultipathConfig::default());
    // Best = lowest router id (peer 1), then peers 2 and 3; peer 4 lost on MED.
    assert_eq!(s.ecmp, vec![1, 3, 0]);
    let capped = select(
        &cands,
        &MultipathConfig {
            max_paths: 2,
            ..Default::default()
        },
    );
    assert_eq!(capped.ecmp, vec![1, 3]);
}

#[test]
fn ecmp_requires_same_neighbor_as_unless_relaxed() {
    let (p1, p2) = (peer(1, 1, false), peer(2, 2, false));
    let a = ra(base());
    let b = ra(PathAttrs {
        as_path: path(vec![seq(&[65002])]),
        ..base()
    });
    let cands = [cand(&p1, &a), cand(&p2, &b)];
    assert_eq!(select(&cands, &MultipathConfig::default()).ecmp, vec![0]);
    let relaxed = MultipathConfig {
        relax_neighbor_as: true,
        ..Default::default()
    };
    assert_eq!(select(&cands, &relaxed).ecmp, vec![0, 1]);
}

#[test]
fn ecmp_never_mixes_ebgp_and_ibgp() {
    let (i, e) = (peer(1, 1, true), peer(2, 2, false));
    let a = ra(base());
    let s = select(&[cand(&i, &a), cand(&e, &a)], &MultipathConfig::default());
    assert_eq!(s.ecmp, vec![1]);
}

#[test]
fn med_elimination_is_order_independent() {
    // The classic non-transitive triple: A (AS1, MED 10), B (AS1, MED 5), C (AS2, MED 0).
    // Pairwise: B > A (MED), A > C (router id), C > B (router id). RFC elimination removes A
    // on MED, then C beats B on router id... regardless of input order.
    let pa = peer(3, 3, false);
    let pb = peer(5, 5, false);
    let pc = peer(4, 4, false);
    let a = ra(PathAttrs {
        med: Some(10),
        as_path: path(vec![seq(&[1])]),
        ..base()
    });
    let b = ra(PathAttrs {
        med: Some(5),
        as_path: path(vec![seq(&[1])]),
        ..base()
    });
    let c = ra(PathAttrs {
        as_path: path(vec![seq(&[2])]),
        ..base()
    });
    let all = [cand(&pa, &a), cand(&pb, &b), cand(&pc, &c)];
    let one = MultipathConfig {
        max_paths: 1,
        ..Default::default()
    };
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let cands: Vec<Candidate<'_>> = order.iter().map(|&i| all[i]).collect();
        let best = select(&cands, &one).best().map(|i| order[i]);
        assert_eq!(best, Some(2), "order {order:?}");
    }
}

#[test]
fn empty_and_single() {
    let cfg = MultipathConfig::default();
    assert_eq!(select(&[], &cfg).best(), None);
    let p = peer(1, 1, false);
    let a = ra(base());
    assert_eq!(select(&[cand(&p, &a)], &cfg).ecmp, vec![0]);
}
