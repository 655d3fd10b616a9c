//! Cluster mode on etcd (issue 7, tests 1 and 2): a three-member etcd cluster and three
//! Bramble nodes, each in its own namespace on one LAN, every node's `[ipam] store = "etcd"`.
//!
//! - `three_nodes_allocate_concurrently_without_duplicates`: every node runs `bramble-ipam`
//!   ADDs at once (`ETCD_TEST_ADDS` per node, default 500, the figure): every
//!   ADD succeeds, all addresses are distinct, every block has one owner, `bramble ipam check`
//!   is clean on every node.
//! - `member_loss_and_node_cutoff`: one etcd member is SIGKILLed while the nodes allocate:
//!   every ADD still succeeds. Then one node's LAN link is cut: its ADDs fail within the
//!   configured bound (`etcd_timeout`, 5 s) with a spec-form CNI error and leave nothing in
//!   etcd, while the others go on; the link is healed, the node allocates again, no
//!   duplicates anywhere.
//!
//! Needs root, etcd/etcdctl, and `target/debug/bramble` + `target/debug/bramble-ipam`.

mod etcd_common;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use etcd_common::{
    add, added_ip, adds_per_node, assert_spec_error, concurrent_adds, network, AddOutcome, EtcdLab,
    PREFIX,
};
use interop_tests::require_bramble;

const POOL: &str = "10.90.0.0/16";

/// Every outcome succeeded; their addresses, all distinct.
fn distinct_ips(outcomes: &[AddOutcome]) -> Vec<IpAddr> {
    for o in outcomes {
        assert!(
            o.out.success(),
            "ADD {} on node{} failed after {:?}: {} {}",
            o.id,
            o.node,
            o.took,
            o.out.stdout,
            o.out.stderr
        );
    }
    let ips: Vec<IpAddr> = outcomes.iter().map(|o| added_ip(&o.out)).collect();
    let set: HashSet<&IpAddr> = ips.iter().collect();
    assert_eq!(set.len(), ips.len(), "duplicate addresses handed out");
    ips
}

fn assert_checks_clean(lab: &EtcdLab) {
    for i in 0..lab.nodes.len() {
        let report = lab.check(i);
        assert_eq!(report["clean"], true, "node{i}: {report}");
    }
}

/// Owner of each block, from `bramble ipam show` on node 0 (the store is shared).
fn block_owners(lab: &EtcdLab) -> BTreeMap<String, String> {
    let out = etcd_common::client(&lab.nodes[0].socket, &["ipam", "show", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["blocks"].as_array().cloned().unwrap_or_default())
        .map(|b| {
            (
                b["cidr"].as_str().unwrap_or_default().to_string(),
                b["owner"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn three_nodes_allocate_concurrently_without_duplicates() {
    require_bramble();
    let mut lab = EtcdLab::start("etcd-c1", 3);
    for _ in 0..3 {
        lab.add_node(POOL, 26, 5, |_| {});
    }
    let nets: Vec<_> = lab.nodes.iter().map(|n| network(&n.socket, POOL)).collect();
    let per_node = adds_per_node(500);
    let outcomes = concurrent_adds(&nets, "c1", per_node, 8);
    let ips = distinct_ips(&outcomes);
    assert_eq!(ips.len(), 3 * per_node);

    // Each node allocated from its own blocks: one owner per block, every node has some.
    let owners = block_owners(&lab);
    for i in 0..3 {
        let name = format!("node{i}");
        assert!(owners.values().any(|o| *o == name), "{owners:?}");
    }
    assert_eq!(lab.handle_keys().len(), 3 * per_node);
    assert_checks_clean(&lab);

    let mut took: Vec<Duration> = outcomes.iter().map(|o| o.took).collect();
    took.sort();
    eprintln!(
        "{} ADDs: p50 {:?}, p99 {:?}, max {:?}",
        took.len(),
        took[took.len() / 2],
        took[took.len() * 99 / 100],
        took[took.len() - 1]
    );
}

#[test]
fn member_loss_and_node_cutoff() {
    require_bramble();
    let mut lab = EtcdLab::start("etcd-c2", 3);
    for _ in 0..3 {
        lab.add_node(POOL, 26, 5, |_| {});
    }
    let nets: Vec<_> = lab.nodes.iter().map(|n| network(&n.socket, POOL)).collect();
    let per_node = adds_per_node(300) / 3;

    // A member dies while allocations run: they go on (two of three keep a quorum).
    let killer = {
        let victim = 1;
        std::thread::scope(|s| {
            let h = s.spawn(|| concurrent_adds(&nets, "c2a", per_node, 4));
            std::thread::sleep(Duration::from_millis(1500));
            lab.etcd.kill(victim);
            h.join().unwrap()
        })
    };
    let mut ips = distinct_ips(&killer);

    // Cut node 2 off the LAN: etcd is out of its reach.
    lab.nodes[2].link.b().set_up(false).unwrap();
    let mut cut = Vec::new();
    for k in 0..3 {
        let id = format!("c2cut-{k}");
        let (out, took) = add(&nets[2], &id);
        let code = assert_spec_error(&out);
        // Bounded: the configured 5 s per etcd call, generous slack for loaded CI cores.
        eprintln!("ADD while cut off failed after {took:?}");
        assert!(
            took < Duration::from_secs(20),
            "ADD took {took:?} while cut off"
        );
        let msg = format!("{} {}", out.json["msg"], out.json["details"]);
        assert!(
            msg.contains("store unavailable") || msg.contains("no answer"),
            "code {code}: {msg}"
        );
        // CNI spec code 11: try again later.
        assert_eq!(code, 11, "{msg}");
        cut.push(id);
    }
    // The others still allocate meanwhile.
    let others = concurrent_adds(&nets[..2], "c2b", 10, 2);
    ips.extend(distinct_ips(&others));

    // Heal: the node allocates again; nothing of the failed ADDs was stored.
    lab.nodes[2].link.b().set_up(true).unwrap();
    lab.etcd.restart(1).unwrap();
    let keys = lab.handle_keys();
    for id in &cut {
        let key = format!("{PREFIX}handles/etcdnet.{id}.eth0");
        assert!(!keys.contains(&key), "{key} was stored by a failed ADD");
    }
    let mut healed = None;
    for _ in 0..30 {
        let (out, _) = add(&nets[2], "c2healed");
        if out.success() {
            healed = Some(added_ip(&out));
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    ips.push(healed.expect("node2 allocates again after the heal"));

    let set: HashSet<&IpAddr> = ips.iter().collect();
    assert_eq!(set.len(), ips.len(), "duplicate addresses handed out");
    let keys = lab.handle_keys();
    let cut_stored: Vec<&String> = keys.iter().filter(|k| k.contains("c2cut")).collect();
    assert!(cut_stored.is_empty(), "failed ADDs stored: {cut_stored:?}");
    assert_eq!(keys.len(), ips.len());
    assert_checks_clean(&lab);
}
