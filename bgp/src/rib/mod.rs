//! Routing information bases: Adj-RIB-In, Loc-RIB, Adj-RIB-Out (RFC 4271 §3.2).
//!
//! Pure data structures: no I/O, no wire encoding. The speaker feeds [`Rib`] with the paths
//! it decoded (interned as [`RouteAttrs`] through [`Rib::intern`]), gets back the prefixes
//! whose best path or ECMP set changed, and tells each peer's [`AdjRibOut`] what that peer
//! should now have; [`AdjRibOut::take_pending`] hands back grouped updates for the encoder.
//!
//! - `attrs`: [`RouteAttrs`] and the [`AttrInterner`].
//! - `peer`: [`PeerId`], [`LOCAL_PEER`], [`PeerInfo`].
//! - `decision`: the decision process (RFC 4271 §9.1.2.2, RFC 4456 §9) and ECMP sets.
//! - `loc_rib`: [`Rib`], every peer's Adj-RIB-In plus the Loc-RIB in one table.
//! - `adj_out`: [`AdjRibOut`].

#[cfg(test)]
mod addpath_tests;
mod adj_out;
mod attrs;
pub mod decision;

mod loc_rib;
mod peer;
mod table;

pub use adj_out::{AdjRibOut, Direct, PathKey, PendingUpdates};
pub use attrs::{AttrInterner, RouteAttrs};
pub use decision::{MultipathConfig, Step};
pub use loc_rib::{AdjInRoute, LocEntry, LocRoute, Rib, RibError};
pub use peer::{PeerCounts, PeerId, PeerInfo, LOCAL_PEER};
pub use table::Path;
