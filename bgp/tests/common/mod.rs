//! Helpers shared by the speaker tests: ports, filters, peer and speaker settings, polling.
#![allow(dead_code)] // each test file uses its own subset

pub mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use bgp::policy::{Filter, PrefixRule};
use bgp::speaker::{PeerSettings, RouteEntry, SpeakerConfig, SpeakerHandle, TableKind};
use bgp::wire::Family;

/// A free loopback port outside the ephemeral range: a speaker restarted on it later finds it
/// still free (no outgoing connection of a parallel test took it meanwhile).
pub fn free_port() -> u16 {
    interop_tests::ports::free_port().unwrap()
}

pub fn allow_all() -> Filter {
    Filter {
        rules: Some(vec![
            "0.0.0.0/0 le 32".parse::<PrefixRule>().unwrap(),
            "::/0 le 128".parse().unwrap(),
        ]),
        policy: None,
    }
}

pub fn peer(address: &str, asn: u32, port: u16, local: &str, passive: bool) -> PeerSettings {
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
        add_path: None,
    }
}

pub fn config(
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

pub async fn wait_for<F, Fut>(what: &str, mut f: F)
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

pub async fn established(h: &SpeakerHandle) -> bool {
    h.status()
        .await
        .unwrap()
        .iter()
        .all(|p| p.state == "Established")
}

pub async fn loc(h: &SpeakerHandle) -> Vec<RouteEntry> {
    h.routes(TableKind::Loc, None).await.unwrap().unwrap()
}
