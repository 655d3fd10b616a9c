//! Long-Lived Graceful Restart (RFC 9494): the capability (code 71) and the two well-known
//! communities. The capability travels as [`Capability::Unknown`] (so no existing match on
//! `Capability` changes); [`LlgrCap`] reads and builds it.

use super::{Capability, Community, Family};

/// IANA capability code of Long-Lived Graceful Restart (RFC 9494 §3).
pub const LLGR_CAPABILITY_CODE: u8 = 71;

/// Flag bit of a family entry: forwarding state preserved (RFC 9494 §3).
const LLGR_FORWARDING: u8 = 0x80;

/// Largest Long-Lived Stale Time: a 24-bit field (RFC 9494 §3).
pub const LLGR_MAX_STALE_TIME: u32 = 0x00ff_ffff;

impl Community {
    /// LLGR_STALE (RFC 9494 §5.1): the route is kept as long-lived stale.
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    /// NO_LLGR (RFC 9494 §5.2): do not keep the route as long-lived stale.
    pub const NO_LLGR: Community = Community(0xFFFF_0007);
}

// ===== LLGR capability (RFC 9494 §3) =====
//
//  +--------------------------------------------------+
//  | Address Family Identifier (16 bits)              |
//  +--------------------------------------------------+
//  | Subsequent Address Family Identifier (8 bits)    |
//  +--------------------------------------------------+
//  | Flags for Address Family (8 bits)                |
//  +--------------------------------------------------+
//  | Long-lived Stale Time (24 bits)                  |
//  +--------------------------------------------------+
//  ... repeated per family
/// One family of the LLGR capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlgrFamily {
    pub family: Family,
    /// The F bit: forwarding state preserved for the family.
    pub forwarding: bool,
    /// Long-lived Stale Time, seconds (24 bits).
    pub stale_time: u32,
}

/// The Long-Lived Graceful Restart capability.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LlgrCap {
    pub families: Vec<LlgrFamily>,
}

impl LlgrCap {
    /// The LLGR capability among `caps`, if there is a well-formed one. A malformed value
    /// (length not a multiple of 7) is ignored, as an unknown capability would be.
    pub fn find(caps: &[Capability]) -> Option<LlgrCap> {
        caps.iter().find_map(LlgrCap::from_capability)
    }

    /// Reads `cap` if it is a well-formed LLGR capability.
    pub fn from_capability(cap: &Capability) -> Option<LlgrCap> {
        let Capability::Unknown { code, value } = cap else {
            return None;
        };
        if *code != LLGR_CAPABILITY_CODE || value.len() % 7 != 0 {
            return None;
        }
        let families = value
            .chunks_exact(7)
            .map(|c| LlgrFamily {
                family: Family {
                    afi: u16::from_be_bytes([c[0], c[1]]),
                    safi: c[2],
                },
                forwarding: c[3] & LLGR_FORWARDING != 0,
                stale_time: u32::from_be_bytes([0, c[4], c[5], c[6]]),
            })
            .collect();
        Some(LlgrCap { families })
    }

    /// The capability to put in an OPEN. Stale times above 24 bits are capped.
    pub fn to_capability(&self) -> Capability {
        let mut value = Vec::with_capacity(7 * self.families.len());
        for f in &self.families {
            value.extend_from_slice(&f.family.afi.to_be_bytes());
            value.push(f.family.safi);
            value.push(if f.forwarding { LLGR_FORWARDING } else { 0 });
            let t = f.stale_time.min(LLGR_MAX_STALE_TIME).to_be_bytes();
            value.extend_from_slice(&t[1..]);
        }
        Capability::Unknown {
            code: LLGR_CAPABILITY_CODE,
            value,
        }
    }

    /// The entry for `family`, if listed.
    pub fn family(&self, family: Family) -> Option<&LlgrFamily> {
        self.families.iter().find(|f| f.family == family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_round_trips_and_matches_the_rfc_layout() {
        let cap = LlgrCap {
            families: vec![
                LlgrFamily {
                    family: Family::IPV4_UNICAST,
                    forwarding: true,
                    stale_time: 86_400,
                },
                LlgrFamily {
                    family: Family::IPV6_UNICAST,
                    forwarding: false,
                    stale_time: 0x12_3456,
                },
            ],
        };
        let wire = cap.to_capability();
        assert_eq!(
            wire,
            Capability::Unknown {
                code: 71,
                value: vec![0, 1, 1, 0x80, 0x01, 0x51, 0x80, 0, 2, 1, 0, 0x12, 0x34, 0x56],
            }
        );
        assert_eq!(LlgrCap::from_capability(&wire), Some(cap.clone()));
        assert_eq!(LlgrCap::find(&[Capability::RouteRefresh, wire]), Some(cap));
    }

    #[test]
    fn malformed_or_other_capabilities_are_not_llgr() {
        let short = Capability::Unknown {
            code: 71,
            value: vec![0, 1, 1, 0],
        };
        assert_eq!(LlgrCap::from_capability(&short), None);
        let other = Capability::Unknown {
            code: 72,
            value: vec![0; 7],
        };
        assert_eq!(LlgrCap::from_capability(&other), None);
        assert_eq!(LlgrCap::from_capability(&Capability::RouteRefresh), None);
        // An empty value is a capability with no family.
        let empty = Capability::Unknown {
            code: 71,
            value: vec![],
        };
        assert_eq!(LlgrCap::from_capability(&empty), Some(LlgrCap::default()));
    }

    #[test]
    fn stale_time_is_capped_at_24_bits() {
        let cap = LlgrCap {
            families: vec![LlgrFamily {
                family: Family::IPV4_UNICAST,
                forwarding: false,
                stale_time: u32::MAX,
            }],
        };
        let back = LlgrCap::from_capability(&cap.to_capability()).unwrap();
        assert_eq!(back.families[0].stale_time, LLGR_MAX_STALE_TIME);
    }
}
