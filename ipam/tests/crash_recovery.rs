//! Interrupted operations (a write that never happens, as if the process died there) leave
//! nothing half-owned: the next claim, allocation or check resolves them.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{cfg, ip, memory, net, FaultyStore};
use ipam::{AffinityRecord, AffinityState, Allocator, BlockIssueKind, IpamError, Request, Store};

fn affinity(store: &Arc<dyn Store>, key: &str) -> Option<AffinityState> {
    store.get(key).unwrap().map(|(raw, _)| {
        serde_json::from_slice::<AffinityRecord>(&raw)
            .unwrap()
            .state
    })
}

fn block_kinds(a: &Allocator) -> Vec<BlockIssueKind> {
    a.check(None)
        .unwrap()
        .block_issues
        .into_iter()
        .map(|i| i.kind)
        .collect()
}

/// Fails the write that confirms an affinity (the claim's last step).
fn fail_confirming(faulty: &FaultyStore) {
    faulty.fail_when(|key, _, new| {
        key.starts_with("affinity/")
            && new.is_some_and(|v| String::from_utf8_lossy(v).contains("confirmed"))
    });
}

/// n1's affinity for the pool's first block is confirmed and `a` finds nothing to report.
fn assert_first_block_confirmed(inner: &Arc<dyn Store>, a: &Allocator) {
    assert_eq!(
        affinity(inner, "affinity/n1/10.0.0.0/26"),
        Some(AffinityState::Confirmed)
    );
    assert!(a.check(None).unwrap().is_clean());
}

#[test]
fn crash_after_pending_affinity_is_resolved_on_next_claim() {
    let inner = memory();
    let faulty = Arc::new(FaultyStore::new(inner.clone()));
    // Die right before step 2 (block creation).
    faulty.fail_when(|key, expected, _| key.starts_with("blocks/") && expected.is_none());
    let c = cfg(&[("10.0.0.0/24", 26)]);
    let crashed = Allocator::new(faulty.clone(), "n1", c.clone()).unwrap();
    assert!(matches!(
        crashed.allocate(&Request::new("h1")),
        Err(IpamError::Store(_))
    ));
    assert_eq!(
        affinity(&inner, "affinity/n1/10.0.0.0/26"),
        Some(AffinityState::Pending)
    );
    assert!(inner.get("blocks/10.0.0.0/26").unwrap().is_none());

    let restarted = Allocator::new(inner.clone(), "n1", c).unwrap();
    assert_eq!(
        block_kinds(&restarted),
        vec![BlockIssueKind::PendingWithoutBlock]
    );
    let got = restarted.allocate(&Request::new("h1")).unwrap();
    assert_eq!(got.ip, ip("10.0.0.0"));
    assert_first_block_confirmed(&inner, &restarted);
}

#[test]
fn crash_after_block_creation_confirms_the_block() {
    let inner = memory();
    let faulty = Arc::new(FaultyStore::new(inner.clone()));
    // Die right before step 3 (confirming the affinity).
    fail_confirming(&faulty);
    let c = cfg(&[("10.0.0.0/24", 26)]);
    let crashed = Allocator::new(faulty.clone(), "n1", c.clone()).unwrap();
    assert!(crashed.allocate(&Request::new("h1")).is_err());
    assert_eq!(
        affinity(&inner, "affinity/n1/10.0.0.0/26"),
        Some(AffinityState::Pending)
    );
    let restarted = Allocator::new(inner.clone(), "n1", c.clone()).unwrap();
    assert_eq!(
        block_kinds(&restarted),
        vec![BlockIssueKind::PendingNotConfirmed]
    );

    // Another node can neither take the block nor trip over the leftover.
    let other = Allocator::new(inner.clone(), "n2", c).unwrap();
    assert_eq!(
        other.allocate(&Request::new("x")).unwrap().block,
        net("10.0.0.64/26")
    );

    // The next allocation on n1 finds the block its own and confirms it.
    let got = restarted.allocate(&Request::new("h1")).unwrap();
    assert_eq!((got.block, got.borrowed), (net("10.0.0.0/26"), false));
    assert_first_block_confirmed(&inner, &restarted);
}

/// The claim fails at its last step (the store went away right then: a member died, a link
/// was cut) and the same allocator goes on: its next allocation, even one the fast batch path
/// could place in the block it just created, first settles the pending affinity.
#[test]
fn failed_confirm_is_settled_by_the_same_allocators_next_batch() {
    let inner = memory();
    let faulty = Arc::new(FaultyStore::new(inner.clone()));
    fail_confirming(&faulty);
    let c = cfg(&[("10.0.0.0/24", 26)]);
    let a = Allocator::new(faulty.clone(), "n1", c).unwrap();
    let first = a.allocate_many(&[Request::new("h1")]);
    assert!(
        matches!(first.as_slice(), [Err(IpamError::Store(_))]),
        "{first:?}"
    );
    assert_eq!(block_kinds(&a), vec![BlockIssueKind::PendingNotConfirmed]);

    *faulty.fault.lock().unwrap() = None;
    let again = a.allocate_many(&[Request::new("h2"), Request::new("h3")]);
    let blocks: Vec<_> = again
        .iter()
        .map(|r| r.as_ref().map(|g| g.block).map_err(ToString::to_string))
        .collect();
    assert_eq!(blocks, vec![Ok(net("10.0.0.0/26")), Ok(net("10.0.0.0/26"))]);
    assert_first_block_confirmed(&inner, &a);
}

