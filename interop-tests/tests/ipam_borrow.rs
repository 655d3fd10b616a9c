//! Block limits and borrowing, through the agent.
//!
//! Cross-node borrowing between live agents runs on the etcd store (`etcd_borrow.rs`); sled
//! locks its directory, so only one agent can open it at a time. What sled does allow is two nodes taking turns on one store, and that exercises the same
//! allocator rules a shared store would: node A claims a block and leaves it partly free,
//! node B (`max_blocks_per_node = 1`) fills its own block and then borrows A's free addresses.
//!
//! - `block_limit_exhausts_the_pool_with_a_clear_error`: one node, `max_blocks_per_node = 1`,
//!   /30 blocks in a /28 pool: after its block is full, `bramble ipam allocate` and
//!   `bramble-ipam` ADD both fail naming the block limit, and nothing more is allocated.
//! - `aggregate_advertises_blocks_once_and_borrowed_addresses_singly`: against BIRD, in
//!   aggregate mode: a block is one route and its addresses are not advertised; the
//!   addresses B borrows from A's block are advertised as /32s, A's block is not; with
//!   `strict_affinity` B borrows nothing.
//!
//! Needs root, BIRD, and `target/debug/bramble` + `target/debug/bramble-ipam`.

mod ipam_common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use interop_tests::bird::{Bird, BirdBgp, BirdConfig};
use interop_tests::bramble::{BrambleConfig, BramblePeer, IpamPool};
use interop_tests::cni::{ipam_bin, CniNetwork, CniOutput, CniResult};
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, Netns, ScratchDir};
use ipam_common::{blocks, ipam, show, show_cni, used, Agent, IpamExtra};
use serde_json::Value;

const POOL: &str = "10.246.0.0/28";
const POLL: Duration = Duration::from_millis(300);
/// The plugin's "pool exhausted" code.
const POOL_EXHAUSTED: u64 = 100;
/// The plugin's "CHECK: the handle holds no address" code.
const NO_ALLOCATION: u64 = 102;

fn limit_one() -> IpamExtra {
    IpamExtra {
        max_blocks_per_node: Some(1),
        strict_affinity: None,
    }
}

/// `bramble-ipam` (behind `ptp`, which these tests do not run) on `agent`'s socket, spec 1.1.0
/// (STATUS needs it).
fn network(agent: &Agent) -> CniNetwork {
    let mut net = CniNetwork::ptp("borrownet", POOL, agent.socket());
    net.cni_version = "1.1.0".into();
    net
}

/// The address of a successful plugin ADD.
fn added_ip(out: CniOutput) -> String {
    assert!(out.success(), "ADD: {}", show_cni(&out));
    CniResult::parse(out.json).unwrap().ip.to_string()
}

/// The CNI error object of a failed plugin run (which must have failed).
fn cni_error(out: &CniOutput) -> Value {
    assert!(!out.success(), "expected a failure: {}", show_cni(out));
    assert!(out.json.is_object(), "{}", show_cni(out));
    out.json.clone()
}

