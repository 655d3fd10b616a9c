//! Receive benchmark: how fast, and with how much memory, Bramble and BIRD learn N routes.
//!
//! GoBGP (the feeder, in its own namespace) first takes N unique IPv4 /32s into its RIB through
//! one MRT injection while no device under test (DUT) exists. Then, for each of R runs, each DUT
//! in turn (Bramble first, then BIRD) is started in a fresh namespace with no link at all (its
//! connects fail, so it idles; its idle RSS is read then), after which a fresh veth joins it to
//! the feeder and it opens an eBGP session to the passive feeder and receives the full table.
//!
//! The clock starts when the DUT reports the session Established (polled every 5 ms: nothing
//! is in flight before) and stops at the first poll that sees all N routes in the DUT (Bramble:
//! the peer's `accepted` counter of `bramble status -o json`; BIRD: `Routes: N imported` of
//! `show protocols all feeder`). Established, not process start, is the origin because BIRD
//! never connects sooner than 0.75–1 s after start (`connect delay time` has a 1 s floor,
//! randomised down by up to a quarter) while Bramble connects at once.
//!
//! It records the daemon's CPU seconds (utime + stime) over that window, then, after a 1 s
//! settle, VmRSS and VmHWM, and compares RSS with the idle reading of the same process.
//!
//! Run as root: `cargo run --release -p interop-tests --bin recv_bench -- [--routes N] [--runs R]`.
//! Uses `$BRAMBLE_BIN`, else `target/release/bramble` (build it first:
//! `cargo build --release -p agent`). Writes the result to `target/bench/recv_bench.md` too.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig};
use interop_tests::bramble::{bramble_bin, Bramble, BrambleConfig, BramblePeer};
use interop_tests::gobgp::{Gobgp, GobgpConfig, GobgpNeighbor};
use interop_tests::mrt::MrtRoute;
use interop_tests::prefixes::ipv4_prefixes;
use interop_tests::prereq::check_root_and_tools;
use interop_tests::{wait_until, Netns, ScratchDir, Veth};

type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const FEEDER_AS: u32 = 65001;
const DUT_AS: u32 = 65002;
const FEEDER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const DUT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// Long enough that a DUT busy with the table never misses a keepalive.
const HOLD_TIME: u16 = 90;
/// The shortest pause between two polls of the DUT.
const POLL: Duration = Duration::from_millis(50);
/// Pause after convergence before reading RSS, so deferred work shows.
const SETTLE: Duration = Duration::from_secs(1);
/// Age of the DUT, still without a link, when its idle RSS is read.
const IDLE_AGE: Duration = Duration::from_secs(1);
/// Pause between polls while waiting for Established (nothing is in flight yet).
const EST_POLL: Duration = Duration::from_millis(5);
/// The BGP protocol name in BIRD's config.
const BIRD_PROTO: &str = "feeder";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DutKind {
    Bramble,
    Bird,
}

impl DutKind {
    fn label(self) -> &'static str {
        match self {
            DutKind::Bramble => "Bramble",
            DutKind::Bird => "BIRD",
        }
    }

    /// The daemon's `/proc/PID/comm`.
    fn comm(self) -> &'static str {
        match self {
            DutKind::Bramble => "bramble",
            DutKind::Bird => "bird",
        }
    }
}

/// A DUT daemon running in its namespace.
enum Running {
    Bramble(Bramble),
    Bird(Bird),
}

