//! `[[policy]]` parsing, validation errors at FILE:LINE:COL, and reload diffs of policies.

use std::net::{IpAddr, Ipv4Addr};

use bgp::policy::{Decision, Verdict};
use bgp::wire::{AsPath, AsSegment, Community, PathAttrs, SegmentType};
use config::{parse_with_host, Config, HostFacts};

fn host() -> HostFacts {
    HostFacts {
        hostname: Some("node1".into()),
        router_id: Some(Ipv4Addr::new(192, 0, 2, 10)),
    }
}

fn parse(text: &str) -> Config {
    parse_with_host(text, "b.toml", &host()).unwrap()
}

fn errors(text: &str) -> Vec<String> {
    parse_with_host(text, "b.toml", &host())
        .unwrap_err()
        .diagnostics()
        .iter()
        .map(|d| d.to_string())
        .collect()
}

const POLICY: &str = r#"
[[policy]]
name = "from-tor"

[[policy.rules]]
name = "no-64999"
as_path_contains = [64999]
action = "reject"

[[policy.rules]]
name = "tagged"
community = ["65000:100", "65000:2*"]
set_local_pref = 300
remove_communities = ["65000:*"]
add_communities = ["64512:1", "no-export"]

[[policy.rules]]
name = "pods"
prefix = ["10.0.0.0/8 le 32"]
origin_as = [65001]
as_path_length = "le 3"
as_path = "* 65001"
large_community = ["65000:1:*"]
set_med = 10
prepend = 2
strip_communities = true
add_large_communities = ["64512:0:1"]
remove_large_communities = ["65000:*:*"]

[[bgp.peers]]
address = "192.0.2.1"
asn = 65001
import_policy = "from-tor"
export = ["10.0.0.0/8 le 32"]
export_policy = "from-tor"
"#;

#[test]
fn policy_errors_point_at_the_value() {
    // "65000:2*" is not a community pattern: one error, at its column.
    let e = errors(POLICY);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("b.toml:12:27: policy.rules.community:"),
        "{e:?}"
    );
}

fn policy_text() -> String {
    POLICY.replace(", \"65000:2*\"", "")
}

#[test]
fn parses_policies_and_peer_references() {
    let cfg = parse(&policy_text());
    assert_eq!(cfg.policies.len(), 1);
    let p = &cfg.policies[0];
    assert_eq!(p.name, "from-tor");
    assert!(!p.default_accept);
    assert_eq!(p.rules.len(), 3);
    assert_eq!(p.rules[2].action.prepend, 2);
    let peer = &cfg.peers()[0];
    assert_eq!(peer.import.policy.as_deref(), Some(&**p));
    assert!(peer.import.rules.is_none());
    assert!(peer.export.rules.is_some());
    // The policy as the speaker uses it.
    let attrs = PathAttrs {
        as_path: Some(AsPath {
            segments: vec![AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![65001],
            }],
        }),
        communities: vec![Community::new(65000, 100)],
        ..Default::default()
    };
    let v = peer
        .import
        .evaluate(&"192.0.2.0/24".parse().unwrap(), &attrs, true);
    assert_eq!(
        v,
        Verdict::Accept(Some(Decision {
            rule: Some(1),
            accept: true
        }))
    );
    let mut a = attrs.clone();
    peer.import.apply(
        Decision {
            rule: Some(1),
            accept: true,
        },
        &mut a,
        64512,
        false,
    );
    assert_eq!(a.local_pref, Some(300));
    assert_eq!(
        a.communities,
        vec![Community::new(64512, 1), Community::NO_EXPORT]
    );
}

#[test]
fn reference_and_rule_errors() {
    let text = r#"
[[policy]]
name = "a"
default = "maybe"

[[policy.rules]]
name = "r"
action = "reject"
set_local_pref = 5

[[policy.rules]]
name = "r"
add_communities = ["65000:*"]
as_path = "65001 x"
as_path_length = "ge 5 le 2"
prepend = 99

[[policy]]
name = "a"

[[bgp.peers]]
address = "192.0.2.1"
asn = 65001
import_policy = "nope"
"#;
    let e = errors(text);
    let joined = e.join("\n");
    assert!(
        joined.contains("b.toml:4:11: policy.default: \"maybe\" is not one of"),
        "{joined}"
    );
    assert!(
        joined.contains("b.toml:8:10: policy.rules.action: rule \"r\" rejects"),
        "{joined}"
    );
    assert!(
        joined.contains("b.toml:12:8: policy.rules.name: duplicate rule \"r\""),
        "{joined}"
    );
    assert!(
        joined.contains("b.toml:13:20: policy.rules.add_communities: \"65000:*\" has a wildcard"),
        "{joined}"
    );
    assert!(
        joined.contains("b.toml:14:11: policy.rules.as_path:"),
        "{joined}"
    );
    assert!(
        joined.contains("b.toml:15:18: policy.rules.as_path_length:"),
        "{joined}"
    );
    assert!(
        joined.contains("b.toml:16:11: policy.rules.prepend: 99 is out of range (0..=16)"),
        "{joined}"
    );
    assert!(
        joined
            .contains("b.toml:19:8: policy.name: duplicate policy \"a\" (first defined on line 3)"),
        "{joined}"
    );
    // The peer's reference is not checked against invalid policies (already reported).
    let text = "[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 65001\nexport_policy = \"nope\"\n";
    assert_eq!(
        errors(text),
        vec![
            "b.toml:4:17: bgp.peers.export_policy: no [[policy]] named \"nope\" (none is defined)"
        ]
    );
}

#[test]
fn diff_sorts_policy_changes_from_session_changes() {
    let old = parse(&policy_text());
    assert!(old.diff(&old).is_empty());
    // A rule of the referenced policy changes: policy-only for the peer.
    let new = parse(&policy_text().replace("set_local_pref = 300", "set_local_pref = 50"));
    let d = old.diff(&new);
    let peer: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(d.peers_policy_changed, vec![peer]);
    assert!(d.peers_changed.is_empty());
    assert!(!d.restart_needed);
    // The prefix list too.
    let new = parse(&policy_text().replace("export = [\"10.0.0.0/8 le 32\"]\n", ""));
    assert_eq!(old.diff(&new).peers_policy_changed, vec![peer]);
    // A session setting: reset.
    let new = parse(&policy_text().replace("asn = 65001", "asn = 65001\nhold_time = 30"));
    let d = old.diff(&new);
    assert_eq!(d.peers_changed, vec![peer]);
    assert!(d.peers_policy_changed.is_empty());
    // Router id and AS: restart, reported by name.
    let new = parse(&format!(
        "[node]\nrouter_id = \"192.0.2.99\"\nasn = 65100\n[bgp]\nlisten = \"127.0.0.1:1179\"\n{}",
        policy_text()
    ));
    let d = old.diff(&new);
    assert!(d.restart_needed);
    assert_eq!(
        d.restart_reasons,
        vec!["node.router_id", "node.asn", "bgp.listen"]
    );
}
