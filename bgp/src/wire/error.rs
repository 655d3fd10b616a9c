//! Every error the codec can report, and the one conversion from a decode error to the
//! NOTIFICATION that RFC 4271 §6 (and RFC 7606 for UPDATE) prescribes.
//!
//! Decode errors are layered per message kind ([`HeaderError`], [`OpenError`],
//! [`UpdateError`]) and wrapped in [`MessageError`]. A `MessageError` always means
//! "session reset": softer RFC 7606 outcomes (treat-as-withdraw, attribute discard) are
//! reported inside the decoded [`Update`](super::Update) instead.

use std::net::Ipv4Addr;

use super::notification::{code, header_subcode, open_subcode, update_subcode};
use super::Notification;

/// The three ways RFC 7606 §2 lets a speaker react to a malformed UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorAction {
    /// Send a NOTIFICATION and drop the session (RFC 4271 behaviour).
    SessionReset,
    /// Handle every NLRI of the UPDATE as withdrawn (RFC 7606 §2).
    TreatAsWithdraw,
    /// Ignore the offending attribute, keep the rest (RFC 7606 §2).
    AttributeDiscard,
}

/// A message that must be answered with a NOTIFICATION and a session reset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message header: {0}")]
    Header(#[from] HeaderError),
    #[error("OPEN: {0}")]
    Open(#[from] OpenError),
    #[error("UPDATE: {0}")]
    Update(#[from] UpdateError),
}

/// Errors of the common header (RFC 4271 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("connection not synchronized (marker is not all ones)")]
    ConnectionNotSynchronized,
    /// Carries the Length field as received.
    #[error("bad message length {0}")]
    BadLength(u16),
    #[error("bad message type {0}")]
    BadType(u8),
}

/// Errors of an OPEN message (RFC 4271 §6.2, RFC 5492, RFC 9072).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported version number {0}")]
    UnsupportedVersion(u8),
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    #[error("bad BGP identifier {0}")]
    BadBgpIdentifier(Ipv4Addr),
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    #[error("malformed optional parameters: {0}")]
    MalformedParameters(&'static str),
    #[error("malformed capability {code} (length {len})")]
    MalformedCapability { code: u8, len: usize },
}

/// UPDATE errors that RFC 7606 leaves at "session reset" (RFC 4271 §6.3 subcodes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// Withdrawn Routes Length / Total Path Attribute Length / an attribute length
    /// overrunning its field, or a repeated MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 7606 §3(g)).
    #[error("malformed attribute list: {0}")]
    MalformedAttributeList(&'static str),
    /// An attribute with the Optional bit clear that we do not know (RFC 4271 §6.3).
    #[error("unrecognized well-known attribute {type_code}")]
    UnrecognizedWellKnown { type_code: u8, attr: Vec<u8> },
    /// MP_REACH_NLRI / MP_UNREACH_NLRI with wrong Optional/Transitive flags (RFC 7606 §5.3).
    #[error("attribute flags error on attribute {type_code}")]
    AttributeFlags { type_code: u8, attr: Vec<u8> },
    /// Malformed MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 7606 §5.3, §7.11).
    #[error("malformed attribute {type_code}: {reason}")]
    OptionalAttribute {
        type_code: u8,
        reason: &'static str,
        attr: Vec<u8>,
    },
    /// Withdrawn Routes or NLRI field that does not parse (RFC 7606 §5.3).
    #[error("invalid network field: {0}")]
    InvalidNetworkField(&'static str),
}

/// Errors while encoding a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLong { len: usize, max: usize },
    #[error("attribute {type_code} value of {len} bytes exceeds 65535")]
    AttributeTooLong { type_code: u8, len: usize },
    #[error("prefix {prefix} does not belong to family {afi}/{safi}")]
    FamilyMismatch {
        prefix: super::Prefix,
        afi: u16,
        safi: u8,
    },
    #[error("no next hop to announce {afi}/{safi} with")]
    MissingNextHop { afi: u16, safi: u8 },
    #[error("capability {code} value of {len} bytes is too long")]
    CapabilityTooLong { code: u8, len: usize },
}

impl MessageError {
    /// The RFC 7606 action: a `MessageError` is always a session reset.
    pub fn action(&self) -> ErrorAction {
        ErrorAction::SessionReset
    }

    /// The NOTIFICATION to send for this error (RFC 4271 §6, RFC 7606).
    pub fn notification(&self) -> Notification {
        match self {
            MessageError::Header(e) => e.notification(),
            MessageError::Open(e) => e.notification(),
            MessageError::Update(e) => e.notification(),
        }
    }
}

impl HeaderError {
    fn notification(&self) -> Notification {
        use header_subcode::*;
        match *self {
            HeaderError::ConnectionNotSynchronized => {
                Notification::new(code::MESSAGE_HEADER, CONNECTION_NOT_SYNCHRONIZED, vec![])
            }
            // RFC 4271 §6.1: the Data field contains the erroneous Length field.
            HeaderError::BadLength(len) => Notification::new(
                code::MESSAGE_HEADER,
                BAD_MESSAGE_LENGTH,
                len.to_be_bytes().to_vec(),
            ),
            HeaderError::BadType(t) => {
                Notification::new(code::MESSAGE_HEADER, BAD_MESSAGE_TYPE, vec![t])
            }
        }
    }
}

impl OpenError {
    fn notification(&self) -> Notification {
        use open_subcode::*;
        let (subcode, data) = match self {
            // RFC 4271 §6.2: data is the largest locally supported version, two octets.
            OpenError::UnsupportedVersion(_) => (UNSUPPORTED_VERSION_NUMBER, vec![0, 4]),
            OpenError::UnacceptableHoldTime(_) => (UNACCEPTABLE_HOLD_TIME, vec![]),
            OpenError::BadBgpIdentifier(_) => (BAD_BGP_IDENTIFIER, vec![]),
            OpenError::UnsupportedOptionalParameter(_) => (UNSUPPORTED_OPTIONAL_PARAMETER, vec![]),
            // No RFC subcode fits a garbled parameter block: use "unspecific" (RFC 4271 §6.2).
            OpenError::MalformedParameters(_) | OpenError::MalformedCapability { .. } => {
                (UNSPECIFIC, vec![])
            }
        };
        Notification::new(code::OPEN, subcode, data)
    }
}

impl UpdateError {
    fn notification(&self) -> Notification {
        use update_subcode::*;
        let (subcode, data) = match self {
            UpdateError::MalformedAttributeList(_) => (MALFORMED_ATTRIBUTE_LIST, vec![]),
            UpdateError::UnrecognizedWellKnown { attr, .. } => {
                (UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, attr.clone())
            }
            UpdateError::AttributeFlags { attr, .. } => (ATTRIBUTE_FLAGS_ERROR, attr.clone()),
            UpdateError::OptionalAttribute { attr, .. } => (OPTIONAL_ATTRIBUTE_ERROR, attr.clone()),
            UpdateError::InvalidNetworkField(_) => (INVALID_NETWORK_FIELD, vec![]),
        };
        Notification::new(code::UPDATE, subcode, data)
    }
}
