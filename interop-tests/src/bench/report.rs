//! The report: a markdown table (one row per DUT per scenario, ratios to BIRD), a churn
//! table, and a hand-written SVG bar chart of time and peak memory.

use std::fmt::Write as _;

use super::scenario::RunResult;
use super::Scenario;

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".to_string(), |x| format!("{x:.digits$}"))
}

/// `v`, followed by `(lo–hi)` when the row folds several runs.
fn with_range(v: Option<f64>, range: Option<(f64, f64)>, runs: u32, digits: usize) -> String {
    match (v, range) {
        (Some(_), Some((lo, hi))) if runs > 1 => {
            format!("{} ({lo:.digits$}–{hi:.digits$})", opt(v, digits))
        }
        _ => opt(v, digits),
    }
}

/// `×R` of `x` against the BIRD row's value, if both exist.
fn ratio(x: Option<f64>, bird: Option<f64>) -> String {
    match (x, bird) {
        (Some(a), Some(b)) if b > 0.0 => format!("×{:.2}", a / b),
        _ => "—".to_string(),
    }
}

fn bird_row<'a>(rows: &'a [RunResult], r: &RunResult) -> Option<&'a RunResult> {
    rows.iter()
        .find(|b| b.dut == "BIRD" && b.scenario == r.scenario && b.fib == r.fib && b.ok)
}

/// The markdown report; `header` goes first (command line, machine).
pub fn markdown(rows: &[RunResult], header: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{header}");
    let _ = writeln!(
        o,
        "| scenario | DUT | FIB | sessions × routes | up / first s | time s | ×BIRD | FIB time s | ×BIRD | \
         DUT CPU s | ×BIRD | peak RSS MiB | ×BIRD | bytes/route | harness CPU s | received | note |"
    );
    let _ = writeln!(
        o,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in rows {
        let b = bird_row(rows, r);
        let fib = if !r.fib {
            "off"
        } else if r.dut == "GoBGP" {
            "n/a"
        } else {
            "on"
        };
        let _ = writeln!(
            o,
            "| {} {} | {} | {fib} | {} × {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {}/{}{} | {} |",
            r.scenario.letter(),
            r.scenario.title(),
            r.dut,
            r.sessions,
            r.routes / r.sessions.max(1) as u64,
            opt(r.sessions_up_s, 2),
            opt(r.first_route_s, 2),
            with_range(r.time_s, r.time_range_s, r.runs, 3),
            ratio(r.time_s, b.and_then(|b| b.time_s)),
            with_range(r.fib_time_s, r.fib_time_range_s, r.runs, 3),
            ratio(r.fib_time_s, b.and_then(|b| b.fib_time_s)),
            opt(r.cpu_s, 2),
            ratio(r.cpu_s, b.and_then(|b| b.cpu_s)),
            opt(r.peak_rss_mib, 1),
            ratio(r.peak_rss_mib, b.and_then(|b| b.peak_rss_mib)),
            opt(r.bytes_per_route, 0),
            r.harness_cpu_s,
            r.received,
            r.expected,
            if r.ok { "" } else { " **FAIL**" },
            r.note.replace('|', "/"),
        );
    }
    let churn: Vec<&RunResult> = rows.iter().filter(|r| r.churn.is_some()).collect();
    if !churn.is_empty() {
        let _ = writeln!(
            o,
            "\n**Churn (d):** each round withdraws 10 % of every feeder's routes, waits until the \
             monitor has lost exactly those, re-announces them and waits until it holds all \
             again. Lag = burst queued → monitor state reached.\n"
        );
        let _ = writeln!(
            o,
            "| DUT | FIB | rounds | routes per burst | mean lag s | max lag s | DUT CPU s | DUT busy | ×BIRD CPU/round |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in churn {
            if let Some(c) = &r.churn {
                let per_round = |c: &super::scenario::Churn| {
                    (c.rounds > 0).then(|| c.cpu_s / f64::from(c.rounds))
                };
                let b = bird_row(rows, r)
                    .and_then(|b| b.churn.as_ref())
                    .and_then(per_round);
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {:.3} | {:.3} | {:.2} | {:.0} % | {} |",
                    r.dut,
                    if r.fib { "on" } else { "off" },
                    c.rounds,
                    c.routes_per_round,
                    c.mean_lag_s,
                    c.max_lag_s,
                    c.cpu_s,
                    100.0 * c.cpu_s / c.window_s.max(1e-9),
                    ratio(per_round(c), b)
                );
            }
        }
    }
    let _ = writeln!(
        o,
        "\nUp / first = first feeder OPEN sent → last feeder session Established / first UPDATE at \
         the monitor. Time = first feeder OPEN sent → last prefix held by the monitor (scenario \
         c: by every client). FIB time = first OPEN → the DUT namespace's kernel FIB holds every route \
         (`/proc/PID/net/fib_triestat`, polled from the first OPEN with pauses of at least 50 ms \
         and 10× the last read's cost). CPU = DUT utime+stime over that \
         window; peak RSS = VmHWM; bytes/route = (VmRSS after − VmRSS idle before the feeders) / \
         routes. Harness CPU = this process (all feeders, the monitor and, with FIB, the kernel's trie \
         walks for the polls) over the same window: \
         when it approaches the time column × 2 cores the feeders are the bottleneck. \
         Ratios are to BIRD in the same scenario and FIB mode (< 1 = less than BIRD)."
    );
    if let Some(runs) = rows.iter().map(|r| r.runs).max().filter(|&n| n > 1) {
        let _ = writeln!(
            o,
            "\nEach row folds {runs} runs, interleaved (every DUT once per round): each figure is \
             the median over the runs that delivered every route, with the fastest and slowest \
             time in brackets; `received` is the least any run received."
        );
    }
    o
}

