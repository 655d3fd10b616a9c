//! One measured run: build the namespaces, start the DUT, run the speakers, take the readings.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::{Netns, ScratchDir, Veth};

use super::dut::{DutKind, Layout, Running, DUT_AS, MONITOR_AS};
use super::procfs::{cpu_seconds, fib_prefixes, in_netns, memory_kib};
use super::session::{self, FirstInstant, Send, Tracker};
use super::wire::{self, Attrs};
use super::{BenchError, Scenario, Sizes};

/// The DUT's address.
pub const DUT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);
/// The monitor's address.
pub const MONITOR_ADDR: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 2);
/// The first feeder's address; feeder `i` is this plus `i`.
pub const FIRST_FEEDER: Ipv4Addr = Ipv4Addr::new(10, 100, 1, 1);
/// The first announced /32 (100.64.0.0/10 holds 4 M of them).
pub const PREFIX_BASE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
/// The first feeder's AS; feeder `i` is in this plus `i`.
pub const FIRST_FEEDER_AS: u32 = 64600;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec {
    /// The scenario.
    pub scenario: Scenario,
    /// The DUT; `None` = baseline, feeders straight into the monitor.
    pub dut: Option<DutKind>,
    /// Program the kernel FIB and time it.
    pub fib: bool,
    /// Sizes.
    pub sizes: Sizes,
    /// Give up on a phase after this long.
    pub timeout: Duration,
}

/// Churn measurements (scenario d).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Churn {
    /// Withdraw + re-announce rounds completed.
    pub rounds: u32,
    /// Routes withdrawn (and later re-announced) per round, over all feeders.
    pub routes_per_round: u64,
    /// Mean time from a burst's start to the monitor holding its result.
    pub mean_lag_s: f64,
    /// The worst such time.
    pub max_lag_s: f64,
    /// DUT CPU seconds over the churn window.
    pub cpu_s: f64,
    /// The churn window.
    pub window_s: f64,
}

/// One row of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunResult {
    /// Scenario letter.
    pub scenario: Scenario,
    /// `Bramble`, `BIRD`, `GoBGP`, or `feeders→monitor` (baseline).
    pub dut: String,
    /// FIB programming on.
    pub fib: bool,
    /// Feeder sessions.
    pub sessions: usize,
    /// Unique routes announced.
    pub routes: u64,
    /// Routes each receiver must hold (the monitor, or every reflector client).
    pub expected: u64,
    /// Routes held at the end (the least any receiver held).
    pub received: u64,
    /// Every receiver held every route (and the FIB every route, with `fib`).
    pub ok: bool,
    /// First feeder OPEN → last prefix at the monitor (every client, scenario c).
    pub time_s: Option<f64>,
    /// First feeder OPEN → last feeder session Established.
    pub sessions_up_s: Option<f64>,
    /// First feeder OPEN → first UPDATE at the monitor (at any client, scenario c).
    pub first_route_s: Option<f64>,
    /// First feeder OPEN → every route in the DUT namespace's kernel FIB.
    pub fib_time_s: Option<f64>,
    /// DUT CPU seconds from before the first OPEN until convergence.
    pub cpu_s: Option<f64>,
    /// Harness (feeders + monitor) CPU seconds over the same window.
    pub harness_cpu_s: f64,
    /// DUT peak resident memory (VmHWM), MiB.
    pub peak_rss_mib: Option<f64>,
    /// (RSS after convergence − RSS idle before the feeders) / routes.
    pub bytes_per_route: Option<f64>,
    /// Routes the DUT sent back to eBGP feeders (should be 0: export none).
    pub sent_to_feeders: u64,
    /// Scenario d.
    pub churn: Option<Churn>,
    /// What went wrong, if anything.
    pub note: String,
    /// Runs folded into this row (`--repeat`); the measurements are their medians.
    pub runs: u32,
    /// Fastest and slowest time over those runs.
    pub time_range_s: Option<(f64, f64)>,
    /// Fastest and slowest FIB time over those runs.
    pub fib_time_range_s: Option<(f64, f64)>,
}

impl RunResult {
    /// A row with nothing measured yet: not ok, no route received.
    pub fn blank(scenario: Scenario, dut: String, fib: bool, sessions: usize, routes: u64) -> Self {
        Self {
            scenario,
            dut,
            fib,
            sessions,
            routes,
            expected: routes,
            received: 0,
            ok: false,
            time_s: None,
            sessions_up_s: None,
            first_route_s: None,
            fib_time_s: None,
            cpu_s: None,
            harness_cpu_s: 0.0,
            peak_rss_mib: None,
            bytes_per_route: None,
            sent_to_feeders: 0,
            churn: None,
            note: String::new(),
            runs: 1,
            time_range_s: None,
            fib_time_range_s: None,
        }
    }
}

