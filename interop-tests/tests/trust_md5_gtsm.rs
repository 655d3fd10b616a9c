//! Bramble ↔ BIRD with TCP MD5 (RFC 2385) and GTSM (RFC 5082), in network namespaces.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use interop_tests::bird::{Bird, BirdBgp, BirdConfig};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer};
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, Netns, ScratchDir, Veth};

const POLL: Duration = Duration::from_millis(500);
/// How long a session that must not come up is watched.
const NEVER: Duration = Duration::from_secs(15);

struct Pair {
    bird: Bird,
    bramble: Bramble,
    _net: P2p,
    _dir: ScratchDir,
}

/// BIRD (AS 65000, 10.0.0.1) and Bramble (AS 64512, 10.0.0.2) on one link, each side's
/// session set up by the closures.
fn pair(
    name: &str,
    bird_side: impl FnOnce(&mut BirdBgp),
    bramble_side: impl FnOnce(&mut BramblePeer, &std::path::Path),
) -> Pair {
    let dir = ScratchDir::new(name).unwrap();
    let net = P2p::new(&format!("{name}-bird"), &format!("{name}-node")).unwrap();
    let mut bcfg = BirdConfig::new(P2p::A4);
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    s.local_address = Some(P2p::a4());
    bird_side(&mut s);
    bcfg.bgp.push(s);
    let bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    let mut cfg = BrambleConfig::new("node1", P2p::B4, 64512, dir.path());
    let mut peer = BramblePeer::new(P2p::a4(), 65000);
    peer.local_address = Some(P2p::b4());
    bramble_side(&mut peer, dir.path());
    cfg.bgp.peers.push(peer);
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();
    Pair {
        bird,
        bramble,
        _net: net,
        _dir: dir,
    }
}

fn wait_established(bird: &Bird, bramble: &Bramble, peer: IpAddr) {
    wait_until("session Established", Duration::from_secs(60), POLL, || {
        let b = bird.protocol_state("bramble")?;
        let n = bramble.peer_state(peer)?;
        check(
            b == "Established" && n.as_deref() == Some("Established"),
            || format!("BIRD {b}, Bramble {n:?}"),
        )
    })
    .unwrap();
}

/// Watches for [`NEVER`]: neither side may reach Established. Returns Bramble's last INFO.
fn never_established(bird: &Bird, bramble: &Bramble, peer: IpAddr) -> String {
    let start = Instant::now();
    let mut info = String::new();
    while start.elapsed() < NEVER {
        let b = bird.protocol_state("bramble").unwrap();
        let st = bramble.peer_status(peer).unwrap().unwrap();
        assert_ne!(b, "Established", "BIRD came up");
        assert_ne!(
            st["state"].as_str(),
            Some("Established"),
            "Bramble came up: {st}"
        );
        info = st["info"].as_str().unwrap_or_default().to_string();
        std::thread::sleep(POLL);
    }
    info
}

#[test]
fn md5_matching_password_establishes_with_bird() {
    require_bramble();
    // Bramble reads its key from a file (with the newline `echo` leaves).
    let p = pair(
        "tr-md5ok",
        |s| s.password = Some("bramble-s3cret".into()),
        |peer, dir| {
            let file = dir.join("md5.key");
            std::fs::write(&file, "bramble-s3cret\n").unwrap();
            peer.password_file = Some(file);
        },
    );
    wait_established(&p.bird, &p.bramble, P2p::a4());
}

#[test]
fn md5_wrong_password_never_establishes_and_status_says_why() {
    require_bramble();
    let p = pair(
        "tr-md5bad",
        |s| s.password = Some("the-right-one".into()),
        |peer, _| peer.password = Some("a-wrong-one".into()),
    );
    let info = never_established(&p.bird, &p.bramble, P2p::a4());
    assert!(
        info.contains("timed out (TCP MD5 configured: check the password)"),
        "Bramble INFO: {info:?}"
    );
}

#[test]
fn gtsm_establishes_with_bird() {
    require_bramble();
    let p = pair(
        "tr-gtsm",
        |s| s.ttl_security = true,
        |peer, _| peer.ttl_security = true,
    );
    wait_established(&p.bird, &p.bramble, P2p::a4());
}

