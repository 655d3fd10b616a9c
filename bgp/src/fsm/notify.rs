//! NOTIFICATION codes the FSM sends, and human-readable descriptions for `Down` reasons.

use crate::wire::Notification;

/// Message Header Error (RFC 4271 §4.5).
pub const HEADER_ERROR: u8 = 1;
/// OPEN Message Error (RFC 4271 §4.5).
pub const OPEN_ERROR: u8 = 2;
/// UPDATE Message Error (RFC 4271 §4.5).
pub const UPDATE_ERROR: u8 = 3;
/// Hold Timer Expired (RFC 4271 §4.5).
pub const HOLD_TIMER_EXPIRED: u8 = 4;
/// Finite State Machine Error (RFC 4271 §4.5).
pub const FSM_ERROR: u8 = 5;
/// Cease (RFC 4271 §4.5).
pub const CEASE: u8 = 6;

/// OPEN subcodes (RFC 4271 §6.2, RFC 5492).
pub const OPEN_UNSUPPORTED_VERSION: u8 = 1;
pub const OPEN_BAD_PEER_AS: u8 = 2;
pub const OPEN_BAD_BGP_ID: u8 = 3;
pub const OPEN_UNACCEPTABLE_HOLD_TIME: u8 = 6;

/// FSM Error subcodes (RFC 6608 §3).
pub const FSM_UNEXPECTED_IN_OPENSENT: u8 = 1;
pub const FSM_UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
pub const FSM_UNEXPECTED_IN_ESTABLISHED: u8 = 3;

/// Cease subcodes (RFC 4486 §4, RFC 8538 §5).
pub const CEASE_ADMIN_SHUTDOWN: u8 = 2;
pub const CEASE_CONNECTION_REJECTED: u8 = 5;
pub const CEASE_COLLISION_RESOLUTION: u8 = 7;

/// A NOTIFICATION with no data.
pub fn notification(code: u8, subcode: u8) -> Notification {
    Notification {
        code,
        subcode,
        data: Vec::new(),
    }
}

fn code_name(code: u8) -> &'static str {
    match code {
        HEADER_ERROR => "Message Header Error",
        OPEN_ERROR => "OPEN Message Error",
        UPDATE_ERROR => "UPDATE Message Error",
        HOLD_TIMER_EXPIRED => "Hold Timer Expired",
        FSM_ERROR => "Finite State Machine Error",
        CEASE => "Cease",
        7 => "ROUTE-REFRESH Message Error",
        _ => "Unknown error code",
    }
}

fn subcode_name(code: u8, subcode: u8) -> Option<&'static str> {
    Some(match (code, subcode) {
        (HEADER_ERROR, 1) => "Connection Not Synchronized",
        (HEADER_ERROR, 2) => "Bad Message Length",
        (HEADER_ERROR, 3) => "Bad Message Type",
        (OPEN_ERROR, 1) => "Unsupported Version Number",
        (OPEN_ERROR, 2) => "Bad Peer AS",
        (OPEN_ERROR, 3) => "Bad BGP Identifier",
        (OPEN_ERROR, 4) => "Unsupported Optional Parameter",
        (OPEN_ERROR, 6) => "Unacceptable Hold Time",
        (OPEN_ERROR, 7) => "Unsupported Capability",
        (OPEN_ERROR, 11) => "Role Mismatch",
        (UPDATE_ERROR, 1) => "Malformed Attribute List",
        (UPDATE_ERROR, 2) => "Unrecognized Well-known Attribute",
        (UPDATE_ERROR, 3) => "Missing Well-known Attribute",
        (UPDATE_ERROR, 4) => "Attribute Flags Error",
        (UPDATE_ERROR, 5) => "Attribute Length Error",
        (UPDATE_ERROR, 6) => "Invalid ORIGIN Attribute",
        (UPDATE_ERROR, 8) => "Invalid NEXT_HOP Attribute",
        (UPDATE_ERROR, 9) => "Optional Attribute Error",
        (UPDATE_ERROR, 10) => "Invalid Network Field",
        (UPDATE_ERROR, 11) => "Malformed AS_PATH",
        (FSM_ERROR, 0) => "Unspecified Error",
        (FSM_ERROR, 1) => "Receive Unexpected Message in OpenSent State",
        (FSM_ERROR, 2) => "Receive Unexpected Message in OpenConfirm State",
        (FSM_ERROR, 3) => "Receive Unexpected Message in Established State",
        (CEASE, 1) => "Maximum Number of Prefixes Reached",
        (CEASE, 2) => "Administrative Shutdown",
        (CEASE, 3) => "Peer De-configured",
        (CEASE, 4) => "Administrative Reset",
        (CEASE, 5) => "Connection Rejected",
        (CEASE, 6) => "Other Configuration Change",
        (CEASE, 7) => "Connection Collision Resolution",
        (CEASE, 8) => "Out of Resources",
        (CEASE, 9) => "Hard Reset",
        (CEASE, 10) => "BFD Down",
        _ => return None,
    })
}

/// "Cease / Administrative Shutdown: \"maintenance\"", for logs and `Down` reasons.
pub fn describe(n: &Notification) -> String {
    let mut s = code_name(n.code).to_string();
    match subcode_name(n.code, n.subcode) {
        Some(name) => {
            s.push_str(" / ");
            s.push_str(name);
        }
        None if n.subcode != 0 => s.push_str(&format!(" / subcode {}", n.subcode)),
        None => {}
    }
    // RFC 8203 / RFC 9003: shutdown communication, one length octet then UTF-8.
    if n.code == CEASE && (n.subcode == 2 || n.subcode == 4) {
        if let Some((&len, rest)) = n.data.split_first() {
            if let Some(text) = rest.get(..usize::from(len)) {
                if let Ok(text) = std::str::from_utf8(text) {
                    if !text.is_empty() {
                        s.push_str(&format!(": \"{}\"", text.escape_debug()));
                    }
                }
            }
        }
    }
    s
}
