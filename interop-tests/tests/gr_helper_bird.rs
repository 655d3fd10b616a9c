//! Graceful restart, Bramble as helper (RFC 4724 §4.2) with BIRD as the restarting speaker:
//! Bramble (FIB on) learns BIRD's routes; BIRD is SIGKILLed (its TCP session just drops) and
//! Bramble keeps the routes in the kernel, marked stale. BIRD comes back with `bird -R`
//! (Restart State and Forwarding State bits set), re-announces and sends End-of-RIB: the
//! routes are still there, and `ip monitor route` saw no deletion. Then BIRD is killed and
//! not restarted: the routes go once its restart time has passed.

mod fib_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fib_common::{kernel_gateways, strip_timestamp, Monitor};
use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::bramble::{route_peer, Bramble, BrambleConfig, BramblePeer, FibSection};
use interop_tests::prefixes::ipv4_prefixes;
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};

const ROUTES: usize = 50;
/// BIRD's `graceful restart time`: what it advertises as its Restart Time.
const BIRD_RESTART: u64 = 20;
/// A route added by hand at the end: proof that the monitor was recording.
const MARKER: &str = "192.0.2.0/24";

#[test]
fn bramble_keeps_a_restarting_birds_routes_in_the_kernel() {
    require_bramble();
    let dir = ScratchDir::new("gr-helper").unwrap();
    let net = P2p::new("gr-h-bird", "gr-h-node").unwrap();
    let prefixes = ipv4_prefixes("10.150.0.0".parse().unwrap(), 24, ROUTES);
    let mut bcfg = BirdConfig::new(P2p::A4);
    bcfg.statics.push(BirdStatic::new("s4", &prefixes));
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    s.ipv4 = Some(BirdChannel::new("none", "all"));
    s.extra = format!("  graceful restart on;\n  graceful restart time {BIRD_RESTART};\n");
    bcfg.bgp.push(s);
    let mut bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    let mut cfg = BrambleConfig::new("node", P2p::B4, 64512, dir.path());
    cfg.fib = Some(FibSection { enabled: true });
    cfg.bgp.graceful_restart = Some(true);
    cfg.bgp.restart_time = Some(120);
    cfg.bgp.peers.push(BramblePeer::new(P2p::a4(), 65000));
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();

    let want: BTreeMap<String, Vec<String>> = prefixes
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
    // Loc-RIB paths from BIRD whose note is `note`.
    let learned = |note: Option<&str>| -> interop_tests::Result<usize> {
        Ok(bramble
            .loc_routes()?
            .iter()
            .filter(|r| route_peer(r) == Some(P2p::a4()))
            .filter(|r| r["note"].as_str() == note)
            .count())
    };
    let info = || -> String {
        bramble
            .status()
            .ok()
            .and_then(|s| s.first().map(|p| p["info"].to_string()))
            .unwrap_or_default()
    };

    // 1. BIRD crashes: the routes stay, stale.
    let monitor = Monitor::start(&net.b, dir.path(), "monitor");
    bird.process().kill();
    drop(bird);
    wait_until(
        "Bramble marks BIRD's routes stale",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let stale = learned(Some("stale"))?;
            check(stale == ROUTES, || {
                format!("{stale} stale; info {}", info())
            })
        },
    )
    .unwrap();
    let i = info();
    assert!(
        i.contains(&format!(
            "{ROUTES} routes kept as stale for {BIRD_RESTART} s"
        )),
        "status info: {i}"
    );
    std::thread::sleep(Duration::from_secs(3));
    installed().unwrap();

    // 2. BIRD comes back in graceful restart recovery; End-of-RIB clears the stale marks.
    let mut bird = Bird::start_recovering(&net.a, dir.path(), &bcfg).unwrap();
    wait_until(
        "BIRD's routes are fresh again",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let fresh = learned(None)?;
            let stale = learned(Some("stale"))?;
            check(fresh == ROUTES && stale == 0, || {
                format!("{fresh} fresh, {stale} stale; info {}", info())
            })
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    installed().unwrap();
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
    let deleted: Vec<&str> = recording
        .lines()
        .map(strip_timestamp)
        .filter(|l| l.contains("proto 196") && l.starts_with("Deleted"))
        .collect();
    assert!(
        deleted.is_empty(),
        "routes were deleted from the kernel across BIRD's graceful restart:\n{recording}"
    );
    let rewritten = recording
        .lines()
        .filter(|l| l.contains("proto 196"))
        .count();
    eprintln!("kernel route rewrites (not deletions) across the restart: {rewritten}");

    // 3. BIRD crashes for good: the routes go after its restart time, not before.
    bird.process().kill();
    drop(bird);
    let killed = Instant::now();
    wait_until(
        "routes marked stale again",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let stale = learned(Some("stale"))?;
            check(stale == ROUTES, || {
                format!("{stale} stale; info {}", info())
            })
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(BIRD_RESTART / 2));
    installed().unwrap();
    wait_until(
        "stale routes removed from the kernel after the restart time",
        Duration::from_secs(BIRD_RESTART + 20),
        Duration::from_millis(500),
        || {
            let have = kernel_gateways(&net.b, false);
            check(have.is_empty(), || format!("{} kernel routes", have.len()))
        },
    )
    .unwrap();
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_secs(BIRD_RESTART - 2),
        "routes removed after {took:?}"
    );
    assert_eq!(learned(None).unwrap() + learned(Some("stale")).unwrap(), 0);
}
