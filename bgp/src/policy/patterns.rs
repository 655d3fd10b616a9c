//! The small match forms of the policy language: community and large-community patterns,
//! AS-path patterns and AS-path length ranges. Each parses from the string written in the
//! config file and prints back to it.

use std::fmt;
use std::str::FromStr;

use crate::wire::{AsPath, Community, LargeCommunity, SegmentType};

/// Why a pattern did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("expected \"ASN:VALUE\" (each 0..=65535 or *), or no-export, no-advertise, no-export-subconfed; got {0:?}")]
    Community(String),
    #[error("expected \"GLOBAL:LOCAL1:LOCAL2\" (each 0..=4294967295 or *), got {0:?}")]
    LargeCommunity(String),
    #[error("expected AS numbers, ? (any one AS) and * (any ASes) separated by spaces, got {0:?}")]
    AsPath(String),
    #[error("expected \"N\", \"ge N\", \"le N\" or \"ge N le M\" (N <= M), got {0:?}")]
    Length(String),
    #[error("at most {0} tokens in an AS-path pattern")]
    TooLong(usize),
}

/// A standard community (RFC 1997) pattern: `65000:100`, `65000:*`, `*:100`, or a
/// well-known name. `None` halves match anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommunityPattern {
    pub asn: Option<u16>,
    pub value: Option<u16>,
}

impl CommunityPattern {
    pub fn matches(&self, c: Community) -> bool {
        let (asn, value) = ((c.0 >> 16) as u16, (c.0 & 0xffff) as u16);
        self.asn.is_none_or(|a| a == asn) && self.value.is_none_or(|v| v == value)
    }

    /// The one community this pattern names, when it has no wildcard (for `add_communities`).
    pub fn exact(&self) -> Option<Community> {
        Some(Community::new(self.asn?, self.value?))
    }
}

fn part<T: FromStr>(s: &str) -> Result<Option<T>, ()> {
    if s == "*" {
        Ok(None)
    } else {
        s.parse().map(Some).map_err(|_| ())
    }
}

impl FromStr for CommunityPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let named = match s {
            "no-export" => Some(Community::NO_EXPORT),
            "no-advertise" => Some(Community::NO_ADVERTISE),
            "no-export-subconfed" => Some(Community::NO_EXPORT_SUBCONFED),
            _ => None,
        };
        if let Some(c) = named {
            return Ok(CommunityPattern {
                asn: Some((c.0 >> 16) as u16),
                value: Some((c.0 & 0xffff) as u16),
            });
        }
        let err = || PatternError::Community(s.into());
        let (a, v) = s.split_once(':').ok_or_else(err)?;
        Ok(CommunityPattern {
            asn: part(a).map_err(|_| err())?,
            value: part(v).map_err(|_| err())?,
        })
    }
}

fn star<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "*".to_string(), |v| v.to_string())
}

impl fmt::Display for CommunityPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exact() {
            Some(c) => write!(f, "{c}"),
            None => write!(f, "{}:{}", star(self.asn), star(self.value)),
        }
    }
}

/// A large community (RFC 8092) pattern: `65000:1:2`, `65000:*:*`…
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LargeCommunityPattern {
    pub global: Option<u32>,
    pub local1: Option<u32>,
    pub local2: Option<u32>,
}

impl LargeCommunityPattern {
    pub fn matches(&self, c: &LargeCommunity) -> bool {
        self.global.is_none_or(|g| g == c.global)
            && self.local1.is_none_or(|l| l == c.local1)
            && self.local2.is_none_or(|l| l == c.local2)
    }

    /// The one large community this pattern names, when it has no wildcard.
    pub fn exact(&self) -> Option<LargeCommunity> {
        Some(LargeCommunity {
            global: self.global?,
            local1: self.local1?,
            local2: self.local2?,
        })
    }
}

impl FromStr for LargeCommunityPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PatternError::LargeCommunity(s.into());
        let mut parts = s.split(':');
        let mut next = || part::<u32>(parts.next().ok_or(())?);
        let out = LargeCommunityPattern {
            global: next().map_err(|_| err())?,
            local1: next().map_err(|_| err())?,
            local2: next().map_err(|_| err())?,
        };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(out)
    }
}

impl fmt::Display for LargeCommunityPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            star(self.global),
            star(self.local1),
            star(self.local2)
        )
    }
}

/// One token of an [`AsPathPattern`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsPathToken {
    Asn(u32),
    /// `?`: exactly one AS.
    One,
    /// `*`: zero or more ASes.
    Any,
}

/// Longest AS-path pattern accepted (keeps matching cost trivially bounded).
pub const MAX_PATTERN_TOKENS: usize = 32;

/// A whole-path AS-path pattern, like BIRD's `[= … =]`: `"* 64512"` = originated by 64512,
/// `"65001 *"` = learned from neighbour AS 65001, `"* 64999 *"` = passes through 64999,
/// `"?"` = exactly one AS. The path is matched as the flat list of its ASes in order (an
/// AS_SET's members in their received order; confederation segments are skipped).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsPathPattern(pub Vec<AsPathToken>);

