//! Import and export policy.
//!
//! A peer's [`Filter`] (one for import, one for export) has two optional parts, both of
//! which a route must pass:
//! - `rules`: a prefix list (`"10.0.0.0/8 le 32"`), the route's prefix must match an entry;
//! - `policy`: a named [`Policy`] — ordered rules, the first whose [`Match`] holds decides
//!   accept or reject and may change attributes ([`Action`]); no match takes the policy's
//!   default (reject unless configured otherwise).
//!
//! Neither part set means "no policy configured": deny-all for eBGP (RFC 8212 §3),
//! accept-all for iBGP.
//!
//! Match forms (see `patterns.rs`): prefix entries; `as_path_contains` (ASNs anywhere in
//! the path); `origin_as`; `as_path_length` (`"3"`, `"ge 2"`, `"le 4"`, `"ge 2 le 4"`);
//! `as_path`, a whole-path pattern of ASNs, `?` (one AS) and `*` (any ASes), e.g. `"* 64512"`
//! (originated by 64512, BIRD's `[= * 64512 =]`); `community` (`"65000:100"`,
//! `"65000:*"`, `"no-export"`); `large_community` (`"65000:1:*"`).

mod language;
mod patterns;
mod prefix;

use std::sync::{Arc, LazyLock};

pub use language::{Action, Decision, Match, Policy, Rule};
pub use patterns::{
    flat_asns, origin_as, path_length, AsPathPattern, AsPathToken, CommunityPattern,
    LargeCommunityPattern, LengthRange, PatternError, MAX_PATTERN_TOKENS,
};
pub use prefix::{masked, PrefixRule, PrefixRuleError};

use crate::wire::{PathAttrs, Prefix};

/// The note of a route a prefix list rejected.
static PREFIX_LIST_NOTE: LazyLock<Arc<str>> =
    LazyLock::new(|| Arc::from("rejected by import filter"));
/// The note of an eBGP route rejected because no policy is configured.
static RFC8212_NOTE: LazyLock<Arc<str>> =
    LazyLock::new(|| Arc::from("no import policy for eBGP (RFC 8212 default deny)"));

/// An import or export filter: a prefix list and/or a named policy. Both `None` means "no
/// policy configured": for eBGP peers that is deny-all (RFC 8212 §3), for iBGP accept-all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub rules: Option<Vec<PrefixRule>>,
    pub policy: Option<Arc<Policy>>,
}

/// The outcome of a [`Filter`] for one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted; with the policy's decision when a policy is set (its changes still to be
    /// applied with [`Filter::apply`]).
    Accept(Option<Decision>),
    /// Rejected, with a note naming what rejected it (shared, not allocated per route).
    Reject(Arc<str>),
}

impl Filter {
    /// A filter of just a prefix list.
    pub fn prefixes(rules: Vec<PrefixRule>) -> Self {
        Filter {
            rules: Some(rules),
            policy: None,
        }
    }

    /// True when neither a prefix list nor a policy is set.
    pub fn is_unset(&self) -> bool {
        self.rules.is_none() && self.policy.is_none()
    }

    /// True when no route can pass: on eBGP with nothing configured (RFC 8212 §3), or with
    /// an empty prefix list. Lets the speaker skip a peer without evaluating every route.
    pub fn denies_all(&self, ebgp: bool) -> bool {
        match &self.rules {
            None => ebgp && self.policy.is_none(),
            Some(rules) => rules.is_empty(),
        }
    }

    /// Whether `p` passes the prefix-list part on a session that is eBGP (`ebgp`) or not
    /// (the RFC 8212 default applies when nothing at all is configured).
    pub fn permits(&self, p: &Prefix, ebgp: bool) -> bool {
        match &self.rules {
            None => !ebgp || self.policy.is_some(),
            Some(rules) => rules.iter().any(|r| r.matches(p)),
        }
    }

    /// The verdict for the route `p` with `attrs`.
    pub fn evaluate(&self, p: &Prefix, attrs: &PathAttrs, ebgp: bool) -> Verdict {
        if !self.permits(p, ebgp) {
            return Verdict::Reject(if self.is_unset() {
                RFC8212_NOTE.clone()
            } else {
                PREFIX_LIST_NOTE.clone()
            });
        }
        match &self.policy {
            None => Verdict::Accept(None),
            Some(policy) => {
                let d = policy.decide(p, attrs);
                if d.accept {
                    Verdict::Accept(Some(d))
                } else {
                    Verdict::Reject(policy.reject_note(d))
                }
            }
        }
    }

    /// Applies the changes of an accepting decision; `own_asn` is prepended on export.
    /// Returns whether anything changed.
    pub fn apply(&self, d: Decision, attrs: &mut PathAttrs, own_asn: u32, export: bool) -> bool {
        self.policy
            .as_ref()
            .is_some_and(|p| p.apply(d, attrs, own_asn, export))
    }

    /// "policy P rule R" for an accepting decision.
    pub fn describe(&self, d: Decision) -> Option<String> {
        self.policy.as_ref().map(|p| p.describe(d))
    }
}

#[cfg(test)]
mod tests;
