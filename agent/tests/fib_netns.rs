//! The agent with `[fib] enabled = true`, run in a network namespace each test creates (and
//! deletes on drop, also on failure): the FIB table is served, our stale routes are handled
//! by the graceful-restart setting, and SIGTERM leaves the kernel's routes in place.

mod common;

use std::time::{Duration, Instant};

use bgp::speaker::RouteEntry;
use common::{stderr, stdout, Agent, Netns};

/// A FIB-enabled agent with no peers, whose socket is `socket`.
fn fib_config(socket: &std::path::Path, graceful_restart: bool) -> String {
    format!(
        r#"
[node]
name = "fib-node"
router_id = "192.0.2.1"
asn = 64512

[api]
socket = "{}"

[bgp]
graceful_restart = {graceful_restart}

[fib]
enabled = true
"#,
        socket.display()
    )
}

fn start(ns: &Netns, graceful_restart: bool) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let config = fib_config(&socket, graceful_restart);
    Agent::start_with(dir, socket, &config, Some(ns))
}

/// Routes of protocol 196 (ours) and of `static` that this test put in the namespace.
fn seed(ns: &Netns) {
    ns.ip(&["route", "add", "blackhole", "10.9.0.0/24", "proto", "196"]);
    ns.ip(&[
        "route",
        "add",
        "blackhole",
        "10.8.0.0/24",
        "proto",
        "static",
    ]);
}

fn routes_of(ns: &Netns, proto: &str) -> String {
    ns.ip(&["route", "show", "proto", proto])
}

#[test]
fn fib_table_is_served_and_sigterm_keeps_the_routes() {
    let ns = Netns::new("fib");
    seed(&ns);
    let mut agent = start(&ns, true);

    let out = agent.client(&["routes", "--table", "fib", "-o", "json"]);
    assert!(out.status.success(), "{}: {}", stderr(&out), agent.log());
    let routes: Vec<RouteEntry> = serde_json::from_str(&stdout(&out)).unwrap();
    // Nothing is wanted yet; the route left by an "earlier run" waits out the restart
    // window (bgp.restart_time, 120 s) and is not listed.
    assert_eq!(routes, vec![]);
    let text = agent.client(&["routes", "--table", "fib"]);
    assert!(text.status.success());
    assert!(
        stdout(&text).starts_with("PREFIX  NEXT-HOP"),
        "{}",
        stdout(&text)
    );
    let out = agent.client(&["routes", "--table", "fib", "--peer", "192.0.2.2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "bramble: --peer does not apply to the fib table\n"
    );

    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(!agent.socket.exists(), "socket file left behind");
    // Graceful restart: the forwarding state stays for the next start.
    assert!(
        routes_of(&ns, "196").contains("blackhole 10.9.0.0/24"),
        "{}",
        agent.log()
    );
    assert!(routes_of(&ns, "static").contains("blackhole 10.8.0.0/24"));
    drop(agent);
}

#[test]
fn without_graceful_restart_our_stale_routes_go_at_start() {
    let ns = Netns::new("fibnogr");
    seed(&ns);
    let agent = start(&ns, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while routes_of(&ns, "196").contains("10.9.0.0/24") {
        assert!(
            Instant::now() < deadline,
            "stale route kept: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Another protocol's route is never touched.
    assert!(routes_of(&ns, "static").contains("blackhole 10.8.0.0/24"));
    let out = agent.client(&["routes", "--table", "fib", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]");
    drop(agent);
}