/// The block write of a claim ahead of need lands but its answer is lost (what CI saw: etcd
/// committed it while the node's link was being cut). The same allocator must neither leave
/// that block pending nor claim yet another one: the block is its own, and is used next.
#[test]
fn claim_whose_block_write_landed_unanswered_is_used_not_wasted() {
    let inner = memory();
    let faulty = Arc::new(FaultyStore {
        land_then_fail: true,
        ..FaultyStore::new(inner.clone())
    });
    let c = cfg(&[("10.0.0.0/24", 28)]);
    let a = Allocator::new(faulty.clone(), "n1", c).unwrap();
    let first: Vec<Request> = (0..10).map(|i| Request::new(format!("a{i}"))).collect();
    assert!(a.allocate_many(&first).iter().all(Result::is_ok));
    // Six addresses left in 10.0.0.0/28: time to claim ahead, and that claim's block write
    // is lost on the way back.
    faulty.fail_when(|key, expected, _| key.starts_with("blocks/") && expected.is_none());
    assert!(matches!(a.claim_ahead(), Err(IpamError::Store(_))));
    assert!(inner.get("blocks/10.0.0.16/28").unwrap().is_some());

    *faulty.fault.lock().unwrap() = None;
    // The agent claims ahead again after its next batch: not another block.
    assert_eq!(a.claim_ahead().unwrap(), vec![]);
    let next: Vec<Request> = (0..10).map(|i| Request::new(format!("b{i}"))).collect();
    let got = a.allocate_many(&next);
    let _ = a.claim_ahead();
    let blocks: HashSet<_> = got
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|g| g.block))
        .collect();
    assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 10, "{got:?}");
    assert_eq!(
        blocks,
        HashSet::from([net("10.0.0.0/28"), net("10.0.0.16/28")])
    );
    assert!(a.check(None).unwrap().is_clean());
    let stored: Vec<String> = inner
        .list("blocks/")
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        stored.len(),
        2,
        "blocks claimed for 20 addresses: {stored:?}"
    );
}

#[test]
fn check_release_resolves_pending_affinity_without_allocating() {
    let inner = memory();
    let faulty = Arc::new(FaultyStore::new(inner.clone()));
    faulty.fail_when(|key, expected, _| key.starts_with("blocks/") && expected.is_none());
    let c = cfg(&[("10.0.0.0/24", 26)]);
    assert!(Allocator::new(faulty, "n1", c.clone())
        .unwrap()
        .allocate(&Request::new("h"))
        .is_err());
    let restarted = Allocator::new(inner.clone(), "n1", c).unwrap();
    let report = restarted.check_release(None).unwrap();
    assert_eq!(report.block_issues.len(), 1);
    assert!(restarted.check(None).unwrap().is_clean());
    assert!(inner.list("affinity/").unwrap().is_empty());
}

#[test]
fn crash_during_an_allocation_leaves_nothing_behind() {
    let inner = memory();
    let faulty = Arc::new(FaultyStore::new(inner.clone()));
    let c = cfg(&[("10.0.0.0/24", 26)]);
    let a = Allocator::new(faulty.clone(), "n1", c.clone()).unwrap();
    a.allocate(&Request::new("first")).unwrap();
    // Die when updating the (existing) block with the second allocation: the handle record
    // goes in the same transaction, so neither is written.
    faulty.fail_when(|key, expected, _| key.starts_with("blocks/") && expected.is_some());
    assert!(a.allocate(&Request::new("h2")).is_err());
    assert!(inner.get("handles/h2").unwrap().is_none());
    let restarted = Allocator::new(inner.clone(), "n1", c).unwrap();
    assert!(restarted.check(None).unwrap().is_clean());
    assert!(restarted.handle_allocations("h2").unwrap().is_empty());
    // Retrying the allocation (what CNI does) gets the next address.
    let got = restarted.allocate(&Request::new("h2")).unwrap();
    assert_eq!(got.ip, ip("10.0.0.1"));
    assert!(restarted.check(None).unwrap().is_clean());
}