impl Running {
    fn start(kind: DutKind, ns: &Netns, dir: &Path) -> BoxResult<Self> {
        let feeder = IpAddr::V4(FEEDER_ADDR);
        Ok(match kind {
            DutKind::Bramble => {
                let mut cfg = BrambleConfig::new("dut", DUT_ADDR, DUT_AS, dir);
                cfg.bgp.hold_time = HOLD_TIME;
                cfg.bgp.listen = None;
                let mut p = BramblePeer::new(feeder, FEEDER_AS);
                p.hold_time = Some(HOLD_TIME);
                p.families = vec!["ipv4-unicast".into()];
                p.import = vec!["0.0.0.0/0 le 32".into()];
                p.export = Vec::new();
                cfg.bgp.peers.push(p);
                // BrambleConfig::new leaves the FIB off; say so explicitly for the record.
                cfg.fib = Some(interop_tests::bramble::FibSection { enabled: false });
                Running::Bramble(Bramble::start(ns, dir, &cfg)?)
            }
            DutKind::Bird => {
                let mut cfg = BirdConfig::new(DUT_ADDR);
                let mut b = BirdBgp::new(BIRD_PROTO, DUT_AS, feeder, FEEDER_AS);
                b.hold_time = HOLD_TIME;
                b.ipv4 = Some(BirdChannel::new("all", "none"));
                // BIRD waits 5 s (at least 1 s) before its first connect; the clock starts at
                // Established, so this only shortens the run.
                b.extra = "  connect delay time 0;\n".into();
                cfg.bgp.push(b);
                Running::Bird(Bird::start(ns, dir, &cfg)?)
            }
        })
    }

    /// (session Established, routes learned from the feeder): one cheap query.
    fn poll(&mut self) -> BoxResult<(bool, u64)> {
        match self {
            Running::Bramble(b) => {
                b.process().check_running()?;
                let row = b.peer_status(IpAddr::V4(FEEDER_ADDR))?;
                Ok(row.map_or((false, 0), |r| {
                    (
                        r["state"].as_str() == Some("Established"),
                        r["accepted"].as_u64().unwrap_or(0),
                    )
                }))
            }
            Running::Bird(b) => {
                b.process().check_running()?;
                let text = b.birdc(&["show", "protocols", "all", BIRD_PROTO])?;
                Ok(parse_bird_protocol(&text))
            }
        }
    }

    /// The full-table count, for a check after the measurement (costly, not timed).
    fn table_count(&self) -> BoxResult<u64> {
        match self {
            Running::Bramble(b) => Ok(b.loc_routes()?.len() as u64),
            Running::Bird(b) => Ok(b.route_count("master4")?),
        }
    }

    fn stop(self) {
        match self {
            Running::Bramble(mut b) => b.process().stop(),
            Running::Bird(mut b) => b.process().stop(),
        }
    }
}

/// From `show protocols all NAME`: whether `BGP state:` is Established and the `N imported`
/// of its `Routes:` line.
fn parse_bird_protocol(text: &str) -> (bool, u64) {
    let mut established = false;
    let mut imported = 0;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("BGP state:") {
            established = v.trim() == "Established";
        } else if let Some(v) = line.strip_prefix("Routes:") {
            let mut words = v.split_whitespace();
            if let (Some(n), Some("imported,")) = (words.next(), words.next()) {
                imported = n.parse().unwrap_or(0);
            }
        }
    }
    (established, imported)
}

/// Resident memory of one process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default)]
struct MemStats {
    rss_kib: u64,
    hwm_kib: u64,
}

fn mem_stats(pid: i32) -> BoxResult<MemStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok(MemStats {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    })
}

/// utime + stime of the whole process (all threads), in seconds.
fn cpu_seconds(pid: i32) -> BoxResult<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after "(comm)": state is field 3, utime 14, stime 15 (proc(5)).
    let rest = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .ok_or("malformed /proc/PID/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> u64 { f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok((tick(11) + tick(12)) as f64 / hz)
}

/// The pid of the process named `comm` inside `ns` (not the `ip netns exec` wrapper, if any).
fn daemon_pid(ns: &Netns, comm: &str) -> BoxResult<i32> {
    ns.pids()
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .ok_or_else(|| format!("no `{comm}` process in namespace {}", ns.name()).into())
}

