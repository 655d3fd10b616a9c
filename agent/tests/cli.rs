//! The `bramble` binary end to end: config check, client errors, a running agent over its
//! control socket, signal shutdown. Every test uses its own temporary directory (and so its
//! own socket); agents are killed by a guard if a test fails.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::{Duration, Instant};

use bgp::speaker::{PeerStatus, RouteEntry};
use common::{agent_config, bramble, run, stderr, stdout, Agent};

// ===== config check =====

#[test]
fn config_check_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("good.toml");
    fs::write(&file, agent_config(&dir.path().join("s.sock"))).unwrap();
    let out = run(&["config", "check", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}: ok\n", file.display()));
}

#[test]
fn config_check_reports_the_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    fs::write(
        &file,
        "[node]\nrouter_id = \"192.0.2.1\"\n\n[bgp]\nhold_time = 2\n",
    )
    .unwrap();
    let out = run(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "{}:5:13: bgp.hold_time: 2 is not a valid hold time (0 or 3..=65535, RFC 4271 §4.2)\n",
            file.display()
        )
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn config_check_on_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("absent.toml");
    let out = run(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "{}: No such file or directory (os error 2)\n",
            file.display()
        )
    );
}

#[test]
fn agent_with_a_bad_config_exits_2_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    fs::write(&file, "[node]\nrouter_id = \"192.0.2.1\"\nasn = 0\n").unwrap();
    let out = run(&["agent", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "{}:3:7: node.asn: 0 is out of range (1..=4294967295)\n",
            file.display()
        )
    );
}

// ===== clients without an agent =====

#[test]
fn clients_without_an_agent_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    let s = socket.to_str().unwrap();
    let expected =
        format!("bramble: cannot reach the agent at {s}: No such file or directory (os error 2)\n");
    for args in [
        vec!["status"],
        vec!["status", "-o", "json"],
        vec!["routes"],
        vec![
            "routes",
            "--table",
            "adj-in",
            "--peer",
            "192.0.2.1",
            "-o",
            "json",
        ],
        vec!["routes", "announce", "10.1.0.0/24"],
        vec!["routes", "withdraw", "10.1.0.0/24"],
    ] {
        let out = bramble()
            .args(&args)
            .args(["--socket", s])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), expected, "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
}

#[test]
fn socket_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("env.sock");
    let out = bramble()
        .arg("status")
        .env("BRAMBLE_SOCKET", &socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "bramble: cannot reach the agent at {}: No such file or directory (os error 2)\n",
            socket.display()
        )
    );
}

#[test]
fn bad_cli_input_is_rejected_before_contacting_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    let s = socket.to_str().unwrap();
    for (args, reason) in [
        (
            vec!["routes", "announce", "10.1.0.1/24"],
            "10.1.0.1/24 has host bits set (did you mean 10.1.0.0/24?)",
        ),
        (
            vec!["routes", "announce", "banana"],
            "\"banana\" is not a prefix",
        ),
        (
            vec![
                "routes",
                "announce",
                "10.1.0.0/24",
                "--community",
                "65536:1",
            ],
            "\"65536:1\" is not a community (expected ASN:VAL, both 0..=65535)",
        ),
        (
            vec!["routes", "announce", "10.1.0.0/24", "--next-hop", "x"],
            "invalid value 'x' for '--next-hop <ADDR>'",
        ),
        (
            vec!["routes", "withdraw", "10.1.0.0/33"],
            "\"10.1.0.0/33\" is not a prefix",
        ),
        (
            vec!["routes", "--table", "rib"],
            "invalid value 'rib' for '--table <TABLE>'",
        ),
    ] {
        let out = bramble()
            .args(&args)
            .args(["--socket", s])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(reason), "{args:?}: {err}");
        assert!(!err.contains("cannot reach"), "{args:?}: {err}");
    }
}

// ===== a running agent =====

