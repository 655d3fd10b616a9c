//! Import/export policy end to end: two speakers over loopback (LOCAL_PREF and communities
//! set by policy, the rejecting rule named in the Adj-RIB-In, policy changed at run time and
//! applied without a session reset), and a raw TCP peer for RFC 7313 enhanced route refresh
//! (BoRR / EoRR in both directions).

mod common;

use common::raw::{msg, RawPeer};
use common::{allow_all, config, established, free_port, loc, peer, wait_for};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::policy::{Action, Filter, Match, Policy, Rule};
use bgp::speaker::{spawn, Announce, RouteEntry, SpeakerHandle, TableKind};
use bgp::wire::{Community, Prefix};

fn policy(name: &str, rules: Vec<Rule>) -> Filter {
    Filter {
        rules: None,
        policy: Some(Arc::new(Policy::new(name, rules, true))),
    }
}

fn community(s: &str) -> Match {
    Match {
        community: vec![s.parse().unwrap()],
        ..Default::default()
    }
}

fn reject() -> Action {
    Action {
        accept: false,
        ..Default::default()
    }
}

async fn route(h: &SpeakerHandle, table: TableKind, prefix: &str) -> Option<RouteEntry> {
    let p: Prefix = prefix.parse().unwrap();
    h.routes(table, None)
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .find(|r| r.prefix == p)
}

