//! OPEN checks the codec cannot do (they need our configuration) and capability negotiation.

use std::net::Ipv4Addr;

use super::FsmConfig;
use crate::wire::{
    code, open_subcode, AddPathMode, Afi, Capability, DecodeContext, EncodeContext, Family,
    GracefulRestartCap, Notification, Open, AS_TRANS,
};

/// What both OPENs agreed on; handed to the speaker when the session is Established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's OPEN as received.
    pub peer_open: Open,
    /// min(ours, theirs) in seconds; 0 = no hold timer and no keepalives (RFC 4271 §4.2).
    pub hold_time: u16,
    /// hold_time / 3 (RFC 4271 §10), 0 when hold_time is 0.
    pub keepalive: u16,
    /// Families both sides announced (RFC 4760 §8: no MP capability = IPv4 unicast only).
    pub families: Vec<Family>,
    /// How to decode the peer's messages.
    pub decode: DecodeContext,
    /// How to encode messages for the peer.
    pub encode: EncodeContext,
    /// Both sent Route Refresh (RFC 2918).
    pub route_refresh: bool,
    /// Both sent Enhanced Route Refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart capability, when both sides sent one (RFC 4724).
    pub graceful_restart: Option<GracefulRestartCap>,
    /// Both sent the 4-octet AS capability (RFC 6793).
    pub four_octet_as: bool,
    /// Our end of the session's TCP connection (filled in by the session task; the next
    /// hop we advertise towards eBGP peers, RFC 4271 §5.1.3).
    pub local_addr: Option<std::net::SocketAddr>,
}

/// RFC 4271 §6.2 checks that need our configuration. The codec already rejects malformed
/// OPENs; these are repeated cheaply where they are cheap.
pub(crate) fn check_open(cfg: &FsmConfig, open: &Open) -> Result<(), Notification> {
    if open.version != 4 {
        // Data: the largest version we support, 2 octets (RFC 4271 §6.2).
        return Err(Notification::new(
            code::OPEN,
            open_subcode::UNSUPPORTED_VERSION_NUMBER,
            vec![0, 4],
        ));
    }
    if open.asn != cfg.remote_asn {
        // Data: the My Autonomous System field as it was on the wire (AS_TRANS for
        // 4-octet ASNs, RFC 6793 §4.1).
        let my_as = u16::try_from(open.asn).unwrap_or(AS_TRANS);
        return Err(Notification::new(
            code::OPEN,
            open_subcode::BAD_PEER_AS,
            my_as.to_be_bytes().to_vec(),
        ));
    }
    if open.hold_time == 1 || open.hold_time == 2 {
        // RFC 4271 §6.2: hold time of one or two seconds MUST be rejected.
        return Err(Notification::new(
            code::OPEN,
            open_subcode::UNACCEPTABLE_HOLD_TIME,
            Vec::new(),
        ));
    }
    // RFC 6286 §2.2: zero is never valid. An identifier equal to ours would also make
    // collision resolution (§6.8) impossible, so it is refused for eBGP and iBGP alike.
    if open.router_id == Ipv4Addr::UNSPECIFIED || open.router_id == cfg.router_id {
        return Err(Notification::new(
            code::OPEN,
            open_subcode::BAD_BGP_IDENTIFIER,
            Vec::new(),
        ));
    }
    Ok(())
}

fn families(caps: &[Capability]) -> Vec<Family> {
    let mut fams: Vec<Family> = caps
        .iter()
        .filter_map(|c| match c {
            Capability::MultiProtocol(f) => Some(*f),
            _ => None,
        })
        .collect();
    if fams.is_empty() {
        // RFC 4760 §8: a speaker that sends no MP capability supports IPv4 unicast only.
        fams.push(Family::IPV4_UNICAST);
    }
    fams.sort();
    fams.dedup();
    fams
}

fn has(caps: &[Capability], want: impl Fn(&Capability) -> bool) -> bool {
    caps.iter().any(want)
}

