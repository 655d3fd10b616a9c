//! Import policy against BIRD, changed with `bramble reload` without resetting the session,
//! and RFC 7313 enhanced route refresh (BoRR / EoRR) in both directions.
//!
//! BIRD (AS 65000) announces three routes: 10.1.0.0/24 with community 65000:100,
//! 10.2.0.0/24 with 65000:666, 10.3.0.0/24 with AS 64999 prepended. Bramble (AS 64512)
//! starts importing everything; its config file then gets a `[[policy]]` and `bramble
//! reload` applies it: the rejected paths name the rule in `routes --table adj-in -o json`,
//! the accepted one carries the LOCAL_PREF the policy set, and neither BIRD's nor Bramble's
//! session restarted.

use std::path::Path;
use std::time::Duration;

use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer};
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};
use serde_json::Value;

const POLL: Duration = Duration::from_millis(500);

const POLICY_V1: &str = r#"
[[policy]]
name = "from-tor"
default = "accept"

[[policy.rules]]
name = "no-666"
community = ["65000:666"]
action = "reject"

[[policy.rules]]
name = "no-transit-64999"
as_path_contains = [64999]
action = "reject"

[[policy.rules]]
name = "prefer-100"
community = ["65000:100"]
set_local_pref = 300
add_communities = ["64512:1"]
"#;

/// The agent's config with the peer importing through `policy` (appended verbatim).
fn with_policy(base: &str, policy: &str) -> String {
    let peer = base.replacen(
        "[[bgp.peers]]\n",
        "[[bgp.peers]]\nimport_policy = \"from-tor\"\n",
        1,
    );
    format!("{peer}\n{policy}")
}

fn adj_in(b: &Bramble, prefix: &str) -> Option<Value> {
    b.routes("adj-in", None)
        .unwrap()
        .into_iter()
        .find(|r| r["prefix"] == prefix)
}

fn loc_has(b: &Bramble, prefix: &str) -> bool {
    !b.loc_routes_for(prefix).unwrap().is_empty()
}

/// The `Since` column of `birdc show protocols NAME`.
fn bird_since(bird: &Bird, name: &str) -> String {
    let text = bird.birdc(&["show", "protocols", name]).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_default()
        .to_string();
    // Name Proto Table State Since(date time or time) Info…
    line.split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn bramble_since(b: &Bramble) -> u64 {
    b.peer_status(P2p::a4()).unwrap().unwrap()["since"]
        .as_u64()
        .unwrap()
}

fn reload(b: &Bramble) -> Value {
    b.client_json(&["reload", "-o", "json"]).unwrap()
}

fn bird_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("bird.stderr")).unwrap_or_default()
}

