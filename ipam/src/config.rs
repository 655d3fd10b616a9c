//! Pools, reservations and allocator settings, with validation.

use std::time::Duration;

use ipnetwork::IpNetwork;

use crate::addr::{self, Family};

/// Default IPv4 block prefix length (64 addresses).
pub const DEFAULT_BLOCK_V4: u8 = 26;
/// Default IPv6 block prefix length (64 addresses).
pub const DEFAULT_BLOCK_V6: u8 = 122;
/// Allowed IPv4 block prefix lengths.
pub const BLOCK_RANGE_V4: std::ops::RangeInclusive<u8> = 20..=32;
/// Allowed IPv6 block prefix lengths.
pub const BLOCK_RANGE_V6: std::ops::RangeInclusive<u8> = 116..=128;

/// An address pool, cut into blocks of `block_size` prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The pool's network (must be masked: `10.244.0.0/16`, not `10.244.1.0/16`).
    pub cidr: IpNetwork,
    /// Prefix length of each block.
    pub block_size: u8,
    /// No new allocations from a disabled pool; existing ones stay.
    pub disabled: bool,
}

impl Pool {
    /// An enabled pool with the default block size for its family.
    pub fn new(cidr: IpNetwork) -> Self {
        let block_size = match Family::of_net(cidr) {
            Family::V4 => DEFAULT_BLOCK_V4,
            Family::V6 => DEFAULT_BLOCK_V6,
        };
        Self {
            cidr,
            block_size,
            disabled: false,
        }
    }

    /// The same pool with another block size.
    pub fn with_block_size(mut self, block_size: u8) -> Self {
        self.block_size = block_size;
        self
    }

    /// The pool's family.
    pub fn family(&self) -> Family {
        Family::of_net(self.cidr)
    }

    /// Checks this pool on its own (overlap is checked by [`IpamConfig::validate`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let cidr = self.cidr;
        if cidr.ip() != cidr.network() {
            return Err(ConfigError::NotMasked(cidr));
        }
        if link_local().any(|ll| addr::nets_overlap(ll, cidr)) {
            return Err(ConfigError::LinkLocal(cidr));
        }
        let range = match self.family() {
            Family::V4 => BLOCK_RANGE_V4,
            Family::V6 => BLOCK_RANGE_V6,
        };
        if !range.contains(&self.block_size) {
            return Err(ConfigError::BlockSizeOutOfRange {
                pool: cidr,
                block_size: self.block_size,
                min: *range.start(),
                max: *range.end(),
            });
        }
        if self.block_size < cidr.prefix() {
            return Err(ConfigError::BlockLargerThanPool {
                pool: cidr,
                block_size: self.block_size,
            });
        }
        Ok(())
    }
}

/// 169.254.0.0/16 and fe80::/10: never routed, so never pooled.
fn link_local() -> impl Iterator<Item = IpNetwork> {
    ["169.254.0.0/16", "fe80::/10"]
        .into_iter()
        .filter_map(|s| s.parse().ok())
}

/// Everything the allocator needs besides the store and the node name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// Address pools (IPv4 and IPv6 may be mixed).
    pub pools: Vec<Pool>,
    /// Networks that are never handed out (gateways, service VIPs…).
    pub reservations: Vec<IpNetwork>,
    /// `true` = never borrow an address from another node's block.
    pub strict_affinity: bool,
    /// Most blocks one node may own per address family; `None` = unlimited.
    pub max_blocks_per_node: Option<u32>,
    /// How long a block must stay empty before [`crate::Allocator::release_empty_blocks`]
    /// gives it back.
    pub release_grace: Duration,
}

impl Default for IpamConfig {
    fn default() -> Self {
        Self {
            pools: Vec::new(),
            reservations: Vec::new(),
            strict_affinity: false,
            max_blocks_per_node: None,
            release_grace: Duration::from_secs(300),
        }
    }
}

impl IpamConfig {
    /// A configuration with these pools and default settings.
    pub fn with_pools(pools: Vec<Pool>) -> Self {
        Self {
            pools,
            ..Self::default()
        }
    }

