// ===== OPEN (RFC 4271 §4.2) =====
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+
//  |    Version    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |     My Autonomous System      |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |           Hold Time           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                         BGP Identifier                        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  | Opt Parm Len  |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |             Optional Parameters (variable)                    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Optional parameter: Parm. Type (1), Parm. Length (1), Parameter Value (variable).
//
// RFC 9072 §2 extended form: Opt Parm Len = 255, then Non-Ext OP Type = 255, then a
// 2-octet Extended Opt. Parm. Length; each parameter then has a 2-octet length.

//! OPEN message codec.

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};
use nom::number::complete::{be_u16, be_u32, be_u8};
use nom::sequence::tuple;

use super::capability::{decode_capabilities, encode_capability};
use super::{Capability, EncodeError, Open, OpenError, AS_TRANS};

/// Optional parameter type carrying capabilities (RFC 5492 §4).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072 §2 marker for the extended optional parameters format.
const PARAM_EXTENDED: u8 = 255;

/// Decodes an OPEN body (after the header; at least 10 bytes, checked by the caller).
pub(crate) fn decode_open(body: &[u8]) -> Result<Open, OpenError> {
    let (params, (version, my_as, hold_time, id, opt_len)) =
        tuple((be_u8::<_, ()>, be_u16, be_u16, be_u32, be_u8))(body)
            .map_err(|_| OpenError::MalformedParameters("truncated OPEN"))?;
    if version != 4 {
        return Err(OpenError::UnsupportedVersion(version));
    }
    // RFC 4271 §6.2: hold time 1 or 2 seconds is unacceptable.
    if hold_time == 1 || hold_time == 2 {
        return Err(OpenError::UnacceptableHoldTime(hold_time));
    }
    let router_id = Ipv4Addr::from(id);
    if id == 0 {
        return Err(OpenError::BadBgpIdentifier(router_id));
    }
    let mut capabilities = Vec::new();
    if opt_len == PARAM_EXTENDED && params.first() == Some(&PARAM_EXTENDED) {
        let (rest, ext_len) = be_u16::<_, ()>(&params[1..])
            .map_err(|_| OpenError::MalformedParameters("truncated extended length"))?;
        if rest.len() != usize::from(ext_len) {
            return Err(OpenError::MalformedParameters(
                "optional parameters length mismatch",
            ));
        }
        decode_params(rest, true, &mut capabilities)?;
    } else {
        if params.len() != usize::from(opt_len) {
            return Err(OpenError::MalformedParameters(
                "optional parameters length mismatch",
            ));
        }
        decode_params(params, false, &mut capabilities)?;
    }
    // RFC 6793 §3: the real AS comes from the 4-octet AS capability when present.
    let asn = capabilities
        .iter()
        .find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
        .unwrap_or(u32::from(my_as));
    Ok(Open {
        version,
        asn,
        hold_time,
        router_id,
        capabilities,
    })
}

fn decode_params(
    mut buf: &[u8],
    extended: bool,
    caps: &mut Vec<Capability>,
) -> Result<(), OpenError> {
    let truncated = OpenError::MalformedParameters("optional parameter overruns the field");
    while let Some((&kind, rest)) = buf.split_first() {
        let (rest, len) = if extended {
            let (r, l) = be_u16::<_, ()>(rest).map_err(|_| truncated.clone())?;
            (r, usize::from(l))
        } else {
            let (&l, r) = rest.split_first().ok_or_else(|| truncated.clone())?;
            (r, usize::from(l))
        };
        let (value, rest) = rest
            .split_at_checked(len)
            .ok_or_else(|| truncated.clone())?;
        if kind != PARAM_CAPABILITIES {
            return Err(OpenError::UnsupportedOptionalParameter(kind));
        }
        decode_capabilities(value, caps)?;
        buf = rest;
    }
    Ok(())
}

/// Appends an OPEN body. All capabilities go in one Capabilities parameter; the RFC 9072
/// extended format is used only when they do not fit in 255 octets.
pub(crate) fn encode_open(open: &Open, out: &mut BytesMut) -> Result<(), EncodeError> {
    out.put_u8(open.version);
    // RFC 6793 §4.1: AS_TRANS in My Autonomous System when the AS needs four octets.
    out.put_u16(u16::try_from(open.asn).unwrap_or(AS_TRANS));
    out.put_u16(open.hold_time);
    out.put_u32(u32::from(open.router_id));
    let mut caps = BytesMut::new();
    for cap in &open.capabilities {
        encode_capability(cap, &mut caps)?;
    }
    if caps.is_empty() {
        out.put_u8(0);
    } else if caps.len() + 2 <= 255 {
        out.put_u8(caps.len() as u8 + 2);
        out.put_u8(PARAM_CAPABILITIES);
        out.put_u8(caps.len() as u8);
        out.put_slice(&caps);
    } else {
        let len = caps.len();
        let too_long = EncodeError::CapabilityTooLong { code: 0, len };
        let param_len = u16::try_from(len).map_err(|_| too_long.clone())?;
        let total = u16::try_from(len + 3).map_err(|_| too_long)?;
        out.put_u8(PARAM_EXTENDED);
        out.put_u8(PARAM_EXTENDED);
        out.put_u16(total);
        out.put_u8(PARAM_CAPABILITIES);
        out.put_u16(param_len);
        out.put_slice(&caps);
    }
    Ok(())
}
