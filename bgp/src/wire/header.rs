// ===== Message header (RFC 4271 §4.1) =====
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                                                               |
//  +                                                               +
//  |                                                               |
//  +                                                               +
//  |                           Marker                              |
//  +                                                               +
//  |                                                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |          Length               |      Type     |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

//! Framing: the 19-byte header every message starts with.

use bytes::{BufMut, BytesMut};
use nom::bytes::complete::take;
use nom::number::complete::{be_u16, be_u8};
use nom::sequence::tuple;

use super::{EncodeError, HeaderError, MessageError, HEADER_LEN};

/// Message type codes (RFC 4271 §4.1, RFC 2918 §3).
pub mod message_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

const MARKER: [u8; 16] = [0xff; 16];

/// The parsed header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub len: u16,
    pub kind: u8,
}

pub(crate) fn parse_header(i: &[u8]) -> nom::IResult<&[u8], (&[u8], u16, u8), ()> {
    tuple((take(16usize), be_u16, be_u8))(i)
}

/// Framing for a byte stream: `Ok(None)` until a whole header is buffered, then the length
/// of the message at the start of `buf` (which may not be fully buffered yet).
///
/// Checks the marker (RFC 4271 §6.1 Connection Not Synchronized) and that the length is
/// within `HEADER_LEN..=max_len` (Bad Message Length, data = the length field).
pub fn message_len(buf: &[u8], max_len: usize) -> Result<Option<usize>, MessageError> {
    let Ok((_, (marker, len, _))) = parse_header(buf) else {
        return Ok(None);
    };
    if marker != MARKER {
        return Err(HeaderError::ConnectionNotSynchronized.into());
    }
    let l = usize::from(len);
    if !(HEADER_LEN..=max_len).contains(&l) {
        return Err(HeaderError::BadLength(len).into());
    }
    Ok(Some(l))
}

/// Parses the header of one whole message, checking the marker and that the length field
/// equals `msg.len()` and does not exceed `max_len`.
pub(crate) fn header_of(msg: &[u8], max_len: usize) -> Result<Header, MessageError> {
    let Ok((_, (marker, len, kind))) = parse_header(msg) else {
        return Err(HeaderError::BadLength(msg.len().min(usize::from(u16::MAX)) as u16).into());
    };
    if marker != MARKER {
        return Err(HeaderError::ConnectionNotSynchronized.into());
    }
    let l = usize::from(len);
    if l != msg.len() || !(HEADER_LEN..=max_len).contains(&l) {
        return Err(HeaderError::BadLength(len).into());
    }
    Ok(Header { len, kind })
}

/// Starts a message: writes the marker, a length placeholder and the type. Returns the
/// offset to pass to [`finish`].
pub(crate) fn begin(out: &mut BytesMut, kind: u8) -> usize {
    let start = out.len();
    out.put_slice(&MARKER);
    out.put_u16(0);
    out.put_u8(kind);
    start
}

/// Completes the message started at `start`: patches the length, or truncates the buffer
/// back to `start` and fails if the message exceeds `max_len`.
pub(crate) fn finish(out: &mut BytesMut, start: usize, max_len: usize) -> Result<(), EncodeError> {
    let len = out.len() - start;
    if len > max_len || len > usize::from(u16::MAX) {
        out.truncate(start);
        return Err(EncodeError::TooLong { len, max: max_len });
    }
    patch_u16(out, start + 16, len as u16);
    Ok(())
}

/// Overwrites two bytes at `pos` (a placeholder this codec wrote itself).
pub(crate) fn patch_u16(out: &mut BytesMut, pos: usize, v: u16) {
    if let Some(dst) = out.get_mut(pos..pos + 2) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
}
