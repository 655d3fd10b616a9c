//! Peer identities as the RIB knows them.

use std::net::{IpAddr, Ipv4Addr};

/// A small handle for a peer, chosen by the speaker. Paths carry this instead of an address.
pub type PeerId = u32;

/// The pseudo-peer of routes this node originates itself. Its [`PeerInfo`] is registered by
/// [`crate::rib::Rib::new`] and cannot be unregistered.
pub const LOCAL_PEER: PeerId = 0;

/// What the decision process needs to know about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerInfo {
    pub id: PeerId,
    /// The peer's address (the last tie-break, RFC 4271 §9.1.2.2 g).
    pub addr: IpAddr,
    pub asn: u32,
    /// BGP Identifier from the peer's OPEN (RFC 4271 §9.1.2.2 f).
    pub router_id: Ipv4Addr,
    /// Internal peer (same AS, RFC 4271 §9.1.2.2 d).
    pub ibgp: bool,
}

/// How many paths a peer has in the Adj-RIB-In.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerCounts {
    /// Paths held in the peer's Adj-RIB-In, accepted or not.
    pub received: u64,
    /// Paths that passed import and take part in the decision process.
    pub accepted: u64,
}
