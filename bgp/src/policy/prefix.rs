//! Prefix-list entries (`"10.0.0.0/8 le 32"`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::wire::Prefix;

/// A prefix-list entry: matches prefixes inside `prefix` whose length is in `ge..=le`
/// (both default to the entry's own length, so a bare prefix matches only itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixRule {
    pub prefix: Prefix,
    pub ge: u8,
    pub le: u8,
}

/// Why a prefix rule did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixRuleError {
    #[error("expected \"PREFIX [ge N] [le N]\", got {0:?}")]
    Syntax(String),
    #[error("invalid prefix {0:?}")]
    Prefix(String),
    #[error("prefix {0} has host bits set (did you mean {1}?)")]
    NotMasked(String, Prefix),
    #[error("invalid length {0:?} (must be {1}..={2})")]
    Length(String, u8, u8),
}

impl PrefixRule {
    /// True when `p` is inside this rule's prefix with a length in `ge..=le`.
    pub fn matches(&self, p: &Prefix) -> bool {
        let len = p.prefix();
        len >= self.ge && len <= self.le && self.prefix.prefix() <= len && contains(&self.prefix, p)
    }
}

fn contains(outer: &Prefix, inner: &Prefix) -> bool {
    match (outer, inner) {
        (Prefix::V4(o), Prefix::V4(i)) => o.contains(i.network()),
        (Prefix::V6(o), Prefix::V6(i)) => o.contains(i.network()),
        _ => false,
    }
}

/// A prefix with its host bits cleared.
pub fn masked(p: Prefix) -> Prefix {
    match p {
        Prefix::V4(n) => {
            Prefix::V4(ipnetwork::Ipv4Network::new(n.network(), n.prefix()).unwrap_or(n))
        }
        Prefix::V6(n) => {
            Prefix::V6(ipnetwork::Ipv6Network::new(n.network(), n.prefix()).unwrap_or(n))
        }
    }
}

impl FromStr for PrefixRule {
    type Err = PrefixRuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split_whitespace();
        let first = words
            .next()
            .ok_or_else(|| PrefixRuleError::Syntax(s.into()))?;
        let prefix: Prefix = first
            .parse()
            .map_err(|_| PrefixRuleError::Prefix(first.into()))?;
        if masked(prefix) != prefix {
            return Err(PrefixRuleError::NotMasked(first.into(), masked(prefix)));
        }
        let own = prefix.prefix();
        let max = if prefix.is_ipv4() { 32 } else { 128 };
        let (mut ge, mut le) = (own, own);
        let mut saw_ge = false;
        let mut saw_le = false;
        while let Some(word) = words.next() {
            let value = words
                .next()
                .ok_or_else(|| PrefixRuleError::Syntax(s.into()))?;
            let n: u8 = value
                .parse()
                .ok()
                .filter(|n| (own..=max).contains(n))
                .ok_or_else(|| PrefixRuleError::Length(value.into(), own, max))?;
            match word {
                "ge" if !saw_ge => {
                    ge = n;
                    saw_ge = true;
                    if !saw_le {
                        le = max;
                    }
                }
                "le" if !saw_le => {
                    le = n;
                    saw_le = true;
                }
                _ => return Err(PrefixRuleError::Syntax(s.into())),
            }
        }
        if ge > le {
            return Err(PrefixRuleError::Syntax(s.into()));
        }
        Ok(PrefixRule { prefix, ge, le })
    }
}

impl fmt::Display for PrefixRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        let own = self.prefix.prefix();
        if self.ge != own {
            write!(f, " ge {}", self.ge)?;
        }
        if self.le != own {
            write!(f, " le {}", self.le)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_matches() {
        let r: PrefixRule = "10.0.0.0/8 le 32".parse().unwrap();
        assert!(r.matches(&p("10.1.2.3/32")));
        assert!(r.matches(&p("10.0.0.0/8")));
        assert!(!r.matches(&p("11.0.0.0/8")));
        assert!(!r.matches(&p("10.0.0.0/7")));
        let exact: PrefixRule = "192.0.2.0/24".parse().unwrap();
        assert!(exact.matches(&p("192.0.2.0/24")));
        assert!(!exact.matches(&p("192.0.2.0/25")));
        let ge: PrefixRule = "2001:db8::/32 ge 64".parse().unwrap();
        assert!(ge.matches(&p("2001:db8:1::/64")));
        assert!(ge.matches(&p("2001:db8::1/128")));
        assert!(!ge.matches(&p("2001:db8::/48")));
        assert!(!ge.matches(&p("10.0.0.0/8")));
        assert_eq!(ge.to_string(), "2001:db8::/32 ge 64 le 128");
    }

    #[test]
    fn rejects_bad_rules() {
        assert!(matches!(
            "10.0.0.1/8".parse::<PrefixRule>(),
            Err(PrefixRuleError::NotMasked(..))
        ));
        assert!(matches!(
            "10.0.0.0/8 le 33".parse::<PrefixRule>(),
            Err(PrefixRuleError::Length(..))
        ));
        assert!(matches!(
            "10.0.0.0/8 le".parse::<PrefixRule>(),
            Err(PrefixRuleError::Syntax(..))
        ));
        assert!(matches!(
            "10.0.0.0/8 xx 9".parse::<PrefixRule>(),
            Err(PrefixRuleError::Syntax(..))
        ));
        assert!(matches!(
            "10.0.0.0/8 ge 20 le 16".parse::<PrefixRule>(),
            Err(PrefixRuleError::Syntax(..))
        ));
        assert!(matches!(
            "banana".parse::<PrefixRule>(),
            Err(PrefixRuleError::Prefix(..))
        ));
    }
}
