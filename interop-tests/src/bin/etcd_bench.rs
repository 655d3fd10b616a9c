//! Cluster-mode IPAM benchmark (issue 7's performance paragraph), in one run:
//!
//! 1. etcd: a three-member etcd cluster and three Bramble nodes (`[ipam] store = "etcd"`),
//!    each in its own namespace on one LAN. Every node gets `--ops N` (default 1,000)
//!    `bramble-ipam` ADDs at once from `--threads T` (default 8) callers per node; a call is
//!    timed from spawning the plugin to its exit, as a runtime sees it.
//! 2. sled: one Bramble node on the default sled store, the same `N` ADDs from `T` callers.
//!
//! Reported per store: ADDs/s per node and cluster-wide (calls divided by the wall time of the
//! whole run), p50 / p99 / max per ADD, failures, and the compare-and-swap conflicts the
//! allocators retried (counted from the agents' `retrying after conflict` debug lines).
//! Prints a markdown table and writes it to `target/bench/etcd_bench.md`.
//!
//! ```text
//! cargo build --workspace --bins            # or --release, with BRAMBLE_BIN=target/release/bramble
//! cargo run -p interop-tests --bin etcd_bench -- [--ops N] [--threads T]
//! ```
//!
//! Needs root, etcd/etcdctl and the `bramble` + `bramble-ipam` binaries.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use interop_tests::bramble::{bramble_bin, BrambleConfig, IpamPool};
use interop_tests::cni::CniNetwork;
use interop_tests::etcd::EtcdCluster;
use interop_tests::{wait_until, ChildGuard, Error, Lan, Netns, Result, ScratchDir, Veth};

const POOL: &str = "10.92.0.0/16";

/// IPAM on etcd: three nodes on a three-member cluster, then sled on one node.
#[derive(clap::Parser)]
struct Opts {
    /// ADDs per node.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    ops: u64,
    /// Concurrent callers per node.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    threads: u64,
    /// Print this many of the slowest ADDs (when they started, on which node).
    #[arg(long, default_value_t = 0)]
    slowest: usize,
}

/// A Bramble node: namespace, LAN link, agent.
struct Node {
    _link: Veth,
    agent: ChildGuard,
    socket: PathBuf,
    _ns: Netns,
}

fn start_node(
    lan: &Lan,
    dir: &Path,
    name: &str,
    addr: Ipv4Addr,
    etcd: Option<&[String]>,
) -> Result<Node> {
    let ns = Netns::new(&format!("eb-{name}"))?;
    let link = lan.attach(&ns)?;
    link.a().add_addr(&format!("{addr}/24"))?;
    let ndir = dir.join(name);
    std::fs::create_dir_all(&ndir).map_err(|e| Error::io(&ndir, e))?;
    let cfg = BrambleConfig::new(name, addr, 65000, &ndir)
        .with_ipam(vec![IpamPool::new(POOL, 26)], "host-routes");
    let mut doc: toml::Table = toml::from_str(&cfg.render()?)
        .map_err(|e| Error::parse("bramble config", e.to_string()))?;
    if let (Some(eps), Some(ipam)) = (
        etcd,
        doc.get_mut("ipam").and_then(toml::Value::as_table_mut),
    ) {
        ipam.insert("store".into(), "etcd".into());
        ipam.insert(
            "etcd_endpoints".into(),
            toml::Value::Array(eps.iter().cloned().map(toml::Value::String).collect()),
        );
    }
    let cfg_path = ndir.join("bramble.toml");
    let text = toml::to_string(&doc).map_err(|e| Error::parse("config", e.to_string()))?;
    std::fs::write(&cfg_path, text).map_err(|e| Error::io(&cfg_path, e))?;
    let mut cmd = ns.command(bramble_bin());
    cmd.arg("agent").arg("--config").arg(&cfg_path).env(
        "RUST_LOG",
        std::env::var("BRAMBLE_LOG").unwrap_or_else(|_| "warn,ipam::allocator=debug".into()),
    );
    let mut agent = ChildGuard::spawn(cmd, &format!("bramble-{name}"), dir)?;
    let socket = cfg.api.socket.clone();
    wait_until(
        "bramble control socket",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            agent.check_running()?;
            Ok(Command::new(bramble_bin())
                .args(["status", "--socket"])
                .arg(&socket)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false))
        },
    )?;
    Ok(Node {
        _link: link,
        agent,
        socket,
        _ns: ns,
    })
}

/// One store's results.
struct Run {
    store: &'static str,
    nodes: usize,
    wall: Duration,
    took: Vec<Duration>,
    /// (started after, took, node) of every ADD.
    timeline: Vec<(Duration, Duration, usize)>,
    failures: usize,
    conflicts: usize,
}

/// What [`run_adds`] measured: the wall time, each ADD's (start offset, latency, node), and
/// the failures.
type Measured = (Duration, Vec<(Duration, Duration, usize)>, usize);

