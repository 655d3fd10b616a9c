//! Named policies: ordered rules, the first whose match holds decides (accept or reject,
//! with attribute changes on accept); no rule matching takes the policy's default.

use std::sync::Arc;

use crate::wire::{AsPath, Community, LargeCommunity, PathAttrs, Prefix};

use super::patterns::{
    flat_asns, origin_as, path_length, AsPathPattern, CommunityPattern, LargeCommunityPattern,
    LengthRange,
};
use super::prefix::PrefixRule;

/// Conditions of a rule. Every condition given must hold (AND); a list condition holds when
/// any of its entries does (OR). No condition at all matches every route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// The route's prefix matches one of these entries.
    pub prefix: Vec<PrefixRule>,
    /// One of these ASes is anywhere in the AS_PATH.
    pub as_path_contains: Vec<u32>,
    /// The origin AS (last of the path, see [`origin_as`]) is one of these.
    pub origin_as: Vec<u32>,
    /// The AS_PATH length (RFC 4271 §9.1.2.2 a) is in this range.
    pub as_path_length: Option<LengthRange>,
    /// The whole AS_PATH matches this pattern.
    pub as_path: Option<AsPathPattern>,
    /// One of these communities is present.
    pub community: Vec<CommunityPattern>,
    /// One of these large communities is present.
    pub large_community: Vec<LargeCommunityPattern>,
}

impl Match {
    /// Whether the route (`prefix` with `attrs`) meets every condition.
    pub fn holds(&self, prefix: &Prefix, attrs: &PathAttrs) -> bool {
        let path = attrs.as_path.as_ref();
        (self.prefix.is_empty() || self.prefix.iter().any(|r| r.matches(prefix)))
            && (self.as_path_contains.is_empty() || {
                let asns = flat_asns(path);
                self.as_path_contains.iter().any(|a| asns.contains(a))
            })
            && (self.origin_as.is_empty()
                || origin_as(path).is_some_and(|o| self.origin_as.contains(&o)))
            && self
                .as_path_length
                .is_none_or(|r| r.contains(path_length(path)))
            && self
                .as_path
                .as_ref()
                .is_none_or(|p| p.matches(&flat_asns(path)))
            && (self.community.is_empty()
                || attrs
                    .communities
                    .iter()
                    .any(|c| self.community.iter().any(|p| p.matches(*c))))
            && (self.large_community.is_empty()
                || attrs
                    .large_communities
                    .iter()
                    .any(|c| self.large_community.iter().any(|p| p.matches(c))))
    }
}

/// What a rule does with the routes it matches. The changes apply only on accept, in this
/// order: strip, remove, add communities; LOCAL_PREF; MED; prepend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub accept: bool,
    pub set_local_pref: Option<u32>,
    pub set_med: Option<u32>,
    /// Remove every standard and large community first.
    pub strip_communities: bool,
    pub remove_communities: Vec<CommunityPattern>,
    pub remove_large_communities: Vec<LargeCommunityPattern>,
    pub add_communities: Vec<Community>,
    pub add_large_communities: Vec<LargeCommunity>,
    /// Prepend our own AS this many times more (export only; ignored on import).
    pub prepend: u8,
}

impl Default for Action {
    fn default() -> Self {
        Action {
            accept: true,
            set_local_pref: None,
            set_med: None,
            strip_communities: false,
            remove_communities: Vec::new(),
            remove_large_communities: Vec::new(),
            add_communities: Vec::new(),
            add_large_communities: Vec::new(),
            prepend: 0,
        }
    }
}

impl Action {
    /// True when an accepted route leaves this rule with the attributes it came with.
    pub fn is_plain(&self) -> bool {
        *self
            == Action {
                accept: self.accept,
                ..Action::default()
            }
    }