/// Run `spec`; failures become a row with `ok = false` and the reason in `note`.
pub fn run(spec: &RunSpec) -> RunResult {
    let mut r = RunResult::blank(
        spec.scenario,
        spec.dut
            .map_or("feeders→monitor".to_string(), |d| d.label().to_string()),
        spec.fib,
        spec.sizes.feeders,
        spec.sizes.total(),
    );
    if let Err(e) = try_run(spec, &mut r) {
        r.ok = false;
        r.note = e
            .to_string()
            .lines()
            .take(6)
            .collect::<Vec<_>>()
            .join(" / ");
    }
    r
}

/// Everything the speakers' thread needs.
#[derive(Debug, Clone)]
struct Plan {
    scenario: Scenario,
    sizes: Sizes,
    timeout: Duration,
    /// Where feeders connect: the DUT, or the monitor (baseline).
    target: Ipv4Addr,
    baseline: bool,
    feeders: Vec<(Ipv4Addr, u32)>,
    dut_pid: Option<u32>,
    fib_base: Option<u64>,
}

fn feeders(sizes: &Sizes, reflector: bool) -> Vec<(Ipv4Addr, u32)> {
    (0..sizes.feeders as u32)
        .map(|i| {
            let addr = Ipv4Addr::from(u32::from(FIRST_FEEDER) + i);
            (
                addr,
                if reflector {
                    DUT_AS
                } else {
                    FIRST_FEEDER_AS + i
                },
            )
        })
        .collect()
}

fn try_run(spec: &RunSpec, r: &mut RunResult) -> Result<(), BenchError> {
    let reflector = spec.scenario == Scenario::C;
    let dir = ScratchDir::new("bench")?;
    let feed_ns = Netns::new("bnf")?;
    let feeders = feeders(&spec.sizes, reflector);
    let mut batch = String::new();
    // Keep the namespaces and the link alive until the end of the run.
    let mut _dut_ns = None;
    let mut dut = None;
    let mut fib_base = None;
    if let Some(kind) = spec.dut {
        let dut_ns = Netns::new("bnd")?;
        let link = Veth::new(&dut_ns, &feed_ns)?;
        link.a().add_addr(&format!("{DUT_ADDR}/16"))?;
        let ifname = link.b().ifname().to_string();
        batch.push_str(&format!("addr add {MONITOR_ADDR}/16 dev {ifname}\n"));
        for (a, _) in &feeders {
            batch.push_str(&format!("addr add {a}/16 dev {ifname}\n"));
        }
        let layout = Layout {
            dut: DUT_ADDR,
            monitor: (!reflector).then_some(MONITOR_ADDR),
            feeders: feeders.clone(),
            reflector,
            fib: spec.fib && kind.has_fib(),
        };
        let mut running = Running::start(kind, &dut_ns, dir.path(), &layout)?;
        if spec.fib {
            fib_base = Some(fib_prefixes(running.pid())?);
        }
        dut = Some(running);
        _dut_ns = Some(dut_ns);
    } else {
        batch.push_str(&format!("addr add {MONITOR_ADDR}/32 dev lo\n"));
        for (a, _) in &feeders {
            batch.push_str(&format!("addr add {a}/32 dev lo\n"));
        }
    }
    let batch_file = dir.write("addrs.batch", batch.as_bytes())?;
    feed_ns.ip(&["-batch", &batch_file.to_string_lossy()])?;

    let plan = Plan {
        scenario: spec.scenario,
        sizes: spec.sizes,
        timeout: spec.timeout,
        target: if dut.is_some() {
            DUT_ADDR
        } else {
            MONITOR_ADDR
        },
        baseline: dut.is_none(),
        feeders,
        dut_pid: dut.as_mut().map(Running::pid),
        fib_base,
    };
    let result = in_netns(feed_ns.name(), move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(rt.block_on(drive(plan)))
    })?;
    if let Some(d) = dut.as_mut() {
        // A DUT that crashed explains a failure better than the timeout does.
        d.check_running()?;
    }
    let m = result?;
    r.received = m.received;
    r.expected = m.expected;
    r.time_s = m.time_s;
    r.sessions_up_s = m.sessions_up_s;
    r.first_route_s = m.first_route_s;
    r.fib_time_s = m.fib_time_s;
    r.cpu_s = m.cpu_s;
    r.harness_cpu_s = m.harness_cpu_s;
    r.peak_rss_mib = m.peak_kib.map(|k| k as f64 / 1024.0);
    r.bytes_per_route = m
        .grown_kib
        .map(|k| k as f64 * 1024.0 / r.routes.max(1) as f64);
    r.sent_to_feeders = m.sent_to_feeders;
    r.churn = m.churn;
    r.ok = m.errors.is_empty()
        && r.received == r.expected
        && r.time_s.is_some()
        && (!spec.fib || r.fib_time_s.is_some() || spec.dut.is_some_and(|d| !d.has_fib()));
    r.note = m.errors.into_iter().take(3).collect::<Vec<_>>().join(" / ");
    Ok(())
}

