//! BGP-4 wire codec (RFC 4271 §4) — sans-IO.
//!
//! This module holds the message model shared by the whole crate. Decoding takes the
//! negotiated capabilities as a [`DecodeContext`]; encoding takes an [`EncodeContext`].
//! Every type here is re-exported at `bgp::wire::*`; the codec itself lives in the
//! per-message files.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

mod aspath;
mod attribute;
mod capability;
mod community;
mod error;
mod header;
mod llgr;
mod message;
mod mp;
mod nlri;
mod notification;
mod open;
mod pack;
mod route_refresh;
mod update;

pub use attribute::{attr_flag, attr_type, malformed_action};
pub use capability::capability_code;
pub use error::{EncodeError, ErrorAction, HeaderError, MessageError, OpenError, UpdateError};
pub use header::{message_len, message_type};
pub use llgr::{LlgrCap, LlgrFamily, LLGR_CAPABILITY_CODE, LLGR_MAX_STALE_TIME};
pub use message::{decode_message, encode_message};
pub use notification::{
    cease_subcode, code, fsm_subcode, header_subcode, open_subcode, route_refresh_subcode,
    update_subcode,
};
pub use pack::{encode_announcements, encode_end_of_rib, encode_withdrawals};

/// `len % n == 0` (`usize::is_multiple_of` needs Rust 1.87, above the workspace MSRV).
#[allow(clippy::manual_is_multiple_of)]
pub(crate) fn multiple_of(len: usize, n: usize) -> bool {
    len % n == 0
}

/// An IPv4 or IPv6 prefix, always masked (host bits zero).
pub type Prefix = IpNetwork;

/// BGP marker + length + type (RFC 4271 §4.1).
pub const HEADER_LEN: usize = 19;
/// Largest message without RFC 8654.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message once Extended Message (RFC 8654) is negotiated.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// AS_TRANS (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;

/// Address family identifier (IANA), kept open for unknown values.
pub type Afi = u16;
pub const AFI_IPV4: Afi = 1;
pub const AFI_IPV6: Afi = 2;
/// Subsequent address family identifier (IANA).
pub type Safi = u8;
pub const SAFI_UNICAST: Safi = 1;

/// An (AFI, SAFI) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    pub afi: Afi,
    pub safi: Safi,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family {
        afi: AFI_IPV4,
        safi: SAFI_UNICAST,
    };
    pub const IPV6_UNICAST: Family = Family {
        afi: AFI_IPV6,
        safi: SAFI_UNICAST,
    };

    /// The family a prefix belongs to (unicast).
    pub fn of(prefix: &Prefix) -> Family {
        match prefix {
            IpNetwork::V4(_) => Family::IPV4_UNICAST,
            IpNetwork::V6(_) => Family::IPV6_UNICAST,
        }
    }
}

/// One NLRI entry; `path_id` is the RFC 7911 path identifier (0 when add-path is not in use
/// for this family and direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    pub prefix: Prefix,
    pub path_id: u32,
}

/// Add-path send/receive mode (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    Receive = 1,
    Send = 2,
    Both = 3,
}

/// Graceful restart capability (RFC 4724 §3); `notification` is the N bit of RFC 8538.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestartCap {
    pub restart_state: bool,
    pub notification: bool,
    pub restart_time: u16,
    /// Families with their Forwarding State bit.
    pub families: Vec<(Family, bool)>,
}

/// A capability advertised in OPEN (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// RFC 4760 §8.
    MultiProtocol(Family),
    /// RFC 2918 (code 2).
    RouteRefresh,
    /// RFC 7313 (code 70).
    EnhancedRouteRefresh,
    /// RFC 8950 (code 5): (NLRI family, next-hop AFI).
    ExtendedNextHop(Vec<(Family, Afi)>),
    /// RFC 8654 (code 6).
    ExtendedMessage,
    /// RFC 4724 (code 64).
    GracefulRestart(GracefulRestartCap),
    /// RFC 6793 (code 65).
    FourOctetAs(u32),
    /// RFC 7911 (code 69).
    AddPath(Vec<(Family, AddPathMode)>),
    /// Anything else, kept verbatim and otherwise ignored (RFC 5492 §3).
    Unknown { code: u8, value: Vec<u8> },
}

// ===== OPEN (RFC 4271 §4.2) =====
/// An OPEN message. `asn` is the speaker's real AS: on decode it comes from the 4-octet AS
/// capability when present (RFC 6793 §3); on encode `My Autonomous System` carries AS_TRANS
/// when it does not fit in two octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    pub asn: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

