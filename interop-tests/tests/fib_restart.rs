//! FIB end to end, restart: Bramble (graceful restart on) learns routes from BIRD and
//! installs them; the agent is SIGKILLed and started again with the same config while
//! `ip monitor route` records. The routes left in the kernel were right, so after the
//! new agent has learned them again none of them saw a deletion or a rewrite.

mod fib_common;

use std::time::Duration;

use fib_common::{kernel_gateways, strip_timestamp, Monitor};
use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::bramble::{route_peer, Bramble, BrambleConfig, BramblePeer, FibSection};
use interop_tests::prefixes::ipv4_prefixes;
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};

const ROUTES: usize = 200;
/// A route added by hand at the end: proof that the monitor was recording.
const MARKER: &str = "192.0.2.0/24";

#[test]
fn routes_that_were_right_survive_an_agent_crash_untouched() {
    require_bramble();
    let dir = ScratchDir::new("fib-restart").unwrap();
    let net = P2p::new("fib-rs-bird", "fib-rs-node").unwrap();
    let prefixes = ipv4_prefixes("10.140.0.0".parse().unwrap(), 24, ROUTES);
    let mut bcfg = BirdConfig::new(P2p::A4);
    bcfg.statics.push(BirdStatic::new("s4", &prefixes));
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    s.ipv4 = Some(BirdChannel::new("none", "all"));
    bcfg.bgp.push(s);
    let _bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    let mut cfg = BrambleConfig::new("node", P2p::B4, 64512, dir.path());
    cfg.fib = Some(FibSection { enabled: true });
    cfg.bgp.graceful_restart = Some(true);
    cfg.bgp.restart_time = Some(120);
    cfg.bgp.peers.push(BramblePeer::new(P2p::a4(), 65000));
    let mut bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();

    let want: std::collections::BTreeMap<String, Vec<String>> = prefixes
        .iter()
        .map(|p| (p.to_string(), vec![P2p::A4.to_string()]))
        .collect();
    let installed = || {
        let have = kernel_gateways(&net.b, false);
        check(have == want, || format!("{} kernel routes", have.len()))
    };
    wait_until(
        "routes installed",
        Duration::from_secs(60),
        Duration::from_millis(500),
        installed,
    )
    .unwrap();

    let monitor = Monitor::start(&net.b, dir.path(), "monitor");
    bramble.process().kill();
    drop(bramble);
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();
    wait_until(
        "the new agent has learned the routes again",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let learned = bramble
                .loc_routes()?
                .iter()
                .filter(|r| route_peer(r) == Some(P2p::a4()))
                .count();
            let fib = bramble.routes("fib", None)?;
            let clean = fib.iter().all(|r| r["note"].is_null());
            check(learned == ROUTES && fib.len() == ROUTES && clean, || {
                format!(
                    "{learned} learned, {} in routes --table fib, clean {clean}",
                    fib.len()
                )
            })
        },
    )
    .unwrap();
    // Give the programmer time to write anything it (wrongly) wanted to write.
    std::thread::sleep(Duration::from_secs(2));
    net.b
        .ip(&["route", "add", MARKER, "via", "10.0.0.1", "proto", "static"])
        .unwrap();
    wait_until(
        "monitor records the marker",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || Ok(monitor.text().contains(MARKER)),
    )
    .unwrap();
    let recording = monitor.stop();
    let touched: Vec<&str> = recording
        .lines()
        .map(strip_timestamp)
        .filter(|l| l.contains("proto 196"))
        .collect();
    assert!(
        touched.is_empty(),
        "routes that were right were deleted or rewritten across the restart:\n{recording}"
    );
    installed().unwrap();
}
