//! `bramble-ipam` as a runtime runs it: `CNI_*` environment, netconf on stdin, result or the
//! spec's error object on stdout. Agent-backed tests run the real `bramble agent` with a sled
//! store in a temporary directory, no peers and the FIB off.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use common::Agent;

const POOL: &str = "10.244.0.0/16";

struct Run {
    out: Output,
    json: Option<Value>,
}

impl Run {
    fn ok(&self) -> bool {
        self.out.status.success()
    }

    /// The error code; panics unless the run failed with a spec-form error object.
    fn code(&self) -> u64 {
        assert!(!self.ok(), "expected failure: {}", self.text());
        let v = self
            .json
            .as_ref()
            .unwrap_or_else(|| panic!("no JSON: {}", self.text()));
        assert!(v["cniVersion"].is_string(), "{v}");
        assert!(v["msg"].is_string(), "{v}");
        v["code"].as_u64().unwrap()
    }

    fn text(&self) -> String {
        format!(
            "status {} stdout {:?} stderr {:?}",
            self.out.status,
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }
}

/// Runs the plugin with `vars` and `stdin`, nothing inherited but PATH.
fn plugin(vars: &[(&str, &str)], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bramble-ipam"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The plugin may reject its environment and exit before reading stdin: a broken pipe
    // here is expected then, and the exit status and output below are what is checked.
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    let json = serde_json::from_slice(&out.stdout).ok();
    Run { out, json }
}

fn netconf(socket: &Path, ipam_extra: Value) -> Value {
    let mut ipam = json!({"type": "bramble-ipam", "socket": socket, "pool": POOL});
    if let (Some(dst), Some(src)) = (ipam.as_object_mut(), ipam_extra.as_object()) {
        for (k, v) in src {
            if v.is_null() {
                dst.remove(k);
            } else {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
    json!({"cniVersion": "1.1.0", "name": "net", "type": "ptp", "ipam": ipam})
}

fn cmd(command: &str, conf: &Value, container: &str) -> Run {
    plugin(
        &[
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container),
            ("CNI_NETNS", "/run/netns/nonexistent"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ],
        &conf.to_string(),
    )
}

fn ipam_agent() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let config = format!(
        r#"
[node]
name = "cni-node"
router_id = "192.0.2.1"
asn = 64512

[api]
socket = "{}"

[fib]
enabled = false

[ipam]
store = "sled"
path = "{}"

[[ipam.pools]]
cidr = "{POOL}"
block_size = 26
"#,
        socket.display(),
        dir.path().join("ipam").display()
    );
    Agent::start_with(dir, socket, &config, None)
}

fn no_agent_socket() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    (dir, socket)
}

/// The single address of an ADD result.
fn address(r: &Run) -> String {
    assert!(r.ok(), "{}", r.text());
    let v = r.json.as_ref().unwrap();
    assert_eq!(v["cniVersion"], "1.1.0");
    assert!(
        v.get("interfaces").is_none(),
        "IPAM results carry no interfaces: {v}"
    );
    let ips = v["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 1, "{v}");
    ips[0]["address"].as_str().unwrap().to_string()
}

fn ip_of(cidr: &str) -> std::net::IpAddr {
    cidr.split('/').next().unwrap().parse().unwrap()
}

fn agent_holds(agent: &Agent, handle: &str) -> Vec<String> {
    let mut client = agent::client::Client::connect(&agent.socket).unwrap();
    match client
        .request(&agent::api::Request::IpamGet {
            handle: handle.into(),
        })
        .unwrap()
    {
        agent::api::Response::Allocated { addresses } => {
            addresses.iter().map(|a| a.ip.to_string()).collect()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn version_reports_supported_versions() {
    let r = plugin(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.1.0"}"#);
    assert!(r.ok(), "{}", r.text());
    let v = r.json.unwrap();
    assert_eq!(v["cniVersion"], "1.1.0");
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn bad_input_gives_spec_errors_without_an_agent() {
    let (_dir, socket) = no_agent_socket();
    let conf = netconf(&socket, json!({}));
    let env = |c: &'static str| {
        vec![
            ("CNI_COMMAND", c),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
        ]
    };
    // Malformed JSON: 6.
    assert_eq!(plugin(&env("ADD"), "{\"cniVersion\":").code(), 6);
    assert_eq!(plugin(&env("DEL"), "not json").code(), 6);
    // Missing CNI_CONTAINERID, missing CNI_COMMAND, unknown command: 4.
    let no_id = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_NETNS", "/x"),
        ("CNI_IFNAME", "eth0"),
    ];
    assert_eq!(plugin(&no_id, &conf.to_string()).code(), 4);
    assert_eq!(plugin(&[], &conf.to_string()).code(), 4);
    assert_eq!(plugin(&env("FROB"), &conf.to_string()).code(), 4);
    // Unsupported cniVersion: 1, and GC needs 1.1.0.
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.2.0");
    assert_eq!(plugin(&env("ADD"), &old.to_string()).code(), 1);
    old["cniVersion"] = json!("1.0.0");
    assert_eq!(plugin(&env("GC"), &old.to_string()).code(), 1);
    // No name, no ipam section: 7.
    let nameless = json!({"cniVersion": "1.1.0", "ipam": {"socket": socket}});
    assert_eq!(plugin(&env("ADD"), &nameless.to_string()).code(), 7);
    let no_ipam = json!({"cniVersion": "1.1.0", "name": "net"});
    assert_eq!(plugin(&env("ADD"), &no_ipam.to_string()).code(), 7);
    // Agent not running: 11 for ADD, DEL, CHECK, GC; 50 for STATUS.
    for c in ["ADD", "DEL", "CHECK", "GC"] {
        let r = plugin(&env(c), &conf.to_string());
        assert_eq!(r.code(), 11, "{c}: {}", r.text());
    }
    assert_eq!(plugin(&env("STATUS"), &conf.to_string()).code(), 50);
}

#[test]
fn add_is_idempotent_and_del_twice_succeeds() {
    let agent = ipam_agent();
    let conf = netconf(&agent.socket, json!({}));
    let first = address(&cmd("ADD", &conf, "c1"));
    let pool: ipnetwork::IpNetwork = POOL.parse().unwrap();
    assert!(
        first.ends_with("/16"),
        "pool prefix length by default: {first}"
    );
    assert!(pool.contains(ip_of(&first)), "{first}");
    assert_eq!(
        address(&cmd("ADD", &conf, "c1")),
        first,
        "same container, same address"
    );
    let other = address(&cmd("ADD", &conf, "c2"));
    assert_ne!(ip_of(&other), ip_of(&first));
    assert_eq!(
        agent_holds(&agent, "net.c1.eth0"),
        vec![ip_of(&first).to_string()]
    );

    let del = cmd("DEL", &conf, "c1");
    assert!(del.ok() && del.out.stdout.is_empty(), "{}", del.text());
    assert!(agent_holds(&agent, "net.c1.eth0").is_empty());
    assert!(cmd("DEL", &conf, "c1").ok(), "second DEL");
    assert!(cmd("DEL", &conf, "never-added").ok(), "DEL of nothing");
    assert_eq!(agent_holds(&agent, "net.c2.eth0").len(), 1, "c2 untouched");
}

#[test]
fn host_prefix_reports_a_slash_32_and_a_default_route() {
    let agent = ipam_agent();
    let conf = netconf(&agent.socket, json!({"hostPrefix": true}));
    let r = cmd("ADD", &conf, "c1");
    assert!(address(&r).ends_with("/32"));
    let v = r.json.unwrap();
    assert_eq!(v["ips"][0]["gateway"], "169.254.1.1");
    assert_eq!(v["routes"], json!([{"dst": "0.0.0.0/0"}]));
}

#[test]
fn check_compares_with_prev_result() {
    let agent = ipam_agent();
    let mut conf = netconf(&agent.socket, json!({}));
    let add = cmd("ADD", &conf, "c1");
    let addr = address(&add);
    conf["prevResult"] = add.json.unwrap();
    assert!(cmd("CHECK", &conf, "c1").ok());
    conf["prevResult"]["ips"][0]["address"] = json!("10.244.255.254/16");
    assert_eq!(cmd("CHECK", &conf, "c1").code(), 103);
    conf["prevResult"]["ips"][0]["address"] = json!(addr);
    assert_eq!(cmd("CHECK", &conf, "nobody").code(), 102);
}

#[test]
fn gc_releases_only_this_networks_stale_handles() {
    let agent = ipam_agent();
    let conf = netconf(&agent.socket, json!({}));
    for c in ["keep", "stale1", "stale2"] {
        address(&cmd("ADD", &conf, c));
    }
    let mut other_net = conf.clone();
    other_net["name"] = json!("other");
    address(&cmd("ADD", &other_net, "x"));

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let r = cmd("GC", &gc, "");
    assert!(r.ok(), "{}", r.text());
    assert_eq!(agent_holds(&agent, "net.keep.eth0").len(), 1);
    assert!(agent_holds(&agent, "net.stale1.eth0").is_empty());
    assert!(agent_holds(&agent, "net.stale2.eth0").is_empty());
    assert_eq!(
        agent_holds(&agent, "other.x.eth0").len(),
        1,
        "other network kept"
    );
}

#[test]
fn status_and_unknown_pool() {
    let agent = ipam_agent();
    let conf = netconf(&agent.socket, json!({}));
    let r = cmd("STATUS", &conf, "");
    assert!(r.ok() && r.out.stdout.is_empty(), "{}", r.text());
    let unknown = netconf(&agent.socket, json!({"pool": "10.99.0.0/16"}));
    assert_eq!(cmd("ADD", &unknown, "c1").code(), 7);
}
