use super::*;
use crate::wire::{AsPath, AsSegment, Community, LargeCommunity, SegmentType};

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn attrs(path: &[u32], communities: &[(u16, u16)]) -> PathAttrs {
    PathAttrs {
        as_path: Some(AsPath {
            segments: vec![AsSegment {
                kind: SegmentType::Sequence,
                asns: path.to_vec(),
            }],
        }),
        communities: communities
            .iter()
            .map(|&(a, v)| Community::new(a, v))
            .collect(),
        ..Default::default()
    }
}

fn rule(name: &str, when: Match, action: Action) -> Rule {
    Rule::new(name, when, action)
}

#[test]
fn rfc8212_default_deny_for_ebgp() {
    let none = Filter::default();
    assert!(!none.permits(&p("10.0.0.0/8"), true));
    assert!(none.permits(&p("10.0.0.0/8"), false));
    let some = Filter::prefixes(vec!["10.0.0.0/8 le 32".parse().unwrap()]);
    assert!(some.permits(&p("10.9.0.0/16"), true));
    assert!(!some.permits(&p("172.16.0.0/12"), false));
    match none.evaluate(&p("10.0.0.0/8"), &PathAttrs::default(), true) {
        Verdict::Reject(n) => assert!(n.contains("RFC 8212"), "{n}"),
        v => panic!("{v:?}"),
    }
    // A policy alone is a configured policy: RFC 8212 is satisfied.
    let with_policy = Filter {
        rules: None,
        policy: Some(Arc::new(Policy::new("all", vec![], true))),
    };
    assert!(with_policy.permits(&p("10.0.0.0/8"), true));
    assert_eq!(
        with_policy.evaluate(&p("10.0.0.0/8"), &PathAttrs::default(), true),
        Verdict::Accept(Some(Decision {
            rule: None,
            accept: true
        }))
    );
}

#[test]
fn first_matching_rule_decides() {
    let policy = Policy::new(
        "tor",
        vec![
            rule(
                "drop-bogon-as",
                Match {
                    as_path_contains: vec![64999],
                    ..Default::default()
                },
                Action {
                    accept: false,
                    ..Default::default()
                },
            ),
            rule(
                "prefer-tagged",
                Match {
                    community: vec!["65000:100".parse().unwrap()],
                    ..Default::default()
                },
                Action {
                    set_local_pref: Some(300),
                    add_communities: vec![Community::new(65000, 1)],
                    remove_communities: vec!["65000:100".parse().unwrap()],
                    ..Default::default()
                },
            ),
            rule(
                "pods",
                Match {
                    prefix: vec!["10.0.0.0/8 le 32".parse().unwrap()],
                    ..Default::default()
                },
                Action::default(),
            ),
        ],
        false,
    );
    let f = Filter {
        rules: None,
        policy: Some(Arc::new(policy)),
    };
    // Rule order: the AS 64999 route is rejected even though it is tagged.
    let a = attrs(&[65001, 64999], &[(65000, 100)]);
    match f.evaluate(&p("10.1.0.0/16"), &a, true) {
        Verdict::Reject(n) => assert_eq!(&*n, "policy tor rule drop-bogon-as: reject"),
        v => panic!("{v:?}"),
    }
    // Tagged: accepted by rule 1 with its changes.
    let mut a = attrs(&[65001], &[(65000, 100), (65000, 7)]);
    let Verdict::Accept(Some(d)) = f.evaluate(&p("192.0.2.0/24"), &a, true) else {
        panic!()
    };
    assert_eq!(d.rule, Some(1));
    assert_eq!(f.describe(d).unwrap(), "policy tor rule prefer-tagged");
    assert!(f.apply(d, &mut a, 64512, false));
    assert_eq!(a.local_pref, Some(300));
    assert_eq!(
        a.communities,
        vec![Community::new(65000, 7), Community::new(65000, 1)]
    );
    // Applying again changes nothing more.
    assert!(!f.apply(d, &mut a, 64512, false));
    // Neither: the default rejects.
    match f.evaluate(&p("192.0.2.0/24"), &attrs(&[65001], &[]), true) {
        Verdict::Reject(n) => assert_eq!(&*n, "policy tor: no rule matched (default reject)"),
        v => panic!("{v:?}"),
    }
    // Prefix rule, plain accept: nothing changes.
    let mut a = attrs(&[65001], &[]);
    let Verdict::Accept(Some(d)) = f.evaluate(&p("10.2.3.4/32"), &a, true) else {
        panic!()
    };
    assert!(!f.apply(d, &mut a, 64512, true));
}

