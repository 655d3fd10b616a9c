// ===== NOTIFICATION (RFC 4271 §4.5) =====
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  | Error code    | Error subcode |   Data (variable)             |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

//! NOTIFICATION codes, subcodes and human-readable names.

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::Notification;

/// Error codes (RFC 4271 §4.5, RFC 7313 §5).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header_subcode {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5, RFC 9234 §4.2).
pub mod open_subcode {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    pub const ROLE_MISMATCH: u8 = 11;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update_subcode {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608 §3).
pub mod fsm_subcode {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486 §4, RFC 8538 §3.1, RFC 9384).
pub mod cease_subcode {
    pub const MAX_PREFIXES: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
pub mod route_refresh_subcode {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

impl Notification {
    /// A NOTIFICATION with the given code, subcode and data.
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Notification {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// A Cease NOTIFICATION (RFC 4486) without data.
    pub fn cease(subcode: u8) -> Notification {
        Notification::new(code::CEASE, subcode, Vec::new())
    }

    /// A Cease / Administrative Shutdown or Reset carrying a Shutdown Communication
    /// (RFC 9003 §2): one length octet and up to 255 octets of UTF-8, cut at a char boundary.
    pub fn cease_with_message(subcode: u8, message: &str) -> Notification {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = message.as_bytes().get(..end).unwrap_or_default();
        let mut data = Vec::with_capacity(text.len() + 1);
        data.push(text.len() as u8);
        data.extend_from_slice(text);
        Notification::new(code::CEASE, subcode, data)
    }

    /// The Shutdown Communication of a Cease / Administrative Shutdown or Reset, if the
    /// data holds a well-formed one (RFC 9003 §2).
    pub fn shutdown_message(&self) -> Option<&str> {
        let admin = matches!(
            self.subcode,
            cease_subcode::ADMINISTRATIVE_SHUTDOWN | cease_subcode::ADMINISTRATIVE_RESET
        );
        if self.code != code::CEASE || !admin {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        if len == 0 {
            return None;
        }
        std::str::from_utf8(rest.get(..usize::from(len))?).ok()
    }

    /// Name of the error code, if it is a known one.
    pub fn code_name(&self) -> Option<&'static str> {
        Some(match self.code {
            code::MESSAGE_HEADER => "Message Header Error",
            code::OPEN => "OPEN Message Error",
            code::UPDATE => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FSM => "Finite State Machine Error",
            code::CEASE => "Cease",
            code::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
            _ => return None,
        })
    }

    /// Name of the subcode, if it is a known one (subcode 0 has none: "unspecific").
    pub fn subcode_name(&self) -> Option<&'static str> {
        Some(match (self.code, self.subcode) {
            (code::MESSAGE_HEADER, 1) => "Connection Not Synchronized",
            (code::MESSAGE_HEADER, 2) => "Bad Message Length",
            (code::MESSAGE_HEADER, 3) => "Bad Message Type",
            (code::OPEN, 1) => "Unsupported Version Number",
            (code::OPEN, 2) => "Bad Peer AS",
            (code::OPEN, 3) => "Bad BGP Identifier",
            (code::OPEN, 4) => "Unsupported Optional Parameter",
            (code::OPEN, 6) => "Unacceptable Hold Time",
            (code::OPEN, 7) => "Unsupported Capability",
            (code::OPEN, 11) => "Role Mismatch",
            (code::UPDATE, 1) => "Malformed Attribute List",
            (code::UPDATE, 2) => "Unrecognized Well-known Attribute",
            (code::UPDATE, 3) => "Missing Well-known Attribute",
            (code::UPDATE, 4) => "Attribute Flags Error",
            (code::UPDATE, 5) => "Attribute Length Error",
            (code::UPDATE, 6) => "Invalid ORIGIN Attribute",
            (code::UPDATE, 8) => "Invalid NEXT_HOP Attribute",
            (code::UPDATE, 9) => "Optional Attribute Error",
            (code::UPDATE, 10) => "Invalid Network Field",
            (code::UPDATE, 11) => "Malformed AS_PATH",
            (code::FSM, 1) => "Receive Unexpected Message in OpenSent State",
            (code::FSM, 2) => "Receive Unexpected Message in OpenConfirm State",
            (code::FSM, 3) => "Receive Unexpected Message in Established State",
            (code::CEASE, 1) => "Maximum Number of Prefixes Reached",
            (code::CEASE, 2) => "Administrative Shutdown",
            (code::CEASE, 3) => "Peer De-configured",
            (code::CEASE, 4) => "Administrative Reset",
            (code::CEASE, 5) => "Connection Rejected",
            (code::CEASE, 6) => "Other Configuration Change",
            (code::CEASE, 7) => "Connection Collision Resolution",
            (code::CEASE, 8) => "Out of Resources",
            (code::CEASE, 9) => "Hard Reset",
            (code::CEASE, 10) => "BFD Down",
            (code::ROUTE_REFRESH, 1) => "Invalid Message Length",
            _ => return None,
        })
    }
}

/// "Cease / Administrative Shutdown", "Hold Timer Expired", "code 9 / subcode 1", with the
/// RFC 9003 Shutdown Communication appended when there is one.
impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code_name() {
            Some(name) => f.write_str(name)?,
            None => write!(f, "code {}", self.code)?,
        }
        match self.subcode_name() {
            Some(name) => write!(f, " / {name}")?,
            None if self.subcode != 0 => write!(f, " / subcode {}", self.subcode)?,
            None => {}
        }
        if let Some(msg) = self.shutdown_message() {
            write!(f, ": {msg:?}")?;
        }
        Ok(())
    }
}

/// Decodes a NOTIFICATION body (after the header; at least 2 bytes, checked by the caller).
pub(crate) fn decode_notification(body: &[u8]) -> Option<Notification> {
    let (&code, rest) = body.split_first()?;
    let (&subcode, data) = rest.split_first()?;
    Some(Notification::new(code, subcode, data.to_vec()))
}

pub(crate) fn encode_notification(n: &Notification, out: &mut BytesMut) {
    out.put_u8(n.code);
    out.put_u8(n.subcode);
    out.put_slice(&n.data);
}
