//! Long-lived graceful restart (RFC 9494) with BIRD: BIRD (graceful restart time 4 s, long
//! lived stale time 20 s) announces 10 plain routes and 5 tagged NO_LLGR to Bramble (FIB on,
//! `bgp.llgr_stale_time` set). BIRD is SIGKILLed and never comes back. After BIRD's restart
//! time the NO_LLGR routes leave the kernel while the plain ones stay, marked LLGR_STALE
//! (65535:6) and least preferred in Bramble's Loc-RIB; after the long-lived stale time they
//! go too.

mod fib_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fib_common::kernel_gateways;
use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::bramble::{bramble_bin, BrambleConfig, BramblePeer, FibSection};
use interop_tests::prefixes::ipv4_prefixes;
use interop_tests::process::run_unchecked;
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ChildGuard, Netns, ScratchDir};
use serde_json::Value;

const PLAIN: usize = 10;
const NO_LLGR: usize = 5;
/// BIRD's `graceful restart time` and `long lived stale time`.
const BIRD_RESTART: u64 = 4;
const BIRD_LLST: u64 = 20;

/// A Bramble agent started from a config with `bgp.llgr_stale_time` (a key the shared
/// `BrambleConfig` does not have). Killed on drop.
struct Agent {
    _child: ChildGuard,
    socket: PathBuf,
}

impl Agent {
    fn start(ns: &Netns, dir: &Path, cfg: &BrambleConfig, llgr_stale_time: u32) -> Agent {
        let text = cfg.render().unwrap().replacen(
            "[bgp]\n",
            &format!("[bgp]\nllgr_stale_time = {llgr_stale_time}\n"),
            1,
        );
        assert!(text.contains("llgr_stale_time"), "{text}");
        let path = dir.join("bramble-llgr.toml");
        std::fs::write(&path, text).unwrap();
        let mut cmd = ns.command(bramble_bin());
        cmd.arg("agent").arg("--config").arg(&path).env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or("info".into()),
        );
        let child = ChildGuard::spawn(cmd, "bramble-llgr", dir).unwrap();
        let agent = Agent {
            _child: child,
            socket: cfg.api.socket.clone(),
        };
        wait_until(
            "bramble control socket",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || Ok(agent.json(&["status", "-o", "json"]).is_some()),
        )
        .unwrap();
        agent
    }

    fn json(&self, args: &[&str]) -> Option<Value> {
        let mut cmd = Command::new(bramble_bin());
        cmd.args(args).arg("--socket").arg(&self.socket);
        let out = run_unchecked(&mut cmd).ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Loc-RIB paths from BIRD.
    fn learned(&self) -> Vec<Value> {
        let peer = P2p::a4().to_string();
        self.json(&["routes", "--table", "loc", "-o", "json"])
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["peer"].as_str() == Some(peer.as_str()))
            .collect()
    }

    fn info(&self) -> String {
        self.json(&["status", "-o", "json"])
            .and_then(|v| v.get(0).map(|p| p["info"].to_string()))
            .unwrap_or_default()
    }
}

fn llgr_stale(r: &Value) -> bool {
    let communities = r["communities"].as_array().cloned().unwrap_or_default();
    communities.iter().any(|c| c.as_str() == Some("65535:6")) && r["local_pref"] == 0
}

#[test]
fn birds_routes_stay_long_lived_stale_after_its_restart_time() {
    require_bramble();
    let dir = ScratchDir::new("gr-llgr").unwrap();
    let net = P2p::new("gr-l-bird", "gr-l-node").unwrap();
    let plain = ipv4_prefixes("10.160.0.0".parse().unwrap(), 24, PLAIN);
    let tagged = ipv4_prefixes("10.161.0.0".parse().unwrap(), 24, NO_LLGR);
    let mut bcfg = BirdConfig::new(P2p::A4);
    bcfg.statics.push(BirdStatic::new("plain", &plain));
    bcfg.statics.push(BirdStatic::new("tagged", &tagged));
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    // RFC 9494 §5.2: NO_LLGR on the tagged routes.
    s.ipv4 = Some(BirdChannel::new(
        "none",
        "filter { if proto = \"tagged\" then bgp_community.add((65535, 7)); accept; }",
    ));
    s.extra = format!(
        "  graceful restart on;\n  graceful restart time {BIRD_RESTART};\n  \
         long lived graceful restart on;\n  long lived stale time {BIRD_LLST};\n"
    );
    bcfg.bgp.push(s);
    let mut bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    let mut cfg = BrambleConfig::new("node", P2p::B4, 64512, dir.path());
    cfg.fib = Some(FibSection { enabled: true });
    cfg.bgp.graceful_restart = Some(true);
    cfg.bgp.restart_time = Some(120);
    cfg.bgp.peers.push(BramblePeer::new(P2p::a4(), 65000));
    let bramble = Agent::start(&net.b, dir.path(), &cfg, 3600);

    let in_kernel = |prefixes: &[ipnetwork::IpNetwork]| {
        let have = kernel_gateways(&net.b, false);
        prefixes
            .iter()
            .filter(|p| have.contains_key(&p.to_string()))
            .count()
    };
    wait_until(
        "every route installed",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            let n = in_kernel(&plain) + in_kernel(&tagged);
            check(n == PLAIN + NO_LLGR, || format!("{n} installed"))
        },
    )
    .unwrap();

    bird.process().kill();
    drop(bird);
    let killed = Instant::now();
    // The restart time passes: long-lived stale phase.
    wait_until(
        "plain routes long-lived stale, NO_LLGR ones gone",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let learned = bramble.learned();
            let stale = learned.iter().filter(|r| llgr_stale(r)).count();
            let tagged_left = in_kernel(&tagged);
            check(
                stale == PLAIN && learned.len() == PLAIN && tagged_left == 0,
                || {
                    format!(
                        "{} learned, {stale} LLGR-stale, {tagged_left} NO_LLGR in the kernel; {}",
                        learned.len(),
                        bramble.info()
                    )
                },
            )
        },
    )
    .unwrap();
    let llgr_at = killed.elapsed();
    assert_eq!(in_kernel(&plain), PLAIN, "plain routes left the kernel");
    let info = bramble.info();
    assert!(
        info.contains(&format!("{PLAIN} routes kept as LLGR-stale")),
        "status info: {info}"
    );
    // Still there halfway through the long-lived stale time.
    std::thread::sleep(Duration::from_secs(BIRD_LLST / 2));
    assert_eq!(
        in_kernel(&plain),
        PLAIN,
        "plain routes left the kernel early"
    );

    wait_until(
        "routes removed after the long-lived stale time",
        Duration::from_secs(BIRD_LLST + 30),
        Duration::from_millis(300),
        || {
            let n = in_kernel(&plain);
            check(n == 0, || {
                format!("{n} still installed; {}", bramble.info())
            })
        },
    )
    .unwrap();
    eprintln!(
        "LLGR phase began {llgr_at:?} after the kill, routes gone {:?} after the kill",
        killed.elapsed()
    );
    assert!(bramble.learned().is_empty());
}
