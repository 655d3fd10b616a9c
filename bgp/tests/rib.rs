//! RIB behaviour through the public API: ECMP sets, peer down, interning, rejected paths,
//! Adj-RIB-Out coalescing and grouping, memory per route, and a property test of the
//! incremental decision against an independent brute-force recomputation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bgp::rib::*;
use bgp::wire::{AsPath, AsSegment, Family, Nlri, Origin, PathAttrs, Prefix, SegmentType};
use proptest::prelude::*;

// ----- a per-thread counting allocator, for the memory test -----

struct Counting;

thread_local! {
    static NET_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = NET_BYTES.try_with(|c| c.set(c.get() + delta));
}

// SAFETY: forwards to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            count(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        count(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            count(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn net_bytes() -> isize {
    NET_BYTES.with(Cell::get)
}

// ----- helpers -----

fn v4(a: [u8; 4], len: u8) -> Prefix {
    Prefix::V4(bgp::wire::Ipv4Network::new(Ipv4Addr::from(a), len).unwrap())
}

fn nlri(p: Prefix) -> Nlri {
    Nlri {
        prefix: p,
        path_id: 0,
    }
}

fn host(i: u32) -> Nlri {
    nlri(v4((0x0a00_0000 + i).to_be_bytes(), 32))
}

fn ebgp(id: PeerId, asn: u32) -> PeerInfo {
    PeerInfo {
        id,
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, id as u8)),
        asn,
        router_id: Ipv4Addr::new(10, 0, 0, id as u8),
        ibgp: false,
    }
}

fn attrs(as_path: &[u32], med: Option<u32>, nh: u8) -> RouteAttrs {
    RouteAttrs::new(
        PathAttrs {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath {
                segments: vec![AsSegment {
                    kind: SegmentType::Sequence,
                    asns: as_path.to_vec(),
                }],
            }),
            med,
            ..Default::default()
        },
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, nh)),
    )
}

fn rib_with_peers(peers: &[PeerInfo]) -> Rib {
    let mut rib = Rib::new(64512, Ipv4Addr::new(10, 0, 0, 254));
    for p in peers {
        rib.register_peer(*p).unwrap();
    }
    rib
}

fn ecmp_peers(rib: &Rib, p: &Prefix) -> Vec<PeerId> {
    rib.ecmp(p).iter().map(|p| p.peer).collect()
}

// ----- Loc-RIB -----

#[test]
fn ecmp_set_forms_and_shrinks() {
    // Two ToRs in the same AS: one ECMP set; a worse MED from the same AS stays out.
    let mut rib = rib_with_peers(&[ebgp(1, 65000), ebgp(2, 65000), ebgp(3, 65000)]);
    let p = v4([10, 1, 0, 0], 24);
    let a1 = rib.intern(attrs(&[65000], None, 1));
    let a2 = rib.intern(attrs(&[65000], None, 2));
    let a3 = rib.intern(attrs(&[65000], Some(50), 3));
    assert!(rib.insert(2, nlri(p), a2.clone()).unwrap());
    assert!(rib.insert(1, nlri(p), a1).unwrap());
    assert!(!rib.insert(3, nlri(p), a3).unwrap(), "worse MED: no change");
    assert_eq!(ecmp_peers(&rib, &p), vec![1, 2]);
    let entry = rib.get(&p).unwrap();
    let flags: Vec<(PeerId, bool, bool)> = entry
        .routes()
        .map(|r| (r.path.peer, r.best, r.ecmp))
        .collect();
    assert_eq!(
        flags,
        vec![(1, true, true), (2, false, true), (3, false, false)]
    );

    // Shrink: peer 1 withdraws; 2 is best alone (3 still loses on MED).
    assert!(rib.withdraw(1, nlri(p)));
    assert_eq!(ecmp_peers(&rib, &p), vec![2]);
    // Re-announcing the identical Arc changes nothing.
    assert!(!rib.insert(2, nlri(p), a2).unwrap());
    assert!(rib.withdraw(2, nlri(p)));
    assert_eq!(ecmp_peers(&rib, &p), vec![3]);
    assert!(rib.withdraw(3, nlri(p)));
    assert!(rib.get(&p).is_none());
    assert!(rib.is_empty());
    assert_eq!(rib.path_count(), 0);
}

