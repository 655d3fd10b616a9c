//! One test per allocation rule, on `MemoryStore`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{alloc, cfg, ip, memory, net};
use ipam::{Allocator, ConfigError, Family, IpamConfig, IpamError, Pool, Request};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn first_allocation_claims_a_block() {
    let store = memory();
    let a = alloc(&store, "n1", &cfg(&[("10.244.0.0/16", 26)]));
    let got = a
        .allocate(&Request::new("h1").attr("container", "c1"))
        .unwrap();
    assert_eq!(got.ip, ip("10.244.0.0"));
    assert_eq!(got.prefix_len, 32);
    assert_eq!(got.block, net("10.244.0.0/26"));
    assert_eq!(got.pool, Some(net("10.244.0.0/16")));
    assert!(!got.borrowed);
    assert_eq!(got.seq, 1);
    assert_eq!(a.owned_blocks("n1").unwrap(), vec![net("10.244.0.0/26")]);
    let second = a.allocate(&Request::new("h2")).unwrap();
    assert_eq!((second.ip, second.seq), (ip("10.244.0.1"), 2));
    let usage = a.show().unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (usage[0].size, usage[0].used, usage[0].free),
        (65536, 2, 65534)
    );
    let b = &usage[0].blocks[0];
    assert_eq!(
        (b.owner.as_deref(), b.size, b.used, b.free),
        (Some("n1"), 64, 2, 62)
    );
    assert!(a.check(None).unwrap().is_clean());
}

#[test]
fn handle_is_idempotent_per_family_and_holds_one_of_each() {
    let store = memory();
    let a = alloc(
        &store,
        "n1",
        &cfg(&[("10.0.0.0/24", 26), ("fd00::/120", 122)]),
    );
    let v4 = a.allocate(&Request::new("h")).unwrap();
    let again = a.allocate(&Request::new("h")).unwrap();
    assert_eq!(v4, again);
    let v6 = a.allocate(&Request::new("h").family(Family::V6)).unwrap();
    assert_eq!(v6.ip, ip("fd00::"));
    assert_eq!(v6.prefix_len, 128);
    assert_eq!(
        a.allocate(&Request::new("h").family(Family::V6)).unwrap(),
        v6
    );
    // Asking for a specific address the handle already holds is fine; another one is not.
    assert_eq!(a.allocate(&Request::new("h").ip(v4.ip)).unwrap(), v4);
    assert!(matches!(
        a.allocate(&Request::new("h").ip(ip("10.0.0.9"))),
        Err(IpamError::HandleHasAddress { existing, .. }) if existing == v4.ip
    ));
    assert_eq!(
        a.handle_allocations("h").unwrap(),
        vec![v4.clone(), v6.clone()]
    );
    assert_eq!(a.release_handle("h").unwrap(), vec![v4.ip, v6.ip]);
    assert_eq!(
        a.release_handle("h").unwrap(),
        Vec::<std::net::IpAddr>::new()
    );
    assert!(a.handle_allocations("h").unwrap().is_empty());
    assert!(a.check(None).unwrap().is_clean());
}

#[test]
fn release_by_address_is_idempotent_and_refuses_stale_sequence() {
    let store = memory();
    let a = alloc(&store, "n1", &cfg(&[("10.0.0.0/24", 26)]));
    let first = a.allocate(&Request::new("h1")).unwrap();
    let released = a.release_ip(first.ip, Some(first.seq)).unwrap().unwrap();
    assert_eq!((released.handle.as_str(), released.seq), ("h1", first.seq));
    assert_eq!(a.release_ip(first.ip, Some(first.seq)).unwrap(), None);
    // The handle record went with the address.
    assert!(a.handle_allocations("h1").unwrap().is_empty());
    // The address is reused with a new sequence number...
    let reused = a.allocate(&Request::new("h2")).unwrap();
    assert_eq!(reused.ip, first.ip);
    assert!(reused.seq > first.seq);
    // ...so a late release of the first allocation must not free it.
    match a.release_ip(first.ip, Some(first.seq)) {
        Err(IpamError::StaleSequence { given, current, .. }) => {
            assert_eq!((given, current), (first.seq, reused.seq))
        }
        other => panic!("expected StaleSequence, got {other:?}"),
    }
    assert_eq!(a.handle_allocations("h2").unwrap(), vec![reused.clone()]);
    // Nor a release by the old handle.
    assert_eq!(
        a.release_handle("h1").unwrap(),
        Vec::<std::net::IpAddr>::new()
    );
    assert_eq!(a.handle_allocations("h2").unwrap(), vec![reused.clone()]);
    // Without a sequence number the release is unconditional.
    assert_eq!(a.release_ip(reused.ip, None).unwrap().unwrap().handle, "h2");
    assert_eq!(a.release_ip(ip("10.0.0.200"), None).unwrap(), None);
    assert_eq!(a.release_ip(ip("192.0.2.1"), None).unwrap(), None);
    assert!(a.check(None).unwrap().is_clean());
}

