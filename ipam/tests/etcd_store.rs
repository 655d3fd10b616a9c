//! [`EtcdStore`] against a real etcd (Debian's etcd-server): compare-and-swap semantics,
//! listing, durability across an etcd restart, the time bound when etcd does not answer, and
//! the allocator running on it from several nodes at once.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use interop_tests::etcd::EtcdCluster;
use interop_tests::ports::free_port;
use ipam::{Allocator, EtcdOptions, EtcdStore, IpamConfig, Pool, Request, Store, StoreError};

fn store(cluster: &EtcdCluster, prefix: &str) -> EtcdStore {
    EtcdStore::open(&EtcdOptions::new(cluster.client_endpoints()).prefix(prefix)).unwrap()
}

fn conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict { .. }))
}

#[test]
fn compare_and_swap_follows_mod_revisions() {
    let cluster = EtcdCluster::single().unwrap();
    let s = store(&cluster, "/t1/");

    let r1 = s
        .compare_and_swap("k", None, Some(b"one".to_vec()))
        .unwrap();
    assert_eq!(s.get("k").unwrap(), Some((b"one".to_vec(), r1)));
    // Must-not-exist on an existing key, and a stale revision: conflicts, nothing written.
    assert!(conflict(s.compare_and_swap("k", None, Some(b"x".to_vec()))));
    assert!(conflict(s.compare_and_swap(
        "k",
        Some(r1 + 100),
        Some(b"x".to_vec())
    )));
    assert!(conflict(s.compare_and_swap("absent", Some(r1), None)));
    assert_eq!(s.get("k").unwrap(), Some((b"one".to_vec(), r1)));

    let r2 = s
        .compare_and_swap("k", Some(r1), Some(b"two".to_vec()))
        .unwrap();
    assert!(r2 > r1);
    assert!(conflict(s.compare_and_swap("k", Some(r1), None)));
    let r3 = s.compare_and_swap("k", Some(r2), None).unwrap();
    assert!(r3 > r2);
    assert_eq!(s.get("k").unwrap(), None);
    // Re-created: a fresh revision, never an old one (no ABA).
    let r4 = s
        .compare_and_swap("k", None, Some(b"again".to_vec()))
        .unwrap();
    assert!(r4 > r3);

    // The key really lives under the prefix.
    assert_eq!(cluster.keys("/t1/").unwrap(), vec!["/t1/k"]);
}

#[test]
fn transactions_are_all_or_nothing() {
    let cluster = EtcdCluster::single().unwrap();
    common::check_transact(&store(&cluster, "/tx/"));
}

#[test]
fn list_is_in_key_order_and_confined_to_the_prefix() {
    let cluster = EtcdCluster::single().unwrap();
    let a = store(&cluster, "/a/");
    let b = store(&cluster, "/b/");
    for k in ["blocks/2", "blocks/1", "handles/x", "blocks/10"] {
        a.compare_and_swap(k, None, Some(k.as_bytes().to_vec()))
            .unwrap();
    }
    b.compare_and_swap("blocks/9", None, Some(b"b".to_vec()))
        .unwrap();
    let listed = a.list("blocks/").unwrap();
    let keys: Vec<&str> = listed.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, vec!["blocks/1", "blocks/10", "blocks/2"]);
    assert_eq!(listed[0].value, b"blocks/1");
    assert_eq!(a.get("blocks/1").unwrap().unwrap().1, listed[0].revision);
    assert_eq!(a.list("").unwrap().len(), 4);
    assert_eq!(b.list("").unwrap().len(), 1);
}

#[test]
fn writes_survive_an_etcd_crash_and_restart() {
    let mut cluster = EtcdCluster::single().unwrap();
    let s = store(&cluster, "/bramble/");
    let cfg = IpamConfig::with_pools(vec![Pool::new("10.250.0.0/24".parse().unwrap())]);
    let alloc = Allocator::new(Arc::new(store(&cluster, "/bramble/")), "n1", cfg).unwrap();
    let got = alloc.allocate(&Request::new("h1")).unwrap();
    let before = s.list("").unwrap();

    cluster.kill(0);
    cluster.restart(0).unwrap();

    // The same client reconnects by itself; keys, values and revisions are all there.
    assert_eq!(s.list("").unwrap(), before);
    assert_eq!(alloc.allocate(&Request::new("h1")).unwrap(), got);
    assert!(alloc.check(None).unwrap().is_clean());
}