#[test]
fn prefix_list_and_policy_both_apply() {
    let f = Filter {
        rules: Some(vec!["10.0.0.0/8 le 32".parse().unwrap()]),
        policy: Some(Arc::new(Policy::new("any", vec![], true))),
    };
    assert!(matches!(
        f.evaluate(&p("10.0.0.0/24"), &PathAttrs::default(), true),
        Verdict::Accept(_)
    ));
    match f.evaluate(&p("11.0.0.0/24"), &PathAttrs::default(), false) {
        Verdict::Reject(n) => assert_eq!(&*n, "rejected by import filter"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn as_path_conditions() {
    let m = |m: Match| m.holds(&p("10.0.0.0/8"), &attrs(&[65001, 65002, 65003], &[]));
    assert!(m(Match {
        origin_as: vec![65003],
        ..Default::default()
    }));
    assert!(!m(Match {
        origin_as: vec![65001],
        ..Default::default()
    }));
    assert!(m(Match {
        as_path_length: Some("ge 2 le 3".parse().unwrap()),
        ..Default::default()
    }));
    assert!(!m(Match {
        as_path_length: Some("le 2".parse().unwrap()),
        ..Default::default()
    }));
    assert!(m(Match {
        as_path: Some("65001 * 65003".parse().unwrap()),
        ..Default::default()
    }));
    // All conditions must hold.
    assert!(!m(Match {
        origin_as: vec![65003],
        as_path_contains: vec![1],
        ..Default::default()
    }));
    assert!(m(Match::default()));
}

#[test]
fn as_path_patterns() {
    let pat = |s: &str| s.parse::<AsPathPattern>().unwrap();
    assert!(pat("* 64512").matches(&[1, 2, 64512]));
    assert!(pat("* 64512").matches(&[64512]));
    assert!(!pat("* 64512").matches(&[64512, 1]));
    assert!(pat("* 64512 *").matches(&[1, 64512, 3]));
    assert!(pat("65001 ? 3").matches(&[65001, 9, 3]));
    assert!(!pat("65001 ? 3").matches(&[65001, 3]));
    assert!(pat("").matches(&[]));
    assert!(!pat("").matches(&[1]));
    assert!(pat("*").matches(&[]));
    assert!(pat("* *").matches(&[1, 2]));
    assert_eq!(pat("65001  *   ?").to_string(), "65001 * ?");
    assert!("65001 x".parse::<AsPathPattern>().is_err());
    assert!(["*"; 33].join(" ").parse::<AsPathPattern>().is_err());
}

#[test]
fn community_patterns() {
    let c = |s: &str| s.parse::<CommunityPattern>().unwrap();
    assert!(c("65000:*").matches(Community::new(65000, 5)));
    assert!(!c("65000:*").matches(Community::new(65001, 5)));
    assert!(c("*:5").matches(Community::new(1, 5)));
    assert!(c("no-export").matches(Community::NO_EXPORT));
    assert_eq!(c("no-export").exact(), Some(Community::NO_EXPORT));
    assert_eq!(c("65000:*").exact(), None);
    assert_eq!(c("65000:*").to_string(), "65000:*");
    for bad in ["65536:1", "1", "a:b", "1:2:3"] {
        assert!(bad.parse::<CommunityPattern>().is_err(), "{bad}");
    }
    let l = |s: &str| s.parse::<LargeCommunityPattern>().unwrap();
    let lc = LargeCommunity {
        global: 4_200_000_000,
        local1: 1,
        local2: 2,
    };
    assert!(l("4200000000:1:*").matches(&lc));
    assert!(!l("4200000000:2:*").matches(&lc));
    assert_eq!(l("1:2:3").exact().map(|c| c.local2), Some(3));
    assert!("1:2".parse::<LargeCommunityPattern>().is_err());
    assert!("1:2:3:4".parse::<LargeCommunityPattern>().is_err());
}

#[test]
fn length_ranges() {
    let r = |s: &str| s.parse::<LengthRange>();
    assert_eq!(r("3").unwrap(), LengthRange { ge: 3, le: 3 });
    assert!(r("ge 2").unwrap().contains(100));
    assert!(!r("le 2").unwrap().contains(3));
    assert!(r("ge 4 le 2").is_err());
    assert!(r("le").is_err());
    assert!(r("between 1 2").is_err());
}

#[test]
fn path_length_counts_sets_once_and_skips_confeds() {
    let path = AsPath {
        segments: vec![
            AsSegment {
                kind: SegmentType::ConfedSequence,
                asns: vec![1, 2],
            },
            AsSegment {
                kind: SegmentType::Sequence,
                asns: vec![3, 4],
            },
            AsSegment {
                kind: SegmentType::Set,
                asns: vec![5, 6, 7],
            },
        ],
    };
    assert_eq!(path_length(Some(&path)), 3);
    assert_eq!(flat_asns(Some(&path)), vec![3, 4, 5, 6, 7]);
    // Ending in an AS_SET: no origin AS.
    assert_eq!(origin_as(Some(&path)), None);
    assert_eq!(origin_as(None), None);
}

#[test]
fn strip_add_large_and_prepend_on_export_only() {
    let action = Action {
        strip_communities: true,
        add_large_communities: vec![LargeCommunity {
            global: 64512,
            local1: 0,
            local2: 1,
        }],
        set_med: Some(5),
        prepend: 2,
        ..Default::default()
    };
    assert!(!action.is_plain());
    assert!(Action::default().is_plain());
    let mut a = attrs(&[65001], &[(1, 1)]);
    action.apply(&mut a, 64512, false);
    assert!(a.communities.is_empty());
    assert_eq!(a.large_communities.len(), 1);
    assert_eq!(a.med, Some(5));
    assert_eq!(flat_asns(a.as_path.as_ref()), vec![65001]);
    action.apply(&mut a, 64512, true);
    assert_eq!(flat_asns(a.as_path.as_ref()), vec![64512, 64512, 65001]);
}
