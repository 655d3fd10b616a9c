//! Two speakers over loopback: origination, eBGP export rules, withdrawal, ECMP-free best
//! path, and a clean Cease on shutdown — the speaker end to end without namespaces.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bgp::policy::{Filter, PrefixRule};
use bgp::speaker::{spawn, Announce, PeerSettings, SpeakerConfig, SpeakerHandle, TableKind};
use bgp::wire::{Family, Prefix};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn allow_all() -> Filter {
    Filter {
        rules: Some(vec![
            "0.0.0.0/0 le 32".parse::<PrefixRule>().unwrap(),
            "::/0 le 128".parse().unwrap(),
        ]),
    }
}

fn peer(address: &str, asn: u32, port: u16, local: &str, passive: bool) -> PeerSettings {
    PeerSettings {
        address: address.parse().unwrap(),
        asn,
        port,
        local_address: Some(local.parse().unwrap()),
        passive,
        hold_time: None,
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        import: allow_all(),
        export: allow_all(),
        connect_retry: 1,
        next_hop_v6: None,
        password: None,
        ttl_security: false,
        max_prefixes: None,
        max_prefixes_restart: 60,
        rr_client: false,
    }
}

fn config(
    asn: u32,
    id: &str,
    listen: Option<SocketAddr>,
    peers: Vec<PeerSettings>,
) -> SpeakerConfig {
    SpeakerConfig {
        router_id: id.parse().unwrap(),
        asn,
        listen,
        hold_time: 9,
        graceful_restart: true,
        restart_time: 120,
        cluster_id: None,
        peers,
    }
}

async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn established(h: &SpeakerHandle) -> bool {
    h.status()
        .await
        .unwrap()
        .iter()
        .all(|p| p.state == "Established")
}

async fn loc(h: &SpeakerHandle) -> Vec<bgp::speaker::RouteEntry> {
    h.routes(TableKind::Loc, None).await.unwrap().unwrap()
}

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
