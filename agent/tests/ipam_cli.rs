//! `bramble ipam ...` against a real agent with a sled store in a temp directory, no peers
//! and the FIB off: allocation rules, usage, check, errors, and allocations surviving a
//! restart (SIGTERM and SIGKILL).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{stderr, stdout, Agent};
use serde_json::Value;
use tempfile::TempDir;

/// A config with IPAM pools (`pools` is TOML for `[[ipam.pools]]` entries) and the store at
/// `store`.
fn ipam_config(socket: &Path, store: &Path, extra: &str, pools: &str) -> String {
    format!(
        r#"
[node]
name = "test-node"
router_id = "192.0.2.1"
asn = 64512

[api]
socket = "{}"

[fib]
enabled = false

[ipam]
store = "sled"
path = "{}"
{extra}

{pools}
"#,
        socket.display(),
        store.display()
    )
}

const POOLS: &str = r#"
[[ipam.pools]]
cidr = "10.99.0.0/28"
block_size = 30

[[ipam.pools]]
cidr = "fd00:99::/120"
block_size = 124
"#;

/// Starts an agent whose store lives in `store` (which outlives the agent).
fn start(store: &TempDir, extra: &str, pools: &str) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let config = ipam_config(&socket, &store.path().join("ipam"), extra, pools);
    Agent::start_with(dir, socket, &config, None)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// `ipam allocate --handle HANDLE ARGS -o json`: the one address.
fn allocate(agent: &Agent, handle: &str, args: &[&str]) -> Value {
    let mut all = vec!["ipam", "allocate", "--handle", handle, "-o", "json"];
    all.extend_from_slice(args);
    let got = json(&agent.client(&all));
    let [one] = got.as_array().unwrap().as_slice() else {
        panic!("{got}")
    };
    one.clone()
}

fn ip_of(v: &Value) -> String {
    v["ip"].as_str().unwrap().to_string()
}

fn pool<'a>(show: &'a Value, cidr: &str) -> &'a Value {
    show.as_array()
        .unwrap()
        .iter()
        .find(|p| p["pool"] == cidr)
        .unwrap_or_else(|| panic!("no pool {cidr} in {show}"))
}