#[test]
fn peer_down_withdraws_and_promotes_next_best() {
    let mut rib = rib_with_peers(&[ebgp(1, 65001), ebgp(2, 65002)]);
    let short = rib.intern(attrs(&[65001], None, 1));
    let long = rib.intern(attrs(&[65002, 65009], None, 2));
    for i in 0..100 {
        rib.insert(1, host(i), short.clone()).unwrap();
        rib.insert(2, host(i), long.clone()).unwrap();
    }
    // Peer 2 only: prefixes 100..110.
    for i in 100..110 {
        rib.insert(2, host(i), long.clone()).unwrap();
    }
    assert_eq!(rib.best(&host(5).prefix).unwrap().peer, 1);
    let mut changed = rib.remove_peer(1);
    changed.sort_by_key(|p| p.to_string());
    assert_eq!(changed.len(), 100);
    for i in 0..110 {
        let best = rib.best(&host(i).prefix).unwrap();
        assert_eq!(best.peer, 2);
        assert!(Arc::ptr_eq(&best.attrs, &long));
    }
    assert_eq!(rib.counts(1).unwrap(), PeerCounts::default());
    assert_eq!(rib.counts(2).unwrap().accepted, 110);
    // Peer 2 down too: everything goes, and with it the interned sets nobody holds.
    drop((short, long));
    assert_eq!(rib.unregister_peer(2).len(), 110);
    assert!(rib.is_empty());
    assert!(rib.peer(2).is_none());
    assert_eq!(rib.interner().len(), 0);
}

#[test]
fn add_path_peer_down_empties_multi_path_entry() {
    let mut rib = rib_with_peers(&[ebgp(1, 65001)]);
    let a = rib.intern(attrs(&[65001], None, 1));
    let b = rib.intern(attrs(&[65001], None, 2));
    let p = v4([10, 9, 0, 0], 16);
    rib.insert(
        1,
        Nlri {
            prefix: p,
            path_id: 1,
        },
        a,
    )
    .unwrap();
    rib.insert(
        1,
        Nlri {
            prefix: p,
            path_id: 2,
        },
        b,
    )
    .unwrap();
    assert_eq!(rib.ecmp(&p).len(), 2);
    assert_eq!(rib.remove_peer(1), vec![p]);
    assert!(rib.get(&p).is_none());
}

#[test]
fn local_routes_win_and_ipv6_works() {
    let mut rib = rib_with_peers(&[ebgp(1, 65001)]);
    let p = Prefix::V6(bgp::wire::Ipv6Network::new("2001:db8::".parse().unwrap(), 64).unwrap());
    let mut learned = attrs(&[65001], None, 1);
    learned.attrs.local_pref = Some(500);
    learned.next_hop = IpAddr::V6("2001:db8::1".parse().unwrap());
    learned.link_local = Some("fe80::1".parse::<Ipv6Addr>().unwrap());
    let learned = rib.intern(learned);
    let local = rib.intern(RouteAttrs::new(
        PathAttrs {
            origin: Some(Origin::Igp),
            ..Default::default()
        },
        IpAddr::V6("2001:db8::fe".parse().unwrap()),
    ));
    rib.insert(1, nlri(p), learned).unwrap();
    assert!(rib.insert(LOCAL_PEER, nlri(p), local).unwrap());
    assert_eq!(ecmp_peers(&rib, &p), vec![LOCAL_PEER]);
    assert!(rib.withdraw(LOCAL_PEER, nlri(p)));
    assert_eq!(ecmp_peers(&rib, &p), vec![1]);
    assert_eq!(
        rib.register_peer(PeerInfo {
            id: LOCAL_PEER,
            ..ebgp(9, 1)
        }),
        Err(RibError::ReservedPeerId(0))
    );
    assert_eq!(
        rib.insert(42, nlri(p), rib.ecmp(&p)[0].attrs.clone()),
        Err(RibError::UnknownPeer(42))
    );
}

#[test]
fn interning_shares_arcs_across_prefixes() {
    let mut rib = rib_with_peers(&[ebgp(1, 65001)]);
    for i in 0..1000 {
        let a = rib.intern(attrs(&[65001], None, 1));
        rib.insert(1, host(i), a).unwrap();
    }
    assert_eq!(rib.interner().len(), 1);
    let first = rib.best(&host(0).prefix).unwrap().attrs.clone();
    assert!(rib.loc_routes().all(|r| Arc::ptr_eq(&r.path.attrs, &first)));
    drop(first);
    for i in 0..1000 {
        rib.withdraw(1, host(i));
    }
    // Released as the last path let go of it.
    assert_eq!(rib.interner().len(), 0);
}