#[test]
fn reservations_are_never_handed_out() {
    let store = memory();
    let mut c = cfg(&[("10.0.0.0/24", 26)]);
    c.reservations = vec![net("10.0.0.0/30"), net("10.0.0.64/26")];
    let a = alloc(&store, "n1", &c);
    assert_eq!(a.allocate(&Request::new("h1")).unwrap().ip, ip("10.0.0.4"));
    assert!(matches!(
        a.allocate(&Request::new("h2").ip(ip("10.0.0.2"))),
        Err(IpamError::Reserved(_))
    ));
    // Fill the first block: the next claim skips the fully reserved 10.0.0.64/26.
    for i in 0..59 {
        a.allocate(&Request::new(format!("f{i}"))).unwrap();
    }
    let next = a.allocate(&Request::new("next")).unwrap();
    assert_eq!(
        (next.ip, next.block),
        (ip("10.0.0.128"), net("10.0.0.128/26"))
    );
    let usage = &a.show().unwrap()[0];
    assert_eq!(
        (usage.size, usage.used, usage.reserved, usage.free),
        (256, 61, 68, 127)
    );
    let first = &usage.blocks[0];
    assert_eq!((first.used, first.reserved, first.free), (60, 4, 0));
}

#[test]
fn borrowing_from_another_nodes_block() {
    let store = memory();
    let c = cfg(&[("10.0.0.0/29", 30)]);
    let (a, b) = (alloc(&store, "a", &c), alloc(&store, "b", &c));
    for i in 0..4 {
        assert!(!a.allocate(&Request::new(format!("a{i}"))).unwrap().borrowed);
    }
    let b0 = b.allocate(&Request::new("b0")).unwrap();
    assert_eq!(b0.block, net("10.0.0.4/30"));
    // a's block is full and there is no free block: borrow from b's.
    let borrowed = a.allocate(&Request::new("a4")).unwrap();
    assert!(borrowed.borrowed);
    assert_eq!(
        (borrowed.ip, borrowed.block),
        (ip("10.0.0.5"), net("10.0.0.4/30"))
    );
    assert_eq!(a.owned_blocks("a").unwrap(), vec![net("10.0.0.0/30")]);
    assert_eq!(a.borrowed_addresses("a").unwrap(), vec![ip("10.0.0.5")]);
    assert_eq!(
        a.borrowed_addresses("b").unwrap(),
        Vec::<std::net::IpAddr>::new()
    );
    assert_eq!(b.owned_blocks("b").unwrap(), vec![net("10.0.0.4/30")]);
    let a_addrs: Vec<_> = ["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5"]
        .map(ip)
        .to_vec();
    assert_eq!(a.node_addresses("a").unwrap(), a_addrs);
    assert_eq!(a.node_addresses("b").unwrap(), vec![ip("10.0.0.4")]);
    // b keeps using its own block.
    assert_eq!(b.allocate(&Request::new("b1")).unwrap().ip, ip("10.0.0.6"));
    b.allocate(&Request::new("b2")).unwrap();
    match a.allocate(&Request::new("a5")) {
        Err(e @ IpamError::PoolExhausted { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("exhausted") && msg.contains("nothing to borrow"),
                "{msg}"
            );
        }
        other => panic!("expected PoolExhausted, got {other:?}"),
    }
    assert!(a.check(None).unwrap().is_clean());
}

