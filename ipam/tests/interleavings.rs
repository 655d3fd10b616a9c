//! Property: any interleaving of allocate / release / sweep across three nodes (separate
//! allocators on one shared store) keeps every address unique and every count consistent, and
//! matches a simple model of which handle holds which address.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use common::{cfg, memory};
use ipam::{Allocator, Block, Family, HandleRecord, IpamError, Request, Store};
use proptest::prelude::*;

const NODES: usize = 3;
const POOL_SIZE: usize = 16; // per family: 4 blocks of 4

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        node: usize,
        handle: u8,
        v6: bool,
    },
    AllocIp {
        node: usize,
        handle: u8,
        v6: bool,
        offset: u8,
    },
    ReleaseHandle {
        node: usize,
        handle: u8,
    },
    ReleaseIp {
        node: usize,
        v6: bool,
        offset: u8,
        stale: bool,
    },
    Sweep {
        node: usize,
        advance: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0..NODES;
    prop_oneof![
        4 => (node.clone(), 0..24u8, any::<bool>()).prop_map(|(node, handle, v6)| Op::Alloc { node, handle, v6 }),
        1 => (node.clone(), 0..24u8, any::<bool>(), 0..16u8).prop_map(|(node, handle, v6, offset)| Op::AllocIp { node, handle, v6, offset }),
        2 => (node.clone(), 0..24u8).prop_map(|(node, handle)| Op::ReleaseHandle { node, handle }),
        1 => (node.clone(), any::<bool>(), 0..16u8, any::<bool>()).prop_map(|(node, v6, offset, stale)| Op::ReleaseIp { node, v6, offset, stale }),
        1 => (node, 0..25u64).prop_map(|(node, advance)| Op::Sweep { node, advance }),
    ]
}

fn pool_ip(v6: bool, offset: u8) -> IpAddr {
    if v6 {
        format!("fd00::{offset:x}").parse().unwrap()
    } else {
        format!("10.0.0.{offset}").parse().unwrap()
    }
}

fn family(v6: bool) -> Family {
    if v6 {
        Family::V6
    } else {
        Family::V4
    }
}

/// Model: (handle, family) → (address, sequence number).
type Model = BTreeMap<Key, (IpAddr, u64)>;
type Key = (String, Family);

fn holder(model: &Model, ip: IpAddr) -> Option<(&Key, &(IpAddr, u64))> {
    model.iter().find(|(_, (a, _))| *a == ip)
}