#[test]
fn dangling_handle_entry_is_ignored_reported_and_overwritten() {
    // What a crash between the two writes of an older version left: a handle entry naming
    // an address its block does not carry.
    let inner = memory();
    let c = cfg(&[("10.0.0.0/24", 26)]);
    let a = Allocator::new(inner.clone(), "n1", c.clone()).unwrap();
    a.allocate(&Request::new("first")).unwrap();
    let mut rec = ipam::HandleRecord::default();
    rec.set(
        ipam::Family::V4,
        Some(ipam::HandleAddr {
            ip: ip("10.0.0.1"),
            block: "10.0.0.0/26".parse().unwrap(),
            seq: 2,
        }),
    );
    inner
        .compare_and_swap("handles/h2", None, Some(serde_json::to_vec(&rec).unwrap()))
        .unwrap();
    let restarted = Allocator::new(inner.clone(), "n1", c).unwrap();
    let report = restarted.check(None).unwrap();
    assert_eq!(report.dangling_handles.len(), 1);
    assert!(report.leaked.is_empty());
    // The handle's entry is not taken for a live allocation.
    assert!(restarted.handle_allocations("h2").unwrap().is_empty());
    // Retrying the allocation (what CNI does) overwrites it.
    let got = restarted.allocate(&Request::new("h2")).unwrap();
    assert_eq!(got.ip, ip("10.0.0.1"));
    assert!(restarted.check(None).unwrap().is_clean());
}

#[test]
fn crash_during_a_release_leaves_the_allocation_whole() {
    let inner = memory();
    let faulty = Arc::new(FaultyStore::new(inner.clone()));
    let c = cfg(&[("10.0.0.0/24", 26)]);
    let a = Allocator::new(faulty.clone(), "n1", c.clone()).unwrap();
    let got = a.allocate(&Request::new("h")).unwrap();
    // Die deleting the handle: the block goes in the same transaction, so neither changes.
    faulty.fail_when(|key, _, new| key.starts_with("handles/") && new.is_none());
    assert!(a.release_handle("h").is_err());
    let restarted = Allocator::new(inner.clone(), "n1", c).unwrap();
    assert!(restarted.check(None).unwrap().is_clean());
    assert_eq!(
        restarted.handle_allocations("h").unwrap(),
        vec![got.clone()]
    );
    // The retried release (what CNI DEL does) finishes the job.
    assert_eq!(restarted.release_handle("h").unwrap(), vec![got.ip]);
    assert!(restarted.check(None).unwrap().is_clean());
    assert_eq!(
        restarted.allocate(&Request::new("next")).unwrap().ip,
        got.ip
    );
}

#[test]
fn a_handle_entry_left_by_a_half_release_is_finished_by_the_next() {
    // What a crash between the two writes of an older version's release left: the address
    // free in its block, the handle still naming it.
    let inner = memory();
    let c = cfg(&[("10.0.0.0/24", 26)]);
    let a = Allocator::new(inner.clone(), "n1", c.clone()).unwrap();
    let got = a.allocate(&Request::new("h")).unwrap();
    let handle = inner.get("handles/h").unwrap().unwrap();
    a.release_handle("h").unwrap();
    inner
        .compare_and_swap("handles/h", None, Some(handle.0))
        .unwrap();
    let restarted = Allocator::new(inner.clone(), "n1", c).unwrap();
    assert_eq!(restarted.check(None).unwrap().dangling_handles.len(), 1);
    // The address is already free; the retried release finishes the job.
    assert_eq!(
        restarted.release_handle("h").unwrap(),
        Vec::<std::net::IpAddr>::new()
    );
    assert!(restarted.check(None).unwrap().is_clean());
    assert_eq!(
        restarted.allocate(&Request::new("next")).unwrap().ip,
        got.ip
    );
}

#[test]
fn crash_during_block_release_leaves_affinity_that_is_dropped() {
    use std::time::{Duration, UNIX_EPOCH};
    let inner = memory();
    let faulty = Arc::new(FaultyStore::new(inner.clone()));
    let c = cfg(&[("10.0.0.0/29", 30)]);
    let a = Allocator::new(faulty.clone(), "n1", c.clone()).unwrap();
    for i in 0..5 {
        a.allocate(&Request::new(format!("h{i}"))).unwrap();
    }
    a.release_handle("h4").unwrap();
    a.release_empty_blocks(UNIX_EPOCH).unwrap();
    faulty.fail_when(|key, _, new| key.starts_with("affinity/") && new.is_none());
    assert!(a
        .release_empty_blocks(UNIX_EPOCH + Duration::from_secs(60))
        .is_err());
    let restarted = Allocator::new(inner.clone(), "n1", c).unwrap();
    assert_eq!(
        restarted
            .check(None)
            .unwrap()
            .block_issues
            .into_iter()
            .map(|i| i.kind)
            .collect::<Vec<_>>(),
        vec![BlockIssueKind::AffinityWithoutBlock]
    );
    restarted.check_release(None).unwrap();
    assert!(restarted.check(None).unwrap().is_clean());
    assert_eq!(
        restarted.owned_blocks("n1").unwrap(),
        vec![net("10.0.0.0/30")]
    );
}