#[test]
fn strict_affinity_never_borrows() {
    let store = memory();
    let mut c = cfg(&[("10.0.0.0/29", 30)]);
    c.strict_affinity = true;
    let (a, b) = (alloc(&store, "a", &c), alloc(&store, "b", &c));
    for i in 0..4 {
        a.allocate(&Request::new(format!("a{i}"))).unwrap();
    }
    b.allocate(&Request::new("b0")).unwrap();
    assert!(matches!(
        a.allocate(&Request::new("a4")),
        Err(IpamError::PoolExhausted { borrow, .. }) if borrow.contains("strict")
    ));
    assert!(matches!(
        a.allocate(&Request::new("a4").ip(ip("10.0.0.6"))),
        Err(IpamError::BlockNotAffine { owner, .. }) if owner == "b"
    ));
}

#[test]
fn max_blocks_per_node_limits_claims() {
    let store = memory();
    let mut c = cfg(&[("10.0.0.0/28", 30)]);
    c.max_blocks_per_node = Some(1);
    let (a, b) = (alloc(&store, "a", &c), alloc(&store, "b", &c));
    for i in 0..4 {
        a.allocate(&Request::new(format!("a{i}"))).unwrap();
    }
    assert!(matches!(
        a.allocate(&Request::new("a4")),
        Err(IpamError::PoolExhausted { limit, .. }) if limit.contains("limit")
    ));
    b.allocate(&Request::new("b0")).unwrap();
    // Over the limit, a may still borrow.
    assert!(a.allocate(&Request::new("a4")).unwrap().borrowed);
    assert_eq!(a.owned_blocks("a").unwrap().len(), 1);
}

#[test]
fn specific_address_claims_its_block_and_refuses_duplicates() {
    let store = memory();
    let a = alloc(&store, "n1", &cfg(&[("10.0.0.0/24", 26)]));
    let got = a.allocate(&Request::new("h1").ip(ip("10.0.0.70"))).unwrap();
    assert_eq!(
        (got.ip, got.block, got.borrowed),
        (ip("10.0.0.70"), net("10.0.0.64/26"), false)
    );
    assert_eq!(a.owned_blocks("n1").unwrap(), vec![net("10.0.0.64/26")]);
    assert!(matches!(
        a.allocate(&Request::new("h2").ip(ip("10.0.0.70"))),
        Err(IpamError::AddressInUse { handle, .. }) if handle == "h1"
    ));
    assert!(matches!(
        a.allocate(&Request::new("h2").ip(ip("10.1.0.1"))),
        Err(IpamError::NotInPool(_))
    ));
    // Automatic allocation now uses the owned block first.
    assert_eq!(a.allocate(&Request::new("h3")).unwrap().ip, ip("10.0.0.64"));
    assert!(a.check(None).unwrap().is_clean());
}

#[test]
fn pool_choice_disabled_pools_and_family_checks() {
    let store = memory();
    let mut c = cfg(&[
        ("10.0.0.0/24", 26),
        ("10.1.0.0/24", 26),
        ("fd00::/120", 122),
    ]);
    c.pools[0].disabled = true;
    let a = alloc(&store, "n1", &c);
    assert_eq!(
        a.allocate(&Request::new("h1")).unwrap().pool,
        Some(net("10.1.0.0/24"))
    );
    assert!(matches!(
        a.allocate(&Request::new("h2").pool(net("10.0.0.0/24"))),
        Err(IpamError::PoolDisabled(_))
    ));
    assert!(matches!(
        a.allocate(&Request::new("h2").pool(net("10.9.0.0/24"))),
        Err(IpamError::UnknownPool(_))
    ));
    assert!(matches!(
        a.allocate(&Request::new("h2").ip(ip("10.0.0.5"))),
        Err(IpamError::PoolDisabled(_))
    ));
    assert!(matches!(
        a.allocate(&Request::new("h2").family(Family::V6).ip(ip("10.1.0.5"))),
        Err(IpamError::FamilyMismatch(_))
    ));
    // The pool's family implies the request's.
    assert_eq!(
        a.allocate(&Request::new("h2").pool(net("fd00::/120")))
            .unwrap()
            .ip,
        ip("fd00::")
    );
    assert!(matches!(
        a.allocate(&Request::new("")),
        Err(IpamError::InvalidHandle(_))
    ));
    let v4_only = alloc(&memory(), "n1", &cfg(&[("10.0.0.0/24", 26)]));
    assert!(matches!(
        v4_only.allocate(&Request::new("h").family(Family::V6)),
        Err(IpamError::NoPool(Family::V6))
    ));
}

