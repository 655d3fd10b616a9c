//! `[[policy]]` tables and the peers' `import_policy` / `export_policy` references.
//!
//! ```toml
//! [[policy]]
//! name = "from-tor"
//! default = "reject"            # when no rule matches (default "reject")
//!
//! [[policy.rules]]
//! name = "no-transit-via-64999"
//! as_path_contains = [64999]
//! action = "reject"
//!
//! [[policy.rules]]
//! name = "prefer-backup-tagged"
//! community = ["65000:100"]
//! set_local_pref = 50
//! remove_communities = ["65000:*"]
//! add_communities = ["64512:1"]
//! ```

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use bgp::policy::{
    Action, AsPathPattern, CommunityPattern, LargeCommunityPattern, LengthRange, Match, Policy,
    PrefixRule, Rule,
};
use bgp::wire::{Community, LargeCommunity};

use super::Checker;
use crate::raw::{RawPolicy, RawRule, S};

/// Most prepends one rule may ask for.
const MAX_PREPEND: i64 = 16;

/// Every `[[policy]]`, checked; None when any is invalid (all problems are reported).
pub(super) fn policies(c: &mut Checker<'_>, raw: &[RawPolicy]) -> Option<Vec<Arc<Policy>>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut ok = true;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for p in raw {
        let name = p.name.get_ref().as_str();
        if !valid_name(name) {
            c.err(p.name.span(), format!("policy.name: {name:?} {NAME_RULE}"));
            ok = false;
        } else if let Some(first) = seen.get(name) {
            let (line, _) = c.loc.line_col(*first);
            c.err(
                p.name.span(),
                format!("policy.name: duplicate policy {name:?} (first defined on line {line})"),
            );
            ok = false;
        } else {
            seen.insert(name, p.name.span().start);
        }
        match policy(c, p) {
            Some(policy) => out.push(Arc::new(policy)),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

const NAME_RULE: &str = "must be 1..=64 characters of letters, digits, '-', '_' or '.'";

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
}

fn policy(c: &mut Checker<'_>, raw: &RawPolicy) -> Option<Policy> {
    let default_accept = match &raw.default {
        Some(d) => c.one_of(d, "policy.default", &[("accept", true), ("reject", false)]),
        None => Some(false),
    };
    let mut rules = Vec::with_capacity(raw.rules.len());
    let mut ok = true;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in &raw.rules {
        let name = r.name.get_ref().as_str();
        if !valid_name(name) {
            c.err(
                r.name.span(),
                format!("policy.rules.name: {name:?} {NAME_RULE}"),
            );
            ok = false;
        } else if let Some(first) = seen.get(name) {
            let (line, _) = c.loc.line_col(*first);
            c.err(
                r.name.span(),
                format!(
                    "policy.rules.name: duplicate rule {name:?} in policy {:?} (first defined on line {line})",
                    raw.name.get_ref()
                ),
            );
            ok = false;
        } else {
            seen.insert(name, r.name.span().start);
        }
        match rule(c, r) {
            Some(rule) => rules.push(rule),
            None => ok = false,
        }
    }
    Some(Policy::new(
        raw.name.get_ref().clone(),
        ok.then_some(rules)?,
        default_accept?,
    ))
}

/// Each entry of `list` parsed with `FromStr`; errors at the entry.
fn each<T: FromStr>(c: &mut Checker<'_>, list: &Option<Vec<S<String>>>, key: &str) -> Option<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    let mut out = Vec::new();
    let mut ok = true;
    for v in list.iter().flatten() {
        match v.get_ref().parse::<T>() {
            Ok(t) => out.push(t),
            Err(e) => {
                c.err(v.span(), format!("{key}: {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn one<T: FromStr>(c: &mut Checker<'_>, v: &Option<S<String>>, key: &str) -> Option<Option<T>>
where
    T::Err: std::fmt::Display,
{
    let Some(v) = v else {
        return Some(None);
    };
    match v.get_ref().parse::<T>() {
        Ok(t) => Some(Some(t)),
        Err(e) => {
            c.err(v.span(), format!("{key}: {e}"));
            None
        }
    }
}

fn asns(c: &mut Checker<'_>, list: &Option<Vec<S<i64>>>, key: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    let mut ok = true;
    for v in list.iter().flatten() {
        match c.int(v, key, 0, i64::from(u32::MAX)) {
            Some(a) => out.push(a),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// Communities to add: patterns without wildcards.
fn exact<P, T>(
    c: &mut Checker<'_>,
    list: &Option<Vec<S<String>>>,
    key: &str,
    exact: impl Fn(&P) -> Option<T>,
) -> Option<Vec<T>>
where
    P: FromStr,
    P::Err: std::fmt::Display,
{
    let mut out = Vec::new();
    let mut ok = true;
    for v in list.iter().flatten() {
        match v.get_ref().parse::<P>() {
            Ok(p) => match exact(&p) {
                Some(t) => out.push(t),
                None => {
                    c.err(
                        v.span(),
                        format!(
                            "{key}: {:?} has a wildcard; only whole values can be added",
                            v.get_ref()
                        ),
                    );
                    ok = false;
                }
            },
            Err(e) => {
                c.err(v.span(), format!("{key}: {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn rule(c: &mut Checker<'_>, r: &RawRule) -> Option<Rule> {
    let prefix = each::<PrefixRule>(c, &r.prefix, "policy.rules.prefix");
    let as_path_contains = asns(c, &r.as_path_contains, "policy.rules.as_path_contains");
    let origin_as = asns(c, &r.origin_as, "policy.rules.origin_as");
    let as_path_length = one::<LengthRange>(c, &r.as_path_length, "policy.rules.as_path_length");
    let as_path = one::<AsPathPattern>(c, &r.as_path, "policy.rules.as_path");
    let community = each::<CommunityPattern>(c, &r.community, "policy.rules.community");
    let large_community =
        each::<LargeCommunityPattern>(c, &r.large_community, "policy.rules.large_community");

    let accept = match &r.action {
        Some(a) => c.one_of(
            a,
            "policy.rules.action",
            &[("accept", true), ("reject", false)],
        ),
        None => Some(true),
    };
    let set_local_pref = r
        .set_local_pref
        .as_ref()
        .map(|v| c.int(v, "policy.rules.set_local_pref", 0, i64::from(u32::MAX)));
    let set_med = r
        .set_med
        .as_ref()
        .map(|v| c.int(v, "policy.rules.set_med", 0, i64::from(u32::MAX)));
    let prepend = c.int_or(&r.prepend, "policy.rules.prepend", 0, MAX_PREPEND, 0u8);
    let add_communities = exact::<CommunityPattern, Community>(
        c,
        &r.add_communities,
        "policy.rules.add_communities",
        CommunityPattern::exact,
    );
    let remove_communities =
        each::<CommunityPattern>(c, &r.remove_communities, "policy.rules.remove_communities");
    let add_large_communities = exact::<LargeCommunityPattern, LargeCommunity>(
        c,
        &r.add_large_communities,
        "policy.rules.add_large_communities",
        LargeCommunityPattern::exact,
    );
    let remove_large_communities = each::<LargeCommunityPattern>(
        c,
        &r.remove_large_communities,
        "policy.rules.remove_large_communities",
    );
    let action = Action {
        accept: accept?,
        set_local_pref: optional(set_local_pref)?,
        set_med: optional(set_med)?,
        strip_communities: r.strip_communities.unwrap_or(false),
        remove_communities: remove_communities?,
        remove_large_communities: remove_large_communities?,
        add_communities: add_communities?,
        add_large_communities: add_large_communities?,
        prepend: prepend?,
    };
    if !action.accept && !action.is_plain() {
        if let Some(a) = &r.action {
            c.err(
                a.span(),
                format!(
                    "policy.rules.action: rule {:?} rejects, so its set/add/remove/strip/prepend keys have no effect",
                    r.name.get_ref()
                ),
            );
            return None;
        }
    }
    Some(Rule::new(
        r.name.get_ref().clone(),
        Match {
            prefix: prefix?,
            as_path_contains: as_path_contains?,
            origin_as: origin_as?,
            as_path_length: as_path_length?,
            as_path: as_path?,
            community: community?,
            large_community: large_community?,
        },
        action,
    ))
}

fn optional<T>(checked: Option<Option<T>>) -> Option<Option<T>> {
    match checked {
        None => Some(None),
        Some(Some(v)) => Some(Some(v)),
        Some(None) => None,
    }
}

/// The policy a peer's `import_policy` / `export_policy` names.
pub(super) fn reference(
    c: &mut Checker<'_>,
    name: &Option<S<String>>,
    policies: Option<&[Arc<Policy>]>,
    key: &str,
) -> Option<Option<Arc<Policy>>> {
    let Some(name) = name else {
        return Some(None);
    };
    // Policies that failed validation were reported already.
    let policies = policies?;
    match policies.iter().find(|p| p.name == *name.get_ref()) {
        Some(p) => Some(Some(p.clone())),
        None => {
            let known: Vec<String> = policies.iter().map(|p| format!("{:?}", p.name)).collect();
            let known = if known.is_empty() {
                "none is defined".to_string()
            } else {
                format!("defined: {}", known.join(", "))
            };
            c.err(
                name.span(),
                format!("{key}: no [[policy]] named {:?} ({known})", name.get_ref()),
            );
            None
        }
    }
}