#[test]
fn rejected_paths_are_listed_but_never_selected() {
    let mut rib = rib_with_peers(&[ebgp(1, 65001), ebgp(2, 65002)]);
    let p = v4([10, 2, 0, 0], 24);
    let good = rib.intern(attrs(&[65001], None, 1));
    let looped = rib.intern(attrs(&[65002, 64512], None, 2));
    rib.insert(1, nlri(p), good.clone()).unwrap();
    assert!(!rib
        .insert_rejected(2, nlri(p), looped.clone(), "as-path loop")
        .unwrap());
    assert_eq!(ecmp_peers(&rib, &p), vec![1]);
    assert_eq!(rib.get(&p).unwrap().paths().len(), 1);
    let adj: Vec<_> = rib.adj_in(2).collect();
    assert_eq!(adj.len(), 1);
    assert_eq!(adj[0].rejected, Some("as-path loop"));
    assert_eq!(adj[0].nlri, nlri(p));
    assert_eq!(
        rib.counts(2),
        Some(PeerCounts {
            received: 1,
            accepted: 0
        })
    );
    // Peer 1's path becomes rejected too (e.g. policy change): the prefix is gone.
    assert!(rib
        .insert_rejected(1, nlri(p), good.clone(), "filtered")
        .unwrap());
    assert!(rib.get(&p).is_none());
    assert_eq!(
        rib.counts(1),
        Some(PeerCounts {
            received: 1,
            accepted: 0
        })
    );
    // And accepted again.
    assert!(rib.insert(1, nlri(p), good).unwrap());
    assert_eq!(
        rib.counts(1),
        Some(PeerCounts {
            received: 1,
            accepted: 1
        })
    );
    assert!(rib.adj_in(1).all(|r| r.rejected.is_none()));
    // Withdrawing a rejected path removes it from the listing.
    assert!(!rib.withdraw(2, nlri(p)));
    assert_eq!(rib.adj_in(2).count(), 0);
    assert_eq!(rib.counts(2), Some(PeerCounts::default()));
}

#[test]
fn multipath_relax_and_reconfiguration() {
    let mut rib = rib_with_peers(&[ebgp(1, 65001), ebgp(2, 65002)]);
    let p = v4([10, 3, 0, 0], 24);
    let a = rib.intern(attrs(&[65001], None, 1));
    let b = rib.intern(attrs(&[65002], None, 2));
    rib.insert(1, nlri(p), a).unwrap();
    rib.insert(2, nlri(p), b).unwrap();
    assert_eq!(ecmp_peers(&rib, &p), vec![1]);
    let changed = rib.set_multipath(MultipathConfig {
        relax_neighbor_as: true,
        ..Default::default()
    });
    assert_eq!(changed, vec![p]);
    assert_eq!(ecmp_peers(&rib, &p), vec![1, 2]);
}

// ----- Adj-RIB-Out -----