/// `ops` ADDs on every node at once from `threads` callers each.
fn run_adds(nodes: &[Node], tag: &str, ops: usize, threads: usize) -> Measured {
    let start = Instant::now();
    let mut workers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let net = Arc::new(CniNetwork::ptp("benchnet", POOL, &node.socket));
        for t in 0..threads {
            let net = Arc::clone(&net);
            let tag = tag.to_string();
            workers.push(std::thread::spawn(move || {
                let mut out = Vec::new();
                for k in (0..ops).filter(|k| k % threads == t) {
                    let id = format!("{tag}-{n}-{k}");
                    let netns = PathBuf::from("/run/netns").join(&id);
                    let s = Instant::now();
                    let r = net.invoke_ipam("ADD", Some(&netns), &id, "eth0", &net.netconf());
                    let ok = matches!(&r, Ok(o) if o.success());
                    out.push((s.duration_since(start), s.elapsed(), n, ok));
                }
                out
            }));
        }
    }
    let mut timeline = Vec::new();
    let mut failures = 0;
    for w in workers {
        for (at, d, n, ok) in w.join().unwrap_or_default() {
            timeline.push((at, d, n));
            failures += usize::from(!ok);
        }
    }
    (start.elapsed(), timeline, failures)
}

fn conflicts(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .map(|n| {
            std::fs::read_to_string(n.agent.stderr_path())
                .unwrap_or_default()
                .matches("retrying after conflict")
                .count()
        })
        .sum()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<()> {
    let opts = <Opts as clap::Parser>::parse();
    let (ops, threads) = (opts.ops as usize, opts.threads as usize);
    let dir = ScratchDir::new("etcd-bench")?;
    let lan = Lan::new("eb-sw")?;
    let mut runs = Vec::new();

    // etcd: three members, three nodes.
    {
        let mut members = Vec::new();
        for i in 0..3u8 {
            let ns = Netns::new("eb-e")?;
            let link = lan.attach(&ns)?;
            link.a().add_addr(&format!("10.81.0.{}/24", 11 + i))?;
            members.push((ns, link));
        }
        let specs: Vec<(&Netns, IpAddr)> = members
            .iter()
            .enumerate()
            .map(|(i, (ns, _))| (ns, IpAddr::V4(Ipv4Addr::new(10, 81, 0, 11 + i as u8))))
            .collect();
        let etcd = EtcdCluster::in_namespaces(&specs)?;
        let eps = etcd.client_endpoints();
        let mut nodes = Vec::new();
        for i in 0..3u8 {
            let addr = Ipv4Addr::new(10, 81, 0, 21 + i);
            nodes.push(start_node(
                &lan,
                dir.path(),
                &format!("etcd{i}"),
                addr,
                Some(&eps),
            )?);
        }
        let (_, _, warm_fail) = run_adds(&nodes, "warm", 2, 1);
        let before = conflicts(&nodes);
        let (wall, timeline, failures) = run_adds(&nodes, "run", ops, threads);
        runs.push(Run {
            store: "etcd (3 members)",
            nodes: nodes.len(),
            wall,
            took: timeline.iter().map(|t| t.1).collect(),
            timeline,
            failures: failures + warm_fail,
            conflicts: conflicts(&nodes) - before,
        });
        drop(nodes);
        drop(etcd);
        drop(members);
    }

    // sled: one node.
    {
        let node = start_node(&lan, dir.path(), "sled", Ipv4Addr::new(10, 81, 0, 31), None)?;
        let nodes = [node];
        let (_, _, warm_fail) = run_adds(&nodes, "warm", 2, 1);
        let before = conflicts(&nodes);
        let (wall, timeline, failures) = run_adds(&nodes, "run", ops, threads);
        runs.push(Run {
            store: "sled",
            nodes: 1,
            wall,
            took: timeline.iter().map(|t| t.1).collect(),
            timeline,
            failures: failures + warm_fail,
            conflicts: conflicts(&nodes) - before,
        });
    }

    let mut md = String::new();
    let _ = writeln!(
        md,
        "{} ADDs per node, {} concurrent callers per node, bramble-ipam spawn to exit \
         ({}):\n",
        ops,
        threads,
        bramble_bin().display()
    );
    let _ = writeln!(
        md,
        "| store | nodes | ADDs/s per node | ADDs/s cluster | p50 ms | p99 ms | max ms | failed | conflicts retried |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for r in &mut runs {
        r.took.sort();
        let total = r.took.len() as f64;
        let secs = r.wall.as_secs_f64().max(1e-9);
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
            r.store,
            r.nodes,
            total / secs / r.nodes as f64,
            total / secs,
            ms(percentile(&r.took, 50)),
            ms(percentile(&r.took, 99)),
            ms(r.took.last().copied().unwrap_or_default()),
            r.failures,
            r.conflicts
        );
    }
    for r in runs.iter_mut().filter(|_| opts.slowest > 0) {
        r.timeline.sort_by_key(|t| std::cmp::Reverse(t.1));
        let _ = writeln!(
            md,
            "\nslowest ADDs, {}: (started after, took, node)",
            r.store
        );
        for (at, d, n) in r.timeline.iter().take(opts.slowest) {
            let _ = writeln!(md, "- {} ms, {} ms, node {n}", ms(*at), ms(*d));
        }
    }
    print!("{md}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("target").join("bench"))
        .unwrap_or_else(|| PathBuf::from("target/bench"));
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let file = out.join("etcd_bench.md");
    std::fs::write(&file, md).map_err(|e| Error::io(&file, e))?;
    Ok(())
}
