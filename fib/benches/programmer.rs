//! Time to install 10,000 IPv4 routes through the programmer into the kernel, in a
//! network namespace of its own (run as root). Prints routes/second, and the same work
//! done by `ip -batch` for comparison.

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use fib::{FibConfig, NextHop, Programmer, Route};
use ipnetwork::{IpNetwork, Ipv4Network};

const ROUTES: u32 = 10_000;

struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("fibbench-{}", std::process::id());
        let ip = |args: &[&str]| {
            let ok = Command::new("ip").args(args).status().map(|s| s.success());
            assert!(matches!(ok, Ok(true)), "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        let n = ns.0.as_str();
        ip(&[
            "-n", n, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0p",
        ]);
        ip(&["-n", n, "addr", "add", "192.0.2.1/24", "dev", "veth0"]);
        ip(&["-n", n, "link", "set", "veth0p", "up"]);
        ip(&["-n", n, "link", "set", "veth0", "up"]);
        ns
    }

    fn enter(&self) {
        let file = File::open(format!("/var/run/netns/{}", self.0)).unwrap();
        // SAFETY: moves only this (the bench's main) thread into the namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn dst(i: u32) -> IpNetwork {
    IpNetwork::V4(Ipv4Network::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
}

fn routes() -> Vec<Route> {
    (0..ROUTES)
        .map(|i| {
            Route::unicast(
                dst(i),
                vec![NextHop::via(IpAddr::V4(Ipv4Addr::new(
                    192,
                    0,
                    2,
                    2 + (i % 8) as u8,
                )))],
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ns = Netns::new();
    ns.enter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let routes = routes();
    let cfg = FibConfig {
        stale_after: Duration::ZERO,
        ..FibConfig::default()
    };

    let mut group = c.benchmark_group("fib");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let mut best = Duration::MAX;
    group.bench_function("install_10k_v4_routes", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let fib = Programmer::spawn(cfg.clone()).unwrap();
                    fib.flush().await;
                    let start = Instant::now();
                    for r in &routes {
                        fib.set(r.clone());
                    }
                    fib.flush().await;
                    let took = start.elapsed();
                    best = best.min(took);
                    total += took;
                    for r in &routes {
                        fib.remove(r.dst);
                    }
                    fib.flush().await;
                    fib.shutdown().await;
                }
                total
            })
        })
    });
    group.finish();
    println!(
        "programmer: best {best:?} for {ROUTES} routes = {:.0} routes/s",
        f64::from(ROUTES) / best.as_secs_f64()
    );

    // The same routes through `ip -batch` (one netlink request and ACK at a time).
    let path = std::env::temp_dir().join(format!("{}-batch.txt", ns.0));
    let mut file = File::create(&path).unwrap();
    for r in &routes {
        if let fib::RouteKind::Unicast(hops) = &r.kind {
            writeln!(
                file,
                "route add {} via {} proto 196",
                r.dst, hops[0].gateway
            )
            .unwrap();
        }
    }
    drop(file);
    let start = Instant::now();
    let ok = Command::new("ip")
        .args(["-n", &ns.0, "-batch"])
        .arg(&path)
        .status();
    let took = start.elapsed();
    assert!(matches!(ok, Ok(s) if s.success()));
    let _ = std::fs::remove_file(&path);
    println!(
        "ip -batch:  {took:?} for {ROUTES} routes = {:.0} routes/s",
        f64::from(ROUTES) / took.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
