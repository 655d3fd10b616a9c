//! Import and export policy against GoBGP, changed with `bramble reload` without resetting
//! the session (GoBGP's uptime keeps counting in `gobgp neighbor -j`).
//!
//! GoBGP (AS 65010) announces 10.1.0.0/24 with community 65010:100 and 10.2.0.0/24 with
//! large community 65010:1:2. Bramble (AS 64512) imports through a policy that rejects the
//! large community and raises LOCAL_PREF for the community, and exports its own
//! 10.60.0.0/24 through a policy that prepends twice and tags it.

use std::time::Duration;

use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer};
use interop_tests::gobgp::{Gobgp, GobgpConfig, GobgpNeighbor};
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};
use serde_json::Value;

const POLL: Duration = Duration::from_millis(500);

const POLICIES: &str = r#"
[[policy]]
name = "from-gobgp"
default = "accept"

[[policy.rules]]
name = "no-large-1"
large_community = ["65010:1:*"]
action = "reject"

[[policy.rules]]
name = "prefer-100"
community = ["65010:100"]
set_local_pref = 200

[[policy]]
name = "to-gobgp"
default = "reject"

[[policy.rules]]
name = "ours"
prefix = ["10.60.0.0/16 le 24"]
prepend = 2
add_communities = ["64512:7"]
"#;

fn config_with(base: &str, policies: &str) -> String {
    let peer = base.replacen(
        "[[bgp.peers]]\n",
        "[[bgp.peers]]\nimport_policy = \"from-gobgp\"\nexport_policy = \"to-gobgp\"\n",
        1,
    );
    format!("{peer}\n{policies}")
}

fn adj_in_note(b: &Bramble, prefix: &str) -> Option<Value> {
    b.routes("adj-in", None)
        .unwrap()
        .into_iter()
        .find(|r| r["prefix"] == prefix)
        .map(|r| r["note"].clone())
}

/// GoBGP's AS path for `prefix`, if it has the route.
fn gobgp_path(g: &Gobgp, prefix: &str) -> Option<Vec<u32>> {
    g.rib("ipv4")
        .ok()?
        .get(prefix)?
        .first()
        .map(|p| p.as_path.clone())
}

/// When GoBGP's session came up (`timers.state.uptime`), which a reset would move.
fn gobgp_uptime(g: &Gobgp) -> Value {
    g.neighbor(P2p::b4()).unwrap()["timers"]["state"]["uptime"].clone()
}