#[test]
fn adj_out_coalesces_and_groups() {
    let mut rib = rib_with_peers(&[]);
    let a = rib.intern(attrs(&[64512], None, 1));
    let b = rib.intern(attrs(&[64512], None, 2));
    let v6 = Nlri {
        prefix: Prefix::V6(bgp::wire::Ipv6Network::new("2001:db8::".parse().unwrap(), 64).unwrap()),
        path_id: 0,
    };
    let mut out = AdjRibOut::new();
    // A prefix changed many times before a flush is sent once, in its last state.
    out.set(host(0), a.clone());
    out.set(host(0), b.clone());
    out.set(host(0), a.clone());
    for i in 1..5 {
        out.set(host(i), a.clone());
    }
    out.set(host(5), b.clone());
    out.set(v6, a.clone());
    // Set then removed before the flush, never advertised: nothing at all.
    out.set(host(6), a.clone());
    out.remove(host(6));
    assert_eq!(out.pending_len(), 7);
    let up = out.take_pending();
    assert!(up.withdrawals.is_empty());
    let mut groups: Vec<(bool, Family, usize)> = up
        .announcements
        .iter()
        .map(|(attrs, f, n)| (Arc::ptr_eq(attrs, &a), *f, n.len()))
        .collect();
    groups.sort_by_key(|g| (g.1, g.2));
    assert_eq!(
        groups,
        vec![
            (false, Family::IPV4_UNICAST, 1),
            (true, Family::IPV4_UNICAST, 5),
            (true, Family::IPV6_UNICAST, 1)
        ]
    );
    assert_eq!(out.advertised_len(), 7);
    assert!(!out.has_pending());

    // Setting the same Arc as advertised is a no-op; a change and back cancels out.
    out.set(host(1), a.clone());
    out.set(host(2), b.clone());
    out.set(host(2), a.clone());
    assert!(out.take_pending().is_empty());

    // Withdrawals grouped by family; remove then set again = one announcement.
    out.remove(host(1));
    out.remove(host(3));
    out.remove(v6);
    out.remove(host(4));
    out.set(host(4), b.clone());
    let up = out.take_pending();
    let mut w: Vec<(Family, usize)> = up.withdrawals.iter().map(|(f, v)| (*f, v.len())).collect();
    w.sort();
    assert_eq!(
        w,
        vec![(Family::IPV4_UNICAST, 2), (Family::IPV6_UNICAST, 1)]
    );
    assert_eq!(up.announcements.len(), 1);
    assert_eq!(up.announcements[0].2, vec![host(4)]);
    assert!(Arc::ptr_eq(out.advertised(&host(4)).unwrap(), &b));
    assert_eq!(out.advertised_len(), 4);
    assert_eq!(out.iter().count(), 4);
}

#[test]
fn adj_out_limited_flush_and_end_of_rib() {
    let a = Arc::new(attrs(&[64512], None, 1));
    let mut out = AdjRibOut::new();
    for i in 0..250 {
        out.set(host(i), a.clone());
    }
    out.mark_initial_queued(Family::IPV4_UNICAST);
    out.mark_initial_queued(Family::IPV6_UNICAST);
    // IPv6 had nothing to send: its End-of-RIB is due at once; IPv4's only when drained.
    assert_eq!(out.take_end_of_rib(), vec![Family::IPV6_UNICAST]);
    let mut seen = HashSet::new();
    let mut chunks = 0;
    loop {
        let up = out.take_pending_limited(100);
        if up.is_empty() {
            break;
        }
        assert!(up.prefix_count() <= 100);
        // One attribute set: one group per chunk.
        assert_eq!(up.announcements.len(), 1);
        seen.extend(up.announcements[0].2.iter().copied());
        chunks += 1;
        if chunks < 3 {
            assert!(out.take_end_of_rib().is_empty());
        }
    }
    assert_eq!(chunks, 3);
    assert_eq!(seen.len(), 250);
    assert_eq!(out.take_end_of_rib(), vec![Family::IPV4_UNICAST]);
    assert!(out.take_end_of_rib().is_empty(), "sent once");
    assert!(out.end_of_rib_sent(Family::IPV4_UNICAST));
    // Session down: everything is forgotten.
    out.reset();
    assert_eq!(out.advertised_len(), 0);
    assert!(!out.end_of_rib_sent(Family::IPV4_UNICAST));
    out.remove(host(1));
    assert!(
        out.take_pending().is_empty(),
        "nothing advertised, nothing to withdraw"
    );
}

// ----- memory -----

#[test]
fn memory_per_host_route_under_100_bytes() {
    const N: u32 = 1_000_000;
    let before = net_bytes();
    let mut rib = rib_with_peers(&[ebgp(1, 65001)]);
    let a = rib.intern(attrs(&[65001], None, 1));
    for i in 0..N {
        rib.insert(1, host(i), a.clone()).unwrap();
    }
    let per_route = (net_bytes() - before) as f64 / f64::from(N);
    println!("Adj-RIB-In + Loc-RIB: {per_route:.1} bytes per /32 route ({N} routes)");
    assert_eq!(rib.len(), N as usize);
    assert!(per_route < 100.0, "{per_route} bytes per route");
    drop(rib);
}

// ----- property: incremental decision == brute force -----

