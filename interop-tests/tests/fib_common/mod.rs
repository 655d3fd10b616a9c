//! Shared by the `fib_*` tests: reading the kernel's protocol-196 routes of a namespace
//! and recording `ip monitor route` while something changes.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use interop_tests::{ChildGuard, Netns};
use serde_json::Value;

/// `ip -j [-6] -n NS route show proto 196`, parsed.
pub fn kernel_routes(ns: &Netns, v6: bool) -> Vec<Value> {
    let mut args = vec!["-j"];
    if v6 {
        args.push("-6");
    }
    args.extend(["route", "show", "proto", "196"]);
    let out = ns.ip(&args).unwrap();
    if out.trim().is_empty() {
        return Vec::new();
    }
    match serde_json::from_str(&out).unwrap() {
        Value::Array(a) => a,
        other => panic!("ip -j route: {other}"),
    }
}

/// dst -> sorted gateways (one for a plain route, several for multipath).
pub fn kernel_gateways(ns: &Netns, v6: bool) -> BTreeMap<String, Vec<String>> {
    kernel_routes(ns, v6)
        .iter()
        .map(|r| {
            let dst = r["dst"].as_str().unwrap_or_default().to_string();
            let mut gws: Vec<String> = match r["nexthops"].as_array() {
                Some(hops) => hops
                    .iter()
                    .filter_map(|h| h["gateway"].as_str().map(str::to_string))
                    .collect(),
                None => r["gateway"]
                    .as_str()
                    .map(str::to_string)
                    .into_iter()
                    .collect(),
            };
            gws.sort();
            (dst, gws)
        })
        .collect()
}

/// The route to exactly `dst`, any protocol (`ip -j route show DST`).
pub fn any_route(ns: &Netns, dst: &str) -> Option<Value> {
    let mut args = vec!["-j"];
    if dst.contains(':') {
        args.push("-6");
    }
    args.extend(["route", "show", dst]);
    let out = ns.ip(&args).ok()?;
    let v: Value = serde_json::from_str(out.trim()).ok()?;
    v.as_array()?.first().cloned()
}

/// `ip -ts -n NS monitor route` writing to a file until [`Monitor::stop`].
pub struct Monitor {
    child: ChildGuard,
}

impl Monitor {
    /// Starts recording; returns once the monitor has had time to subscribe.
    pub fn start(ns: &Netns, dir: &Path, label: &str) -> Self {
        let mut cmd = Command::new("ip");
        cmd.args(["-ts", "-n", ns.name(), "monitor", "route"]);
        let child = ChildGuard::spawn(cmd, label, dir).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        Monitor { child }
    }

    /// What it has recorded so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(self.child.stdout_path()).unwrap_or_default()
    }

    /// Stops it and returns everything it recorded.
    pub fn stop(mut self) -> String {
        self.child.stop();
        self.text()
    }
}

/// Event lines of a monitor recording (timestamp lines and blanks skipped) that name
/// `dst` as their destination, e.g. `Deleted 10.99.0.0/24 via …`, `10.99.0.0/24 via …`
/// or `blackhole 10.99.0.0/24 …`.
pub fn events_for<'a>(recording: &'a str, dst: &str) -> Vec<&'a str> {
    recording
        .lines()
        .map(strip_timestamp)
        .filter(|l| {
            let l = l.strip_prefix("Deleted ").unwrap_or(l);
            // A type word may come first: `blackhole 10.9.0.0/24 proto 196`.
            l.split_whitespace().take(2).any(|w| w == dst)
        })
        .collect()
}

/// `ip -ts` prefixes each event with `[2024-01-01T10:00:00.123456] `.
pub fn strip_timestamp(line: &str) -> &str {
    match line.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or(line, |(_, l)| l),
        None => line,
    }
}