/// One measured receive.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Session Established → all N routes seen.
    total: Duration,
    /// Link up → session Established (connect timers, not measured).
    connect: Duration,
    /// Established → first poll that saw a route (the feeder preparing its table).
    first_route: Duration,
    /// DUT CPU seconds from Established to convergence.
    cpu_s: f64,
    /// DUT CPU seconds since its start, read after the settle.
    cpu_total_s: f64,
    /// After convergence + settle.
    rss_kib: u64,
    hwm_kib: u64,
    /// The same process before it had a link.
    idle_rss_kib: u64,
    /// Feeder (gobgpd) CPU seconds from Established to convergence.
    feeder_cpu_s: f64,
}

struct Bench {
    routes: u64,
    feeder_ns: Netns,
    gobgp: Gobgp,
    dir: ScratchDir,
}

impl Bench {
    fn setup(routes: u64, dir: ScratchDir) -> BoxResult<Self> {
        let feeder_ns = Netns::new("rb-feed")?;
        let mut cfg = GobgpConfig::new(FEEDER_AS, FEEDER_ADDR);
        let mut n = GobgpNeighbor::new(IpAddr::V4(DUT_ADDR), DUT_AS);
        // Passive: each DUT connects when it starts; GoBGP never races it.
        n.passive = true;
        n.hold_time = HOLD_TIME;
        n.families = vec!["ipv4-unicast".into()];
        cfg.neighbors.push(n);
        let gobgp = Gobgp::start(&feeder_ns, dir.path(), &cfg)?;
        let count = usize::try_from(routes)?;
        let prefixes = ipv4_prefixes(Ipv4Addr::new(100, 64, 0, 0), 32, count);
        if prefixes.len() != count {
            return Err(format!("cannot make {count} /32s from 100.64.0.0").into());
        }
        let mrt: Vec<MrtRoute> = prefixes
            .into_iter()
            .map(|p| MrtRoute::new(p, IpAddr::V4(FEEDER_ADDR)))
            .collect();
        let took = gobgp.announce_bulk(&mrt)?;
        let held = gobgp.rib_count("ipv4")?;
        if held != routes {
            return Err(format!("GoBGP holds {held} routes, expected {routes}").into());
        }
        eprintln!(
            "feeder: GoBGP took {routes} routes in {:.2} s",
            took.as_secs_f64()
        );
        Ok(Self {
            routes,
            feeder_ns,
            gobgp,
            dir,
        })
    }