#[test]
fn status_lists_the_configured_peers() {
    let agent = Agent::start();
    let out = agent.client(&["status", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut peers: Vec<PeerStatus> = serde_json::from_str(&stdout(&out)).unwrap();
    peers.sort_by_key(|p| p.peer);
    let summary: Vec<(String, u32, &str)> = peers
        .iter()
        .map(|p| (p.peer.to_string(), p.asn, p.kind.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("127.0.0.2".to_string(), 65001, "ebgp"),
            ("127.0.0.3".to_string(), 64512, "ibgp"),
        ]
    );
    // Nothing answers on port 1: neither session can be up.
    assert!(peers.iter().all(|p| p.state != "Established"));

    let text = agent.client(&["status"]);
    assert!(text.status.success());
    let lines: Vec<String> = stdout(&text).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("PEER       ASN    TYPE  STATE"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with("RECEIVED  ACCEPTED  ADVERTISED  INFO"),
        "{}",
        lines[0]
    );
    assert!(lines[1..]
        .iter()
        .any(|l| l.starts_with("127.0.0.2  65001  ebgp  ")));
    assert!(lines[1..]
        .iter()
        .any(|l| l.starts_with("127.0.0.3  64512  ibgp  ")));
}

#[test]
fn announce_and_withdraw_are_accepted() {
    let agent = Agent::start();
    let out = agent.client(&[
        "routes",
        "announce",
        "10.1.0.0/24",
        "--next-hop",
        "192.0.2.1",
        "--community",
        "65000:100",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "announced 10.1.0.0/24\n");
    for table in ["loc", "adj-in", "adj-out"] {
        let out = agent.client(&["routes", "--table", table, "-o", "json"]);
        assert!(out.status.success(), "{table}: {}", stderr(&out));
        let _: Vec<RouteEntry> = serde_json::from_str(&stdout(&out)).unwrap();
    }
    let out = agent.client(&["routes", "--table", "fib", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "bramble: the FIB is disabled ([fib] enabled = false)\n"
    );
    let out = agent.client(&["routes", "withdraw", "10.1.0.0/24"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "withdrew 10.1.0.0/24\n");
}

#[test]
fn announced_prefix_appears_in_loc_rib() {
    let agent = Agent::start();
    let out = agent.client(&[
        "routes",
        "announce",
        "10.1.0.0/24",
        "--next-hop",
        "192.0.2.1",
        "--community",
        "65000:100",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let loc = |agent: &Agent| -> Vec<RouteEntry> {
        let out = agent.client(&["routes", "--table", "loc", "-o", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let routes = loc(&agent);
    let entry = routes
        .iter()
        .find(|r| r.prefix.to_string() == "10.1.0.0/24")
        .unwrap_or_else(|| panic!("10.1.0.0/24 not in loc: {routes:?}"));
    assert_eq!(entry.next_hop, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(entry.peer, None);
    assert!(entry.best);
    assert!(entry.communities.contains(&"65000:100".to_string()));

    let text = agent.client(&["routes"]);
    assert!(stdout(&text)
        .lines()
        .any(|l| l.starts_with("10.1.0.0/24  192.0.2.1  local")));

    let out = agent.client(&["routes", "withdraw", "10.1.0.0/24"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(loc(&agent)
        .iter()
        .all(|r| r.prefix.to_string() != "10.1.0.0/24"));
}

#[test]
fn socket_is_private_and_removed_on_sigterm() {
    let mut agent = Agent::start();
    let meta = fs::metadata(&agent.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(!agent.socket.exists(), "socket file left behind");
    assert!(agent.log().contains("SIGTERM received"), "{}", agent.log());
}

#[test]
fn sigint_also_stops_the_agent_cleanly() {
    let mut agent = Agent::start();
    agent.signal(libc::SIGINT);
    assert_eq!(agent.wait_exit(Duration::from_secs(20)).code(), Some(0));
    assert!(!agent.socket.exists());
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stale.sock");
    // Bind and drop: the file stays, nobody listens (an agent that was SIGKILLed).
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    // A child that another test thread forked while the listener was open holds a copy of
    // it until that child execs; until then connecting still succeeds. Wait for the socket
    // to be truly stale, or the agent would rightly see a listener there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the dropped listener stays alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let agent = Agent::start_in(dir, socket);
    let out = agent.client(&["status", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_second_agent_on_the_same_socket_refuses_to_start() {
    let agent = Agent::start();
    let config = agent.dir.path().join("bramble.toml");
    let out = run(&["agent", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "bramble: another agent is already listening on {}",
            agent.socket()
        )),
        "{}",
        stderr(&out)
    );
    // The first agent is untouched.
    assert!(agent.client(&["status"]).status.success());
}

#[test]
fn garbage_on_the_socket_gets_an_error_line() {
    use std::io::{BufRead, BufReader, Write};
    let agent = Agent::start();
    let mut stream = std::os::unix::net::UnixStream::connect(&agent.socket).unwrap();
    stream.write_all(b"{\"request\":\"dance\"}\n").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("{\"response\":\"error\",\"message\":\"bad request: "),
        "{line}"
    );
    // The connection stays usable.
    stream.write_all(b"{\"request\":\"status\"}\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"response\":\"status\""), "{line}");
}

#[test]
fn an_agent_without_peers_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let config = format!(
        "[node]\nname = \"lonely\"\nrouter_id = \"192.0.2.1\"\n[api]\nsocket = \"{}\"\n[fib]\nenabled = false\n",
        socket.display()
    );
    let mut agent = Agent::start_with(dir, socket, &config, None);
    let out = agent.client(&["status", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]");
    let out = agent.client(&["routes", "announce", "10.1.0.0/24"]);
    assert!(out.status.success(), "{}", stderr(&out));
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(20)).code(), Some(0));
    assert!(
        !agent.log().contains("speaker was already stopped"),
        "{}",
        agent.log()
    );
}
