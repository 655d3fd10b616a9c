//! `bramble routes announce|withdraw --file PATH`: every line is checked before the agent is
//! contacted, and a whole file goes to the agent in one request.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;

use bgp::speaker::RouteEntry;
use common::{bramble, stderr, stdout, Agent};

#[test]
fn bad_files_are_rejected_before_contacting_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    let bad = dir.path().join("bad.txt");
    fs::write(
        &bad,
        "# pods\n10.1.0.0/24\n\n10.1.1.1/24   # typo\nbanana\n",
    )
    .unwrap();
    let empty = dir.path().join("empty.txt");
    fs::write(&empty, "# nothing yet\n\n").unwrap();
    let missing = dir.path().join("missing.txt");
    let (b, e, m) = (
        bad.display().to_string(),
        empty.display().to_string(),
        missing.display().to_string(),
    );
    let cases = [
        (
            vec!["routes", "announce", "--file", &b],
            format!(
                "{b}:4: 10.1.1.1/24 has host bits set (did you mean 10.1.1.0/24?)\n\
                 {b}:5: \"banana\" is not a prefix (expected ADDR/LEN, e.g. 10.1.0.0/24)\n"
            ),
        ),
        (
            vec!["routes", "withdraw", "10.9.0.0/16", "--file", &b],
            format!(
                "{b}:4: 10.1.1.1/24 has host bits set (did you mean 10.1.1.0/24?)\n\
                 {b}:5: \"banana\" is not a prefix (expected ADDR/LEN, e.g. 10.1.0.0/24)\n"
            ),
        ),
        (
            vec!["routes", "announce", "--file", &e],
            format!("{e}: no prefixes in the file\n"),
        ),
        (
            vec!["routes", "withdraw", "--file", &m],
            format!("{m}: No such file or directory (os error 2)\n"),
        ),
    ];
    for (args, expected) in cases {
        let out = bramble()
            .args(&args)
            .args(["--socket", socket.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), expected, "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }

    // Neither a prefix nor a file: clap's usage error.
    let out = bramble()
        .args(["routes", "announce", "--socket", socket.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("<PREFIX|--file <PATH>>"),
        "{}",
        stderr(&out)
    );
}

fn loc(agent: &Agent) -> Vec<RouteEntry> {
    let out = agent.client(&["routes", "--table", "loc", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn ten_thousand_prefixes_from_a_file() {
    const N: u32 = 10_000;
    let agent = Agent::start();
    let file = agent.dir.path().join("prefixes.txt");
    let mut text = String::from("# 10,000 /24s\n");
    let mut want = BTreeSet::new();
    for i in 0..N {
        let p = format!("10.{}.{}.0/24", i / 256, i % 256);
        if i % 1000 == 0 {
            text.push_str("\n# next thousand\n");
        }
        writeln!(text, "{p}").unwrap();
        want.insert(p);
    }
    fs::write(&file, text).unwrap();
    let path = file.to_str().unwrap();

    let out = agent.client(&[
        "routes",
        "announce",
        "--file",
        path,
        "--next-hop",
        "192.0.2.1",
        "--community",
        "65000:7",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("announced {N} of {N} prefixes\n"));

    let routes = loc(&agent);
    assert_eq!(routes.len(), N as usize);
    let got: BTreeSet<String> = routes.iter().map(|r| r.prefix.to_string()).collect();
    assert_eq!(got, want);
    for r in &routes {
        assert!(r.best, "{r:?}");
        assert_eq!(r.peer, None);
        assert_eq!(r.next_hop, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(r.communities, vec!["65000:7".to_string()]);
    }

    let out = agent.client(&["routes", "withdraw", "--file", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("withdrew {N} of {N} prefixes\n"));
    assert_eq!(loc(&agent), Vec::<RouteEntry>::new());
}

#[test]
fn a_prefix_and_a_file_go_together() {
    let agent = Agent::start();
    let file = agent.dir.path().join("two.txt");
    fs::write(&file, "10.2.0.0/16\n2001:db8:2::/48\n").unwrap();
    let path = file.to_str().unwrap();
    let out = agent.client(&["routes", "announce", "10.1.0.0/16", "--file", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "announced 3 of 3 prefixes\n");
    let got: BTreeSet<String> = loc(&agent).iter().map(|r| r.prefix.to_string()).collect();
    assert_eq!(
        got,
        BTreeSet::from([
            "10.1.0.0/16".into(),
            "10.2.0.0/16".into(),
            "2001:db8:2::/48".into()
        ])
    );
    // Only what is originated is withdrawn, and counted.
    let out = agent.client(&["routes", "withdraw", "10.3.0.0/16", "--file", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "withdrew 2 of 3 prefixes\n");
    let got: Vec<String> = loc(&agent).iter().map(|r| r.prefix.to_string()).collect();
    assert_eq!(got, ["10.1.0.0/16"]);
}
