//! Issue 6 scale benchmark: feeders → DUT (Bramble, BIRD, GoBGP) → monitor, in namespaces.
//!
//! Run as root:
//! `cargo run --release -p interop-tests --bin bench -- [--quick] [--scenario a|b|c|d|all]
//! [--dut bramble,bird,gobgp] [--fib] [--repeat N] [--out DIR] [--timeout SECS]`
//!
//! Uses `$BRAMBLE_BIN`, else `target/release/bramble` if built, else `target/debug/bramble`.
//! Writes `report.md`, `report.svg` and `results.json` to `--out` (default `target/bench/`)
//! and exits non-zero if any run failed to deliver every route.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use interop_tests::bench::dut::DutKind;
use interop_tests::bench::scenario::{run, RunResult, RunSpec};
use interop_tests::bench::Scenario;
use interop_tests::bench::{repeat, report};
use interop_tests::bramble::bramble_bin;
use interop_tests::prereq::check_root_and_tools;

type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "bench [--quick] [--scenario a|b|c|d|all[,…]] [--dut bramble,bird,gobgp] \
                     [--fib] [--no-baseline] [--repeat N] [--out DIR] [--timeout SECS]";

struct Args {
    quick: bool,
    scenarios: Vec<Scenario>,
    duts: Vec<DutKind>,
    fib: bool,
    baseline: bool,
    repeat: u32,
    out: PathBuf,
    timeout: Option<Duration>,
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

fn parse_args() -> BoxResult<Args> {
    let mut a = Args {
        quick: false,
        scenarios: Scenario::ALL.to_vec(),
        duts: vec![DutKind::Bramble, DutKind::Bird, DutKind::Gobgp],
        fib: false,
        baseline: true,
        repeat: 1,
        out: workspace_target().join("bench"),
        timeout: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--fib" => a.fib = true,
            "--no-baseline" => a.baseline = false,
            "--scenario" => {
                let v = value()?;
                a.scenarios = if v == "all" {
                    Scenario::ALL.to_vec()
                } else {
                    v.split(',')
                        .map(|s| Scenario::parse(s.trim()).ok_or(format!("unknown scenario {s}")))
                        .collect::<Result<_, _>>()?
                };
            }
            "--dut" => {
                a.duts = value()?
                    .split(',')
                    .map(|s| DutKind::parse(s.trim()).ok_or(format!("unknown DUT {s}")))
                    .collect::<Result<_, _>>()?;
            }
            "--repeat" => {
                a.repeat = value()?.parse()?;
                if a.repeat == 0 {
                    return Err("--repeat needs at least 1".into());
                }
            }
            "--out" => a.out = PathBuf::from(value()?),
            "--timeout" => a.timeout = Some(Duration::from_secs(value()?.parse()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    Ok(a)
}

fn tool_version(program: &str, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            let text = String::from_utf8_lossy(&text);
            text.lines().next().unwrap_or("?").trim().to_string()
        })
        .unwrap_or_else(|_| "?".into())
}

fn progress(round: &str, r: &RunResult) {
    let f = |v: Option<f64>| v.map_or("—".into(), |x| format!("{x:.3}"));
    eprintln!(
        "bench: {round}{} {:<16} fib={:<5} {}/{} routes  up {} s  first {} s  time {} s  fib {} s  cpu {} s  peak {} MiB  harness cpu {:.2} s  {}{}",
        r.scenario.letter(),
        r.dut,
        r.fib,
        r.received,
        r.expected,
        f(r.sessions_up_s),
        f(r.first_route_s),
        f(r.time_s),
        f(r.fib_time_s),
        f(r.cpu_s),
        f(r.peak_rss_mib),
        r.harness_cpu_s,
        if r.ok { "ok" } else { "FAILED " },
        r.note
    );
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> BoxResult<bool> {
    let args = parse_args()?;
    check_root_and_tools()?;
    if std::env::var_os("BRAMBLE_BIN").is_none() {
        let release = workspace_target().join("release/bramble");
        if release.is_file() {
            std::env::set_var("BRAMBLE_BIN", release);
        }
    }
    if std::env::var_os("RUST_LOG").is_none() {
        // The agent's per-session info logs are noise at 200 sessions.
        std::env::set_var("RUST_LOG", "warn");
    }
    let bin = bramble_bin();
    if args.duts.contains(&DutKind::Bramble) && !bin.is_file() {
        return Err(format!(
            "bramble binary not found at {} (cargo build --release -p agent, or set BRAMBLE_BIN)",
            bin.display()
        )
        .into());
    }
    std::fs::create_dir_all(&args.out)?;
    let timeout = args
        .timeout
        .unwrap_or(Duration::from_secs(if args.quick { 40 } else { 600 }));

    let mut rows = Vec::new();
    for &scenario in &args.scenarios {
        let sizes = scenario.sizes(args.quick);
        let spec = |dut, fib| RunSpec {
            scenario,
            dut,
            fib,
            sizes,
            timeout,
        };
        let mut specs = Vec::new();
        if args.baseline && matches!(scenario, Scenario::A | Scenario::B) {
            specs.push(spec(None, false));
        }
        let fib_modes: &[bool] = if args.fib && scenario != Scenario::D {
            &[false, true]
        } else {
            &[false]
        };
        for &fib in fib_modes {
            for &dut in &args.duts {
                if !fib || dut.has_fib() {
                    specs.push(spec(Some(dut), fib));
                }
            }
        }
        // Rounds, each running every spec once: machine drift hits every DUT alike.
        let mut runs: Vec<Vec<RunResult>> = specs.iter().map(|_| Vec::new()).collect();
        for round in 1..=args.repeat {
            for (s, out) in specs.iter().zip(runs.iter_mut()) {
                let r = run(s);
                let label = if args.repeat > 1 {
                    format!("round {round}/{}: ", args.repeat)
                } else {
                    String::new()
                };
                progress(&label, &r);
                out.push(r);
            }
        }
        rows.extend(runs.into_iter().filter_map(repeat::fold));
    }

    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let header = format!(
        "## Scale benchmark (issue 6)\n\n\
         `{}`\n\n\
         bramble: {} · {} · {} · {} CPUs · kernel {} · loadavg at end {}\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        bin.display(),
        tool_version("bird", "--version"),
        tool_version("gobgpd", "--version"),
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let mut md = report::markdown(&rows, &header);
    if args.fib && args.duts.contains(&DutKind::Gobgp) {
        md.push_str("\nGoBGP with FIB: n/a (gobgpd does not program the kernel; no rows).\n");
    }
    let md_path = args.out.join("report.md");
    std::fs::write(&md_path, &md)?;
    std::fs::write(args.out.join("report.svg"), report::svg(&rows))?;
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    println!("{md}");
    eprintln!(
        "bench: wrote {}/report.{{md,svg}} and results.json",
        args.out.display()
    );
    Ok(rows.iter().all(|r| r.ok))
}
