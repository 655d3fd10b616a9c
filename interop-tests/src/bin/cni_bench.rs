//! CNI IPAM benchmark, in one run:
//!
//! 1. `--ops N` (default 1,000) ADDs then N DELs through the real plugin binaries, called as a
//!    runtime calls an IPAM plugin (one process per call, `CNI_*` environment, netconf on
//!    stdin, cniVersion 1.0.0): `bramble-ipam` (a `bramble agent` with the pool
//!    10.244.0.0/16 in its own namespace, FIB off, no peers, sled store) against Debian's
//!    `host-local` on the same range (dataDir in the scratch directory). The two plugins'
//!    calls alternate (ADD a, ADD b, ADD a, …) so load from elsewhere on the machine falls on
//!    both alike; ops/s is calls divided by the summed call times (spawn to exit).
//! 2. `--samples M` (default 50) times: from a `bramble-ipam` ADD returning to the /32 being
//!    in BIRD's table. BIRD peers with the node (host-routes) over eBGP (import all) and
//!    exports to its namespace's kernel. While the plugin runs, BIRD's table is polled over
//!    one persistent control-socket connection (`show route protocol bramble count`, ~0.2 ms
//!    apart), and `ip -ts monitor route` in BIRD's namespace stamps the kernel install; both
//!    are reported from the ADD returning (negative: the route was there before the plugin
//!    process exited) and from it being spawned.
//!
//! Prints a markdown table and writes it to `target/bench/cni_bench.md`.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p interop-tests --bin cni_bench -- [--ops N] [--samples M]
//! ```
//!
//! Needs root, `ip`, `bird`/`birdc`, `/usr/lib/cni/host-local` and the release `bramble`
//! and `bramble-ipam` (`$BRAMBLE_BIN`, `$BRAMBLE_IPAM_BIN` override them).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use interop_tests::bird::{parse_route_count, Bird, BirdBgp, BirdChannel, BirdConfig};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer, IpamPool};
use interop_tests::process::describe;
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, wait_until, ChildGuard, Error, Netns, Result, ScratchDir};
use serde_json::{json, Value};

const POOL: &str = "10.244.0.0/16";
const HOST_LOCAL: &str = "/usr/lib/cni/host-local";
const CNI_PATH: &str = "/usr/lib/cni";
const CNI_VERSION: &str = "1.0.0";
const NETWORK: &str = "benchnet";
const IFNAME: &str = "eth0";
/// Calls per plugin before measuring (page cache, agent's first block claim).
const WARMUP: usize = 5;

/// CNI plugin benchmark: bramble-ipam against host-local, then ADD-to-BIRD propagation.
#[derive(clap::Parser)]
struct Opts {
    /// ADDs (then DELs) per plugin.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    ops: u64,
    /// Propagation samples.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    samples: u64,
}

/// `target/release/NAME` of this workspace (or `$CARGO_TARGET_DIR/release/NAME`).
fn release_bin(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    target_dir(&root).join("release").join(name)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn require_file(path: &Path, hint: &str) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Error::Prerequisite(format!(
            "{} not found ({hint})",
            path.display()
        )))
    }
}

/// One IPAM plugin as the runtime sees it: a binary and the netconf it is given.
struct Plugin {
    label: &'static str,
    bin: PathBuf,
    conf: String,
    netns: String,
}

/// One finished plugin call.
struct Call {
    took: Duration,
    stdout: Vec<u8>,
}

