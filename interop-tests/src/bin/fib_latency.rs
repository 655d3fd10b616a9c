//! UPDATE-to-kernel latency of one route: BIRD announces one prefix (`birdc enable` of a
//! static protocol) to Bramble (FIB on) while `ip -ts monitor route` records in Bramble's
//! namespace; the time from `birdc enable` returning (and, as an upper bound, from it being
//! started) to the route's line in the monitor. The route may reach the kernel before the
//! `birdc` process has returned, so the first figure can be negative.
//! Repeated `FIB_LATENCY_RUNS` times (default 20); prints each, the median and the p90.
//!
//! ```text
//! cargo build --workspace --bins && cargo run --release -p interop-tests --bin fib_latency
//! ```
//!
//! Needs root, `ip`, `bird`/`birdc` and the `bramble` binary (as the interop tests do).

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer, FibSection};
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ChildGuard, ScratchDir};

const PREFIX: &str = "10.200.0.0/24";

/// Seconds since the epoch of an `ip -ts` stamp `[YYYY-MM-DDTHH:MM:SS.ffffff]` printed
/// in UTC (the monitor runs with `TZ=UTC`).
fn parse_stamp(line: &str) -> Option<f64> {
    let stamp = line.strip_prefix('[')?.split(']').next()?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let ss: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The stamps of the monitor's lines announcing PREFIX (not its deletions).
fn announce_stamps(path: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(PREFIX) && !l.contains("Deleted"))
        .filter_map(parse_stamp)
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn main() -> interop_tests::Result<()> {
    require_bramble();
    let runs: usize = std::env::var("FIB_LATENCY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = ScratchDir::new("fib-lat")?;
    let net = P2p::new("fib-lat-bird", "fib-lat-node")?;
    let mut bcfg = BirdConfig::new(P2p::A4);
    bcfg.statics.push(BirdStatic::new("lat", &[PREFIX]));
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    s.ipv4 = Some(BirdChannel::new("none", "all"));
    bcfg.bgp.push(s);
    let bird = Bird::start(&net.a, dir.path(), &bcfg)?;
    let mut cfg = BrambleConfig::new("node", P2p::B4, 64512, dir.path());
    cfg.fib = Some(FibSection { enabled: true });
    cfg.bgp.peers.push(BramblePeer::new(P2p::a4(), 65000));
    let _bramble = Bramble::start(&net.b, dir.path(), &cfg)?;
    let in_kernel = |want: bool| {
        let out = net.b.ip(&["route", "show", "proto", "196"])?;
        check(out.contains(PREFIX) == want, || out.clone())
    };
    wait_until(
        "route installed",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || in_kernel(true),
    )?;

    let mut cmd = Command::new("ip");
    cmd.env("TZ", "UTC")
        .args(["-ts", "-n", net.b.name(), "monitor", "route"]);
    let monitor = ChildGuard::spawn(cmd, "monitor", dir.path())?;
    std::thread::sleep(Duration::from_millis(500));

    let mut samples = Vec::with_capacity(runs);
    for run in 1..=runs {
        bird.disable("lat")?;
        wait_until(
            "route withdrawn",
            Duration::from_secs(30),
            Duration::from_millis(20),
            || in_kernel(false),
        )?;
        std::thread::sleep(Duration::from_millis(300));
        let seen = announce_stamps(monitor.stdout_path()).len();
        let called_at = now();
        bird.enable("lat")?;
        let enabled_at = now();
        let mut stamp = None;
        wait_until(
            "route in the monitor",
            Duration::from_secs(30),
            Duration::from_millis(5),
            || {
                stamp = announce_stamps(monitor.stdout_path()).get(seen).copied();
                Ok(stamp.is_some())
            },
        )?;
        let seen_at = stamp.unwrap_or(enabled_at);
        let ms = (seen_at - enabled_at) * 1000.0;
        let from_call = (seen_at - called_at) * 1000.0;
        println!(
            "run {run:>2}: {ms:8.2} ms after birdc returned, {from_call:8.2} ms after it was started"
        );
        samples.push((ms, from_call));
    }
    for (name, pick) in [
        ("from birdc enable returning", 0),
        ("from birdc enable being started", 1),
    ] {
        let mut v: Vec<f64> = samples
            .iter()
            .map(|s| if pick == 0 { s.0 } else { s.1 })
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        println!(
            "UPDATE-to-kernel latency {name}, {runs} runs: median {:.2} ms, p90 {:.2} ms, min {:.2} ms, max {:.2} ms",
            percentile(&v, 0.5),
            percentile(&v, 0.9),
            v.first().copied().unwrap_or(f64::NAN),
            v.last().copied().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}