fn check_invariants(store: &dyn Store, a: &Allocator, model: &Model) {
    let mut seen = HashSet::new();
    let mut from_blocks = Model::new();
    for e in store.list("blocks/").unwrap() {
        let b: Block = serde_json::from_slice(&e.value).unwrap();
        assert!(b.is_consistent(), "bitmap/records disagree in {}", b.cidr);
        assert_eq!(b.used() as usize, b.allocations.len());
        for (&o, rec) in &b.allocations {
            let ip = b.ip(o);
            assert!(seen.insert(ip), "{ip} allocated twice");
            assert!(b.cidr.contains(ip));
            from_blocks.insert((rec.handle.clone(), Family::of_ip(ip)), (ip, rec.seq));
        }
    }
    assert_eq!(&from_blocks, model, "blocks disagree with the model");
    // Handles ↔ allocations.
    let mut from_handles = Model::new();
    for e in store.list("handles/").unwrap() {
        let h: HandleRecord = serde_json::from_slice(&e.value).unwrap();
        let id = e.key.trim_start_matches("handles/").to_string();
        assert!(!h.is_empty(), "empty handle record {id}");
        for entry in h.entries() {
            from_handles.insert((id.clone(), Family::of_ip(entry.ip)), (entry.ip, entry.seq));
        }
    }
    assert_eq!(
        &from_handles, model,
        "handle records disagree with the model"
    );
    // Counts add up per block and per pool.
    for pool in a.show().unwrap() {
        let fam = Family::of_net(pool.pool);
        let used = model.keys().filter(|(_, f)| *f == fam).count() as u128;
        assert_eq!(pool.used, used);
        assert_eq!(pool.used + pool.reserved + pool.free, pool.size);
        for b in &pool.blocks {
            assert_eq!(b.used + b.reserved + b.free, b.size);
        }
    }
    let report = a.check(None).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

fn run(ops: Vec<Op>) {
    let store = memory();
    let c = cfg(&[("10.0.0.0/28", 30), ("fd00::/124", 126)]);
    let nodes: Vec<Allocator> = (0..NODES)
        .map(|i| Allocator::new(store.clone(), &format!("node{i}"), c.clone()).unwrap())
        .collect();
    let mut model = Model::new();
    let mut now = 1_000u64;
    for op in ops {
        match op {
            Op::Alloc { node, handle, v6 } => {
                let h = format!("h{handle}");
                let key = (h.clone(), family(v6));
                let got = nodes[node].allocate(&Request::new(&h).family(family(v6)));
                let used = model.keys().filter(|(_, f)| *f == family(v6)).count();
                match (model.get(&key), got) {
                    (Some(&(ip, seq)), Ok(a)) => {
                        assert_eq!((a.ip, a.seq), (ip, seq), "not idempotent")
                    }
                    (None, Ok(a)) => {
                        assert!(holder(&model, a.ip).is_none(), "{} handed out twice", a.ip);
                        model.insert(key, (a.ip, a.seq));
                    }
                    (None, Err(IpamError::PoolExhausted { .. })) => {
                        assert_eq!(used, POOL_SIZE, "exhausted too early")
                    }
                    (_, Err(e)) => panic!("unexpected {e}"),
                }
            }
            Op::AllocIp {
                node,
                handle,
                v6,
                offset,
            } => {
                let h = format!("h{handle}");
                let want = pool_ip(v6, offset);
                let key = (h.clone(), family(v6));
                let got = nodes[node].allocate(&Request::new(&h).ip(want));
                match (model.get(&key), holder(&model, want), got) {
                    (Some(&(ip, _)), _, Ok(a)) => assert_eq!((ip, a.ip), (want, want)),
                    (Some(_), _, Err(IpamError::HandleHasAddress { .. })) => {}
                    (None, Some((k, _)), Err(IpamError::AddressInUse { handle, .. })) => {
                        assert_eq!(handle, k.0)
                    }
                    (None, None, Ok(a)) => {
                        assert_eq!(a.ip, want);
                        model.insert(key, (a.ip, a.seq));
                    }
                    (m, h, r) => {
                        panic!("AllocIp {want} for {key:?}: model {m:?} holder {h:?} got {r:?}")
                    }
                }
            }
            Op::ReleaseHandle { node, handle } => {
                let h = format!("h{handle}");
                let mut want: Vec<IpAddr> = [Family::V4, Family::V6]
                    .iter()
                    .filter_map(|f| model.remove(&(h.clone(), *f)).map(|(ip, _)| ip))
                    .collect();
                let mut got = nodes[node].release_handle(&h).unwrap();
                want.sort();
                got.sort();
                assert_eq!(got, want);
            }
            Op::ReleaseIp {
                node,
                v6,
                offset,
                stale,
            } => {
                let ip = pool_ip(v6, offset);
                let held = holder(&model, ip).map(|(k, v)| (k.clone(), *v));
                let seq = held
                    .as_ref()
                    .map(|(_, (_, s))| if stale { s + 1 } else { *s });
                let got = nodes[node].release_ip(ip, seq);
                match (held, got) {
                    (None, Ok(None)) => {}
                    (Some(_), Err(IpamError::StaleSequence { .. })) if stale => {}
                    (Some((k, (_, s))), Ok(Some(r))) if !stale => {
                        assert_eq!((r.handle.as_str(), r.seq), (k.0.as_str(), s));
                        model.remove(&k);
                    }
                    (h, r) => panic!("ReleaseIp {ip} stale={stale}: held {h:?} got {r:?}"),
                }
            }
            Op::Sweep { node, advance } => {
                now += advance;
                let released = nodes[node]
                    .release_empty_blocks(UNIX_EPOCH + Duration::from_secs(now))
                    .unwrap();
                for cidr in released {
                    assert!(
                        model.values().all(|(ip, _)| !cidr.contains(*ip)),
                        "released non-empty {cidr}"
                    );
                }
            }
        }
        check_invariants(store.as_ref(), &nodes[0], &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn interleavings_keep_addresses_unique_and_counts_consistent(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops);
    }
}
