//! Install-then-remove throughput: 100,000 IPv4 /32 routes via a veth gateway, through the
//! programmer and through `ip -batch` (the same routes), in a fresh network namespace.
//! Needs root and `ip`; nothing else.
//!
//! ```text
//! cargo bench -p fib --bench programmer            # 100,000 routes, 3 rounds
//! FIB_BENCH_ROUTES=20000 FIB_BENCH_ROUNDS=5 cargo bench -p fib --bench programmer
//! ```
//!
//! Prints, per round and as the median of the rounds, routes per second for install,
//! remove and both together, and the ratio programmer / `ip -batch`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use fib::{FibConfig, NextHop, Programmer, Route};
use ipnetwork::{IpNetwork, Ipv4Network};

const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A namespace with `veth0` (192.0.2.1/24) whose peer is up, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let ns = Netns(format!("fibbench-{}", std::process::id()));
        let n = ns.0.as_str();
        ip(&["netns", "add", n]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&[
            "-n", n, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0p",
        ]);
        ip(&["-n", n, "addr", "add", "192.0.2.1/24", "dev", "veth0"]);
        ip(&["-n", n, "link", "set", "veth0p", "up"]);
        ip(&["-n", n, "link", "set", "veth0", "up"]);
        ns
    }

    /// Our routes in the kernel (`ip route show proto 196`), counted.
    fn count(&self) -> usize {
        ip(&["-n", &self.0, "route", "show", "proto", "196"])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }

    /// Moves the calling thread into the namespace.
    fn enter(&self) {
        let file = File::open(format!("/var/run/netns/{}", self.0)).expect("open netns");
        // SAFETY: setns on a valid namespace fd; affects only the calling thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn dst(i: usize) -> IpNetwork {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    let addr = Ipv4Addr::from(base + i as u32);
    IpNetwork::V4(Ipv4Network::new(addr, 32).expect("/32"))
}

#[derive(Debug, Clone, Copy)]
struct Round {
    install: Duration,
    remove: Duration,
}

impl Round {
    fn total(&self) -> Duration {
        self.install + self.remove
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// One install + remove through the programmer, in a thread inside the namespace.
fn programmer_round(ns: &Netns, n: usize) -> Round {
    let round = std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let cfg = FibConfig {
                    stale_after: Duration::ZERO,
                    ..FibConfig::default()
                };
                let fib = Programmer::spawn(cfg).expect("programmer");
                fib.flush().await;
                let hop = vec![NextHop::via(IpAddr::V4(GATEWAY))];
                let start = Instant::now();
                for i in 0..n {
                    fib.set(Route::unicast(dst(i), hop.clone()));
                }
                fib.flush().await;
                let install = start.elapsed();
                let status = fib.status().await;
                assert_eq!(status.installed.len(), n, "programmer installed");
                assert!(status.failed.is_empty(), "failed: {}", status.failed.len());
                let start = Instant::now();
                for i in 0..n {
                    fib.remove(dst(i));
                }
                fib.flush().await;
                let remove = start.elapsed();
                fib.shutdown().await;
                Round { install, remove }
            })
        })
        .join()
        .expect("programmer thread")
    });
    assert_eq!(ns.count(), 0, "programmer left routes behind");
    round
}

/// One install + remove of the same routes through `ip -batch`.
fn ip_batch_round(ns: &Netns, n: usize) -> Round {
    let dir = std::env::temp_dir();
    let add = dir.join(format!("{}-add.txt", ns.0));
    let del = dir.join(format!("{}-del.txt", ns.0));
    for (path, verb) in [(&add, "add"), (&del, "del")] {
        let mut f = BufWriter::new(File::create(path).expect("batch file"));
        for i in 0..n {
            writeln!(f, "route {verb} {} via {GATEWAY} proto 196", dst(i)).expect("write");
        }
        f.flush().expect("flush");
    }
    let run = |path: &std::path::Path| {
        let start = Instant::now();
        let status = Command::new("ip")
            .args(["-n", &ns.0, "-batch"])
            .arg(path)
            .status()
            .expect("ip -batch");
        assert!(status.success(), "ip -batch {}", path.display());
        start.elapsed()
    };
    let install = run(&add);
    assert_eq!(ns.count(), n, "ip -batch installed");
    let remove = run(&del);
    assert_eq!(ns.count(), 0, "ip -batch left routes behind");
    let _ = std::fs::remove_file(&add);
    let _ = std::fs::remove_file(&del);
    Round { install, remove }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn report(name: &str, n: usize, rounds: &[Round]) -> Duration {
    let install = median(rounds.iter().map(|r| r.install).collect());
    let remove = median(rounds.iter().map(|r| r.remove).collect());
    let total = median(rounds.iter().map(Round::total).collect());
    println!(
        "{name:<11} median: install {install:>9.1?} ({:>9.0} routes/s), remove {remove:>9.1?} ({:>9.0} routes/s), both {total:>9.1?} ({:>9.0} routes/s)",
        rate(n, install),
        rate(n, remove),
        rate(2 * n, total),
    );
    total
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: then run small.
    let benching = std::env::args().any(|a| a == "--bench");
    let n = env_or("FIB_BENCH_ROUTES", if benching { 100_000 } else { 2_000 });
    let rounds = env_or("FIB_BENCH_ROUNDS", if benching { 3 } else { 1 }).max(1);
    let ns = Netns::new();
    println!("{n} IPv4 /32 routes via {GATEWAY} (veth), install then remove; {rounds} rounds");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 1..=rounds {
        let p = programmer_round(&ns, n);
        let b = ip_batch_round(&ns, n);
        println!(
            "round {round}: programmer install {:.1?} remove {:.1?} | ip -batch install {:.1?} remove {:.1?}",
            p.install, p.remove, b.install, b.remove
        );
        ours.push(p);
        theirs.push(b);
    }
    let p = report("programmer", n, &ours);
    let b = report("ip -batch", n, &theirs);
    println!(
        "ratio (programmer / ip -batch, install+remove routes/s): {:.2}x",
        b.as_secs_f64() / p.as_secs_f64()
    );
}