fn add_path_modes(caps: &[Capability]) -> Vec<(Family, AddPathMode)> {
    caps.iter()
        .flat_map(|c| match c {
            Capability::AddPath(v) => v.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn mode_for(modes: &[(Family, AddPathMode)], fam: Family) -> Option<AddPathMode> {
    modes.iter().rev().find(|(f, _)| *f == fam).map(|(_, m)| *m)
}

fn can_send(m: Option<AddPathMode>) -> bool {
    matches!(m, Some(AddPathMode::Send | AddPathMode::Both))
}

fn can_receive(m: Option<AddPathMode>) -> bool {
    matches!(m, Some(AddPathMode::Receive | AddPathMode::Both))
}

fn graceful_restart(caps: &[Capability]) -> Option<&GracefulRestartCap> {
    caps.iter().find_map(|c| match c {
        Capability::GracefulRestart(gr) => Some(gr),
        _ => None,
    })
}

/// Negotiates the session parameters from our configuration and the peer's OPEN.
pub(crate) fn negotiate(cfg: &FsmConfig, open: &Open) -> Negotiated {
    let ours = &cfg.capabilities;
    let theirs = &open.capabilities;

    // RFC 4271 §4.2: the smaller of the two; §10: keepalive a third of it.
    let hold_time = cfg.hold_time.min(open.hold_time);
    let keepalive = hold_time / 3;

    let their_fams = families(theirs);
    let families: Vec<Family> = families(ours)
        .into_iter()
        .filter(|f| their_fams.contains(f))
        .collect();

    let is_4oas = |c: &Capability| matches!(c, Capability::FourOctetAs(_));
    let four_octet_as = has(ours, is_4oas) && has(theirs, is_4oas);
    // RFC 8654 §3: only when both sides advertised it.
    let is_ext = |c: &Capability| matches!(c, Capability::ExtendedMessage);
    let extended_message = has(ours, is_ext) && has(theirs, is_ext);

    // RFC 7911 §4: we receive path ids for a family when we said Receive and the peer said
    // Send (or Both), and the other way round for sending.
    let our_modes = add_path_modes(ours);
    let their_modes = add_path_modes(theirs);
    let mut add_path_rx = Vec::new();
    let mut add_path_tx = Vec::new();
    for &fam in &families {
        let (mine, peer) = (mode_for(&our_modes, fam), mode_for(&their_modes, fam));
        if can_receive(mine) && can_send(peer) {
            add_path_rx.push(fam);
        }
        if can_send(mine) && can_receive(peer) {
            add_path_tx.push(fam);
        }
    }

    // RFC 8950 §4: a peer may only send us next hops of another AFI if we advertised that.
    let extended_next_hop: Vec<(Family, Afi)> = ours
        .iter()
        .flat_map(|c| match c {
            Capability::ExtendedNextHop(v) => v.clone(),
            _ => Vec::new(),
        })
        .filter(|(f, _)| families.contains(f))
        .collect();

    let is_rr = |c: &Capability| matches!(c, Capability::RouteRefresh);
    let is_err = |c: &Capability| matches!(c, Capability::EnhancedRouteRefresh);
    let graceful_restart = match (graceful_restart(ours), graceful_restart(theirs)) {
        (Some(_), Some(peer)) => Some(peer.clone()),
        _ => None,
    };

    Negotiated {
        peer_open: open.clone(),
        hold_time,
        keepalive,
        families,
        decode: DecodeContext {
            four_octet_as,
            extended_message,
            add_path_rx,
            extended_next_hop,
            external: cfg.local_asn != cfg.remote_asn,
        },
        encode: EncodeContext {
            four_octet_as,
            extended_message,
            add_path_tx,
        },
        route_refresh: has(ours, is_rr) && has(theirs, is_rr),
        enhanced_route_refresh: has(ours, is_err) && has(theirs, is_err),
        graceful_restart,
        four_octet_as,
        local_addr: None,
    }
}
