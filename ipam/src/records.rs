//! Affinity and handle records.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::addr::Family;

/// Stage of a node's claim on a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AffinityState {
    /// Written before the block is created; a crash may leave it without a block.
    Pending,
    /// Written after the block was created with this node as its affinity.
    Confirmed,
}

/// The stored affinity (`affinity/<node>/<cidr>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffinityRecord {
    /// Claim stage.
    pub state: AffinityState,
}

/// One address held by a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleAddr {
    /// The address.
    pub ip: IpAddr,
    /// Its block.
    pub block: IpNetwork,
    /// The allocation's sequence number.
    pub seq: u64,
}

/// The stored handle (`handles/<id>`): at most one IPv4 and one IPv6 address.
///
/// Written *before* the block on allocation, so a block allocation always has its handle record;
/// a crash in between leaves a handle entry pointing at an address whose block does not carry
/// it, which readers ignore and [`crate::Allocator::check`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleRecord {
    /// The IPv4 address, if any.
    pub v4: Option<HandleAddr>,
    /// The IPv6 address, if any.
    pub v6: Option<HandleAddr>,
}

impl HandleRecord {
    /// The entry for `family`.
    pub fn get(&self, family: Family) -> Option<&HandleAddr> {
        match family {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
    }

    /// Sets (or clears) the entry for `family`.
    pub fn set(&mut self, family: Family, entry: Option<HandleAddr>) {
        match family {
            Family::V4 => self.v4 = entry,
            Family::V6 => self.v6 = entry,
        }
    }

    /// Both entries, IPv4 first.
    pub fn entries(&self) -> impl Iterator<Item = &HandleAddr> {
        self.v4.iter().chain(self.v6.iter())
    }

    /// No entry at all.
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}