const PEERS: [PeerInfo; 4] = [
    PeerInfo {
        id: 1,
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4)),
        asn: 65001,
        router_id: Ipv4Addr::new(10, 0, 0, 3),
        ibgp: false,
    },
    PeerInfo {
        id: 2,
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3)),
        asn: 65001,
        router_id: Ipv4Addr::new(10, 0, 0, 3),
        ibgp: false,
    },
    PeerInfo {
        id: 3,
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        asn: 64512,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        ibgp: true,
    },
    PeerInfo {
        id: 4,
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        asn: 64512,
        router_id: Ipv4Addr::new(10, 0, 0, 2),
        ibgp: true,
    },
];

#[derive(Debug, Clone)]
enum Op {
    Insert {
        peer: usize,
        prefix: u8,
        path_id: u32,
        attrs: usize,
    },
    Reject {
        peer: usize,
        prefix: u8,
        attrs: usize,
    },
    Withdraw {
        peer: usize,
        prefix: u8,
        path_id: u32,
    },
    PeerDown {
        peer: usize,
    },
}

fn attr_pool() -> Vec<RouteAttrs> {
    let mut pool = Vec::new();
    for lp in [None, Some(200)] {
        for path in [&[1u32][..], &[2], &[1, 5], &[2, 6]] {
            for med in [None, Some(10)] {
                for originator in [None, Some(Ipv4Addr::new(10, 0, 0, 0))] {
                    let mut a = attrs(path, med, 1);
                    a.attrs.local_pref = lp;
                    a.attrs.originator_id = originator;
                    a.attrs.origin = Some(if med.is_some() && path.len() == 2 {
                        Origin::Egp
                    } else {
                        Origin::Igp
                    });
                    pool.push(a);
                }
            }
        }
    }
    pool
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..6u8, 0..2u32, 0..32usize)
            .prop_map(|(peer, prefix, path_id, attrs)| Op::Insert { peer, prefix, path_id, attrs }),
        1 => (0..4usize, 0..6u8, 0..32usize).prop_map(|(peer, prefix, attrs)| Op::Reject { peer, prefix, attrs }),
        3 => (0..4usize, 0..6u8, 0..2u32).prop_map(|(peer, prefix, path_id)| Op::Withdraw { peer, prefix, path_id }),
        1 => (0..4usize).prop_map(|peer| Op::PeerDown { peer }),
    ]
}

type Model = HashMap<(PeerId, u8, u32), Arc<RouteAttrs>>;