#[test]
fn block_limit_exhausts_the_pool_with_a_clear_error() {
    require_bramble();
    assert!(ipam_bin().exists(), "{} not built", ipam_bin().display());
    let dir = ScratchDir::new("ipam-limit").unwrap();
    let ns = Netns::new("iplimit").unwrap();
    let mut cfg = BrambleConfig::new("node-a", Ipv4Addr::new(192, 0, 2, 1), 64512, dir.path())
        .with_ipam(vec![IpamPool::new(POOL, 30)], "aggregate");
    cfg.bgp.listen = None;
    let agent = Agent::start(&ns, dir.path(), &cfg, &limit_one());
    let net = network(&agent);
    let conf = net.netconf();

    // Two addresses through the CLI, two through the plugin: one /30 block, full.
    let mut ips = BTreeSet::new();
    for h in ["h0", "h1"] {
        let got = agent.allocate(h);
        assert_eq!(got["block"], "10.246.0.0/30", "{got}");
        assert_eq!(got["borrowed"], false, "{got}");
        ips.insert(got["ip"].as_str().unwrap().to_string());
    }
    for id in ["c2", "c3"] {
        ips.insert(added_ip(ipam(&net, "ADD", id, &conf)));
    }
    let want: BTreeSet<String> = (0..4).map(|i| format!("10.246.0.{i}")).collect();
    assert_eq!(ips, want);

    // The CLI: non-zero exit, a message naming the exhaustion and the block limit.
    let out = agent.client(&["ipam", "allocate", "--handle", "h4", "-o", "json"]);
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exhausted") && stderr.contains("block limit reached"),
        "{stderr}"
    );

    // The plugin: the spec's error object on stdout, exit 1, code 100, the same reason.
    let out = ipam(&net, "ADD", "c4", &conf);
    assert_eq!(out.status.code(), Some(1), "{}", show_cni(&out));
    let err = cni_error(&out);
    assert_eq!(err["code"], POOL_EXHAUSTED, "{err}");
    assert_eq!(err["cniVersion"], "1.1.0", "{err}");
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("block limit reached"), "{msg}");
    // STATUS agrees: the plugin cannot serve an ADD now.
    let err = cni_error(&ipam(&net, "STATUS", "c4", &conf));
    assert_eq!(err["code"], 50, "{err}");

    // Nothing was allocated by the failed requests: four used, one block, the refused
    // container holds nothing, the store is consistent.
    let usage = agent.show();
    assert_eq!(used(&usage), 4, "{usage:#}");
    let bl = blocks(&usage);
    assert_eq!(bl.len(), 1, "{bl:#?}");
    assert_eq!(bl[0]["owner"], "node-a");
    let err = cni_error(&ipam(&net, "CHECK", "c4", &conf));
    assert_eq!(err["code"], NO_ALLOCATION, "{err}");
    assert!(ipam(&net, "CHECK", "c3", &conf).success());
    let report = agent.check();
    assert_eq!(report["clean"], true, "{report:#}");

    // A release makes room again (in the same block: still no second one).
    assert!(agent
        .client(&["ipam", "release", "--handle", "h1"])
        .status
        .success());
    assert_eq!(added_ip(ipam(&net, "ADD", "c4", &conf)), "10.246.0.1");
}

/// The prefixes BIRD holds from protocol `bramble`.
fn bird_prefixes(bird: &Bird) -> BTreeSet<String> {
    let text = bird
        .birdc(&["show", "route", "protocol", "bramble"])
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|t| t.parse::<ipnetwork::IpNetwork>().is_ok())
        .map(str::to_string)
        .collect()
}

fn wait_bird(bird: &Bird, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    wait_until(
        &format!("BIRD holds exactly {want:?} from Bramble"),
        Duration::from_secs(60),
        POLL,
        || {
            let got = bird_prefixes(bird);
            check(got == want, || format!("BIRD has {got:?}"))
        },
    )
    .unwrap();
}

/// Node `name` on the Bramble side of `net`, peering with BIRD, in aggregate mode.
fn node_config(name: &str, dir: &std::path::Path) -> BrambleConfig {
    let mut cfg = BrambleConfig::new(name, P2p::B4, 64512, dir)
        .with_ipam(vec![IpamPool::new(POOL, 30)], "aggregate");
    let mut peer = BramblePeer::new(P2p::a4(), 65000);
    peer.local_address = Some(P2p::b4());
    cfg.bgp.peers.push(peer);
    cfg
}