/// What the speakers' thread measured.
#[derive(Debug, Default)]
struct Measured {
    expected: u64,
    received: u64,
    time_s: Option<f64>,
    sessions_up_s: Option<f64>,
    first_route_s: Option<f64>,
    fib_time_s: Option<f64>,
    cpu_s: Option<f64>,
    harness_cpu_s: f64,
    peak_kib: Option<u64>,
    grown_kib: Option<u64>,
    sent_to_feeders: u64,
    churn: Option<Churn>,
    errors: Vec<String>,
}

fn attrs_for(plan: &Plan, i: usize) -> Attrs {
    let (addr, asn) = plan
        .feeders
        .get(i)
        .copied()
        .unwrap_or((FIRST_FEEDER, FIRST_FEEDER_AS));
    if plan.scenario == Scenario::C {
        Attrs::Internal { next_hop: addr }
    } else {
        Attrs::External {
            asn,
            next_hop: addr,
        }
    }
}

/// TCP-connect until it works or `deadline` passes (the DUT may still be opening its
/// listener, or drop SYNs while its accept queue is full: BIRD listens with a backlog of 8).
async fn connect_retry(
    local: Ipv4Addr,
    peer: Ipv4Addr,
    deadline: Instant,
) -> Result<tokio::net::TcpStream, BenchError> {
    loop {
        match session::tcp_connect(local, peer).await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn since(t: Option<Instant>, from: Option<Instant>) -> Option<f64> {
    Some(t?.checked_duration_since(from?)?.as_secs_f64())
}

async fn drive(plan: Plan) -> Result<Measured, BenchError> {
    let base = u32::from(PREFIX_BASE);
    let per = plan.sizes.per_feeder;
    let total = plan.sizes.total();
    let capacity =
        u32::try_from(total).map_err(|_| BenchError::Protocol("too many routes".into()))?;
    let errors = Arc::new(Mutex::new(Vec::new()));
    let reflector = plan.scenario == Scenario::C;
    let setup_deadline = Instant::now() + Duration::from_secs(30);
    let mut m = Measured {
        expected: total,
        ..Measured::default()
    };

    // The monitor first, so the DUT has somewhere to send before the feeders start.
    let monitor = (!reflector).then(|| Tracker::new(base, capacity, total));
    let mut _monitor_tx: Option<UnboundedSender<Send>> = None;
    let mut _listener = None;
    if let Some(t) = &monitor {
        if plan.baseline {
            _listener = Some(session::listen(
                MONITOR_ADDR,
                DUT_AS,
                t.clone(),
                errors.clone(),
            )?);
        } else {
            let tcp = connect_retry(MONITOR_ADDR, plan.target, setup_deadline).await?;
            let hs = session::handshake(tcp, MONITOR_ADDR, MONITOR_AS, |_| {});
            let est = tokio::time::timeout_at(setup_deadline.into(), hs)
                .await
                .map_err(|_| BenchError::Timeout("monitor session to the DUT".into()))??;
            _monitor_tx = Some(est.run(Some(t.clone()), errors.clone(), "monitor".into()));
        }
    }

    // Pre-encode every feeder's table before the clock starts.
    let streams: Vec<Arc<Vec<u8>>> = (0..plan.feeders.len())
        .map(|i| {
            Arc::new(wire::announce_stream(
                base + i as u32 * per,
                per,
                attrs_for(&plan, i),
            ))
        })
        .collect();
    let clients: Vec<Arc<Tracker>> = if reflector {
        (0..plan.feeders.len() as u32)
            .map(|i| {
                let t = Tracker::new(base, capacity, total);
                // A client holds its own routes; a reflector need not echo them (RFC 4456 §8).
                for a in base + i * per..base + (i + 1) * per {
                    t.set(a, 32);
                }
                t
            })
            .collect()
    } else {
        Vec::new()
    };
    // What the DUT sends the eBGP feeders (nothing, if its export policy works).
    let backflow = Tracker::new(base, capacity, u64::MAX);

    // Idle readings once the DUT has settled with its monitor session.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let me = std::process::id();
    let cpu0 = plan.dut_pid.map(cpu_seconds).transpose()?;
    let rss0 = plan
        .dut_pid
        .map(memory_kib)
        .transpose()?
        .map(|(rss, _)| rss);
    let harness0 = cpu_seconds(me)?;

    let first = Arc::new(FirstInstant::default());
    let up = Arc::new(FirstInstant::default());
    // TCP first, every session, so the clock (which starts at the first OPEN) measures BGP
    // work, not SYN retransmissions behind a short accept queue.
    let mut conns = Vec::new();
    for &(addr, _) in &plan.feeders {
        let target = plan.target;
        conns.push(tokio::spawn(async move {
            connect_retry(addr, target, setup_deadline).await
        }));
    }
    let mut streams_tcp = Vec::new();
    for c in conns {
        streams_tcp.push(
            c.await
                .map_err(|e| BenchError::Protocol(format!("connect task: {e}")))??,
        );
    }
    let deadline = Instant::now() + plan.timeout;
    let mut tasks = Vec::new();
    for (i, (&(addr, asn), tcp)) in plan.feeders.iter().zip(streams_tcp).enumerate() {
        let first = first.clone();
        let up = up.clone();
        let errors = errors.clone();
        let stream = streams.get(i).cloned().unwrap_or_default();
        let tracker = if reflector {
            clients.get(i).cloned()
        } else {
            Some(backflow.clone())
        };
        let target = plan.target;
        let plan_timeout = plan.timeout;
        tasks.push(tokio::spawn(async move {
            // A DUT may still refuse a session it is not ready for (BIRD resets connections
            // to protocols still starting): reconnect and try again; the clock keeps running.
            let mut tcp = Some(tcp);
            let est = loop {
                let conn = match tcp.take() {
                    Some(c) => c,
                    None => connect_retry(addr, target, deadline).await?,
                };
                let hs = session::handshake(conn, addr, asn, |t| first.record(t));
                match tokio::time::timeout_at(deadline.into(), hs).await {
                    Ok(Ok(est)) => break est,
                    Ok(Err(e)) if Instant::now() >= deadline => return Err(e),
                    Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(_) => {
                        return Err(BenchError::Timeout(format!(
                            "feeder {addr}: no session within {:?}",
                            plan_timeout
                        )))
                    }
                }
            };
            up.record_latest(Instant::now());
            let tx = est.run(tracker, errors, format!("feeder {addr}"));
            let _ = tx.send(Send::Bytes(stream, None));
            Ok::<_, BenchError>(tx)
        }));
    }
    let mut feeders_tx = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(tx)) => feeders_tx.push(tx),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(BenchError::Protocol(format!("feeder task: {e}"))),
        }
    }

    // The kernel FIB count, polled from the first OPEN on. One read walks the whole trie
    // (milliseconds at a million routes) on one of the two cores the DUT also needs, so the
    // pause between reads is at least ten times the last read's cost.
    let fib_poller = match (plan.dut_pid, plan.fib_base) {
        (Some(pid), Some(fib0)) => Some(tokio::spawn(async move {
            loop {
                let t = Instant::now();
                let n = fib_prefixes(pid)?.saturating_sub(fib0);
                let now = Instant::now();
                if n >= total || now >= deadline {
                    return Ok::<_, BenchError>((n >= total, now, n));
                }
                let pause = ((now - t) * 10).max(Duration::from_millis(50));
                tokio::time::sleep(pause).await;
            }
        })),
        _ => None,
    };

    // The last prefix at the monitor, or at every reflector client.
    let t0 = first.get();
    let end = if let Some(t) = &monitor {
        if !t.wait(deadline).await {
            m.errors.push(format!(
                "monitor holds {} of {total} routes after {:?}",
                t.held(),
                plan.timeout
            ));
        }
        m.received = t.held();
        t.reached_at()
    } else {
        let mut last = None;
        m.received = total;
        for (i, c) in clients.iter().enumerate() {
            if !c.wait(deadline).await {
                m.errors
                    .push(format!("client {i} holds {} of {total} routes", c.held()));
            }
            m.received = m.received.min(c.held());
            last = last.max(c.reached_at());
        }
        last
    };
    if m.errors.is_empty() {
        m.time_s = since(end, t0);
    }
    m.sessions_up_s = since(up.get(), t0);
    let first_route = match &monitor {
        Some(t) => t.first_at(),
        None => clients.iter().filter_map(|c| c.first_at()).min(),
    };
    m.first_route_s = since(first_route, t0);

    // With the FIB on: every route in the DUT namespace's kernel (polled since the start).
    if let Some(poller) = fib_poller {
        match poller.await {
            Ok(Ok((true, at, _))) => m.fib_time_s = since(Some(at), t0),
            Ok(Ok((false, _, n))) => m.errors.push(format!("kernel holds {n} of {total} routes")),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(BenchError::Protocol(format!("FIB poller: {e}"))),
        }
    }
    m.harness_cpu_s = cpu_seconds(me)? - harness0;
    if let Some(pid) = plan.dut_pid {
        m.cpu_s = cpu0
            .map(|c0| cpu_seconds(pid).map(|c| c - c0))
            .transpose()?;
        // Let deferred work (allocator, GC) show before reading memory.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (rss, hwm) = memory_kib(pid)?;
        m.peak_kib = Some(hwm);
        m.grown_kib = rss0.map(|r0| rss.saturating_sub(r0));
    }
    m.sent_to_feeders = if reflector { 0 } else { backflow.held() };

    if plan.scenario == Scenario::D && m.errors.is_empty() {
        if let Some(t) = &monitor {
            m.churn = Some(churn(&plan, t, &feeders_tx, &mut m.errors).await?);
        }
    }
    if let Ok(mut e) = errors.lock() {
        m.errors.append(&mut e);
    }
    Ok(m)
}

