// ===== Capabilities optional parameter (RFC 5492 §4) =====
//
//  +------------------------------+
//  | Capability Code (1 octet)    |
//  +------------------------------+
//  | Capability Length (1 octet)  |
//  +------------------------------+
//  | Capability Value (variable)  |
//  ~                              ~
//  +------------------------------+

//! Capability TLVs carried in OPEN.

use bytes::{BufMut, BytesMut};

use super::{
    multiple_of, AddPathMode, Capability, EncodeError, Family, GracefulRestartCap, OpenError,
};

/// Capability codes (IANA "Capability Codes").
pub mod capability_code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ADD_PATH: u8 = 69;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
}
use capability_code as cc;

// RFC 4724 §3: Restart Flags (4 bits) then Restart Time (12 bits).
const GR_RESTART_STATE: u16 = 0x8000;
const GR_NOTIFICATION: u16 = 0x4000; // RFC 8538 §2
const GR_TIME_MASK: u16 = 0x0fff;
const GR_FORWARDING: u8 = 0x80;

/// Decodes a sequence of capability TLVs (the value of one type-2 optional parameter),
/// appending to `out`.
pub(crate) fn decode_capabilities(
    mut buf: &[u8],
    out: &mut Vec<Capability>,
) -> Result<(), OpenError> {
    while let Some((&code, rest)) = buf.split_first() {
        let (&len, rest) = rest
            .split_first()
            .ok_or(OpenError::MalformedParameters("truncated capability"))?;
        let (value, rest) =
            rest.split_at_checked(usize::from(len))
                .ok_or(OpenError::MalformedParameters(
                    "capability overruns its parameter",
                ))?;
        out.push(decode_capability(code, value)?);
        buf = rest;
    }
    Ok(())
}