#[test]
fn calls_fail_within_the_bound_when_etcd_does_not_answer() {
    let bound = Duration::from_secs(1);
    // Nothing listens there: connection refused, retried until the bound.
    let nobody = format!("http://127.0.0.1:{}", free_port().unwrap());
    let s = EtcdStore::open(&EtcdOptions::new(vec![nobody]).timeout(bound)).unwrap();
    let start = Instant::now();
    let r = s.get("k");
    assert!(matches!(r, Err(StoreError::Timeout { .. })), "{r:?}");
    // Generous: the point is "bounded", not how fast (shared CI cores).
    assert!(start.elapsed() < bound + Duration::from_secs(5));
    let start = Instant::now();
    assert!(matches!(s.reachable(), Err(StoreError::Timeout { .. })));
    assert!(start.elapsed() < bound + Duration::from_secs(5));

    // A hung member (SIGSTOP) accepts connections but never answers.
    let mut cluster = EtcdCluster::single().unwrap();
    let s = EtcdStore::open(&EtcdOptions::new(cluster.client_endpoints()).timeout(bound)).unwrap();
    s.compare_and_swap("k", None, Some(b"v".to_vec())).unwrap();
    s.reachable().unwrap();
    cluster.pause(0);
    assert!(matches!(s.reachable(), Err(StoreError::Timeout { .. })));
    let start = Instant::now();
    let r = s.compare_and_swap("k2", None, Some(b"v".to_vec()));
    let msg = r
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(matches!(r, Err(StoreError::Timeout { .. })), "{r:?}");
    assert!(msg.contains("no answer within"), "{msg}");
    assert!(start.elapsed() < bound + Duration::from_secs(5));
    cluster.resume(0);
    // Back: the store works again, and the timed-out write may or may not have landed
    // (a timeout is ambiguous), but nothing else changed.
    let mut ok = false;
    for _ in 0..50 {
        if s.get("k").is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok);
    assert_eq!(s.get("k").unwrap().map(|v| v.0), Some(b"v".to_vec()));
}

/// Three nodes, each with several threads, allocating on one three-member cluster while a
/// member is killed and restarted: every address distinct, the store consistent.
#[test]
fn allocators_on_three_nodes_share_one_cluster() {
    let mut cluster = EtcdCluster::loopback(3).unwrap();
    let cfg = IpamConfig::with_pools(vec![
        Pool::new("10.251.0.0/22".parse().unwrap()).with_block_size(28)
    ]);
    let nodes: Vec<Arc<Allocator>> = (0..3)
        .map(|i| {
            Arc::new(
                Allocator::new(
                    Arc::new(store(&cluster, "/bramble/")),
                    &format!("node{i}"),
                    cfg.clone(),
                )
                .unwrap(),
            )
        })
        .collect();
    const THREADS: usize = 4;
    const PER_THREAD: usize = 15;
    let mut workers = Vec::new();
    for (n, a) in nodes.iter().enumerate() {
        for t in 0..THREADS {
            let a = Arc::clone(a);
            workers.push(std::thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|i| {
                        a.allocate(&Request::new(format!("n{n}.t{t}.{i}")))
                            .map(|x| x.ip)
                    })
                    .collect::<Vec<_>>()
            }));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    cluster.kill(2);
    let results: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    cluster.restart(2).unwrap();
    let ips: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("allocation failed"))
        .collect();
    let distinct: HashSet<_> = ips.iter().collect();
    assert_eq!(ips.len(), 3 * THREADS * PER_THREAD);
    assert_eq!(distinct.len(), ips.len(), "duplicate addresses handed out");
    for a in &nodes {
        let report = a.check(None).unwrap();
        assert!(report.is_clean(), "{report:?}");
    }
    // Each node allocated from blocks it claimed itself (no borrowing needed: plenty free).
    for (n, a) in nodes.iter().enumerate() {
        assert!(!a.owned_blocks(&format!("node{n}")).unwrap().is_empty());
    }
}

/// A node borrowing from another's block on etcd: the borrower sees it as borrowed, the owner
/// as lent (what keeps the owner's blackhole off it).
#[test]
fn borrowed_on_one_node_is_lent_on_the_owner() {
    let cluster = EtcdCluster::single().unwrap();
    let cfg = IpamConfig::with_pools(vec![
        Pool::new("10.252.0.0/29".parse().unwrap()).with_block_size(29)
    ]);
    let a = Allocator::new(Arc::new(store(&cluster, "/bramble/")), "a", cfg.clone()).unwrap();
    let b = Allocator::new(Arc::new(store(&cluster, "/bramble/")), "b", cfg).unwrap();
    let own = a.allocate(&Request::new("ha")).unwrap();
    let got = b.allocate(&Request::new("hb")).unwrap();
    assert!(got.borrowed && !own.borrowed);
    assert_eq!(b.borrowed_addresses("b").unwrap(), vec![got.ip]);
    assert_eq!(a.lent_addresses("a").unwrap(), vec![got.ip]);
    assert!(b.lent_addresses("b").unwrap().is_empty());
}
