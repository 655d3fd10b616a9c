//! [`Allocator::allocate_many`]: a burst of requests committed in one transaction, and every
//! way out of the fast path (cold cache, duplicates, lost races, full blocks, a failing store).

mod common;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{cfg, ip, memory, FaultyStore};
use ipam::{Allocator, Request, Store, MAX_BATCH};

fn reqs(prefix: &str, n: usize) -> Vec<Request> {
    (0..n)
        .map(|i| Request::new(format!("{prefix}{i}")))
        .collect()
}

/// `allocate_many` where every request must succeed.
fn all_ok(a: &Allocator, reqs: &[Request]) -> Vec<ipam::Allocation> {
    a.allocate_many(reqs)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn distinct(got: &[ipam::Allocation]) -> bool {
    got.iter().map(|a| a.ip).collect::<HashSet<IpAddr>>().len() == got.len()
}

fn faulty_allocator(
    node: &str,
    pools: &[(&str, u8)],
) -> (Arc<dyn Store>, Arc<FaultyStore>, Allocator) {
    let inner = memory();
    let faulty = Arc::new(FaultyStore::new(inner.clone()));
    let a = Allocator::new(faulty.clone(), node, cfg(pools)).unwrap();
    (inner, faulty, a)
}

#[test]
fn a_warm_burst_is_one_transaction() {
    let (_, faulty, a) = faulty_allocator("n1", &[("10.0.0.0/24", 26)]);
    // Cold: the first allocation reads the store, claims a block and fills the cache.
    assert_eq!(
        a.allocate(&Request::new("first")).unwrap().ip,
        ip("10.0.0.0")
    );
    let before = faulty.transactions.load(Ordering::Relaxed);
    let got: Vec<_> = all_ok(&a, &reqs("pod", 20));
    assert_eq!(faulty.transactions.load(Ordering::Relaxed) - before, 1);
    assert!(distinct(&got));
    // In order, after the first, in the node's block, each with its own sequence number.
    assert_eq!(got[0].ip, ip("10.0.0.1"));
    assert_eq!(got[19].ip, ip("10.0.0.20"));
    assert!(got
        .iter()
        .all(|g| !g.borrowed && g.block == "10.0.0.0/26".parse().unwrap()));
    assert_eq!(got.iter().map(|g| g.seq).collect::<HashSet<_>>().len(), 20);
    // Every one is in the store, as a fresh reader sees it.
    let fresh = Allocator::new(faulty.clone(), "n1", cfg(&[("10.0.0.0/24", 26)])).unwrap();
    for g in &got {
        assert_eq!(
            fresh.handle_allocations(&g.handle).unwrap(),
            vec![g.clone()]
        );
    }
    assert!(fresh.check(None).unwrap().is_clean());
}

#[test]
fn duplicates_specific_addresses_and_overflow_take_the_reading_path() {
    let (_, _, a) = faulty_allocator("n1", &[("10.0.0.0/24", 26)]);
    a.allocate(&Request::new("warm")).unwrap();
    let mut batch = reqs("pod", 70);
    batch.push(Request::new("pod3"));
    batch.push(Request::new("fixed").ip(ip("10.0.0.200")));
    let got: Vec<_> = all_ok(&a, &batch);
    // The duplicate gets the same address; the rest are distinct.
    assert_eq!(got[70], got[3]);
    let mut unique: Vec<_> = got.clone();
    unique.remove(70);
    assert!(distinct(&unique));
    assert_eq!(got[71].ip, ip("10.0.0.200"));
    // 1 + 70 automatic addresses do not fit a /26: a second block was claimed.
    let blocks: HashSet<_> = got.iter().map(|g| g.block).collect();
    assert!(blocks.len() >= 2, "{blocks:?}");
    assert!(a.check(None).unwrap().is_clean());
    // Idempotent: the whole burst again returns the same addresses.
    let again: Vec<_> = all_ok(&a, &batch);
    assert_eq!(again, got);
}

#[test]
fn a_stale_cache_loses_the_race_and_every_request_still_succeeds() {
    let (inner, faulty, a) = faulty_allocator("n1", &[("10.0.0.0/24", 26)]);
    a.allocate(&Request::new("warm")).unwrap();
    // Another process of the same node (or a borrower) changes the block behind the cache.
    let other = Allocator::new(inner.clone(), "n1", cfg(&[("10.0.0.0/24", 26)])).unwrap();
    let theirs = other.allocate(&Request::new("theirs")).unwrap();
    let got: Vec<_> = all_ok(&a, &reqs("pod", 10));
    assert!(faulty.conflicts.load(Ordering::Relaxed) >= 1);
    assert!(distinct(&got));
    assert!(got.iter().all(|g| g.ip != theirs.ip));
    assert!(a.check(None).unwrap().is_clean());
}

#[test]
fn a_failing_store_fails_the_burst_and_writes_nothing() {
    let (inner, faulty, a) = faulty_allocator("n1", &[("10.0.0.0/24", 26)]);
    a.allocate(&Request::new("warm")).unwrap();
    faulty.fail_when(|key, _, _| key.starts_with("blocks/"));
    let got = a.allocate_many(&reqs("pod", 5));
    assert!(got.iter().all(|r| r.is_err()), "{got:?}");
    assert_eq!(inner.list("handles/").unwrap().len(), 1);
    faulty.fail_when(|_, _, _| false);
    let got: Vec<_> = all_ok(&a, &reqs("pod", 5));
    assert_eq!(got[0].ip, ip("10.0.0.1"));
    assert!(a.check(None).unwrap().is_clean());
}

#[test]
fn bursts_larger_than_one_transaction_are_split() {
    let (_, faulty, a) = faulty_allocator("n1", &[("10.0.0.0/22", 24)]);
    a.allocate(&Request::new("warm")).unwrap();
    let before = faulty.transactions.load(Ordering::Relaxed);
    let n = MAX_BATCH * 2 + 5;
    let got: Vec<_> = all_ok(&a, &reqs("pod", n));
    assert_eq!(got.len(), n);
    assert!(distinct(&got));
    assert_eq!(faulty.transactions.load(Ordering::Relaxed) - before, 3);
    assert!(a.check(None).unwrap().is_clean());
}

#[test]
fn a_burst_that_fills_its_block_claims_the_next_and_stays_in_bulk() {
    let (_, faulty, a) = faulty_allocator("n1", &[("10.0.0.0/24", 26)]);
    a.allocate(&Request::new("warm")).unwrap();
    let before = faulty.transactions.load(Ordering::Relaxed);
    let got: Vec<_> = all_ok(&a, &reqs("pod", 70));
    assert!(distinct(&got));
    // 63 in the first block at once; one allocation claims the second block; the last six
    // go together there.
    assert_eq!(faulty.transactions.load(Ordering::Relaxed) - before, 3);
    assert_eq!(got[63].block, "10.0.0.64/26".parse().unwrap());
    assert!(a.check(None).unwrap().is_clean());
}

#[test]
fn claiming_ahead_keeps_bursts_off_the_claim_path() {
    let (_, faulty, a) = faulty_allocator("n1", &[("10.0.0.0/24", 26)]);
    // Nothing known yet: nothing to claim ahead for.
    assert!(a.claim_ahead().unwrap().is_empty());
    a.allocate(&Request::new("warm")).unwrap();
    // 63 free of 64: plenty.
    assert!(a.claim_ahead().unwrap().is_empty());
    all_ok(&a, &reqs("pod", 40));
    // 23 free, under half a block: the next block is claimed, once.
    assert_eq!(
        a.claim_ahead().unwrap(),
        vec!["10.0.0.64/26".parse().unwrap()]
    );
    assert!(a.claim_ahead().unwrap().is_empty());
    // A burst across the end of the first block is one transaction over both blocks.
    let before = faulty.transactions.load(Ordering::Relaxed);
    let got: Vec<_> = all_ok(&a, &reqs("more", 30));
    assert_eq!(faulty.transactions.load(Ordering::Relaxed) - before, 1);
    assert!(distinct(&got));
    assert_eq!(got[22].ip, ip("10.0.0.63"));
    assert_eq!(got[23].ip, ip("10.0.0.64"));
    assert!(a.check(None).unwrap().is_clean());
}

#[test]
fn claiming_ahead_respects_the_block_limit_and_scarce_pools() {
    let inner = memory();
    let c = ipam::IpamConfig {
        max_blocks_per_node: Some(1),
        ..cfg(&[("10.0.0.0/24", 26)])
    };
    let a = Allocator::new(inner, "n1", c).unwrap();
    all_ok(&a, &reqs("pod", 50));
    assert!(a.claim_ahead().unwrap().is_empty());
    // Two blocks in the pool, one taken: the other is left for whoever needs it first.
    let (_, _, b) = faulty_allocator("n1", &[("10.0.0.0/25", 26)]);
    all_ok(&b, &reqs("pod", 50));
    assert!(b.claim_ahead().unwrap().is_empty());
    // Needed, it is claimed on the allocation path as before.
    assert_eq!(
        b.allocate_many(&reqs("more", 20))
            .into_iter()
            .filter(Result::is_ok)
            .count(),
        20
    );
}
