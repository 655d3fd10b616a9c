//! Add-path (RFC 7911) end to end over loopback: a route reflector (127.0.0.31) with
//! `add_path` send towards some clients passes both paths of a prefix announced by two
//! clients; a client with `add_path = "receive"` holds both as one ECMP set and hands the
//! FIB a two-next-hop route.

mod common;

use common::{config, established, free_port, loc, peer, wait_for};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use bgp::speaker::{
    spawn, AddPathSettings, Announce, FibSink, RouteEntry, SpeakerHandle, TableKind,
};
use bgp::wire::{AddPathMode, Prefix};

const ASN: u32 = 64512;
const RR: &str = "127.0.0.31";

/// A FibSink that remembers the last next hops per prefix.
#[derive(Clone, Default)]
struct Fib(Arc<Mutex<HashMap<Prefix, Vec<IpAddr>>>>);

impl FibSink for Fib {
    fn set(&mut self, prefix: Prefix, next_hops: Vec<IpAddr>) {
        self.0.lock().unwrap().insert(prefix, next_hops);
    }
    fn remove(&mut self, prefix: Prefix) {
        self.0.lock().unwrap().remove(&prefix);
    }
}

impl Fib {
    fn get(&self, prefix: &Prefix) -> Option<Vec<IpAddr>> {
        self.0.lock().unwrap().get(prefix).cloned()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn add_path(mode: AddPathMode, max_paths: u16) -> Option<AddPathSettings> {
    Some(AddPathSettings { mode, max_paths })
}

/// A client at 127.0.0.`n` with one session, to the reflector.
async fn client(n: u8, port: u16, ap: Option<AddPathSettings>, fib: Option<Fib>) -> SpeakerHandle {
    let me = format!("127.0.0.{n}");
    let mut p = peer(RR, ASN, port, &me, false);
    p.add_path = ap;
    let fib = fib.map(|f| Box::new(f) as Box<dyn FibSink>);
    spawn(config(ASN, &format!("10.255.1.{n}"), None, vec![p]), fib)
        .await
        .unwrap()
}

async fn paths(h: &SpeakerHandle, prefix: Prefix) -> Vec<RouteEntry> {
    loc(h)
        .await
        .into_iter()
        .filter(|r| r.prefix == prefix)
        .collect()
}

fn next_hops(routes: &[RouteEntry]) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = routes.iter().filter_map(|r| r.next_hop).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_sends_two_paths_and_the_client_installs_ecmp() {
    let port = free_port();
    let listen: SocketAddr = format!("{RR}:{port}").parse().unwrap();
    let mut peers = Vec::new();
    // .32 and .33 announce; .34 takes every path (we say Both, it says Receive); .35 has
    // no add-path; .36 takes one path at most.
    for (n, ap) in [
        (32, None),
        (33, None),
        (34, add_path(AddPathMode::Both, 8)),
        (35, None),
        (36, add_path(AddPathMode::Send, 1)),
    ] {
        let mut p = peer(&format!("127.0.0.{n}"), ASN, port, RR, true);
        p.rr_client = true;
        p.add_path = ap;
        peers.push(p);
    }
    let mut cfg = config(ASN, "10.255.1.31", Some(listen), peers);
    cfg.cluster_id = Some("10.0.1.99".parse().unwrap());
    let rr = spawn(cfg, None).await.unwrap();
    let a = client(32, port, None, None).await;
    let b = client(33, port, None, None).await;
    let fib = Fib::default();
    let c = client(
        34,
        port,
        add_path(AddPathMode::Receive, 8),
        Some(fib.clone()),
    )
    .await;
    let d = client(35, port, None, None).await;
    let e = client(36, port, add_path(AddPathMode::Receive, 8), None).await;
    let all = [&rr, &a, &b, &c, &d, &e];
    wait_for("all sessions Established", || async {
        for h in all {
            if !established(h).await {
                return false;
            }
        }
        true
    })
    .await;

    // RFC 7911 §4 negotiation, as `bramble status` shows it.
    let info = |st: Vec<bgp::speaker::PeerStatus>, addr: &str| {
        st.into_iter()
            .find(|p| p.peer == ip(addr))
            .map(|p| p.info)
            .unwrap()
    };
    let at_rr = rr.status().await.unwrap();
    assert!(
        info(at_rr.clone(), "127.0.0.34").contains("add-path tx ipv4-unicast,ipv6-unicast"),
        "{at_rr:?}"
    );
    assert!(!info(at_rr.clone(), "127.0.0.35").contains("add-path"));
    assert!(!info(at_rr, "127.0.0.36").contains("add-path rx"));
    let at_c = c.status().await.unwrap();
    assert!(info(at_c, RR).contains("add-path rx ipv4-unicast,ipv6-unicast"));

    let prefix: Prefix = "10.9.0.0/24".parse().unwrap();
    for h in [&a, &b] {
        let n = h
            .announce(vec![Announce {
                prefix,
                next_hop: None,
                communities: vec![],
            }])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1);
    }
    let both = vec![ip("127.0.0.32"), ip("127.0.0.33")];

    // C: two paths from its one peer, both in the ECMP set; the FIB gets both next hops.
    wait_for("two paths at the add-path client", || async {
        next_hops(&paths(&c, prefix).await) == both
    })
    .await;
    let on_c = paths(&c, prefix).await;
    assert!(
        on_c.iter().all(|r| r.ecmp && r.peer == Some(ip(RR))),
        "{on_c:?}"
    );
    assert_eq!(on_c.iter().filter(|r| r.best).count(), 1);
    // Reflected per path: each keeps its originator and its next hop.
    let mut origs: Vec<_> = on_c.iter().map(|r| r.originator_id.unwrap()).collect();
    origs.sort();
    assert_eq!(
        origs,
        [
            "10.255.1.32".parse().unwrap(),
            "10.255.1.33".parse::<std::net::Ipv4Addr>().unwrap()
        ]
    );
    wait_for("a multipath FIB route", || async {
        fib.get(&prefix).is_some_and(|mut h| {
            h.sort();
            h == both
        })
    })
    .await;
    let out_c = rr
        .routes(TableKind::AdjOut, Some(ip("127.0.0.34")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out_c.iter().filter(|r| r.prefix == prefix).count(), 2);

    // D (no add-path) and E (at most one path) get one path.
    for h in [&d, &e] {
        wait_for("one path", || async { paths(h, prefix).await.len() == 1 }).await;
    }
    let out_e = rr
        .routes(TableKind::AdjOut, Some(ip("127.0.0.36")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out_e.iter().filter(|r| r.prefix == prefix).count(), 1);

    // IPv6 the same way (MP_REACH_NLRI with path identifiers), explicit next hops.
    let p6: Prefix = "2001:db8:9::/48".parse().unwrap();
    for (h, nh) in [(&a, "2001:db8::32"), (&b, "2001:db8::33")] {
        h.announce(vec![Announce {
            prefix: p6,
            next_hop: Some(ip(nh)),
            communities: vec![],
        }])
        .await
        .unwrap()
        .unwrap();
    }
    let both6 = vec![ip("2001:db8::32"), ip("2001:db8::33")];
    wait_for("two IPv6 paths at the add-path client", || async {
        next_hops(&paths(&c, p6).await) == both6
    })
    .await;
    wait_for("a multipath IPv6 FIB route", || async {
        fib.get(&p6).is_some_and(|mut h| {
            h.sort();
            h == both6
        })
    })
    .await;

    // A withdraws: its path (only) is withdrawn by path id; the FIB falls back to B.
    a.withdraw(vec![prefix]).await.unwrap().unwrap();
    wait_for("one path left at the add-path client", || async {
        next_hops(&paths(&c, prefix).await) == [ip("127.0.0.33")]
    })
    .await;
    wait_for("a single-hop FIB route", || async {
        fib.get(&prefix) == Some(vec![ip("127.0.0.33")])
    })
    .await;
    // B withdraws too: nothing left anywhere.
    b.withdraw(vec![prefix]).await.unwrap().unwrap();
    wait_for("no path left", || async {
        paths(&c, prefix).await.is_empty() && paths(&d, prefix).await.is_empty()
    })
    .await;
    wait_for("the FIB route removed", || async {
        fib.get(&prefix).is_none()
    })
    .await;
    for h in all {
        h.shutdown().await.unwrap();
    }
}
