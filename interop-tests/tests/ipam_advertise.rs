//! IPAM advertisement: a Bramble node with a pool, peering with BIRD over eBGP, allocates
//! addresses through `bramble ipam allocate`. host-routes: BIRD holds one /32 per allocated
//! address and loses a release's /32. aggregate: BIRD holds one route per block the node owns,
//! the node's kernel holds a blackhole for each (FIB on), and both come back after a restart.

use std::collections::BTreeSet;
use std::time::Duration;

use interop_tests::bird::{Bird, BirdBgp, BirdConfig};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer, FibSection, IpamPool};
use interop_tests::netns::Netns;
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};
use serde_json::Value;

const POLL: Duration = Duration::from_millis(500);

/// BIRD on `a` (AS 65000), Bramble on `b` (AS 64512) with `pools`, advertising `mode`.
fn lab(
    tag: &str,
    pools: Vec<IpamPool>,
    mode: &str,
    fib: bool,
) -> (ScratchDir, P2p, Bird, BrambleConfig, Bramble) {
    let dir = ScratchDir::new(tag).unwrap();
    let net = P2p::new(&format!("{tag}-bird"), &format!("{tag}-node")).unwrap();
    let mut bcfg = BirdConfig::new(P2p::A4);
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    s.local_address = Some(P2p::a4());
    bcfg.bgp.push(s);
    let bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    let mut cfg = BrambleConfig::new("node1", P2p::B4, 64512, dir.path()).with_ipam(pools, mode);
    if fib {
        cfg.fib = Some(FibSection { enabled: true });
    }
    let mut peer = BramblePeer::new(P2p::a4(), 65000);
    peer.local_address = Some(P2p::b4());
    cfg.bgp.peers.push(peer);
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();
    wait_established(&bird, &bramble);
    (dir, net, bird, cfg, bramble)
}

fn wait_established(bird: &Bird, bramble: &Bramble) {
    wait_until("session Established", Duration::from_secs(60), POLL, || {
        let b = bird.protocol_state("bramble")?;
        let n = bramble.peer_state(P2p::a4())?;
        check(
            b == "Established" && n.as_deref() == Some("Established"),
            || format!("BIRD {b}, Bramble {n:?}"),
        )
    })
    .unwrap();
}

fn wait_bird_count(bird: &Bird, want: u64) {
    wait_until(
        &format!("BIRD holds {want} routes from Bramble"),
        Duration::from_secs(60),
        POLL,
        || {
            let n = bird.route_count_from("master4", "bramble")?;
            check(n == want, || format!("BIRD has {n}"))
        },
    )
    .unwrap();
}

/// The destinations of Bramble's (protocol 196) blackhole routes in `ns`.
fn blackholes(ns: &Netns) -> BTreeSet<String> {
    let text = ns
        .ip(&["-j", "route", "show", "proto", "196", "type", "blackhole"])
        .unwrap();
    let routes: Vec<Value> = serde_json::from_str(text.trim()).unwrap_or_default();
    routes
        .iter()
        .filter_map(|r| r["dst"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn host_routes_one_per_address_and_release_withdraws() {
    require_bramble();
    let pools = vec![IpamPool::new("10.244.0.0/16", 26)];
    let (_dir, _net, bird, _cfg, bramble) = lab("ipam-h", pools, "host-routes", false);

    let ips: Vec<_> = (0..50)
        .map(|i| bramble.ipam_allocate(&format!("c{i}")).unwrap())
        .collect();
    assert_eq!(ips.iter().collect::<BTreeSet<_>>().len(), 50);
    wait_bird_count(&bird, 50);
    let r = bird.show_route(&format!("{}/32", ips[7])).unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].as_path, vec![64512]);
    assert_eq!(r[0].via, vec![P2p::b4()]);

    for i in 0..10 {
        bramble.ipam_release(&format!("c{i}")).unwrap();
    }
    wait_bird_count(&bird, 40);
    assert!(bird
        .show_route(&format!("{}/32", ips[0]))
        .unwrap()
        .is_empty());
    assert_eq!(
        bird.show_route(&format!("{}/32", ips[49])).unwrap().len(),
        1
    );
}

#[test]
fn aggregate_one_route_per_block_with_kernel_blackholes() {
    require_bramble();
    // /28 blocks: 50 addresses take four blocks.
    let pools = vec![IpamPool::new("10.244.0.0/16", 28)];
    let (dir, net, bird, cfg, mut bramble) = lab("ipam-a", pools, "aggregate", true);

    for i in 0..50 {
        bramble.ipam_allocate(&format!("c{i}")).unwrap();
    }
    let blocks: BTreeSet<String> = [
        "10.244.0.0/28",
        "10.244.0.16/28",
        "10.244.0.32/28",
        "10.244.0.48/28",
    ]
    .map(String::from)
    .into();
    let owned: BTreeSet<String> = bramble.ipam_show().unwrap()[0]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["cidr"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(owned, blocks);
    wait_bird_count(&bird, 4);
    for b in &blocks {
        assert_eq!(bird.show_route(b).unwrap().len(), 1, "{b}");
    }
    wait_until("kernel blackholes", Duration::from_secs(20), POLL, || {
        let got = blackholes(&net.b);
        check(got == blocks, || format!("{got:?}"))
    })
    .unwrap();

    // Releases inside owned blocks change nothing that is advertised.
    for i in 0..10 {
        bramble.ipam_release(&format!("c{i}")).unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(bird.route_count_from("master4", "bramble").unwrap(), 4);
    assert_eq!(blackholes(&net.b), blocks);

    // A restart (crash) advertises what the store holds again: the new agent originates the
    // blocks (Loc-RIB) and wants their blackholes (its FIB table lists them as its own).
    bramble.process().kill();
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();
    wait_until(
        "blocks originated again",
        Duration::from_secs(20),
        POLL,
        || {
            let loc: BTreeSet<String> = bramble
                .loc_routes()?
                .iter()
                .filter_map(|r| r["prefix"].as_str().map(str::to_string))
                .collect();
            let fib: BTreeSet<String> = bramble
                .routes("fib", None)?
                .iter()
                .filter_map(|r| r["prefix"].as_str().map(str::to_string))
                .collect();
            check(loc == blocks && fib == blocks, || {
                format!("loc {loc:?}, fib {fib:?}")
            })
        },
    )
    .unwrap();
    wait_established(&bird, &bramble);
    wait_bird_count(&bird, 4);
    assert_eq!(blackholes(&net.b), blocks);
}