    /// Applies the changes to `attrs`; `own_asn` is prepended `prepend` times when
    /// `export`. Returns whether anything changed.
    pub fn apply(&self, attrs: &mut PathAttrs, own_asn: u32, export: bool) -> bool {
        let before = attrs.clone();
        if self.strip_communities {
            attrs.communities.clear();
            attrs.large_communities.clear();
        }
        if !self.remove_communities.is_empty() {
            attrs
                .communities
                .retain(|c| !self.remove_communities.iter().any(|p| p.matches(*c)));
        }
        if !self.remove_large_communities.is_empty() {
            attrs
                .large_communities
                .retain(|c| !self.remove_large_communities.iter().any(|p| p.matches(c)));
        }
        for c in &self.add_communities {
            if !attrs.communities.contains(c) {
                attrs.communities.push(*c);
            }
        }
        for c in &self.add_large_communities {
            if !attrs.large_communities.contains(c) {
                attrs.large_communities.push(*c);
            }
        }
        if let Some(lp) = self.set_local_pref {
            attrs.local_pref = Some(lp);
        }
        if let Some(med) = self.set_med {
            attrs.med = Some(med);
        }
        if export && self.prepend > 0 {
            let path = attrs.as_path.get_or_insert_with(AsPath::default);
            for _ in 0..self.prepend {
                path.prepend(own_asn);
            }
        }
        *attrs != before
    }
}

/// One named rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub when: Match,
    pub action: Action,
    /// "policy P rule R", shared by every route this rule rejects (no allocation per route).
    note: Arc<str>,
}

impl Rule {
    pub fn new(name: impl Into<String>, when: Match, action: Action) -> Self {
        let name = name.into();
        Rule {
            note: Arc::from(name.as_str()),
            name,
            when,
            action,
        }
    }
}

/// A named policy: rules in order, first match decides, else `default_accept`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub rules: Vec<Rule>,
    pub default_accept: bool,
    default_note: Arc<str>,
}

/// How a policy decided one route: the index of the rule, or None for the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    pub rule: Option<usize>,
    pub accept: bool,
}

impl Policy {
    pub fn new(name: impl Into<String>, rules: Vec<Rule>, default_accept: bool) -> Self {
        let name = name.into();
        let rules = rules
            .into_iter()
            .map(|r| Rule {
                note: Arc::from(format!("policy {name} rule {}: reject", r.name)),
                ..r
            })
            .collect();
        Policy {
            default_note: Arc::from(format!("policy {name}: no rule matched (default reject)")),
            name,
            rules,
            default_accept,
        }
    }

    /// The first rule whose match holds, else the default.
    pub fn decide(&self, prefix: &Prefix, attrs: &PathAttrs) -> Decision {
        match self.rules.iter().position(|r| r.when.holds(prefix, attrs)) {
            Some(i) => Decision {
                rule: Some(i),
                accept: self.rules.get(i).is_some_and(|r| r.action.accept),
            },
            None => Decision {
                rule: None,
                accept: self.default_accept,
            },
        }
    }

    /// The shared note for a route rejected by `d`.
    pub fn reject_note(&self, d: Decision) -> Arc<str> {
        d.rule
            .and_then(|i| self.rules.get(i))
            .map_or_else(|| self.default_note.clone(), |r| r.note.clone())
    }

    /// "policy P rule R" / "policy P default" for an accepted route.
    pub fn describe(&self, d: Decision) -> String {
        match d.rule.and_then(|i| self.rules.get(i)) {
            Some(r) => format!("policy {} rule {}", self.name, r.name),
            None => format!("policy {} default", self.name),
        }
    }

    /// Applies the changes of the rule that accepted a route. Returns whether anything
    /// changed.
    pub fn apply(&self, d: Decision, attrs: &mut PathAttrs, own_asn: u32, export: bool) -> bool {
        match d.rule.and_then(|i| self.rules.get(i)) {
            Some(r) if d.accept => r.action.apply(attrs, own_asn, export),
            _ => false,
        }
    }
}