fn be16(b: &[u8]) -> u16 {
    match b {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn decode_capability(code: u8, v: &[u8]) -> Result<Capability, OpenError> {
    let bad = || OpenError::MalformedCapability { code, len: v.len() };
    Ok(match code {
        // RFC 4760 §8: AFI (2), Reserved (1), SAFI (1).
        cc::MULTIPROTOCOL => match *v {
            [a0, a1, _, safi] => Capability::MultiProtocol(Family {
                afi: u16::from_be_bytes([a0, a1]),
                safi,
            }),
            _ => return Err(bad()),
        },
        cc::ROUTE_REFRESH if v.is_empty() => Capability::RouteRefresh,
        cc::ENHANCED_ROUTE_REFRESH if v.is_empty() => Capability::EnhancedRouteRefresh,
        cc::EXTENDED_MESSAGE if v.is_empty() => Capability::ExtendedMessage,
        cc::ROUTE_REFRESH | cc::ENHANCED_ROUTE_REFRESH | cc::EXTENDED_MESSAGE => return Err(bad()),
        // RFC 8950 §3: NLRI AFI (2), NLRI SAFI (2), Nexthop AFI (2), repeated.
        cc::EXTENDED_NEXT_HOP => {
            if !multiple_of(v.len(), 6) {
                return Err(bad());
            }
            let entries = v
                .chunks_exact(6)
                .filter_map(|c| {
                    let safi = u8::try_from(be16(&c[2..])).ok()?;
                    Some((Family { afi: be16(c), safi }, be16(&c[4..])))
                })
                .collect();
            Capability::ExtendedNextHop(entries)
        }
        // RFC 4724 §3: flags+time (2), then AFI (2), SAFI (1), flags (1) per family.
        cc::GRACEFUL_RESTART => {
            if v.len() < 2 || !multiple_of(v.len() - 2, 4) {
                return Err(bad());
            }
            let head = be16(v);
            let families = v[2..]
                .chunks_exact(4)
                .map(|c| {
                    (
                        Family {
                            afi: be16(c),
                            safi: c[2],
                        },
                        c[3] & GR_FORWARDING != 0,
                    )
                })
                .collect();
            Capability::GracefulRestart(GracefulRestartCap {
                restart_state: head & GR_RESTART_STATE != 0,
                notification: head & GR_NOTIFICATION != 0,
                restart_time: head & GR_TIME_MASK,
                families,
            })
        }
        // RFC 6793 §3.
        cc::FOUR_OCTET_AS => match *v {
            [a, b, c, d] => Capability::FourOctetAs(u32::from_be_bytes([a, b, c, d])),
            _ => return Err(bad()),
        },
        // RFC 7911 §4: AFI (2), SAFI (1), Send/Receive (1), repeated. Entries with an
        // undefined Send/Receive value are ignored.
        cc::ADD_PATH => {
            if !multiple_of(v.len(), 4) {
                return Err(bad());
            }
            let entries = v
                .chunks_exact(4)
                .filter_map(|c| {
                    let mode = match c[3] {
                        1 => AddPathMode::Receive,
                        2 => AddPathMode::Send,
                        3 => AddPathMode::Both,
                        _ => return None,
                    };
                    Some((
                        Family {
                            afi: be16(c),
                            safi: c[2],
                        },
                        mode,
                    ))
                })
                .collect();
            Capability::AddPath(entries)
        }
        // RFC 5492 §3: unknown capabilities are ignored (kept verbatim here).
        _ => Capability::Unknown {
            code,
            value: v.to_vec(),
        },
    })
}

/// Appends one capability TLV.
pub(crate) fn encode_capability(cap: &Capability, out: &mut BytesMut) -> Result<(), EncodeError> {
    let (code, len) = match cap {
        Capability::MultiProtocol(_) => (cc::MULTIPROTOCOL, 4),
        Capability::RouteRefresh => (cc::ROUTE_REFRESH, 0),
        Capability::EnhancedRouteRefresh => (cc::ENHANCED_ROUTE_REFRESH, 0),
        Capability::ExtendedNextHop(e) => (cc::EXTENDED_NEXT_HOP, 6 * e.len()),
        Capability::ExtendedMessage => (cc::EXTENDED_MESSAGE, 0),
        Capability::GracefulRestart(gr) => (cc::GRACEFUL_RESTART, 2 + 4 * gr.families.len()),
        Capability::FourOctetAs(_) => (cc::FOUR_OCTET_AS, 4),
        Capability::AddPath(e) => (cc::ADD_PATH, 4 * e.len()),
        Capability::Unknown { code, value } => (*code, value.len()),
    };
    let len8 = u8::try_from(len).map_err(|_| EncodeError::CapabilityTooLong { code, len })?;
    out.put_u8(code);
    out.put_u8(len8);
    match cap {
        Capability::MultiProtocol(f) => {
            out.put_u16(f.afi);
            out.put_u8(0);
            out.put_u8(f.safi);
        }
        Capability::RouteRefresh
        | Capability::EnhancedRouteRefresh
        | Capability::ExtendedMessage => {}
        Capability::ExtendedNextHop(entries) => {
            for (f, nh_afi) in entries {
                out.put_u16(f.afi);
                out.put_u16(u16::from(f.safi));
                out.put_u16(*nh_afi);
            }
        }
        Capability::GracefulRestart(gr) => {
            let mut head = gr.restart_time & GR_TIME_MASK;
            if gr.restart_state {
                head |= GR_RESTART_STATE;
            }
            if gr.notification {
                head |= GR_NOTIFICATION;
            }
            out.put_u16(head);
            for (f, forwarding) in &gr.families {
                out.put_u16(f.afi);
                out.put_u8(f.safi);
                out.put_u8(if *forwarding { GR_FORWARDING } else { 0 });
            }
        }
        Capability::FourOctetAs(asn) => out.put_u32(*asn),
        Capability::AddPath(entries) => {
            for (f, mode) in entries {
                out.put_u16(f.afi);
                out.put_u8(f.safi);
                out.put_u8(*mode as u8);
            }
        }
        Capability::Unknown { value, .. } => out.put_slice(value),
    }
    Ok(())
}