    fn scratch(&self, tag: &str) -> BoxResult<PathBuf> {
        let d = self.dir.join(tag);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// Wait until the feeder has dropped the previous DUT's session and listens again.
    fn feeder_ready(&self) -> BoxResult<()> {
        wait_until(
            "GoBGP back in Active after the previous DUT",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || Ok(self.gobgp.neighbor_state(IpAddr::V4(DUT_ADDR))? == "Active"),
        )?;
        Ok(())
    }

    /// One receive by `kind`: start it in a fresh namespace without any link (its connects
    /// fail, so it idles), read its idle RSS, then add the link to the feeder and time the
    /// table transfer from session Established to all routes learned.
    fn measure(&mut self, kind: DutKind, run: usize) -> BoxResult<Sample> {
        let tag = format!("{}-{run}", kind.comm());
        let dir = self.scratch(&tag)?;
        let ns = Netns::new("rb-dut")?;
        let mut dut = Running::start(kind, &ns, &dir)?;
        std::thread::sleep(IDLE_AGE);
        let pid = daemon_pid(&ns, kind.comm())?;
        let idle = mem_stats(pid)?;
        self.feeder_ready()?;

        let feeder_pid = i32::try_from(self.gobgp.process().pid())?;
        let link = Veth::new(&ns, &self.feeder_ns)?;
        link.b().add_addr(&format!("{FEEDER_ADDR}/30"))?;
        link.a().add_addr(&format!("{DUT_ADDR}/30"))?;
        let linked = Instant::now();

        // Up to Established nothing is in flight: poll tightly so the origin is precise.
        let connect_timeout = Duration::from_secs(30);
        loop {
            let (up, count) = dut.poll()?;
            if up {
                break;
            }
            if count > 0 || linked.elapsed() > connect_timeout {
                return Err(format!(
                    "{}: session not Established {:?} after the link came up ({count} routes)",
                    kind.label(),
                    linked.elapsed()
                )
                .into());
            }
            std::thread::sleep(EST_POLL);
        }
        let established = Instant::now();
        let connect = established - linked;
        let cpu0 = cpu_seconds(pid)?;
        let feeder_cpu0 = cpu_seconds(feeder_pid)?;

        let timeout = Duration::from_secs(60 + self.routes / 1000);
        // RECV_BENCH_TRACE=1 prints every poll: where the time goes, as a timing log.
        let trace = std::env::var_os("RECV_BENCH_TRACE").is_some();
        let mut first_route = None;
        let (total, cpu_s, feeder_cpu_s) = loop {
            let probe = Instant::now();
            let (_, count) = dut.poll()?;
            let seen = established.elapsed();
            if count > 0 && first_route.is_none() {
                first_route = Some(seen);
            }
            if trace {
                eprintln!(
                    "  {:>8.3} s  {count:>8} routes  (probe {:.1} ms)",
                    seen.as_secs_f64(),
                    probe.elapsed().as_secs_f64() * 1000.0
                );
            }
            if count >= self.routes {
                let cpu = cpu_seconds(pid)? - cpu0;
                let feeder = cpu_seconds(feeder_pid)? - feeder_cpu0;
                break (seen, cpu, feeder);
            }
            if seen > timeout {
                return Err(format!(
                    "{}: only {count} of {} routes after {timeout:?}",
                    kind.label(),
                    self.routes
                )
                .into());
            }
            // A fixed pause: a slow probe is one queued behind the DUT's work (e.g. Bramble's
            // speaker busy with a batch), not one that costs the DUT CPU, so stretching the
            // pause would only blur the end time. A probe is one short client process.
            std::thread::sleep(POLL);
        };
        std::thread::sleep(SETTLE);
        let after = mem_stats(pid)?;
        let cpu_total_s = cpu_seconds(pid)?;
        let table = dut.table_count()?;
        if table != self.routes {
            return Err(format!(
                "{}: table holds {table} routes, expected {}",
                kind.label(),
                self.routes
            )
            .into());
        }
        dut.stop();
        drop(ns);
        Ok(Sample {
            total,
            connect,
            first_route: first_route.unwrap_or(total),
            cpu_s,
            cpu_total_s,
            rss_kib: after.rss_kib,
            hwm_kib: after.hwm_kib,
            idle_rss_kib: idle.rss_kib,
            feeder_cpu_s,
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v.get(n / 2).copied().unwrap_or(f64::NAN),
        _ => {
            let a = v.get(n / 2 - 1).copied().unwrap_or(f64::NAN);
            let b = v.get(n / 2).copied().unwrap_or(f64::NAN);
            (a + b) / 2.0
        }
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Medians of one DUT's samples.
struct Summary {
    time: f64,
    time_min: f64,
    time_max: f64,
    connect: f64,
    first_route: f64,
    cpu: f64,
    cpu_total: f64,
    rss_mib: f64,
    hwm_mib: f64,
    idle_mib: f64,
    bytes_per_route: f64,
    feeder_cpu: f64,
    /// DUT CPU / window, feeder CPU / window (medians of per-run shares).
    dut_busy: f64,
    feeder_busy: f64,
}

fn summarize(samples: &[Sample], routes: u64) -> Summary {
    let col = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    let times: Vec<f64> = samples.iter().map(|s| s.total.as_secs_f64()).collect();
    let (time_min, time_max) = min_max(&times);
    let mib = |kib: u64| kib as f64 / 1024.0;
    Summary {
        time: median(times),
        time_min,
        time_max,
        connect: col(&|s| s.connect.as_secs_f64()),
        first_route: col(&|s| s.first_route.as_secs_f64()),
        cpu: col(&|s| s.cpu_s),
        cpu_total: col(&|s| s.cpu_total_s),
        rss_mib: col(&|s| mib(s.rss_kib)),
        hwm_mib: col(&|s| mib(s.hwm_kib)),
        idle_mib: col(&|s| mib(s.idle_rss_kib)),
        bytes_per_route: col(&|s| {
            (s.rss_kib as f64 - s.idle_rss_kib as f64) * 1024.0 / routes.max(1) as f64
        }),
        feeder_cpu: col(&|s| s.feeder_cpu_s),
        dut_busy: col(&|s| s.cpu_s / s.total.as_secs_f64().max(1e-9)),
        feeder_busy: col(&|s| s.feeder_cpu_s / s.total.as_secs_f64().max(1e-9)),
    }
}

fn tool_version(program: &str, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text).trim().to_string()
        })
        .unwrap_or_else(|_| "?".into())
}

fn report(routes: u64, runs: usize, results: &[(DutKind, Vec<Sample>)], header: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{header}");
    let _ = writeln!(
        o,
        "| DUT | routes | time to all learned (median, min–max) | CPU s | RSS after | peak RSS | bytes/route over idle |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|");
    let mut sums = Vec::new();
    for (kind, samples) in results {
        let s = summarize(samples, routes);
        let _ = writeln!(
            o,
            "| {} | {routes} | {:.3} s ({:.3}–{:.3}) | {:.2} | {:.1} MiB | {:.1} MiB | {:.0} |",
            kind.label(),
            s.time,
            s.time_min,
            s.time_max,
            s.cpu,
            s.rss_mib,
            s.hwm_mib,
            s.bytes_per_route
        );
        sums.push((*kind, s));
    }
    let find = |k: DutKind| sums.iter().find(|(x, _)| *x == k).map(|(_, s)| s);
    if let (Some(b), Some(r)) = (find(DutKind::Bramble), find(DutKind::Bird)) {
        let ratio = |x: f64, y: f64| {
            if y > 0.0 {
                format!("×{:.2}", x / y)
            } else {
                "n/a".to_string()
            }
        };
        let _ = writeln!(
            o,
            "\nBramble vs BIRD: time {}, CPU {}, RSS after {}, peak RSS {}, \
             bytes/route over idle {} (>1 = Bramble slower / bigger)",
            ratio(b.time, r.time),
            ratio(b.cpu, r.cpu),
            ratio(b.rss_mib, r.rss_mib),
            ratio(b.hwm_mib, r.hwm_mib),
            ratio(b.bytes_per_route, r.bytes_per_route),
        );
    }
    let _ = writeln!(o, "\nDetails (medians of {runs} runs):\n");
    let _ = writeln!(
        o,
        "| DUT | idle RSS | link up → Established | Established → first route | \
         DUT CPU s since start | DUT busy | feeder (gobgpd) CPU s in window | feeder busy |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, s) in &sums {
        let _ = writeln!(
            o,
            "| {} | {:.1} MiB | {:.3} s | {:.3} s | {:.2} | {:.0} % | {:.2} | {:.0} % |",
            kind.label(),
            s.idle_mib,
            s.connect,
            s.first_route,
            s.cpu_total,
            s.dut_busy * 100.0,
            s.feeder_cpu,
            s.feeder_busy * 100.0
        );
    }
    let _ = writeln!(
        o,
        "\nBusy = CPU seconds / time to all learned (100 % = one core; /proc ticks are 10 ms)."
    );
    if sums
        .iter()
        .any(|(_, s)| s.feeder_busy > 0.5 && s.feeder_busy > 2.0 * s.dut_busy)
    {
        let _ = writeln!(
            o,
            "\n**Feeder-bound:** GoBGP was busier than the DUT (and its first UPDATE came only \
             after the 'Established → first route' delay), so the time column mostly measures \
             how fast GoBGP sends; compare the DUTs by CPU s and memory."
        );
    }
    o
}

struct Args {
    routes: u64,
    runs: usize,
}

fn parse_args() -> BoxResult<Args> {
    let mut a = Args {
        routes: 100_000,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--routes" => a.routes = it.next().ok_or("--routes needs a number")?.parse()?,
            "--runs" => a.runs = it.next().ok_or("--runs needs a number")?.parse()?,
            "-h" | "--help" => {
                println!("recv_bench [--routes N (100000)] [--runs R (3)]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.routes == 0 || a.runs == 0 {
        return Err("--routes and --runs must be at least 1".into());
    }
    Ok(a)
}

fn workspace_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(|p| p.join("target"))
                .unwrap_or_else(|| PathBuf::from("target"))
        })
}

fn run() -> BoxResult<()> {
    let args = parse_args()?;
    check_root_and_tools()?;
    if std::env::var_os("BRAMBLE_BIN").is_none() {
        // Measure the release build unless told otherwise.
        std::env::set_var("BRAMBLE_BIN", workspace_target().join("release/bramble"));
    }
    let bin = bramble_bin();
    if !bin.is_file() {
        return Err(format!(
            "bramble binary not found at {} (cargo build --release -p agent, or set BRAMBLE_BIN)",
            bin.display()
        )
        .into());
    }
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let header = format!(
        "## Receive benchmark: GoBGP feeds {} IPv4 /32s over eBGP\n\n\
         Time is from the DUT's session to the feeder reaching Established (polled every 5 ms) to \
         the first poll (≥ 50 ms apart) that sees all routes in the DUT; {} runs per DUT, fresh \
         DUT namespace each time. CPU s = DUT utime+stime over that window; RSS/peak = \
         VmRSS/VmHWM 1 s after convergence; bytes/route = (RSS after − RSS of the same process \
         idle, before its link existed) / routes.\n\n\
         bramble: {} · {} · {} · {} CPUs, loadavg at start {}\n",
        args.routes,
        args.runs,
        bin.display(),
        tool_version("bird", "--version"),
        tool_version("gobgpd", "--version"),
        std::thread::available_parallelism().map_or(0, usize::from),
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );

    let dir = ScratchDir::new("recv-bench")?;
    let mut bench = Bench::setup(args.routes, dir)?;
    let mut results: Vec<(DutKind, Vec<Sample>)> = [DutKind::Bramble, DutKind::Bird]
        .into_iter()
        .map(|k| (k, Vec::new()))
        .collect();
    for run in 1..=args.runs {
        for (kind, samples) in results.iter_mut() {
            let s = bench.measure(*kind, run)?;
            eprintln!(
                "run {run}/{}: {:<7} all {} routes {:.3} s after Established (first route at \
                 {:.3} s; Established {:.3} s after link up), CPU {:.2} s, RSS {} KiB \
                 (idle {} KiB), peak {} KiB, feeder CPU {:.2} s",
                args.runs,
                kind.label(),
                args.routes,
                s.total.as_secs_f64(),
                s.first_route.as_secs_f64(),
                s.connect.as_secs_f64(),
                s.cpu_s,
                s.rss_kib,
                s.idle_rss_kib,
                s.hwm_kib,
                s.feeder_cpu_s
            );
            samples.push(s);
        }
    }
    let text = report(args.routes, args.runs, &results, &header);
    println!("{text}");
    let out_dir = workspace_target().join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join("recv_bench.md");
    std::fs::write(&out, &text)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recv_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_protocol_counts() {
        let text = "Name       Proto      Table      State  Since         Info\n\
feeder     BGP        ---        up     18:30:01.123  Established\n\
  BGP state:          Established\n\
    Neighbor address: 10.99.0.1\n\
  Channel ipv4\n\
    State:          UP\n\
    Routes:         99871 imported, 0 exported, 99871 preferred\n";
        assert_eq!(parse_bird_protocol(text), (true, 99871));
        assert_eq!(
            parse_bird_protocol("  BGP state:          Active\n"),
            (false, 0)
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(min_max(&[3.0, 1.0, 2.0]), (1.0, 3.0));
    }

    #[test]
    fn own_cpu_and_memory_are_readable() {
        let pid = std::process::id() as i32;
        let s = mem_stats(pid).unwrap();
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib, "{s:?}");
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
    }
}