#[test]
fn reload_applies_import_policy_without_reset_and_enhanced_refresh_with_bird() {
    require_bramble();
    let dir = ScratchDir::new("br-policy").unwrap();
    let net = P2p::new("br-pol-bird", "br-pol-node").unwrap();

    let mut bcfg = BirdConfig::new(P2p::A4);
    bcfg.statics.push(BirdStatic::new(
        "s4",
        &["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"],
    ));
    let mut s = BirdBgp::new("bramble", 65000, P2p::b4(), 64512);
    s.local_address = Some(P2p::a4());
    s.ipv4 = Some(BirdChannel::new(
        "all",
        r#"filter {
            if proto != "s4" then reject;
            if net = 10.1.0.0/24 then bgp_community.add((65000, 100));
            if net = 10.2.0.0/24 then bgp_community.add((65000, 666));
            if net = 10.3.0.0/24 then bgp_path.prepend(64999);
            accept;
        }"#,
    ));
    s.extra = "  debug { states, packets };\n".into();
    bcfg.bgp.push(s);
    let bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    let mut cfg = BrambleConfig::new("node1", P2p::B4, 64512, dir.path());
    let mut peer = BramblePeer::new(P2p::a4(), 65000);
    peer.local_address = Some(P2p::b4());
    peer.families = vec!["ipv4-unicast".into()];
    cfg.bgp.peers.push(peer);
    let bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();
    let cfg_path = dir.path().join("bramble-node1.toml");
    let base = cfg.render().unwrap();

    wait_until(
        "the three routes in Bramble",
        Duration::from_secs(60),
        POLL,
        || {
            let n = ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"]
                .iter()
                .filter(|p| loc_has(&bramble, p))
                .count();
            check(n == 3, || format!("{n} of 3"))
        },
    )
    .unwrap();
    // Capability 70 both ways (BIRD lists it under local and neighbor capabilities).
    let caps = bird
        .birdc(&["show", "protocols", "all", "bramble"])
        .unwrap();
    assert!(
        caps.matches("Enhanced refresh").count() >= 2,
        "enhanced route refresh not negotiated:\n{caps}"
    );
    let bird_up = bird_since(&bird, "bramble");
    let bramble_up = bramble_since(&bramble);

    // 1. Add the policy, reload.
    std::fs::write(&cfg_path, with_policy(&base, POLICY_V1)).unwrap();
    let report = reload(&bramble);
    let updated = report["policy_updated"].as_array().unwrap();
    assert_eq!(updated.len(), 1, "{report}");
    assert_eq!(updated[0]["reevaluated"], 3, "{report}");
    assert!(report["peers_reset"].as_array().unwrap().is_empty());

    let r = adj_in(&bramble, "10.2.0.0/24").unwrap();
    assert_eq!(r["note"], "policy from-tor rule no-666: reject", "{r}");
    let r = adj_in(&bramble, "10.3.0.0/24").unwrap();
    assert_eq!(
        r["note"], "policy from-tor rule no-transit-64999: reject",
        "{r}"
    );
    assert!(!loc_has(&bramble, "10.2.0.0/24") && !loc_has(&bramble, "10.3.0.0/24"));
    let loc = bramble.loc_routes_for("10.1.0.0/24").unwrap();
    assert_eq!(loc[0]["local_pref"], 300, "{loc:?}");
    let comms = loc[0]["communities"].as_array().unwrap();
    assert!(comms.iter().any(|c| c == "64512:1"), "{loc:?}");
    let r = adj_in(&bramble, "10.1.0.0/24").unwrap();
    assert!(
        r["note"].as_str().unwrap().contains("rule prefer-100"),
        "{r}"
    );

    // 2. Edit: let 65000:666 through; reload again.
    let v2 = POLICY_V1.replace(
        "action = \"reject\"\n\n[[policy.rules]]\nname = \"no-transit",
        "action = \"accept\"\n\n[[policy.rules]]\nname = \"no-transit",
    );
    std::fs::write(&cfg_path, with_policy(&base, &v2)).unwrap();
    reload(&bramble);
    assert!(loc_has(&bramble, "10.2.0.0/24"));
    assert!(!loc_has(&bramble, "10.3.0.0/24"));

    // A broken file changes nothing and says where.
    std::fs::write(&cfg_path, with_policy(&base, &v2.replace("300", "-1"))).unwrap();
    let err = bramble.client(&["reload"]).unwrap_err().to_string();
    assert!(
        err.contains("bramble-node1.toml:") && err.contains("set_local_pref"),
        "{err}"
    );
    assert!(loc_has(&bramble, "10.2.0.0/24"));

    // A router id change is reported, not applied.
    let moved =
        with_policy(&base, &v2).replace("router_id = \"10.0.0.2\"", "router_id = \"10.0.0.99\"");
    std::fs::write(&cfg_path, moved).unwrap();
    let report = reload(&bramble);
    assert_eq!(
        report["restart_needed"],
        serde_json::json!(["node.router_id"]),
        "{report}"
    );

    // 3. RFC 7313: BIRD re-sends its routes between BoRR and EoRR; nothing is lost.
    bird.birdc(&["reload", "out", "bramble"]).unwrap();
    wait_until(
        "BIRD to send BoRR and EoRR",
        Duration::from_secs(30),
        POLL,
        || {
            let log = bird_log(dir.path());
            check(
                log.contains("Sending BEGIN-OF-RR") && log.contains("Sending END-OF-RR"),
                || "no BoRR/EoRR sent yet".into(),
            )
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(loc_has(&bramble, "10.1.0.0/24") && loc_has(&bramble, "10.2.0.0/24"));
    assert_eq!(bramble.routes("adj-in", None).unwrap().len(), 3);

    // BIRD asks Bramble for a refresh: Bramble answers with BoRR, the routes, EoRR.
    bramble.announce("10.50.0.0/24").unwrap();
    wait_until(
        "BIRD to learn 10.50.0.0/24",
        Duration::from_secs(30),
        POLL,
        || {
            check(!bird.show_route("10.50.0.0/24")?.is_empty(), || {
                "not yet".into()
            })
        },
    )
    .unwrap();
    bird.birdc(&["reload", "in", "bramble"]).unwrap();
    wait_until(
        "BIRD to get BoRR and EoRR",
        Duration::from_secs(30),
        POLL,
        || {
            let log = bird_log(dir.path());
            check(
                log.contains("Got BEGIN-OF-RR") && log.contains("Got END-OF-RR"),
                || "no BoRR/EoRR received yet".into(),
            )
        },
    )
    .unwrap();
    assert!(!bird.show_route("10.50.0.0/24").unwrap().is_empty());

    // Through all of it, neither side restarted the session.
    assert_eq!(bird_since(&bird, "bramble"), bird_up);
    assert_eq!(bramble_since(&bramble), bramble_up);
    assert!(bramble.is_established(P2p::a4()).unwrap());
}