#[test]
fn aggregate_advertises_blocks_once_and_borrowed_addresses_singly() {
    require_bramble();
    let dir = ScratchDir::new("ipam-borrow").unwrap();
    let net = P2p::new("ipb-bird", "ipb-node").unwrap();
    let mut bcfg = BirdConfig::new(P2p::A4);
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    s.local_address = Some(P2p::a4());
    bcfg.bgp.push(s);
    let bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    // Node A: its block is one route, none of its addresses is advertised on its own.
    let cfg_a = node_config("node-a", dir.path());
    let mut a = Agent::start(&net.b, dir.path(), &cfg_a, &limit_one());
    for h in ["a0", "a1", "a2", "a3"] {
        assert_eq!(a.allocate(h)["block"], "10.246.0.0/30");
    }
    wait_bird(&bird, &["10.246.0.0/30"]);
    let r = bird.show_route("10.246.0.0/30").unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].as_path, vec![64512]);
    for i in 0..4 {
        assert!(bird
            .show_route(&format!("10.246.0.{i}/32"))
            .unwrap()
            .is_empty());
    }
    // Releases inside the block change nothing advertised.
    for h in ["a2", "a3"] {
        assert!(a
            .client(&["ipam", "release", "--handle", h])
            .status
            .success());
    }
    std::thread::sleep(Duration::from_secs(2));
    wait_bird(&bird, &["10.246.0.0/30"]);
    a.stop();

    // Node B on the same store: its own block first, then A's two free addresses, borrowed,
    // each advertised as a /32 next to B's block; A's block is not B's to advertise.
    let cfg_b = node_config("node-b", dir.path());
    let mut b = Agent::start(&net.b, dir.path(), &cfg_b, &limit_one());
    for h in ["b0", "b1", "b2", "b3"] {
        let got = b.allocate(h);
        assert_eq!(got["block"], "10.246.0.4/30", "{got}");
        assert_eq!(got["borrowed"], false, "{got}");
    }
    let mut borrowed = Vec::new();
    for h in ["b4", "b5"] {
        let got = b.allocate(h);
        assert_eq!(got["block"], "10.246.0.0/30", "{got}");
        assert_eq!(got["borrowed"], true, "{got}");
        borrowed.push(got["ip"].as_str().unwrap().to_string());
    }
    assert_eq!(borrowed, ["10.246.0.2", "10.246.0.3"]);
    wait_bird(&bird, &["10.246.0.4/30", "10.246.0.2/32", "10.246.0.3/32"]);
    let r = bird.show_route("10.246.0.2/32").unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].as_path, vec![64512]);

    // Both blocks full, the limit reached: exhausted, with the reason.
    let out = b.client(&["ipam", "allocate", "--handle", "b6"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("block limit reached")
            && stderr.contains("nothing to borrow"),
        "{}",
        show(&out)
    );
    let usage = b.show();
    assert_eq!(used(&usage), 8, "{usage:#}");
    let owners: BTreeSet<(String, String)> = blocks(&usage)
        .iter()
        .map(|bl| {
            (
                bl["cidr"].as_str().unwrap().to_string(),
                bl["owner"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("10.246.0.0/30".to_string(), "node-a".to_string()),
        ("10.246.0.4/30".to_string(), "node-b".to_string()),
    ]
    .into();
    assert_eq!(owners, want);
    assert_eq!(b.check()["clean"], true);

    // Strict affinity: B may not borrow. A free address in A's block stays unused, and its
    // /32 is withdrawn once released.
    b.stop();
    let strict = IpamExtra {
        max_blocks_per_node: Some(1),
        strict_affinity: Some(true),
    };
    let b = Agent::start(&net.b, dir.path(), &cfg_b, &strict);
    assert!(b
        .client(&["ipam", "release", "--handle", "b5"])
        .status
        .success());
    wait_bird(&bird, &["10.246.0.4/30", "10.246.0.2/32"]);
    let out = b.client(&["ipam", "allocate", "--handle", "b7"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("borrowing disabled (strict affinity)"),
        "{}",
        show(&out)
    );
    let err = cni_error(&ipam(&network(&b), "ADD", "b7", &network(&b).netconf()));
    assert_eq!(err["code"], POOL_EXHAUSTED, "{err}");
    assert_eq!(used(&b.show()), 7);
}