/// One raw control request (for what the CLI does not expose, like ipam-status).
fn raw(agent: &Agent, line: &str) -> Value {
    let mut s = UnixStream::connect(&agent.socket).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

#[test]
fn allocate_release_show_and_check() {
    let store = tempfile::tempdir().unwrap();
    let agent = start(&store, "", POOLS);

    let a = allocate(&agent, "h1", &[]);
    assert_eq!(ip_of(&a), "10.99.0.0");
    assert_eq!(a["prefix_len"], 32);
    assert_eq!(a["block"], "10.99.0.0/30");
    assert_eq!(a["pool"], "10.99.0.0/28");
    assert_eq!(a["borrowed"], false);
    // Idempotent per handle and family.
    assert_eq!(allocate(&agent, "h1", &[]), a);

    // A specific address, and the same address for another handle is refused.
    assert_eq!(
        ip_of(&allocate(&agent, "h2", &["--ip", "10.99.0.9"])),
        "10.99.0.9"
    );
    let out = agent.client(&["ipam", "allocate", "--handle", "h3", "--ip", "10.99.0.9"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "bramble: 10.99.0.9 is already allocated to handle h2\n"
    );
    let out = agent.client(&["ipam", "allocate", "--handle", "h3", "--ip", "10.1.1.1"]);
    assert_eq!(stderr(&out), "bramble: 10.1.1.1 is in no configured pool\n");

    // IPv6 by family, and by pool; text output.
    let v6 = allocate(&agent, "h1", &["--family", "6"]);
    assert_eq!(
        (ip_of(&v6).as_str(), &v6["prefix_len"]),
        ("fd00:99::", &128.into())
    );
    let text = ok(&agent.client(&[
        "ipam",
        "allocate",
        "--handle",
        "h4",
        "--pool",
        "fd00:99::/120",
    ]));
    assert_eq!(text, "fd00:99::1/128 handle h4 block fd00:99::/124\n");

    let show = json(&agent.client(&["ipam", "show", "-o", "json"]));
    let v4 = pool(&show, "10.99.0.0/28");
    assert_eq!(
        (v4["size"].as_u64(), v4["used"].as_u64()),
        (Some(16), Some(2))
    );
    assert_eq!(v4["free"], 14);
    let blocks: Vec<(&str, &str, u64)> = v4["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["cidr"].as_str().unwrap(),
                b["owner"].as_str().unwrap(),
                b["used"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        blocks,
        [
            ("10.99.0.0/30", "test-node", 1),
            ("10.99.0.8/30", "test-node", 1)
        ]
    );
    assert_eq!(pool(&show, "fd00:99::/120")["used"], 2);
    let table = ok(&agent.client(&["ipam", "show"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("POOL / BLOCK"), "{table}");
    assert!(
        lines.iter().any(|l| l.starts_with("  10.99.0.8/30")
            && l.contains("test-node")
            && l.split_whitespace().collect::<Vec<_>>()[2..] == ["4", "1", "0", "3"]),
        "{table}"
    );

    let check = agent.client(&["ipam", "check"]);
    assert_eq!(ok(&check), "clean\n");
    let check = json(&agent.client(&["ipam", "check", "-o", "json"]));
    assert_eq!(
        (&check["clean"], &check["released"]),
        (&true.into(), &0.into())
    );
    assert_eq!(check["report"]["leaked"], serde_json::json!([]));

    // Release by handle (both families), again (idempotent), then by address.
    assert_eq!(
        ok(&agent.client(&["ipam", "release", "--handle", "h1"])),
        "released 2 addresses (handle h1)\n"
    );
    assert_eq!(
        ok(&agent.client(&["ipam", "release", "--handle", "h1"])),
        "released 0 addresses (handle h1)\n"
    );
    assert_eq!(
        ok(&agent.client(&["ipam", "release", "--ip", "10.99.0.9"])),
        "released 1 address (10.99.0.9)\n"
    );
    let show = json(&agent.client(&["ipam", "show", "-o", "json"]));
    assert_eq!(pool(&show, "10.99.0.0/28")["used"], 0);
    assert_eq!(pool(&show, "fd00:99::/120")["used"], 1);
    // The released address is handed out again.
    assert_eq!(ip_of(&allocate(&agent, "h5", &[])), "10.99.0.0");
    let out = agent.client(&["ipam", "check", "--release"]);
    assert_eq!(ok(&out), "released 0 stale entries\nclean\n");
}

#[test]
fn an_exhausted_pool_is_an_error_and_status_says_so() {
    let store = tempfile::tempdir().unwrap();
    let small = "[[ipam.pools]]\ncidr = \"10.98.0.0/30\"\nblock_size = 30\n";
    let agent = start(&store, "", small);
    assert_eq!(
        raw(&agent, r#"{"request":"ipam-status"}"#),
        serde_json::json!({"response": "done", "count": 4})
    );
    for i in 0..4 {
        allocate(&agent, &format!("c{i}"), &[]);
    }
    let out = agent.client(&["ipam", "allocate", "--handle", "c4"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("bramble: IPv4 pools [10.98.0.0/30] exhausted for node test-node")
            && err.ends_with('\n')
            && err.lines().count() == 1,
        "{err}"
    );
    let status = raw(&agent, r#"{"request":"ipam-status"}"#);
    assert_eq!(status["response"], "error");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("every pool (10.98.0.0/30) is exhausted for node test-node"),
        "{status}"
    );
    // Releasing one makes room again.
    ok(&agent.client(&["ipam", "release", "--handle", "c2"]));
    assert_eq!(ip_of(&allocate(&agent, "c4", &[])), "10.98.0.2");
}

/// Allocations are durable: a clean stop and a crash both keep them.
#[test]
fn allocations_survive_sigterm_and_sigkill() {
    let store = tempfile::tempdir().unwrap();
    for (round, sig) in [(0, libc::SIGTERM), (1, libc::SIGKILL)] {
        let mut agent = start(&store, "", POOLS);
        let handle = format!("r{round}");
        let got = ip_of(&allocate(&agent, &handle, &[]));
        agent.signal(sig);
        agent.wait_exit(Duration::from_secs(20));
        drop(agent);

        let agent = start(&store, "", POOLS);
        let show = json(&agent.client(&["ipam", "show", "-o", "json"]));
        assert_eq!(pool(&show, "10.99.0.0/28")["used"], round + 1, "{show}");
        // The handle still holds its address: allocating again returns it.
        assert_eq!(ip_of(&allocate(&agent, &handle, &[])), got);
        assert_eq!(ok(&agent.client(&["ipam", "check"])), "clean\n");
        let held = raw(
            &agent,
            &format!(r#"{{"request":"ipam-get","handle":"{handle}"}}"#),
        );
        assert_eq!(held["addresses"][0]["ip"], got.as_str(), "{held}");
    }
}

#[test]
fn ipam_requests_without_pools_are_refused() {
    let agent = Agent::start();
    let out = agent.client(&["ipam", "show"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "bramble: IPAM is off: no [[ipam.pools]] configured\n"
    );
}

#[test]
fn an_unreachable_etcd_store_fails_allocations_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    // Nothing listens on port 1: every etcd call fails, within etcd_timeout (1 s). The agent
    // still starts (connecting is lazy) and answers with a clear error.
    let config = ipam_config(
        &socket,
        &dir.path().join("ipam"),
        "etcd_endpoints = [\"http://127.0.0.1:1\"]\netcd_timeout = 1",
        POOLS,
    )
    .replace("store = \"sled\"", "store = \"etcd\"");
    let agent = Agent::start_with(dir, socket, &config, None);
    let started = std::time::Instant::now();
    let out = agent.client(&["ipam", "allocate", "--handle", "h1"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("store unavailable") && err.contains("no answer within 1s"),
        "{err}"
    );
    // Generous (shared CI cores): the point is that it is bounded.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn config_limits_and_reservations_apply() {
    let store = tempfile::tempdir().unwrap();
    let extra =
        "max_blocks_per_node = 1\nstrict_affinity = true\nreservations = [\"10.99.0.0/31\"]";
    let agent = start(&store, extra, POOLS);
    // The reserved first two addresses are skipped.
    assert_eq!(ip_of(&allocate(&agent, "a", &[])), "10.99.0.2");
    assert_eq!(ip_of(&allocate(&agent, "b", &[])), "10.99.0.3");
    // One block only: the pool is "exhausted" for this node.
    let out = agent.client(&["ipam", "allocate", "--handle", "c"]);
    assert!(
        stderr(&out).contains("block limit reached"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn empty_blocks_go_back_to_the_pool_after_the_grace_period() {
    // Four /30 blocks; the node's second block empties, the first stays in use.
    let store = tempfile::tempdir().unwrap();
    let pools = "[[ipam.pools]]\ncidr = \"10.98.0.0/28\"\nblock_size = 30\n";
    let agent = start(&store, "release_grace = 0", pools);
    for i in 0..5 {
        allocate(&agent, &format!("h{i}"), &["--pool", "10.98.0.0/28"]);
    }
    let blocks = |agent: &Agent| {
        let show = json(&agent.client(&["ipam", "show", "-o", "json"]));
        pool(&show, "10.98.0.0/28")["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["cidr"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(blocks(&agent).len(), 2);
    ok(&agent.client(&["ipam", "release", "--handle", "h4"]));
    // The sweep runs every 5 s: the first stamps the block empty, the next releases it.
    let mut left = blocks(&agent);
    for _ in 0..60 {
        if left.len() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        left = blocks(&agent);
    }
    assert_eq!(
        left,
        vec!["10.98.0.0/30".to_string()],
        "the emptied block was not released"
    );
    let check = agent.client(&["ipam", "check"]);
    assert!(check.status.success(), "{}", stdout(&check));
}