#[test]
fn constructor_validates_node_and_config() {
    let store = memory();
    assert!(matches!(
        Allocator::new(store.clone(), "a/b", IpamConfig::default()),
        Err(IpamError::InvalidNode(_))
    ));
    assert!(matches!(
        Allocator::new(store.clone(), "", IpamConfig::default()),
        Err(IpamError::InvalidNode(_))
    ));
    let overlapping = IpamConfig::with_pools(vec![
        Pool::new(net("10.0.0.0/8")),
        Pool::new(net("10.1.0.0/16")),
    ]);
    assert!(matches!(
        Allocator::new(store, "n", overlapping),
        Err(IpamError::Config(ConfigError::Overlap(..)))
    ));
}

#[test]
fn ipv6_blocks_and_borrowing() {
    let store = memory();
    let c = cfg(&[("fd00:1::/126", 127)]);
    let (a, b) = (alloc(&store, "a", &c), alloc(&store, "b", &c));
    let a0 = a.allocate(&Request::new("a0").family(Family::V6)).unwrap();
    assert_eq!((a0.ip, a0.block), (ip("fd00:1::"), net("fd00:1::/127")));
    let b0 = b.allocate(&Request::new("b0").family(Family::V6)).unwrap();
    assert_eq!(b0.block, net("fd00:1::2/127"));
    a.allocate(&Request::new("a1").family(Family::V6)).unwrap();
    let a2 = a.allocate(&Request::new("a2").family(Family::V6)).unwrap();
    assert!(a2.borrowed);
    assert_eq!(a2.ip, ip("fd00:1::3"));
    assert!(matches!(
        a.allocate(&Request::new("a3").family(Family::V6)),
        Err(IpamError::PoolExhausted {
            family: Family::V6,
            ..
        })
    ));
}

#[test]
fn empty_blocks_released_after_grace_except_the_last() {
    let store = memory();
    let c = cfg(&[("10.0.0.0/29", 30)]); // grace 10 s
    let a = alloc(&store, "a", &c);
    for i in 0..5 {
        a.allocate(&Request::new(format!("h{i}"))).unwrap();
    }
    assert_eq!(a.owned_blocks("a").unwrap().len(), 2);
    a.release_handle("h4").unwrap();
    assert_eq!(
        a.release_empty_blocks(at(1000)).unwrap(),
        Vec::<ipnetwork::IpNetwork>::new()
    ); // stamps 10.0.0.4/30
    assert_eq!(
        a.release_empty_blocks(at(1009)).unwrap(),
        Vec::<ipnetwork::IpNetwork>::new()
    );
    // An allocation in between resets the stamp.
    let again = a.allocate(&Request::new("h4")).unwrap();
    assert_eq!(again.block, net("10.0.0.4/30"));
    a.release_handle("h4").unwrap();
    assert_eq!(
        a.release_empty_blocks(at(1010)).unwrap(),
        Vec::<ipnetwork::IpNetwork>::new()
    ); // fresh stamp
    assert_eq!(
        a.release_empty_blocks(at(1020)).unwrap(),
        vec![net("10.0.0.4/30")]
    );
    assert_eq!(a.owned_blocks("a").unwrap(), vec![net("10.0.0.0/30")]);
    // The last block stays even when empty.
    for i in 0..4 {
        a.release_handle(&format!("h{i}")).unwrap();
    }
    a.release_empty_blocks(at(2000)).unwrap();
    assert_eq!(
        a.release_empty_blocks(at(3000)).unwrap(),
        Vec::<ipnetwork::IpNetwork>::new()
    );
    assert_eq!(a.owned_blocks("a").unwrap(), vec![net("10.0.0.0/30")]);
    assert!(a.check(None).unwrap().is_clean());
    // The released block can be claimed again.
    let b = alloc(&store, "b", &c);
    assert_eq!(
        b.allocate(&Request::new("b0")).unwrap().block,
        net("10.0.0.4/30")
    );
}