impl Plugin {
    /// Run `CNI_COMMAND=command` for `container`, timing spawn to exit; errors unless the
    /// plugin exits 0.
    fn call(&self, command: &str, container: &str) -> Result<Call> {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", IFNAME)
            .env("CNI_PATH", CNI_PATH)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            cmd: describe(&cmd),
            source,
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(self.conf.as_bytes())
                .map_err(|e| Error::io(&self.bin, e))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io(&self.bin, e))?;
        let took = start.elapsed();
        if !out.status.success() {
            return Err(Error::Command {
                cmd: format!("{} {command} {container}", self.label),
                status: out.status.to_string(),
                output: format!(
                    "{} {}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(Call {
            took,
            stdout: out.stdout,
        })
    }

    /// ADD for `container`: the call and the address of its result.
    fn add(&self, container: &str) -> Result<(Duration, Ipv4Addr)> {
        let call = self.call("ADD", container)?;
        let ip = result_ip(&call.stdout).ok_or_else(|| {
            Error::parse(
                format!("{} ADD result", self.label),
                String::from_utf8_lossy(&call.stdout).into_owned(),
            )
        })?;
        Ok((call.took, ip))
    }
}

/// The first `ips[].address` of an ADD result, without its prefix length.
fn result_ip(stdout: &[u8]) -> Option<Ipv4Addr> {
    let v: Value = serde_json::from_slice(stdout).ok()?;
    let addr = v.get("ips")?.get(0)?.get("address")?.as_str()?;
    addr.split('/').next()?.parse().ok()
}

fn netconf(ipam: Value) -> String {
    json!({"cniVersion": CNI_VERSION, "name": NETWORK, "type": "ptp", "ipam": ipam}).to_string()
}

/// Latencies of one plugin and command, in call order.
#[derive(Default)]
struct Series(Vec<Duration>);

/// What a series reports.
struct Stats {
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Series {
    fn stats(&self) -> Stats {
        let total: f64 = self.0.iter().map(Duration::as_secs_f64).sum();
        let mut ms: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        Stats {
            ops_per_s: self.0.len() as f64 / total,
            p50_ms: percentile(&ms, 0.50),
            p99_ms: percentile(&ms, 0.99),
        }
    }
}

/// Nearest-rank percentile of sorted values (NaN when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Part 1's measurements for both plugins.
struct Throughput {
    bramble_add: Series,
    bramble_del: Series,
    host_add: Series,
    host_del: Series,
}

/// Part 1: the agent alone (no peers, FIB off) and host-local, N ADDs then N DELs each.
fn throughput(ops: usize, ipam_bin: &Path) -> Result<Throughput> {
    let dir = ScratchDir::new("cnib-tp")?;
    let ns = Netns::new("cnib-tp")?;
    let mut cfg = BrambleConfig::new("node", Ipv4Addr::new(192, 0, 2, 1), 64512, dir.path())
        .with_ipam(vec![IpamPool::new(POOL, 26)], "host-routes");
    cfg.bgp.listen = None;
    let bramble = Bramble::start(&ns, dir.path(), &cfg)?;
    let netns = format!("/run/netns/{}", ns.name());
    let ours = Plugin {
        label: "bramble-ipam",
        bin: ipam_bin.to_path_buf(),
        conf: netconf(json!({
            "type": "bramble-ipam",
            "socket": bramble.socket(),
            "pool": POOL,
        })),
        netns: netns.clone(),
    };
    let data_dir = dir.join("host-local");
    let theirs = Plugin {
        label: "host-local",
        bin: PathBuf::from(HOST_LOCAL),
        conf: netconf(json!({
            "type": "host-local",
            "ranges": [[{"subnet": POOL}]],
            "dataDir": data_dir,
        })),
        netns,
    };
    for p in [&ours, &theirs] {
        for i in 0..WARMUP {
            let id = format!("warm-{i}");
            p.add(&id)?;
            p.call("DEL", &id)?;
        }
    }

    let mut t = Throughput {
        bramble_add: Series::default(),
        bramble_del: Series::default(),
        host_add: Series::default(),
        host_del: Series::default(),
    };
    let (mut ours_ips, mut theirs_ips) = (BTreeSet::new(), BTreeSet::new());
    let ids: Vec<String> = (0..ops).map(|i| format!("bench-{i:07}")).collect();
    for id in &ids {
        let (took, ip) = ours.add(id)?;
        t.bramble_add.0.push(took);
        ours_ips.insert(ip);
        let (took, ip) = theirs.add(id)?;
        t.host_add.0.push(took);
        theirs_ips.insert(ip);
    }
    for (label, got) in [("bramble-ipam", &ours_ips), ("host-local", &theirs_ips)] {
        if got.len() != ops {
            return Err(Error::parse(
                format!("{label} ADDs"),
                format!("{} distinct addresses for {ops} containers", got.len()),
            ));
        }
    }
    for id in &ids {
        t.bramble_del.0.push(ours.call("DEL", id)?.took);
        t.host_del.0.push(theirs.call("DEL", id)?.took);
    }
    verify_released(&bramble, &data_dir)?;
    Ok(t)
}

/// After the DELs neither plugin may hold an address: the agent's pool reports none in use
/// and host-local's dataDir has no per-address file left.
fn verify_released(bramble: &Bramble, data_dir: &Path) -> Result<()> {
    let pools = bramble.ipam_show()?;
    let used: u64 = pools
        .iter()
        .map(|p| p["used"].as_u64())
        .sum::<Option<u64>>()
        .ok_or_else(|| Error::parse("bramble ipam show", format!("{pools:?}")))?;
    check(used == 0, || {
        format!("bramble agent still holds {used} addresses")
    })?;
    let net_dir = data_dir.join(NETWORK);
    let left = std::fs::read_dir(&net_dir)
        .map_err(|e| Error::io(&net_dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<IpAddr>().is_ok())
        .count();
    check(left == 0, || {
        format!("host-local still holds {left} addresses")
    })?;
    Ok(())
}

/// A persistent connection to BIRD's control socket (the protocol `birdc` speaks: replies
/// are lines `NNNN-text` / ` text`, the last one `NNNN text`).
struct BirdCtl {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    line: String,
}

impl BirdCtl {
    fn connect(socket: &Path) -> Result<Self> {
        let writer = UnixStream::connect(socket).map_err(|e| Error::io(socket, e))?;
        let reader = BufReader::new(writer.try_clone().map_err(|e| Error::io(socket, e))?);
        let mut ctl = BirdCtl {
            reader,
            writer,
            line: String::new(),
        };
        ctl.reply()?; // 0001 BIRD x.y.z ready.
        Ok(ctl)
    }

    /// Reads one whole reply: its lines and the final code.
    fn reply(&mut self) -> Result<(Vec<String>, String)> {
        let mut lines = Vec::new();
        loop {
            self.line.clear();
            let n = self
                .reader
                .read_line(&mut self.line)
                .map_err(|e| Error::io("bird control socket", e))?;
            if n == 0 {
                return Err(Error::parse("bird control socket", "closed"));
            }
            let l = self.line.trim_end().to_string();
            let b = l.as_bytes();
            let last = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b' ';
            if last || (b.len() == 4 && b.iter().all(u8::is_ascii_digit)) {
                return Ok((lines, l.chars().take(4).collect()));
            }
            lines.push(l);
        }
    }

    /// Sends `command`; its reply lines (codes stripped) and final code.
    fn query(&mut self, command: &str) -> Result<(Vec<String>, String)> {
        writeln!(self.writer, "{command}").map_err(|e| Error::io("bird control socket", e))?;
        let (lines, code) = self.reply()?;
        let lines = lines
            .into_iter()
            .map(|l| match l.get(..5) {
                Some(head) if head.ends_with('-') => l.get(5..).unwrap_or_default().to_string(),
                _ => l,
            })
            .collect();
        Ok((lines, code))
    }

    /// Whether BIRD's table holds `prefix` (`show route PREFIX`).
    fn has_route(&mut self, prefix: &str) -> Result<bool> {
        let (lines, code) = self.query(&format!("show route {prefix}"))?;
        match code.as_str() {
            "0000" => Ok(lines.iter().any(|l| l.contains(prefix))),
            "8001" => Ok(false), // Network not found
            _ => Err(Error::parse(
                "bird show route",
                format!("{code} {}", lines.join(" | ")),
            )),
        }
    }

    /// Routes `protocol` brought into `master4` (`show route protocol P count`).
    fn count_from(&mut self, protocol: &str) -> Result<u64> {
        let (lines, _) = self.query(&format!("show route protocol {protocol} count"))?;
        Ok(parse_route_count(&lines.join("\n"))?.shown)
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Seconds since the epoch of an `ip -ts` stamp `[YYYY-MM-DDTHH:MM:SS.ffffff]` printed in UTC
/// (the monitor runs with `TZ=UTC`).
fn parse_stamp(line: &str) -> Option<f64> {
    let stamp = line.strip_prefix('[')?.split(']').next()?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let hh = t.next()?.parse::<i64>().ok()?;
    let mm = t.next()?.parse::<i64>().ok()?;
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

/// The stamp of the monitor's first line adding a route to `ip` (`ip route` prints a /32
/// without its length).
fn kernel_stamp(monitor_out: &Path, ip: Ipv4Addr) -> Option<f64> {
    let text = std::fs::read_to_string(monitor_out).ok()?;
    let ip = ip.to_string();
    let with_len = format!("{ip}/32");
    text.lines().find_map(|l| {
        let rest = l.split_once(']')?.1.trim_start();
        let dst = rest.split_whitespace().next()?;
        (dst == ip || dst == with_len)
            .then(|| parse_stamp(l))
            .flatten()
    })
}

/// One part-2 sample, milliseconds from the ADD process being spawned.
struct Sample {
    returned: f64,
    table: f64,
    kernel: f64,
}

/// Part 2: BIRD (AS 65000) ⟷ Bramble (AS 64512, host-routes) over eBGP; `samples` ADDs, each
/// timed until its /32 is in BIRD's table and in BIRD's kernel.
fn propagation(samples: usize, ipam_bin: &Path) -> Result<Vec<Sample>> {
    let dir = ScratchDir::new("cnib-bgp")?;
    let net = P2p::new("cnib-bird", "cnib-node")?;
    let mut bcfg = BirdConfig::new(P2p::A4);
    bcfg.extra = "protocol kernel { ipv4 { export all; }; }\n".into();
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    s.local_address = Some(P2p::a4());
    s.ipv4 = Some(BirdChannel::new("all", "none"));
    bcfg.bgp.push(s);
    let bird = Bird::start(&net.a, dir.path(), &bcfg)?;

    let mut cfg = BrambleConfig::new("node", P2p::B4, 64512, dir.path())
        .with_ipam(vec![IpamPool::new(POOL, 26)], "host-routes");
    let mut peer = BramblePeer::new(P2p::a4(), 65000);
    peer.local_address = Some(P2p::b4());
    cfg.bgp.peers.push(peer);
    let bramble = Bramble::start(&net.b, dir.path(), &cfg)?;
    wait_until(
        "session Established",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let b = bird.protocol_state("bramble")?;
            let n = bramble.peer_state(P2p::a4())?;
            check(
                b == "Established" && n.as_deref() == Some("Established"),
                || format!("BIRD {b}, Bramble {n:?}"),
            )
        },
    )?;

    let mut mon = Command::new("ip");
    mon.env("TZ", "UTC")
        .args(["-ts", "-n", net.a.name(), "monitor", "route"]);
    let monitor = ChildGuard::spawn(mon, "monitor", dir.path())?;
    std::thread::sleep(Duration::from_millis(300));
    let mut ctl = BirdCtl::connect(bird.socket())?;
    let plugin = Plugin {
        label: "bramble-ipam",
        bin: ipam_bin.to_path_buf(),
        conf: netconf(json!({
            "type": "bramble-ipam",
            "socket": bramble.socket(),
            "pool": POOL,
        })),
        netns: format!("/run/netns/{}", net.b.name()),
    };

    let mut out = Vec::with_capacity(samples);
    // One unrecorded round first (the first block claim, the first UPDATE).
    for i in 0..=samples {
        let id = format!("lat-{i:04}");
        let before = ctl.count_from("bramble")?;
        let (start, start_wall) = (Instant::now(), now());
        // The plugin runs on its own thread so BIRD can be watched while it runs: the route
        // may arrive before the plugin process has exited.
        let (added, seen) = std::thread::scope(|sc| {
            let call = sc.spawn(|| (plugin.add(&id), Instant::now()));
            let seen = wait_count(&mut ctl, before + 1, start);
            let added = call
                .join()
                .unwrap_or_else(|_| (Err(Error::parse("plugin thread", "panicked")), start));
            (added, seen)
        });
        let ((_, ip), returned) = (added.0?, added.1);
        let table = seen?;
        let prefix = format!("{ip}/32");
        if !ctl.has_route(&prefix)? {
            return Err(Error::parse(
                "BIRD table",
                format!("new route is not {prefix}"),
            ));
        }
        let mut stamp = None;
        wait_until(
            &format!("{prefix} in BIRD's kernel"),
            Duration::from_secs(30),
            Duration::from_millis(2),
            || {
                stamp = kernel_stamp(monitor.stdout_path(), ip);
                Ok(stamp.is_some())
            },
        )?;
        if i > 0 {
            out.push(Sample {
                returned: ms_since(start, returned),
                table: table.as_secs_f64() * 1e3,
                kernel: (stamp.unwrap_or(f64::NAN) - start_wall) * 1e3,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(out)
}

/// Picks one interval, in ms, out of a sample.
type Interval = fn(&Sample) -> f64;

fn ms_since(start: Instant, then: Instant) -> f64 {
    then.saturating_duration_since(start).as_secs_f64() * 1e3
}

/// Polls BIRD (every ~0.2 ms) until `bramble` has brought `want` routes; the time since `start`.
fn wait_count(ctl: &mut BirdCtl, want: u64, start: Instant) -> Result<Duration> {
    loop {
        if ctl.count_from("bramble")? >= want {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(Error::parse("BIRD table", "the new /32 never arrived"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn fmt_ms(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn report(opts: &Opts, t: &Throughput, p: &[Sample]) -> String {
    let mut s = String::new();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(s, "## CNI IPAM: bramble-ipam vs host-local\n");
    let _ = writeln!(
        s,
        "{} ADDs then {} DELs per plugin, sequential, one plugin process per call \
         (cniVersion {CNI_VERSION}, pool {POOL}); the two plugins' calls alternate. \
         ops/s = calls / summed call time (spawn to exit). {cpus} CPUs, load average at \
         the end: {}.\n",
        opts.ops,
        opts.ops,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(s, "| plugin | command | ops/s | p50 ms | p99 ms |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|");
    let rows = [
        ("bramble-ipam", "ADD", &t.bramble_add),
        ("host-local", "ADD", &t.host_add),
        ("bramble-ipam", "DEL", &t.bramble_del),
        ("host-local", "DEL", &t.host_del),
    ];
    for (plugin, command, series) in rows {
        let st = series.stats();
        let _ = writeln!(
            s,
            "| {plugin} | {command} | {:.0} | {} | {} |",
            st.ops_per_s,
            fmt_ms(st.p50_ms),
            fmt_ms(st.p99_ms)
        );
    }
    let _ = writeln!(
        s,
        "\n| bramble-ipam / host-local | ops/s | p50 | p99 |\n|---|---:|---:|---:|"
    );
    for (command, ours, theirs) in [
        ("ADD", &t.bramble_add, &t.host_add),
        ("DEL", &t.bramble_del, &t.host_del),
    ] {
        let (o, h) = (ours.stats(), theirs.stats());
        let _ = writeln!(
            s,
            "| {command} | {:.2} | {:.2} | {:.2} |",
            o.ops_per_s / h.ops_per_s,
            o.p50_ms / h.p50_ms,
            o.p99_ms / h.p99_ms
        );
    }
    let _ = writeln!(
        s,
        "\n## CNI ADD → its /32 at a BIRD peer (eBGP, host-routes)\n"
    );
    let _ = writeln!(
        s,
        "{} samples, one ADD at a time. BIRD table: BIRD's control socket polled over one \
         connection (`show route protocol bramble count`, every ~0.2 ms) from the moment the \
         plugin is spawned. BIRD's kernel: `ip -ts monitor route` in BIRD's namespace (BIRD \
         `protocol kernel`, export all). Negative = before the plugin process had exited.\n",
        p.len()
    );
    let _ = writeln!(s, "| interval | median ms | p90 ms | min ms | max ms |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    let rows: [(&str, Interval); 5] = [
        ("**ADD returned → /32 in BIRD's table**", |x| {
            x.table - x.returned
        }),
        ("ADD returned → /32 in BIRD's kernel FIB", |x| {
            x.kernel - x.returned
        }),
        ("ADD spawned → ADD returned", |x| x.returned),
        ("ADD spawned → /32 in BIRD's table", |x| x.table),
        ("ADD spawned → /32 in BIRD's kernel FIB", |x| x.kernel),
    ];
    for (name, f) in rows {
        let mut v: Vec<f64> = p.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} |",
            fmt_ms(percentile(&v, 0.5)),
            fmt_ms(percentile(&v, 0.9)),
            fmt_ms(v.first().copied().unwrap_or(f64::NAN)),
            fmt_ms(v.last().copied().unwrap_or(f64::NAN)),
        );
    }
    s
}

fn main() -> Result<()> {
    let opts = <Opts as clap::Parser>::parse();
    let (ops, samples) = (opts.ops as usize, opts.samples as usize);
    interop_tests::prereq::check_root_and_tools()?;
    // The driver runs `$BRAMBLE_BIN` (default: the debug build); measure the release build.
    if std::env::var_os("BRAMBLE_BIN").is_none() {
        std::env::set_var("BRAMBLE_BIN", release_bin("bramble"));
    }
    let bramble_bin = interop_tests::bramble::bramble_bin();
    let ipam_bin = std::env::var_os("BRAMBLE_IPAM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| release_bin("bramble-ipam"));
    let hint = "cargo build --release --workspace --bins";
    require_file(&bramble_bin, hint)?;
    require_file(&ipam_bin, hint)?;
    require_file(
        Path::new(HOST_LOCAL),
        "apt-get install containernetworking-plugins",
    )?;

    eprintln!("cni_bench: {} ADDs + {} DELs per plugin…", ops, ops);
    let t = throughput(ops, &ipam_bin)?;
    eprintln!("cni_bench: {samples} propagation samples…");
    let p = propagation(samples, &ipam_bin)?;
    let text = report(&opts, &t, &p);
    print!("{text}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let out_dir = target_dir(&root).join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let out = out_dir.join("cni_bench.md");
    std::fs::write(&out, &text).map_err(|e| Error::io(&out, e))?;
    eprintln!("cni_bench: wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.9), 3.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn stamps_and_kernel_lines() {
        let line = "[2024-03-01T12:00:01.250000] 10.244.0.7 via 10.0.0.2 dev x proto bird";
        let t = parse_stamp(line).unwrap();
        assert!((t - 1_709_294_401.25).abs() < 1e-6);
        let dir = ScratchDir::new("cnib-unit").unwrap();
        let p = dir
            .write(
                "mon",
                b"[2024-03-01T12:00:00.000000] 10.244.0.70 via 10.0.0.2 dev x\n\
                  [2024-03-01T12:00:01.250000] 10.244.0.7 via 10.0.0.2 dev x\n",
            )
            .unwrap();
        let got = kernel_stamp(&p, Ipv4Addr::new(10, 244, 0, 7)).unwrap();
        assert!((got - t).abs() < 1e-6);
        assert!(kernel_stamp(&p, Ipv4Addr::new(10, 244, 0, 8)).is_none());
    }

    #[test]
    fn add_result_address() {
        let out = br#"{"cniVersion":"1.0.0","ips":[{"address":"10.244.0.5/16"}]}"#;
        assert_eq!(result_ip(out), Some(Ipv4Addr::new(10, 244, 0, 5)));
        assert_eq!(result_ip(b"{}"), None);
    }
}