/// Scenario d: withdraw the first 10 % of every feeder's routes, wait until the monitor has
/// lost exactly those, re-announce them, wait until it holds everything again; repeat for
/// the churn window. The lag of a burst is from its first byte queued to the monitor's state.
async fn churn(
    plan: &Plan,
    monitor: &Tracker,
    feeders: &[UnboundedSender<Send>],
    errors: &mut Vec<String>,
) -> Result<Churn, BenchError> {
    let base = u32::from(PREFIX_BASE);
    let per = plan.sizes.per_feeder;
    let k = (per / 10).max(1);
    let total = plan.sizes.total();
    let burst = k as u64 * feeders.len() as u64;
    let withdraws: Vec<Arc<Vec<u8>>> = (0..feeders.len() as u32)
        .map(|i| Arc::new(wire::withdraw_stream(base + i * per, k)))
        .collect();
    let announces: Vec<Arc<Vec<u8>>> = (0..feeders.len())
        .map(|i| {
            Arc::new(wire::announce_stream(
                base + i as u32 * per,
                k,
                attrs_for(plan, i),
            ))
        })
        .collect();
    let pid = plan.dut_pid;
    let cpu0 = pid.map(cpu_seconds).transpose()?;
    let start = Instant::now();
    let mut lags = Vec::new();
    let mut rounds = 0;
    'outer: while start.elapsed() < plan.sizes.churn {
        for (streams, target) in [(&withdraws, total - burst), (&announces, total)] {
            monitor.retarget(target);
            let t = Instant::now();
            for (tx, s) in feeders.iter().zip(streams.iter()) {
                let _ = tx.send(Send::Bytes(s.clone(), None));
            }
            if !monitor.wait(t + plan.timeout).await {
                errors.push(format!(
                    "churn: monitor stuck at {} of {target}",
                    monitor.held()
                ));
                break 'outer;
            }
            lags.push(
                monitor
                    .reached_at()
                    .unwrap_or(t)
                    .saturating_duration_since(t)
                    .as_secs_f64(),
            );
        }
        rounds += 1;
    }
    let window = start.elapsed().as_secs_f64();
    let cpu_s = match (pid, cpu0) {
        (Some(p), Some(c0)) => cpu_seconds(p)? - c0,
        _ => 0.0,
    };
    Ok(Churn {
        rounds,
        routes_per_round: burst,
        mean_lag_s: if lags.is_empty() {
            0.0
        } else {
            lags.iter().sum::<f64>() / lags.len() as f64
        },
        max_lag_s: lags.iter().copied().fold(0.0, f64::max),
        cpu_s,
        window_s: window,
    })
}
