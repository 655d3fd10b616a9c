//! Several runs of one (scenario, DUT, FIB mode) folded into one row: the median of each
//! measurement, with the spread of the times kept for the report.
//!
//! On a shared 2-core machine one run's time moves by ±30 % from run to run (BIRD's
//! scenario-a time ranged 0.76–1.31 s over four runs in a row), for the DUTs alike; the
//! median of interleaved runs is the figure to compare.

use super::scenario::{Churn, RunResult};

/// The median of `values` (the mean of the middle two for an even count); `None` if empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => values.get(n / 2).copied(),
        _ => Some((values.get(n / 2 - 1)? + values.get(n / 2)?) / 2.0),
    }
}

/// Smallest and largest of the `Some` values.
fn range(values: impl Iterator<Item = Option<f64>>) -> Option<(f64, f64)> {
    values.flatten().fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// One row for `runs` (all of one scenario, DUT and FIB mode). Measurements are medians over
/// the runs that delivered every route; the row is `ok` only if every run was. Returns `None`
/// for no runs.
pub fn fold(runs: Vec<RunResult>) -> Option<RunResult> {
    let n = runs.len();
    let good: Vec<&RunResult> = runs.iter().filter(|r| r.ok).collect();
    let basis: Vec<&RunResult> = if good.is_empty() {
        runs.iter().collect()
    } else {
        good
    };
    let med =
        |f: fn(&RunResult) -> Option<f64>| median(basis.iter().filter_map(|r| f(r)).collect());
    let mut row = runs.first()?.clone();
    row.runs = u32::try_from(n).unwrap_or(u32::MAX);
    row.ok = runs.iter().all(|r| r.ok);
    row.received = runs.iter().map(|r| r.received).min().unwrap_or(0);
    row.sent_to_feeders = runs.iter().map(|r| r.sent_to_feeders).max().unwrap_or(0);
    row.time_s = med(|r| r.time_s);
    row.sessions_up_s = med(|r| r.sessions_up_s);
    row.first_route_s = med(|r| r.first_route_s);
    row.fib_time_s = med(|r| r.fib_time_s);
    row.cpu_s = med(|r| r.cpu_s);
    row.peak_rss_mib = med(|r| r.peak_rss_mib);
    row.bytes_per_route = med(|r| r.bytes_per_route);
    row.harness_cpu_s = med(|r| Some(r.harness_cpu_s)).unwrap_or(0.0);
    row.time_range_s = range(basis.iter().map(|r| r.time_s));
    row.fib_time_range_s = range(basis.iter().map(|r| r.fib_time_s));
    row.churn = fold_churn(basis.iter().filter_map(|r| r.churn.as_ref()).collect());
    if n > 1 {
        let notes: Vec<String> = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.note.is_empty())
            .map(|(i, r)| format!("run {}: {}", i + 1, r.note))
            .collect();
        row.note = notes.join("; ");
    }
    Some(row)
}

fn fold_churn(churns: Vec<&Churn>) -> Option<Churn> {
    let first = churns.first()?;
    let med = |f: fn(&Churn) -> f64| median(churns.iter().map(|c| f(c)).collect()).unwrap_or(0.0);
    Some(Churn {
        rounds: median(churns.iter().map(|c| f64::from(c.rounds)).collect())
            .map_or(first.rounds, |m| m.round() as u32),
        routes_per_round: first.routes_per_round,
        mean_lag_s: med(|c| c.mean_lag_s),
        max_lag_s: churns.iter().map(|c| c.max_lag_s).fold(0.0, f64::max),
        cpu_s: med(|c| c.cpu_s),
        window_s: med(|c| c.window_s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Scenario;

    fn row(time: f64, ok: bool) -> RunResult {
        RunResult {
            received: if ok { 100 } else { 40 },
            ok,
            time_s: Some(time),
            cpu_s: Some(time / 2.0),
            harness_cpu_s: 0.1,
            peak_rss_mib: Some(10.0),
            note: if ok { String::new() } else { "timeout".into() },
            ..RunResult::blank(Scenario::A, "BIRD".into(), false, 10, 100)
        }
    }

    #[test]
    fn medians_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn fold_takes_medians_of_good_runs_and_keeps_failures_visible() {
        let folded = fold(vec![
            row(1.3, true),
            row(0.8, true),
            row(9.0, false),
            row(1.0, true),
        ])
        .expect("a row");
        assert_eq!(folded.runs, 4);
        assert!(!folded.ok);
        assert_eq!(folded.received, 40);
        assert_eq!(folded.time_s, Some(1.0));
        assert_eq!(folded.cpu_s, Some(0.5));
        assert_eq!(folded.time_range_s, Some((0.8, 1.3)));
        assert_eq!(folded.note, "run 3: timeout");
        assert!(fold(Vec::new()).is_none());
    }
}