#[test]
fn check_reports_and_repairs_leaks_and_dangling_handles() {
    use ipam::{HandleAddr, HandleRecord, LeakReason};
    let store = memory();
    let a = alloc(&store, "n1", &cfg(&[("10.0.0.0/24", 26)]));
    let keep = a.allocate(&Request::new("keep")).unwrap();
    let orphan = a.allocate(&Request::new("orphan")).unwrap();
    let gone = a.allocate(&Request::new("gone")).unwrap();
    // Lose the handle record of "orphan".
    let (_, rev) = store.get("handles/orphan").unwrap().unwrap();
    store
        .compare_and_swap("handles/orphan", Some(rev), None)
        .unwrap();
    // A handle naming an address nobody allocated.
    let ghost = HandleRecord {
        v4: Some(HandleAddr {
            ip: ip("10.0.0.50"),
            block: net("10.0.0.0/26"),
            seq: 99,
        }),
        v6: None,
    };
    store
        .compare_and_swap(
            "handles/ghost",
            None,
            Some(serde_json::to_vec(&ghost).unwrap()),
        )
        .unwrap();

    let live: HashSet<String> = ["keep".to_string(), "orphan".to_string()].into();
    let report = a.check(Some(&live)).unwrap();
    let leaked: Vec<_> = report.leaked.iter().map(|l| (l.ip, l.reason)).collect();
    assert_eq!(
        leaked,
        vec![
            (orphan.ip, LeakReason::NoHandleRecord),
            (gone.ip, LeakReason::HandleNotLive)
        ]
    );
    assert_eq!(report.dangling_handles.len(), 1);
    assert_eq!(report.dangling_handles[0].handle, "ghost");
    assert!(report.block_issues.is_empty());
    // Without the live set only the real inconsistencies show.
    assert_eq!(a.check(None).unwrap().leaked.len(), 1);

    let acted = a.check_release(Some(&live)).unwrap();
    assert_eq!(acted, report);
    assert!(a.check(Some(&live)).unwrap().is_clean());
    assert_eq!(a.handle_allocations("keep").unwrap(), vec![keep]);
    assert!(a.handle_allocations("gone").unwrap().is_empty());
    assert_eq!(a.show().unwrap()[0].used, 1);
}

#[test]
fn node_holdings_is_the_four_views_in_one_read() {
    let store = memory();
    let mut c = cfg(&[("10.0.0.0/29", 30)]);
    c.max_blocks_per_node = Some(1);
    let a = alloc(&store, "a", &c);
    let b = alloc(&store, "b", &c);
    for i in 0..4 {
        a.allocate(&Request::new(format!("a{i}"))).unwrap();
    }
    b.allocate(&Request::new("b0")).unwrap();
    a.release_handle("a2").unwrap();
    // a's block has room again, but a is at its block limit and b borrows from it once b's
    // own block is full.
    for i in 1..5 {
        b.allocate(&Request::new(format!("b{i}"))).unwrap();
    }
    for node in ["a", "b"] {
        let h = a.node_holdings(node).unwrap();
        assert_eq!(h.owned_blocks, a.owned_blocks(node).unwrap());
        assert_eq!(h.borrowed, a.borrowed_addresses(node).unwrap());
        assert_eq!(h.lent, a.lent_addresses(node).unwrap());
        assert_eq!(h.addresses, a.node_addresses(node).unwrap());
    }
    let h = a.node_holdings("a").unwrap();
    assert_eq!(h.lent, vec![ip("10.0.0.2")]);
    assert_eq!(a.node_holdings("b").unwrap().borrowed, vec![ip("10.0.0.2")]);
}