/// RFC 4271 §9.1.2.2 written out independently of `bgp::rib::decision`: successive
/// eliminations on plain keys. Returns the ECMP set as (peer, path id), best first.
fn brute_force(
    paths: &[(PeerInfo, u32, Arc<RouteAttrs>)],
    cfg: MultipathConfig,
) -> Vec<(PeerId, u32)> {
    fn keep_min<T, K: Ord>(v: &mut Vec<T>, key: impl Fn(&T) -> K) {
        if let Some(m) = v.iter().map(&key).min() {
            v.retain(|x| key(x) == m);
        }
    }
    let path_len = |a: &RouteAttrs| {
        a.attrs.as_path.as_ref().map_or(0, |p| {
            p.segments.iter().map(|s| s.asns.len()).sum::<usize>()
        })
    };
    let nas = |a: &RouteAttrs| {
        a.attrs
            .as_path
            .as_ref()
            .and_then(|p| p.segments.first())
            .and_then(|s| s.asns.first().copied())
    };
    let mut c: Vec<&(PeerInfo, u32, Arc<RouteAttrs>)> = paths.iter().collect();
    keep_min(&mut c, |p| {
        std::cmp::Reverse(p.2.attrs.local_pref.unwrap_or(100))
    });
    keep_min(&mut c, |p| path_len(&p.2));
    keep_min(&mut c, |p| p.2.attrs.origin);
    let snapshot = c.clone();
    c.retain(|p| {
        !snapshot.iter().any(|q| {
            nas(&q.2) == nas(&p.2) && q.2.attrs.med.unwrap_or(0) < p.2.attrs.med.unwrap_or(0)
        })
    });
    keep_min(&mut c, |p| p.0.ibgp);
    c.sort_by_key(|p| {
        (
            u32::from(p.2.attrs.originator_id.unwrap_or(p.0.router_id)),
            p.2.attrs.cluster_list.len(),
            p.0.addr,
            p.1,
            p.0.id,
        )
    });
    let best_nas = c.first().map(|p| nas(&p.2));
    c.retain(|p| Some(nas(&p.2)) == best_nas);
    c.truncate(cfg.max_paths);
    c.iter().map(|p| (p.0.id, p.1)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn loc_rib_matches_brute_force(ops in prop::collection::vec(op(), 1..80), max_paths in 1..4usize) {
        let pool = attr_pool();
        let mut rib = rib_with_peers(&PEERS);
        let cfg = MultipathConfig { max_paths, relax_neighbor_as: false };
        rib.set_multipath(cfg);
        let interned: Vec<Arc<RouteAttrs>> = pool.iter().map(|a| rib.intern(a.clone())).collect();
        let prefix = |i: u8| v4([10, 0, i, 0], 24);
        let mut model: Model = HashMap::new();
        let mut rejected: HashSet<(PeerId, u8, u32)> = HashSet::new();
        for op in ops {
            // The ECMP set of every prefix before the op, to check the "changed" answers.
            let before: Vec<Vec<(PeerId, u32, usize)>> = (0..6).map(|i| rib.ecmp(&prefix(i)).iter().map(|p| (p.peer, p.path_id, Arc::as_ptr(&p.attrs) as usize)).collect()).collect();
            let (changed, touched): (Vec<Prefix>, Vec<u8>) = match op {
                Op::Insert { peer, prefix: i, path_id, attrs } => {
                    let id = PEERS[peer].id;
                    model.insert((id, i, path_id), interned[attrs].clone());
                    rejected.remove(&(id, i, path_id));
                    let c = rib.insert(id, Nlri { prefix: prefix(i), path_id }, interned[attrs].clone()).unwrap();
                    (if c { vec![prefix(i)] } else { vec![] }, vec![i])
                }
                Op::Reject { peer, prefix: i, attrs } => {
                    let id = PEERS[peer].id;
                    model.remove(&(id, i, 0));
                    rejected.insert((id, i, 0));
                    let c = rib.insert_rejected(id, nlri(prefix(i)), interned[attrs].clone(), "filtered").unwrap();
                    (if c { vec![prefix(i)] } else { vec![] }, vec![i])
                }
                Op::Withdraw { peer, prefix: i, path_id } => {
                    let id = PEERS[peer].id;
                    model.remove(&(id, i, path_id));
                    rejected.remove(&(id, i, path_id));
                    let c = rib.withdraw(id, Nlri { prefix: prefix(i), path_id });
                    (if c { vec![prefix(i)] } else { vec![] }, vec![i])
                }
                Op::PeerDown { peer } => {
                    let id = PEERS[peer].id;
                    model.retain(|k, _| k.0 != id);
                    rejected.retain(|k| k.0 != id);
                    (rib.remove_peer(id), (0..6).collect())
                }
            };
            for i in 0..6u8 {
                let paths: Vec<(PeerInfo, u32, Arc<RouteAttrs>)> = model
                    .iter()
                    .filter(|(k, _)| k.1 == i)
                    .map(|(k, a)| (*PEERS.iter().find(|p| p.id == k.0).unwrap(), k.2, a.clone()))
                    .collect();
                let want = brute_force(&paths, cfg);
                let got: Vec<(PeerId, u32)> = rib.ecmp(&prefix(i)).iter().map(|p| (p.peer, p.path_id)).collect();
                prop_assert_eq!(&got, &want, "prefix {}", i);
                prop_assert_eq!(rib.get(&prefix(i)).map_or(0, |e| e.paths().len()), paths.len());
                let after: Vec<(PeerId, u32, usize)> = rib.ecmp(&prefix(i)).iter().map(|p| (p.peer, p.path_id, Arc::as_ptr(&p.attrs) as usize)).collect();
                let reported = changed.contains(&prefix(i));
                prop_assert_eq!(reported, before[i as usize] != after, "changed flag for prefix {}", i);
                if !touched.contains(&i) {
                    prop_assert!(!reported);
                }
            }
            for p in &PEERS {
                let acc = model.keys().filter(|k| k.0 == p.id).count() as u64;
                let rej = rejected.iter().filter(|k| k.0 == p.id).count() as u64;
                prop_assert_eq!(rib.counts(p.id), Some(PeerCounts { received: acc + rej, accepted: acc }));
                prop_assert_eq!(rib.adj_in(p.id).count() as u64, acc + rej);
            }
            prop_assert_eq!(rib.path_count(), model.len());
        }
    }
}
