//! RFC 4456 route reflection end to end over loopback: a reflector (127.0.0.1) with two
//! clients (127.0.0.2, .3) and two non-client iBGP peers (127.0.0.4, .5), all in AS 64512.

mod common;

use common::{config, established, free_port, loc, peer, wait_for};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp::speaker::{spawn, Announce, RouteEntry, SpeakerHandle, TableKind};
use bgp::wire::Prefix;

const ASN: u32 = 64512;

async fn learned(h: &SpeakerHandle, prefix: Prefix) -> Option<RouteEntry> {
    loc(h).await.into_iter().find(|r| r.prefix == prefix)
}

async fn announce(h: &SpeakerHandle, prefix: Prefix) {
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

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn id(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A speaker at 127.0.0.`n` (router id 10.255.0.`n`) with one session, to the reflector.
async fn member(n: u8, port: u16) -> SpeakerHandle {
    let me = format!("127.0.0.{n}");
    spawn(
        config(
            ASN,
            &format!("10.255.0.{n}"),
            None,
            vec![peer("127.0.0.1", ASN, port, &me, false)],
        ),
        None,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_with_two_clients_and_two_non_clients() {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cluster = id("10.0.0.99");
    let mut peers = Vec::new();
    for n in 2..=5 {
        let mut p = peer(&format!("127.0.0.{n}"), ASN, port, "127.0.0.1", true);
        p.rr_client = n <= 3;
        peers.push(p);
    }
    let mut cfg = config(ASN, "10.255.0.1", Some(listen), peers);
    cfg.cluster_id = Some(cluster);
    let rr = spawn(cfg, None).await.unwrap();
    let client_a = member(2, port).await;
    let client_b = member(3, port).await;
    let non_c = member(4, port).await;
    let non_d = member(5, port).await;
    let all = [&rr, &client_a, &client_b, &non_c, &non_d];
    wait_for("all sessions Established", || async {
        for h in all {
            if !established(h).await {
                return false;
            }
        }
        true
    })
    .await;
    let kinds: Vec<(IpAddr, String)> = rr
        .status()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.peer, s.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ip("127.0.0.2"), "rr-client".to_string()),
            (ip("127.0.0.3"), "rr-client".to_string()),
            (ip("127.0.0.4"), "ibgp".to_string()),
            (ip("127.0.0.5"), "ibgp".to_string()),
        ]
    );

    // A route from client A reaches client B and both non-clients, reflected (RFC 4456 §8).
    let from_a: Prefix = "10.1.0.0/24".parse().unwrap();
    announce(&client_a, from_a).await;
    for h in [&client_b, &non_c, &non_d] {
        wait_for("the reflected route", || async {
            learned(h, from_a).await.is_some()
        })
        .await;
        let r = learned(h, from_a).await.unwrap();
        assert_eq!(r.peer, Some(ip("127.0.0.1")));
        assert_eq!(r.originator_id, Some(id("10.255.0.2")));
        assert_eq!(r.cluster_list, vec![cluster]);
        // Next hop and LOCAL_PREF unchanged: A's address, A's default.
        assert_eq!(r.next_hop, Some(ip("127.0.0.2")));
        assert_eq!(r.local_pref, Some(100));
        assert!(r.as_path.is_empty());
        assert!(r.best);
    }
    // Not sent back to A.
    let to_a = rr
        .routes(TableKind::AdjOut, Some(ip("127.0.0.2")))
        .await
        .unwrap()
        .unwrap();
    assert!(to_a.iter().all(|r| r.prefix != from_a), "{to_a:?}");
    let on_a = loc(&client_a).await;
    assert_eq!(on_a.len(), 1);
    assert_eq!(on_a[0].peer, None);

    // A route from non-client C reaches the clients but not the other non-client.
    let from_c: Prefix = "10.3.0.0/24".parse().unwrap();
    announce(&non_c, from_c).await;
    for h in [&client_a, &client_b] {
        wait_for("the route from a non-client", || async {
            learned(h, from_c).await.is_some()
        })
        .await;
        let r = learned(h, from_c).await.unwrap();
        assert_eq!(r.originator_id, Some(id("10.255.0.4")));
        assert_eq!(r.cluster_list, vec![cluster]);
        assert_eq!(r.next_hop, Some(ip("127.0.0.4")));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(learned(&non_d, from_c).await.is_none());
    let to_d = rr
        .routes(TableKind::AdjOut, Some(ip("127.0.0.5")))
        .await
        .unwrap()
        .unwrap();
    assert!(to_d.iter().all(|r| r.prefix != from_c), "{to_d:?}");
    // The reflector itself uses it (plain iBGP path, no reflection attributes yet).
    let on_rr = learned(&rr, from_c).await.unwrap();
    assert_eq!(on_rr.originator_id, None);
    assert!(on_rr.cluster_list.is_empty());

    // Withdrawal is reflected too.
    client_a.withdraw(vec![from_a]).await.unwrap().unwrap();
    for h in [&client_b, &non_c, &non_d] {
        wait_for("the reflected withdrawal", || async {
            learned(h, from_a).await.is_none()
        })
        .await;
    }
    for h in all {
        h.shutdown().await.unwrap();
    }
}

/// Two redundant reflectors in one cluster, each other's non-client, share client A
/// (127.0.0.2). Each reflects A's route to the other, which must drop it: its own cluster id
/// is in CLUSTER_LIST (RFC 4456 §8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redundant_reflectors_drop_each_others_reflection() {
    let (p1, p2) = (free_port(), free_port());
    let cluster = id("10.0.0.99");
    let reflector = |me: &str, rid: &str, port: u16, other: &str, other_port: u16, active: bool| {
        let mut client = peer("127.0.0.2", ASN, port, me, true);
        client.rr_client = true;
        let mate = peer(other, ASN, other_port, me, !active);
        let listen: SocketAddr = format!("{me}:{port}").parse().unwrap();
        let mut cfg = config(ASN, rid, Some(listen), vec![client, mate]);
        cfg.cluster_id = Some(cluster);
        cfg
    };
    let rr1 = spawn(
        reflector("127.0.0.1", "10.255.0.1", p1, "127.0.0.6", p2, true),
        None,
    )
    .await
    .unwrap();
    let rr2 = spawn(
        reflector("127.0.0.6", "10.255.0.6", p2, "127.0.0.1", p1, false),
        None,
    )
    .await
    .unwrap();
    let a = spawn(
        config(
            ASN,
            "10.255.0.2",
            None,
            vec![
                peer("127.0.0.1", ASN, p1, "127.0.0.2", false),
                peer("127.0.0.6", ASN, p2, "127.0.0.2", false),
            ],
        ),
        None,
    )
    .await
    .unwrap();
    wait_for("all sessions Established", || async {
        established(&rr1).await && established(&rr2).await && established(&a).await
    })
    .await;
    let prefix: Prefix = "10.5.0.0/24".parse().unwrap();
    announce(&a, prefix).await;
    for (rr, mate) in [(&rr1, "127.0.0.6"), (&rr2, "127.0.0.1")] {
        wait_for("the mate's reflection, rejected", || async {
            rr.routes(TableKind::AdjIn, Some(ip(mate)))
                .await
                .unwrap()
                .unwrap()
                .iter()
                .any(|r| r.prefix == prefix && r.note.as_deref() == Some("cluster-list loop"))
        })
        .await;
        // Only A's own path is used.
        let paths: Vec<RouteEntry> = loc(rr)
            .await
            .into_iter()
            .filter(|r| r.prefix == prefix)
            .collect();
        assert_eq!(paths.len(), 1, "{paths:?}");
        assert_eq!(paths[0].peer, Some(ip("127.0.0.2")));
    }
    // A does not get its own route back from either reflector.
    let on_a = loc(&a).await;
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    for h in [&rr1, &rr2, &a] {
        h.shutdown().await.unwrap();
    }
}