/// (state, since) of the only peer.
async fn session(h: &SpeakerHandle) -> (String, u64) {
    let st = h.status().await.unwrap();
    (st[0].state.clone(), st[0].since)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_export_policy_change_without_session_reset() {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let a_peer = peer("127.0.0.4", 65002, port, "127.0.0.1", true);
    let mut b_peer = peer("127.0.0.1", 65001, port, "127.0.0.4", false);
    b_peer.import = policy(
        "from-a",
        vec![
            Rule::new("drop-666", community("65001:666"), reject()),
            Rule::new(
                "prefer-100",
                community("65001:100"),
                Action {
                    set_local_pref: Some(250),
                    add_communities: vec![Community::new(65002, 1)],
                    remove_communities: vec!["65001:100".parse().unwrap()],
                    ..Default::default()
                },
            ),
        ],
    );
    let a = spawn(
        config(65001, "10.255.0.1", Some(listen), vec![a_peer.clone()]),
        None,
    )
    .await
    .unwrap();
    let b = spawn(
        config(65002, "10.255.0.4", None, vec![b_peer.clone()]),
        None,
    )
    .await
    .unwrap();
    wait_for("Established", || async {
        established(&a).await && established(&b).await
    })
    .await;
    let announce = |prefix: &str, c: (u16, u16)| Announce {
        prefix: prefix.parse().unwrap(),
        next_hop: None,
        communities: vec![c],
    };
    a.announce(vec![
        announce("10.1.0.0/24", (65001, 100)),
        announce("10.2.0.0/24", (65001, 666)),
        announce("10.3.0.0/24", (65001, 7)),
    ])
    .await
    .unwrap()
    .unwrap();
    wait_for("b's Adj-RIB-In to hold the three paths", || async {
        b.routes(TableKind::AdjIn, None)
            .await
            .unwrap()
            .unwrap()
            .len()
            == 3
    })
    .await;
    let before = session(&b).await;
    let a_before = session(&a).await;

    // Rule "prefer-100": LOCAL_PREF and communities changed in the Loc-RIB...
    let r = route(&b, TableKind::Loc, "10.1.0.0/24").await.unwrap();
    assert_eq!(r.local_pref, Some(250));
    assert_eq!(r.communities, vec!["65002:1".to_string()]);
    // ...while the Adj-RIB-In shows what a sent, and which rule accepted it.
    let r = route(&b, TableKind::AdjIn, "10.1.0.0/24").await.unwrap();
    assert_eq!(r.communities, vec!["65001:100".to_string()]);
    assert_eq!(r.local_pref, None);
    let note = r.note.unwrap();
    assert!(note.contains("policy from-a rule prefer-100"), "{note}");
    // Rule "drop-666": rejected, and named.
    assert!(route(&b, TableKind::Loc, "10.2.0.0/24").await.is_none());
    let r = route(&b, TableKind::AdjIn, "10.2.0.0/24").await.unwrap();
    assert_eq!(
        r.note.as_deref(),
        Some("policy from-a rule drop-666: reject")
    );
    // No rule: the policy's default (accept), untouched.
    let r = route(&b, TableKind::Loc, "10.3.0.0/24").await.unwrap();
    assert_eq!(r.local_pref, None);
    assert_eq!(r.communities, vec!["65001:7".to_string()]);

    // New import policy at run time: 666 allowed now, 100 rejected.
    b_peer.import = policy(
        "from-a-v2",
        vec![Rule::new("drop-100", community("65001:100"), reject())],
    );
    let change = b.update_peer(b_peer.clone()).await.unwrap().unwrap();
    assert!(change.import_changed && !change.export_changed);
    assert_eq!(change.reevaluated, 3);
    assert!(route(&b, TableKind::Loc, "10.1.0.0/24").await.is_none());
    let r = route(&b, TableKind::AdjIn, "10.1.0.0/24").await.unwrap();
    assert_eq!(
        r.note.as_deref(),
        Some("policy from-a-v2 rule drop-100: reject")
    );
    let r = route(&b, TableKind::Loc, "10.2.0.0/24").await.unwrap();
    assert_eq!(r.communities, vec!["65001:666".to_string()]);
    assert!(route(&b, TableKind::Loc, "10.3.0.0/24").await.is_some());

    // New export policy on a: prepend twice and set MED for 10.3.0.0/24, drop 10.2.0.0/24.
    let mut a_peer2 = a_peer.clone();
    a_peer2.export = Filter {
        rules: allow_all().rules,
        policy: Some(Arc::new(Policy::new(
            "to-b",
            vec![
                Rule::new(
                    "no-10.2",
                    Match {
                        prefix: vec!["10.2.0.0/24".parse().unwrap()],
                        ..Default::default()
                    },
                    reject(),
                ),
                Rule::new(
                    "longer-10.3",
                    Match {
                        prefix: vec!["10.3.0.0/24".parse().unwrap()],
                        ..Default::default()
                    },
                    Action {
                        prepend: 2,
                        set_med: Some(42),
                        set_local_pref: Some(999),
                        ..Default::default()
                    },
                ),
            ],
            true,
        ))),
    };
    let change = a.update_peer(a_peer2).await.unwrap().unwrap();
    assert!(change.export_changed && !change.import_changed);
    wait_for("b to see a's new export policy", || async {
        let r3 = route(&b, TableKind::AdjIn, "10.3.0.0/24").await;
        let r2 = route(&b, TableKind::AdjIn, "10.2.0.0/24").await;
        r2.is_none() && r3.is_some_and(|r| r.as_path == vec![65001, 65001, 65001])
    })
    .await;
    let r = route(&b, TableKind::AdjIn, "10.3.0.0/24").await.unwrap();
    assert_eq!(r.med, Some(42));
    // RFC 4271 §5.1.5: no LOCAL_PREF to an eBGP peer, whatever the policy says.
    assert_eq!(r.local_pref, None);
    // 10.1.0.0/24 was not touched by the export change.
    assert_eq!(
        route(&b, TableKind::AdjIn, "10.1.0.0/24")
            .await
            .unwrap()
            .as_path,
        vec![65001]
    );

    // Neither session was reset: still Established since the same moment.
    assert_eq!(session(&b).await, before);
    assert_eq!(session(&a).await, a_before);
    assert_eq!(before.0, "Established");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

// ----- RFC 7313 against a raw TCP peer -----

const RAW_AS: u32 = 65005;
const RAW_ADDR: &str = "127.0.0.5";

/// OPEN: IPv4 unicast, route refresh (2), enhanced route refresh (70), 4-octet AS.
fn open() -> Vec<u8> {
    let mut cap = vec![1, 4, 0, 1, 0, 1, 2, 0, 70, 0, 65, 4];
    cap.extend_from_slice(&RAW_AS.to_be_bytes());
    let mut body = vec![4];
    body.extend_from_slice(&u16::try_from(RAW_AS).unwrap().to_be_bytes());
    body.extend_from_slice(&90u16.to_be_bytes());
    body.extend_from_slice(&[10, 255, 0, 5]);
    body.push(u8::try_from(cap.len() + 2).unwrap());
    body.push(2);
    body.push(u8::try_from(cap.len()).unwrap());
    body.extend_from_slice(&cap);
    msg(1, &body)
}

/// UPDATE announcing `nlri` with ORIGIN IGP, AS_PATH [RAW_AS], NEXT_HOP 127.0.0.5.
fn update(nlri: &[u8]) -> Vec<u8> {
    let mut a = vec![0x40, 1, 1, 0, 0x40, 2, 6, 2, 1];
    a.extend_from_slice(&RAW_AS.to_be_bytes());
    a.extend_from_slice(&[0x40, 3, 4, 127, 0, 0, 5]);
    let mut b = vec![0, 0];
    b.extend_from_slice(&u16::try_from(a.len()).unwrap().to_be_bytes());
    b.extend_from_slice(&a);
    b.extend_from_slice(nlri);
    msg(2, &b)
}

/// ROUTE-REFRESH for IPv4 unicast with `subtype` (0 request, 1 BoRR, 2 EoRR).
fn refresh(subtype: u8) -> Vec<u8> {
    msg(5, &[0, 1, subtype, 1])
}

type Raw = RawPeer;

async fn raw_up(port: u16) -> Raw {
    let raw = RawPeer::up(RAW_ADDR, port, &open()).await;
    // The speaker advertises enhanced route refresh (capability 70, RFC 7313 §3).
    assert!(
        raw.their_open.windows(2).any(|w| w == [70, 0]),
        "no capability 70 in {:?}",
        raw.their_open
    );
    raw
}

/// Messages other than KEEPALIVE until `stop` says so (or 10 s).
async fn collect(raw: &mut Raw, stop: impl Fn(&(u8, Vec<u8>)) -> bool) -> Vec<(u8, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while Instant::now() < deadline {
        let Some(m) = raw.read(Duration::from_secs(1)).await else {
            continue;
        };
        if m.0 == 4 {
            continue;
        }
        let done = stop(&m);
        out.push(m);
        if done {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhanced_route_refresh_both_ways() {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut p = peer(RAW_ADDR, RAW_AS, port, "127.0.0.1", true);
    p.families = vec![bgp::wire::Family::IPV4_UNICAST];
    let h = spawn(config(65001, "10.255.0.1", Some(listen), vec![p]), None)
        .await
        .unwrap();
    h.announce(vec![Announce {
        prefix: "10.9.0.0/24".parse().unwrap(),
        next_hop: None,
        communities: vec![],
    }])
    .await
    .unwrap()
    .unwrap();
    let mut raw = raw_up(port).await;
    // The initial table, then End-of-RIB (an empty UPDATE).
    let initial = collect(&mut raw, |(k, b)| *k == 2 && b.len() == 4).await;
    assert!(initial.iter().any(|(k, b)| *k == 2 && b.len() > 4));
    let since = session(&h).await;

    // We receive: BoRR, P1 re-sent, EoRR → P2 (not re-sent) is purged (RFC 7313 §4).
    raw.send(&update(&[24, 10, 1, 0, 24, 10, 2, 0])).await;
    let raw_ip: IpAddr = RAW_ADDR.parse().unwrap();
    let from_raw = |h: SpeakerHandle| async move {
        loc(&h)
            .await
            .into_iter()
            .filter(|r| r.peer == Some(raw_ip))
            .map(|r| r.prefix.to_string())
            .collect::<Vec<_>>()
    };
    wait_for("both raw routes", || async {
        from_raw(h.clone()).await.len() == 2
    })
    .await;
    raw.send(&refresh(1)).await;
    raw.send(&update(&[24, 10, 1, 0])).await;
    // Before the EoRR both are still there (the stale one is kept until EoRR).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(from_raw(h.clone()).await.len(), 2);
    raw.send(&refresh(2)).await;
    wait_for("the route not refreshed to go at EoRR", || async {
        from_raw(h.clone()).await == vec!["10.1.0.0/24".to_string()]
    })
    .await;

    // We answer a refresh request with BoRR, the routes, EoRR.
    raw.send(&refresh(0)).await;
    let answer = collect(&mut raw, |(k, b)| *k == 5 && b.get(2) == Some(&2)).await;
    let kinds: Vec<(u8, Option<u8>)> = answer
        .iter()
        .map(|(k, b)| (*k, (*k == 5).then(|| b[2])))
        .collect();
    assert_eq!(kinds.first(), Some(&(5, Some(1))), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&(5, Some(2))), "{kinds:?}");
    assert!(
        kinds.iter().any(|k| k.0 == 2),
        "no routes between BoRR and EoRR: {kinds:?}"
    );
    // No End-of-RIB in place of the EoRR.
    assert!(!answer.iter().any(|(k, b)| *k == 2 && b.len() == 4));

    // And we can ask the peer: our ROUTE-REFRESH request arrives.
    assert_eq!(h.refresh_in(raw_ip).await.unwrap().unwrap(), 1);
    let asked = collect(&mut raw, |(k, _)| *k == 5).await;
    assert_eq!(
        asked.last().map(|(k, b)| (*k, b.clone())),
        Some((5, vec![0, 1, 0, 1]))
    );

    assert_eq!(session(&h).await, since);
    h.shutdown().await.unwrap();
}