/// ORIGIN (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// AS_PATH segment kinds (RFC 4271 §4.3, RFC 5065 for the confederation ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentType {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    pub kind: SegmentType,
    pub asns: Vec<u32>,
}

/// AS_PATH with 4-octet AS numbers; AS4_PATH is merged in on decode (RFC 6793 §4.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

/// AGGREGATOR (RFC 4271 §5.1.7), 4-octet AS (AS4_AGGREGATOR merged on decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    pub asn: u32,
    pub address: Ipv4Addr,
}

/// RFC 1997 community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
}

/// RFC 8092 large community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

/// An attribute this codec does not interpret, kept verbatim. Optional transitive ones are
/// passed on with the Partial bit set (RFC 4271 §5); others are dropped when re-advertising.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// The path attributes of an UPDATE other than MP_REACH_NLRI / MP_UNREACH_NLRI, in a
/// canonical, hashable form (so the RIB can intern them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathAttrs {
    pub origin: Option<Origin>,
    pub as_path: Option<AsPath>,
    /// NEXT_HOP attribute (IPv4 only; IPv6 next hops travel in MP_REACH_NLRI).
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub unknown: Vec<RawAttribute>,
}

/// MP_REACH_NLRI next hop (RFC 4760 §3, RFC 2545 §3 for the IPv6 link-local one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MpNextHop {
    pub global: IpAddr,
    pub link_local: Option<Ipv6Addr>,
}

/// MP_REACH_NLRI (RFC 4760 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    pub family: Family,
    pub next_hop: MpNextHop,
    pub nlri: Vec<Nlri>,
}

/// MP_UNREACH_NLRI (RFC 4760 §4). Empty `withdrawn` is End-of-RIB for `family` (RFC 4724 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    pub family: Family,
    pub withdrawn: Vec<Nlri>,
}

// ===== UPDATE (RFC 4271 §4.3) =====
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// IPv4 unicast withdrawn routes.
    pub withdrawn: Vec<Nlri>,
    pub attrs: PathAttrs,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    /// IPv4 unicast NLRI.
    pub nlri: Vec<Nlri>,
    /// Set by the decoder when RFC 7606 says treat-as-withdraw: every NLRI in this UPDATE
    /// (including MP_REACH's) must be handled as withdrawn. Never encoded.
    pub treat_as_withdraw: bool,
    /// Attributes the decoder discarded under RFC 7606 "attribute discard" (type codes).
    /// Never encoded.
    pub discarded: Vec<u8>,
}

impl Update {
    /// The family this UPDATE is an End-of-RIB marker for, if it is one (RFC 4724 §2).
    pub fn end_of_rib(&self) -> Option<Family> {
        if self.nlri.is_empty() && self.withdrawn.is_empty() && self.mp_reach.is_none() {
            match &self.mp_unreach {
                None if self.attrs == PathAttrs::default() => Some(Family::IPV4_UNICAST),
                Some(u) if u.withdrawn.is_empty() => Some(u.family),
                _ => None,
            }
        } else {
            None
        }
    }
}

// ===== NOTIFICATION (RFC 4271 §4.5) =====
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

// ===== ROUTE-REFRESH (RFC 2918 §3, RFC 7313 §3 subtypes) =====
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    pub family: Family,
    /// 0 = normal request, 1 = BoRR, 2 = EoRR (RFC 7313).
    pub subtype: u8,
}

/// Any BGP message.
// UPDATE dominates in both size and frequency, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

/// What both OPENs agreed on, as the decoder needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeContext {
    /// RFC 6793: both sides sent the 4-octet AS capability.
    pub four_octet_as: bool,
    /// RFC 8654: both sides sent Extended Message.
    pub extended_message: bool,
    /// RFC 7911: families for which we receive path identifiers.
    pub add_path_rx: Vec<Family>,
    /// RFC 8950: families whose NLRI may carry a next hop of another AFI.
    pub extended_next_hop: Vec<(Family, Afi)>,
    /// The peer is external (eBGP): some RFC 7606 actions differ (§7.5).
    pub external: bool,
}

/// What both OPENs agreed on, as the encoder needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodeContext {
    pub four_octet_as: bool,
    pub extended_message: bool,
    /// RFC 7911: families for which we send path identifiers.
    pub add_path_tx: Vec<Family>,
}

impl DecodeContext {
    pub fn add_path(&self, family: Family) -> bool {
        self.add_path_rx.contains(&family)
    }
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

impl EncodeContext {
    pub fn add_path(&self, family: Family) -> bool {
        self.add_path_tx.contains(&family)
    }
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

#[cfg(test)]
mod tests;