#[test]
fn gtsm_and_md5_together_establish_with_bird() {
    require_bramble();
    let p = pair(
        "tr-both",
        |s| {
            s.ttl_security = true;
            s.password = Some("k".into());
        },
        |peer, _| {
            peer.ttl_security = true;
            peer.password = Some("k".into());
        },
    );
    wait_established(&p.bird, &p.bramble, P2p::a4());
}

/// BIRD (10.0.0.1) — router (10.0.0.2 | 10.0.1.1, forwarding) — Bramble (10.0.1.2).
struct TwoHops {
    bird_ns: Netns,
    node_ns: Netns,
    _router: Netns,
    _links: (Veth, Veth),
}

const BIRD_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const NODE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);

fn two_hops(name: &str) -> TwoHops {
    let bird_ns = Netns::new(&format!("{name}-bird")).unwrap();
    let router = Netns::new(&format!("{name}-rtr")).unwrap();
    let node_ns = Netns::new(&format!("{name}-node")).unwrap();
    let l1 = Veth::new(&bird_ns, &router).unwrap();
    let l2 = Veth::new(&router, &node_ns).unwrap();
    l1.a().add_addr("10.0.0.1/30").unwrap();
    l1.b().add_addr("10.0.0.2/30").unwrap();
    l2.a().add_addr("10.0.1.1/30").unwrap();
    l2.b().add_addr("10.0.1.2/30").unwrap();
    router
        .exec("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"])
        .unwrap();
    bird_ns
        .ip(&["route", "add", "10.0.1.0/30", "via", "10.0.0.2"])
        .unwrap();
    node_ns
        .ip(&["route", "add", "10.0.0.0/30", "via", "10.0.1.1"])
        .unwrap();
    TwoHops {
        bird_ns,
        node_ns,
        _router: router,
        _links: (l1, l2),
    }
}

fn bird_two_hops(gtsm: bool) -> BirdConfig {
    let mut bcfg = BirdConfig::new(BIRD_ADDR);
    let mut s = BirdBgp::new("bramble", 65000, IpAddr::V4(NODE_ADDR), 64512);
    s.local_address = Some(IpAddr::V4(BIRD_ADDR));
    // BIRD itself allows the extra hop (with GTSM: TTL 254 and up), so only Bramble's
    // check can refuse the session.
    s.multihop = Some(2);
    s.ttl_security = gtsm;
    bcfg.bgp.push(s);
    bcfg
}

fn bramble_two_hops(dir: &std::path::Path, gtsm: bool) -> BrambleConfig {
    let mut cfg = BrambleConfig::new("node1", NODE_ADDR, 64512, dir);
    let mut peer = BramblePeer::new(IpAddr::V4(BIRD_ADDR), 65000);
    peer.local_address = Some(IpAddr::V4(NODE_ADDR));
    peer.ttl_security = gtsm;
    cfg.bgp.peers.push(peer);
    cfg
}

#[test]
fn gtsm_refuses_a_peer_two_hops_away() {
    require_bramble();
    let net = two_hops("tr-2hop");
    let bird_addr = IpAddr::V4(BIRD_ADDR);

    // Control: without GTSM the routed session comes up, so the path itself works.
    let dir = ScratchDir::new("tr-2hop-plain").unwrap();
    let bird = Bird::start(&net.bird_ns, dir.path(), &bird_two_hops(false)).unwrap();
    let bramble = Bramble::start(
        &net.node_ns,
        dir.path(),
        &bramble_two_hops(dir.path(), false),
    )
    .unwrap();
    wait_established(&bird, &bramble, bird_addr);
    drop(bramble);
    drop(bird);

    // With GTSM both ways: BIRD's packets reach Bramble with TTL 254 < 255.
    let dir = ScratchDir::new("tr-2hop-gtsm").unwrap();
    let bird = Bird::start(&net.bird_ns, dir.path(), &bird_two_hops(true)).unwrap();
    let bramble = Bramble::start(
        &net.node_ns,
        dir.path(),
        &bramble_two_hops(dir.path(), true),
    )
    .unwrap();
    let info = never_established(&bird, &bramble, bird_addr);
    assert!(info.contains("GTSM configured"), "Bramble INFO: {info:?}");
}