impl AsPathPattern {
    pub fn matches(&self, path: &[u32]) -> bool {
        let pat = &self.0;
        // reach[j]: the first j tokens can match the path prefix consumed so far.
        let mut reach = vec![false; pat.len() + 1];
        reach[0] = true;
        close_stars(pat, &mut reach);
        for &asn in path {
            let mut next = vec![false; pat.len() + 1];
            for (j, tok) in pat.iter().enumerate() {
                if !reach.get(j).copied().unwrap_or(false) {
                    continue;
                }
                match tok {
                    AsPathToken::Any => next[j] = true,
                    AsPathToken::One => next[j + 1] = true,
                    AsPathToken::Asn(a) if *a == asn => next[j + 1] = true,
                    AsPathToken::Asn(_) => {}
                }
            }
            close_stars(pat, &mut next);
            reach = next;
        }
        reach.last().copied().unwrap_or(false)
    }
}

/// A `*` may match nothing: reaching it means reaching the token after it too.
fn close_stars(pat: &[AsPathToken], reach: &mut [bool]) {
    for (j, tok) in pat.iter().enumerate() {
        if *tok == AsPathToken::Any && reach.get(j).copied().unwrap_or(false) {
            if let Some(r) = reach.get_mut(j + 1) {
                *r = true;
            }
        }
    }
}

impl FromStr for AsPathPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let tokens = s
            .split_whitespace()
            .map(|w| match w {
                "*" => Ok(AsPathToken::Any),
                "?" => Ok(AsPathToken::One),
                n => n
                    .parse()
                    .map(AsPathToken::Asn)
                    .map_err(|_| PatternError::AsPath(s.into())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if tokens.len() > MAX_PATTERN_TOKENS {
            return Err(PatternError::TooLong(MAX_PATTERN_TOKENS));
        }
        Ok(AsPathPattern(tokens))
    }
}

impl fmt::Display for AsPathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match t {
                AsPathToken::Asn(a) => write!(f, "{a}")?,
                AsPathToken::One => f.write_str("?")?,
                AsPathToken::Any => f.write_str("*")?,
            }
        }
        Ok(())
    }
}

/// An inclusive AS-path length range: `"3"`, `"ge 2"`, `"le 4"`, `"ge 2 le 4"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LengthRange {
    pub ge: u32,
    pub le: u32,
}

impl LengthRange {
    pub fn contains(&self, n: u32) -> bool {
        (self.ge..=self.le).contains(&n)
    }
}

impl FromStr for LengthRange {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PatternError::Length(s.into());
        let words: Vec<&str> = s.split_whitespace().collect();
        let num = |w: &str| w.parse::<u32>().map_err(|_| err());
        let r = match words.as_slice() {
            [n] => {
                let n = num(n)?;
                LengthRange { ge: n, le: n }
            }
            ["ge", n] => LengthRange {
                ge: num(n)?,
                le: u32::MAX,
            },
            ["le", n] => LengthRange { ge: 0, le: num(n)? },
            ["ge", a, "le", b] => LengthRange {
                ge: num(a)?,
                le: num(b)?,
            },
            _ => return Err(err()),
        };
        if r.ge > r.le {
            return Err(err());
        }
        Ok(r)
    }
}

/// The path's ASes in order, as the pattern and "contains" matches see them.
pub fn flat_asns(path: Option<&AsPath>) -> Vec<u32> {
    path.iter()
        .flat_map(|p| p.segments.iter())
        .filter(|s| matches!(s.kind, SegmentType::Sequence | SegmentType::Set))
        .flat_map(|s| s.asns.iter().copied())
        .collect()
}

/// AS_PATH length as the decision process counts it (RFC 4271 §9.1.2.2 a): an AS_SET
/// counts 1, confederation segments 0 (RFC 5065 §5.3).
pub fn path_length(path: Option<&AsPath>) -> u32 {
    path.iter()
        .flat_map(|p| p.segments.iter())
        .map(|s| match s.kind {
            SegmentType::Sequence => u32::try_from(s.asns.len()).unwrap_or(u32::MAX),
            SegmentType::Set => 1,
            SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
        })
        .fold(0u32, u32::saturating_add)
}

/// The origin AS: the last AS of the path when the last segment is an AS_SEQUENCE; none for
/// an empty path (our own routes) or one ending in an AS_SET (as RFC 6811 §2 treats it).
pub fn origin_as(path: Option<&AsPath>) -> Option<u32> {
    let last = path?
        .segments
        .iter()
        .rev()
        .find(|s| matches!(s.kind, SegmentType::Sequence | SegmentType::Set))?;
    match last.kind {
        SegmentType::Sequence => last.asns.last().copied(),
        _ => None,
    }
}
