//! Smoke test of the issue-6 scale benchmark: `bench --quick` for every scenario and DUT.
//! Asserts delivery (every receiver held every route) and the report files, never timings.
//! GoBGP is a comparison, not the product: it sometimes resets one of 40 simultaneous feeder
//! connections, so its rows must be there and say what happened, but need not be complete.

use std::process::Command;

use interop_tests::{require_bramble, ScratchDir};

#[test]
fn quick_bench_delivers_every_prefix_and_writes_reports() {
    let bramble = require_bramble();
    let out = ScratchDir::new("bench-quick").unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--quick",
            "--scenario",
            "all",
            "--dut",
            "bramble,bird,gobgp",
            "--out",
        ])
        .arg(out.path())
        .env("BRAMBLE_BIN", &bramble)
        .status()
        .unwrap();
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let svg = std::fs::read_to_string(out.join("report.svg")).unwrap();
    let json = std::fs::read_to_string(out.join("results.json")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{svg}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    for dut in ["Bramble", "BIRD", "GoBGP"] {
        for scenario in ["A", "B", "C", "D"] {
            let row = rows
                .iter()
                .find(|r| r["dut"] == dut && r["scenario"] == scenario && r["fib"] == false)
                .unwrap_or_else(|| panic!("no row for {dut} in {scenario}:\n{md}"));
            if dut == "GoBGP" && row["ok"] == false {
                let why = row["note"].as_str().unwrap_or_default();
                assert!(
                    !why.is_empty(),
                    "GoBGP {scenario} failed without a reason:\n{md}"
                );
                eprintln!("GoBGP {scenario} did not complete: {why}");
                continue;
            }
            assert_eq!(
                row["received"], row["expected"],
                "{dut} {scenario}: not every prefix arrived:\n{md}"
            );
            assert_eq!(row["ok"], true, "{dut} {scenario} failed:\n{md}");
            assert_eq!(
                row["sent_to_feeders"], 0,
                "{dut} {scenario} exported to feeders"
            );
        }
        let churn = rows
            .iter()
            .find(|r| r["dut"] == dut && r["scenario"] == "D");
        let rounds = churn.and_then(|r| r["churn"]["rounds"].as_u64());
        let gobgp_failed = dut == "GoBGP" && churn.is_some_and(|r| r["ok"] == false);
        assert!(
            gobgp_failed || rounds.unwrap_or(0) >= 1,
            "{dut}: no churn round completed:\n{md}"
        );
    }
    // The feeders alone, straight into the monitor, for scenarios a and b.
    let baselines = rows
        .iter()
        .filter(|r| r["dut"] == "feeders→monitor")
        .count();
    assert_eq!(baselines, 2, "{md}");
    assert!(md.contains("| a few big feeders | Bramble |"), "{md}");
    // bench exits non-zero when any row failed: only GoBGP's may have.
    let ours_ok = rows
        .iter()
        .filter(|r| r["dut"] != "GoBGP")
        .all(|r| r["ok"] == true);
    assert!(
        status.success() || ours_ok,
        "bench exited with {status}:\n{md}"
    );
}