    /// Checks every pool, that no two pools overlap, and that reservations are masked.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, pool) in self.pools.iter().enumerate() {
            pool.validate()?;
            if let Some(other) = self
                .pools
                .iter()
                .skip(i + 1)
                .find(|p| addr::nets_overlap(p.cidr, pool.cidr))
            {
                return Err(ConfigError::Overlap(pool.cidr, other.cidr));
            }
        }
        for r in &self.reservations {
            if r.ip() != r.network() {
                return Err(ConfigError::NotMasked(*r));
            }
        }
        Ok(())
    }
}

/// Invalid pool or reservation configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Host bits set in a CIDR.
    #[error("{0} has host bits set (write the network address)")]
    NotMasked(IpNetwork),
    /// Two pools share addresses.
    #[error("pools {0} and {1} overlap")]
    Overlap(IpNetwork, IpNetwork),
    /// A pool inside (or covering) 169.254.0.0/16 or fe80::/10.
    #[error("pool {0} overlaps link-local space")]
    LinkLocal(IpNetwork),
    /// Block size outside /20–/32 (IPv4) or /116–/128 (IPv6).
    #[error("pool {pool}: block size /{block_size} outside /{min}–/{max}")]
    BlockSizeOutOfRange {
        /// The pool.
        pool: IpNetwork,
        /// The configured block size.
        block_size: u8,
        /// Shortest allowed.
        min: u8,
        /// Longest allowed.
        max: u8,
    },
    /// Block prefix shorter than the pool's.
    #[error("pool {pool}: block size /{block_size} is larger than the pool")]
    BlockLargerThanPool {
        /// The pool.
        pool: IpNetwork,
        /// The configured block size.
        block_size: u8,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_and_validation() {
        assert_eq!(Pool::new(net("10.0.0.0/16")).block_size, 26);
        assert_eq!(Pool::new(net("fd00::/48")).block_size, 122);
        let ok = IpamConfig::with_pools(vec![
            Pool::new(net("10.0.0.0/16")),
            Pool::new(net("fd00::/48")),
        ]);
        assert_eq!(ok.validate(), Ok(()));

        let cases = [
            (
                Pool::new(net("10.0.1.0/16")),
                ConfigError::NotMasked(net("10.0.1.0/16")),
            ),
            (
                Pool::new(net("169.254.0.0/20")),
                ConfigError::LinkLocal(net("169.254.0.0/20")),
            ),
            (
                Pool::new(net("fe80::/64")),
                ConfigError::LinkLocal(net("fe80::/64")),
            ),
            (
                Pool::new(net("0.0.0.0/0")),
                ConfigError::LinkLocal(net("0.0.0.0/0")),
            ),
            (
                Pool::new(net("10.0.0.0/16")).with_block_size(19),
                ConfigError::BlockSizeOutOfRange {
                    pool: net("10.0.0.0/16"),
                    block_size: 19,
                    min: 20,
                    max: 32,
                },
            ),
            (
                Pool::new(net("fd00::/48")).with_block_size(115),
                ConfigError::BlockSizeOutOfRange {
                    pool: net("fd00::/48"),
                    block_size: 115,
                    min: 116,
                    max: 128,
                },
            ),
            (
                Pool::new(net("10.0.0.0/28")).with_block_size(26),
                ConfigError::BlockLargerThanPool {
                    pool: net("10.0.0.0/28"),
                    block_size: 26,
                },
            ),
        ];
        for (pool, want) in cases {
            assert_eq!(pool.validate(), Err(want), "{pool:?}");
        }

        let overlap = IpamConfig::with_pools(vec![
            Pool::new(net("10.0.0.0/16")),
            Pool::new(net("10.0.128.0/17")),
        ]);
        assert_eq!(
            overlap.validate(),
            Err(ConfigError::Overlap(
                net("10.0.0.0/16"),
                net("10.0.128.0/17")
            ))
        );
        let mut bad_res = ok.clone();
        bad_res.reservations.push(net("10.0.0.1/24"));
        assert_eq!(
            bad_res.validate(),
            Err(ConfigError::NotMasked(net("10.0.0.1/24")))
        );
    }
}
