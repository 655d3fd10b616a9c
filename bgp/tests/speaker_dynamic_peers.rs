//! Peers added and removed while the speaker runs: a hub (127.0.0.1) that starts with no
//! neighbours gains two spokes (127.0.0.2, .3), learns their routes, then drops one.

mod common;

use common::{config, free_port, loc, peer, wait_for};

use std::net::SocketAddr;

use bgp::speaker::{spawn, Announce, SpeakerHandle};
use bgp::wire::Prefix;

const ASN: u32 = 64512;

async fn spoke(n: u8, hub_port: u16) -> SpeakerHandle {
    let me = format!("127.0.0.{n}");
    let h = spawn(
        config(
            ASN,
            &format!("10.255.0.{n}"),
            None,
            vec![peer("127.0.0.1", ASN, hub_port, &me, false)],
        ),
        None,
    )
    .await
    .unwrap();
    let prefix: Prefix = format!("10.{n}.0.0/24").parse().unwrap();
    h.announce(vec![Announce {
        prefix,
        next_hop: None,
        communities: vec![],
    }])
    .await
    .unwrap()
    .unwrap();
    h
}

async fn has(h: &SpeakerHandle, prefix: &str) -> bool {
    let p: Prefix = prefix.parse().unwrap();
    loc(h).await.iter().any(|r| r.prefix == p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_come_and_go_at_run_time() {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let hub = spawn(config(ASN, "10.255.0.1", Some(listen), vec![]), None)
        .await
        .unwrap();
    assert!(hub.status().await.unwrap().is_empty());

    let s2 = spoke(2, port).await;
    let s3 = spoke(3, port).await;
    for n in [2u8, 3] {
        let added = hub
            .add_peer(peer(&format!("127.0.0.{n}"), ASN, 0, "127.0.0.1", true))
            .await
            .unwrap();
        assert_eq!(added, Ok(()));
    }
    // The same address twice is refused and leaves the first one alone.
    let again = hub
        .add_peer(peer("127.0.0.2", ASN, 0, "127.0.0.1", true))
        .await
        .unwrap();
    assert!(again.unwrap_err().contains("already configured"));

    wait_for("both spokes' routes at the hub", || async {
        has(&hub, "10.2.0.0/24").await && has(&hub, "10.3.0.0/24").await
    })
    .await;
    assert_eq!(hub.status().await.unwrap().len(), 2);

    assert!(hub.remove_peer("127.0.0.2".parse().unwrap()).await.unwrap());
    assert!(!hub.remove_peer("127.0.0.9".parse().unwrap()).await.unwrap());
    wait_for("the removed spoke's route gone, the other kept", || async {
        !has(&hub, "10.2.0.0/24").await && has(&hub, "10.3.0.0/24").await
    })
    .await;
    let status = hub.status().await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].peer.to_string(), "127.0.0.3");

    // The removed spoke saw its session end (Cease / Peer De-configured) and keeps trying.
    wait_for("spoke 2 no longer established", || async {
        s2.status().await.unwrap()[0].state != "Established"
    })
    .await;
    let info = s2.status().await.unwrap()[0].info.clone();
    assert!(
        info.to_lowercase().contains("de-configured") || info.to_lowercase().contains("cease"),
        "spoke 2 says: {info}"
    );

    // Added back, it comes up again with a fresh peer id.
    hub.add_peer(peer("127.0.0.2", ASN, 0, "127.0.0.1", true))
        .await
        .unwrap()
        .unwrap();
    wait_for("spoke 2's route back", || async {
        has(&hub, "10.2.0.0/24").await
    })
    .await;
    drop(s3);
}