#[test]
fn reload_changes_gobgp_policy_outcome_without_reset() {
    require_bramble();
    let dir = ScratchDir::new("br-pol-gobgp").unwrap();
    let net = P2p::new("br-pol-gobgp", "br-pol-gnode").unwrap();

    let mut g = GobgpConfig::new(65010, P2p::A4);
    let mut n = GobgpNeighbor::new(P2p::b4(), 64512);
    n.families = vec!["ipv4-unicast".into()];
    g.neighbors.push(n);
    let gobgp = Gobgp::start(&net.a, dir.path(), &g).unwrap();

    let mut cfg = BrambleConfig::new("node1", P2p::B4, 64512, dir.path());
    let mut peer = BramblePeer::new(P2p::a4(), 65010);
    peer.families = vec!["ipv4-unicast".into()];
    cfg.bgp.peers.push(peer);
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();
    let cfg_path = dir.path().join("bramble-node1.toml");
    let base = cfg.render().unwrap();
    // Start with the policies in place (the reload below changes them).
    std::fs::write(&cfg_path, config_with(&base, POLICIES)).unwrap();
    bramble.client(&["reload"]).unwrap();

    wait_until("eBGP Established", Duration::from_secs(60), POLL, || {
        let s = gobgp.neighbor_state(P2p::b4())?;
        let n = bramble.peer_state(P2p::a4())?;
        check(
            s == "Established" && n.as_deref() == Some("Established"),
            || format!("GoBGP {s}, Bramble {n:?}"),
        )
    })
    .unwrap();

    let nh = P2p::a4().to_string();
    gobgp
        .gobgp(&[
            "global",
            "rib",
            "-a",
            "ipv4",
            "add",
            "10.1.0.0/24",
            "nexthop",
            &nh,
            "community",
            "65010:100",
        ])
        .unwrap();
    gobgp
        .gobgp(&[
            "global",
            "rib",
            "-a",
            "ipv4",
            "add",
            "10.2.0.0/24",
            "nexthop",
            &nh,
            "large-community",
            "65010:1:2",
        ])
        .unwrap();
    bramble.announce("10.60.0.0/24").unwrap();

    wait_until(
        "Bramble's Adj-RIB-In holds both",
        Duration::from_secs(60),
        POLL,
        || {
            let n = bramble.routes("adj-in", None)?.len();
            check(n == 2, || format!("{n} paths"))
        },
    )
    .unwrap();
    assert_eq!(
        adj_in_note(&bramble, "10.2.0.0/24").unwrap(),
        "policy from-gobgp rule no-large-1: reject"
    );
    let loc = bramble.loc_routes_for("10.1.0.0/24").unwrap();
    assert_eq!(loc[0]["local_pref"], 200, "{loc:?}");
    assert!(bramble.loc_routes_for("10.2.0.0/24").unwrap().is_empty());

    wait_until(
        "GoBGP to get 10.60.0.0/24 prepended",
        Duration::from_secs(60),
        POLL,
        || {
            let p = gobgp_path(&gobgp, "10.60.0.0/24");
            check(p == Some(vec![64512, 64512, 64512]), || format!("{p:?}"))
        },
    )
    .unwrap();
    let up = gobgp_uptime(&gobgp);
    let since = bramble.peer_status(P2p::a4()).unwrap().unwrap()["since"].clone();

    // Edit: let the large community in, stop prepending; reload.
    let v2 = POLICIES
        .replace(
            "action = \"reject\"\n\n[[policy.rules]]\nname = \"prefer-100\"",
            "action = \"accept\"\n\n[[policy.rules]]\nname = \"prefer-100\"",
        )
        .replace("prepend = 2\n", "");
    std::fs::write(&cfg_path, config_with(&base, &v2)).unwrap();
    let report = bramble.client_json(&["reload", "-o", "json"]).unwrap();
    let updated = &report["policy_updated"][0];
    assert_eq!(updated["import_changed"], true, "{report}");
    assert_eq!(updated["export_changed"], true, "{report}");
    assert!(
        report["peers_reset"].as_array().unwrap().is_empty(),
        "{report}"
    );

    assert!(!bramble.loc_routes_for("10.2.0.0/24").unwrap().is_empty());
    wait_until(
        "GoBGP to see the shorter path",
        Duration::from_secs(60),
        POLL,
        || {
            let p = gobgp_path(&gobgp, "10.60.0.0/24");
            check(p == Some(vec![64512]), || format!("{p:?}"))
        },
    )
    .unwrap();

    // SIGHUP does the same as `bramble reload`: now 65010:100 is rejected.
    let v3 = v2.replace("set_local_pref = 200", "action = \"reject\"");
    std::fs::write(&cfg_path, config_with(&base, &v3)).unwrap();
    let mut bramble = bramble;
    let pid = bramble.process().pid().to_string();
    let st = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    wait_until(
        "SIGHUP to apply the new policy",
        Duration::from_secs(30),
        POLL,
        || {
            let note = adj_in_note(&bramble, "10.1.0.0/24");
            check(
                note.as_ref().and_then(Value::as_str)
                    == Some("policy from-gobgp rule prefer-100: reject"),
                || format!("{note:?}"),
            )
        },
    )
    .unwrap();
    assert!(bramble.loc_routes_for("10.1.0.0/24").unwrap().is_empty());

    // Same session on both sides.
    assert!(gobgp.is_established(P2p::b4()).unwrap());
    assert_eq!(gobgp_uptime(&gobgp), up, "GoBGP's session was reset");
    assert!(!up.is_null(), "no uptime in gobgp neighbor -j");
    assert_eq!(
        bramble.peer_status(P2p::a4()).unwrap().unwrap()["since"],
        since
    );
}