const COLORS: [(&str, &str); 4] = [
    ("Bramble", "#2a9d8f"),
    ("BIRD", "#e76f51"),
    ("GoBGP", "#457b9d"),
    ("feeders→monitor", "#adb5bd"),
];

fn color(dut: &str) -> &'static str {
    COLORS
        .iter()
        .find(|(d, _)| *d == dut)
        .map_or("#888888", |(_, c)| c)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One panel: horizontal bars of `value(row)` grouped by scenario.
fn panel(o: &mut String, x0: f64, title: &str, unit: &str, bars: &[(String, &str, f64)]) {
    let max = bars.iter().map(|b| b.2).fold(0.0, f64::max).max(1e-9);
    let (label_w, bar_w, row_h) = (170.0, 260.0, 18.0);
    let _ = writeln!(
        o,
        r#"<text x="{x0}" y="20" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, (label, dut, v)) in bars.iter().enumerate() {
        let y = 34.0 + i as f64 * row_h;
        let w = (v / max * bar_w).max(1.0);
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{}" y="{}" width="{w:.1}" height="{}" fill="{}"/><text x="{}" y="{}">{v:.2} {unit}</text>"#,
            x0 + label_w - 6.0,
            y + 12.0,
            esc(label),
            x0 + label_w,
            y + 2.0,
            row_h - 4.0,
            color(dut),
            x0 + label_w + w + 4.0,
            y + 12.0,
        );
    }
}

/// The SVG: time (left) and peak memory (right), one bar per successful row.
pub fn svg(rows: &[RunResult]) -> String {
    let label = |r: &RunResult| {
        format!(
            "{}{} {}",
            r.scenario.letter(),
            if r.fib { "+fib" } else { "" },
            r.dut
        )
    };
    let mut time = Vec::new();
    let mut mem = Vec::new();
    for s in Scenario::ALL {
        for r in rows.iter().filter(|r| r.scenario == s && r.ok) {
            // Churn rows have no load time worth plotting against the others; use the lag.
            let t = r.fib_time_s.or(r.time_s);
            let t = match &r.churn {
                Some(c) => Some(c.mean_lag_s),
                None => t,
            };
            if let Some(t) = t {
                time.push((label(r), r.dut.as_str(), t));
            }
            if let Some(m) = r.peak_rss_mib {
                mem.push((label(r), r.dut.as_str(), m));
            }
        }
    }
    let n = time.len().max(mem.len()).max(1);
    let height = 60.0 + n as f64 * 18.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="980" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    panel(
        &mut o,
        10.0,
        "Time to converge (s; FIB time with +fib; churn: mean lag)",
        "s",
        &time,
    );
    panel(&mut o, 500.0, "DUT peak RSS (MiB)", "MiB", &mem);
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(dut: &str, t: f64, mem: f64) -> RunResult {
        RunResult {
            received: 1000,
            ok: true,
            time_s: Some(t),
            cpu_s: Some(t / 2.0),
            harness_cpu_s: 0.1,
            peak_rss_mib: Some(mem),
            bytes_per_route: Some(50.0),
            ..RunResult::blank(Scenario::A, dut.into(), false, 10, 1000)
        }
    }

    #[test]
    fn ratios_against_bird() {
        let rows = vec![row("Bramble", 1.0, 10.0), row("BIRD", 2.0, 20.0)];
        let md = markdown(&rows, "# x");
        assert!(
            md.contains("| a few big feeders | Bramble | off | 10 × 100 | — / — | 1.000 | ×0.50 |"),
            "{md}"
        );
        let s = svg(&rows);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<rect x=").count(), 4);
    }
}
