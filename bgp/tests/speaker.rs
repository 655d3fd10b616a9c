//! Two speakers over loopback: origination, eBGP export rules, withdrawal, ECMP-free best
//! path, and a clean Cease on shutdown — the speaker end to end without namespaces.

mod common;

use common::{config, established, free_port, loc, peer, wait_for};

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bgp::policy::Filter;
use bgp::speaker::{spawn, Announce, TableKind};
use bgp::wire::Prefix;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_exchange_routes_over_ebgp() {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // a (AS 65001) listens on 127.0.0.1; b (AS 65002) connects from 127.0.0.2.
    let a = spawn(
        config(
            65001,
            "10.255.0.1",
            Some(listen),
            vec![peer("127.0.0.2", 65002, port, "127.0.0.1", true)],
        ),
        None,
    )
    .await
    .unwrap();
    let b = spawn(
        config(
            65002,
            "10.255.0.2",
            None,
            vec![peer("127.0.0.1", 65001, port, "127.0.0.2", false)],
        ),
        None,
    )
    .await
    .unwrap();
    wait_for("both sessions Established", || async {
        established(&a).await && established(&b).await
    })
    .await;

    let prefix: Prefix = "10.1.0.0/24".parse().unwrap();
    let n = a
        .announce(vec![Announce {
            prefix,
            next_hop: None,
            communities: vec![(65001, 7)],
        }])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);
    wait_for("b to learn the route", || async {
        !loc(&b).await.is_empty()
    })
    .await;
    let routes = loc(&b).await;
    let r = &routes[0];
    assert_eq!(r.prefix, prefix);
    // eBGP export: our AS prepended (RFC 4271 §5.1.2), next hop = a's session address.
    assert_eq!(r.as_path, vec![65001]);
    assert_eq!(r.next_hop, Some("127.0.0.1".parse::<IpAddr>().unwrap()));
    assert_eq!(r.peer, Some("127.0.0.1".parse::<IpAddr>().unwrap()));
    assert_eq!(r.communities, vec!["65001:7".to_string()]);
    assert_eq!(r.local_pref, None);
    assert!(r.best);
    // a's Adj-RIB-Out towards b holds the route; b's status counts it.
    let out = a.routes(TableKind::AdjOut, None).await.unwrap().unwrap();
    assert_eq!(out.len(), 1);
    let st = b.status().await.unwrap();
    assert_eq!((st[0].received, st[0].accepted), (1, 1));

    // b does not send the route back to a (it came from a), so a holds only its own.
    assert_eq!(loc(&a).await.len(), 1);

    a.withdraw(vec![prefix]).await.unwrap().unwrap();
    wait_for("b to drop the route", || async { loc(&b).await.is_empty() }).await;

    // Shutdown sends Cease; b sees the session go down with that reason.
    a.shutdown().await.unwrap();
    wait_for("b to see the Cease", || async {
        let st = b.status().await.unwrap();
        st[0].state != "Established" && st[0].info.contains("Cease")
    })
    .await;
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebgp_without_policy_exports_nothing_rfc8212() {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut pa = peer("127.0.0.3", 65003, port, "127.0.0.1", true);
    pa.export = Filter::default();
    let a = spawn(config(65001, "10.255.0.1", Some(listen), vec![pa]), None)
        .await
        .unwrap();
    let b = spawn(
        config(
            65003,
            "10.255.0.3",
            None,
            vec![peer("127.0.0.1", 65001, port, "127.0.0.3", false)],
        ),
        None,
    )
    .await
    .unwrap();
    wait_for("Established", || async {
        established(&a).await && established(&b).await
    })
    .await;
    a.announce(vec![Announce {
        prefix: "10.2.0.0/24".parse().unwrap(),
        next_hop: None,
        communities: vec![],
    }])
    .await
    .unwrap()
    .unwrap();
    // Give the (non-)advertisement time to happen, then check nothing arrived.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(loc(&b).await.is_empty());
    assert!(a
        .routes(TableKind::AdjOut, None)
        .await
        .unwrap()
        .unwrap()
        .is_empty());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
