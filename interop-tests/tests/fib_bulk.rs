//! FIB end to end, in bulk: BIRD announces 10,000 IPv4 and 1,000 IPv6 prefixes to Bramble
//! (eBGP, import allowed, FIB on); the kernel of Bramble's namespace lists exactly those as
//! protocol-196 routes via BIRD's address; BIRD withdraws half and the kernel follows.

mod fib_common;

use std::collections::BTreeMap;
use std::time::Duration;

use fib_common::kernel_gateways;
use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer, FibSection};
use interop_tests::prefixes::{ipv4_prefixes, ipv6_prefixes};
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};
use ipnetwork::IpNetwork;

const V4: usize = 10_000;
const V6: usize = 1_000;

fn bird_config(v4: &[IpNetwork], v6: &[IpNetwork]) -> BirdConfig {
    let mut cfg = BirdConfig::new(P2p::A4);
    cfg.statics.push(BirdStatic::new("s4", v4));
    cfg.statics.push(BirdStatic::new("s6", v6));
    let mut s4 = BirdBgp::new("b4", 65000, P2p::b4(), 64512);
    s4.local_address = Some(P2p::a4());
    s4.ipv4 = Some(BirdChannel::new("none", "all"));
    let mut s6 = BirdBgp::new("b6", 65000, P2p::b6(), 64512);
    s6.local_address = Some(P2p::a6());
    s6.ipv4 = None;
    s6.ipv6 = Some(BirdChannel::new("none", "all"));
    cfg.bgp.push(s4);
    cfg.bgp.push(s6);
    cfg
}

/// What the kernel should hold: every prefix via BIRD's address of its family.
fn expected(v4: &[IpNetwork], v6: &[IpNetwork]) -> [BTreeMap<String, Vec<String>>; 2] {
    let map = |ps: &[IpNetwork], gw: String| {
        ps.iter()
            .map(|p| (p.to_string(), vec![gw.clone()]))
            .collect::<BTreeMap<_, _>>()
    };
    [map(v4, P2p::A4.to_string()), map(v6, P2p::A6.to_string())]
}

fn wait_for_kernel(net: &P2p, want: &[BTreeMap<String, Vec<String>>; 2], what: &str) {
    wait_until(what, Duration::from_secs(180), Duration::from_secs(1), || {
        let v4 = kernel_gateways(&net.b, false);
        let v6 = kernel_gateways(&net.b, true);
        check(v4 == want[0] && v6 == want[1], || {
            let wrong4 = v4.iter().filter(|(d, g)| want[0].get(*d) != Some(*g)).count();
            let wrong6 = v6.iter().filter(|(d, g)| want[1].get(*d) != Some(*g)).count();
            format!(
                "kernel has {} IPv4 ({wrong4} unexpected), {} IPv6 ({wrong6} unexpected); want {} and {}",
                v4.len(),
                v6.len(),
                want[0].len(),
                want[1].len()
            )
        })
    })
    .unwrap();
}

#[test]
fn kernel_holds_exactly_the_learned_routes_and_follows_withdrawals() {
    require_bramble();
    let dir = ScratchDir::new("fib-bulk").unwrap();
    let net = P2p::new("fib-bulk-bird", "fib-bulk-node").unwrap();
    let v4 = ipv4_prefixes("10.128.0.0".parse().unwrap(), 24, V4);
    let v6 = ipv6_prefixes("2001:db8:1000::".parse().unwrap(), 64, V6);
    assert_eq!((v4.len(), v6.len()), (V4, V6));

    let bird = Bird::start(&net.a, dir.path(), &bird_config(&v4, &v6)).unwrap();
    let mut cfg = BrambleConfig::new("node", P2p::B4, 64512, dir.path());
    cfg.bgp.listen = Some("[::]:179".into());
    cfg.fib = Some(FibSection { enabled: true });
    let mut p4 = BramblePeer::new(P2p::a4(), 65000);
    p4.local_address = Some(P2p::b4());
    p4.families = vec!["ipv4-unicast".into()];
    let mut p6 = BramblePeer::new(P2p::a6(), 65000);
    p6.local_address = Some(P2p::b6());
    p6.families = vec!["ipv6-unicast".into()];
    cfg.bgp.peers.extend([p4, p6]);
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();

    wait_for_kernel(
        &net,
        &expected(&v4, &v6),
        "kernel lists the 10,000 + 1,000 routes",
    );
    let fib = bramble.routes("fib", None).unwrap();
    assert_eq!(fib.len(), V4 + V6, "routes --table fib");
    assert!(fib.iter().all(|r| r["note"].is_null()), "a FIB route noted");

    // Withdraw the second half of each family.
    let (keep4, keep6) = (&v4[..V4 / 2], &v6[..V6 / 2]);
    bird.reconfigure(&bird_config(keep4, keep6)).unwrap();
    wait_for_kernel(
        &net,
        &expected(keep4, keep6),
        "kernel drops the withdrawn half",
    );
    wait_until(
        "routes --table fib follows",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let n = bramble.routes("fib", None)?.len();
            check(n == V4 / 2 + V6 / 2, || format!("{n} FIB routes"))
        },
    )
    .unwrap();
}
