//! Whole messages: header + body dispatch (RFC 4271 §4).

use bytes::BytesMut;

use super::header::{begin, finish, header_of, message_type};
use super::notification::{decode_notification, encode_notification};
use super::open::{decode_open, encode_open};
use super::route_refresh::{decode_route_refresh, encode_route_refresh};
use super::update::{decode_update, encode_update};
use super::{
    DecodeContext, EncodeContext, EncodeError, HeaderError, Message, MessageError, HEADER_LEN,
    MAX_MESSAGE_LEN,
};

/// Decodes one whole message, header included (`msg.len()` must equal the Length field).
///
/// Beyond the header checks of [`message_len`](super::message_len), enforces the per-type
/// lengths of RFC 4271 §6.1 (OPEN ≥ 29, UPDATE ≥ 23, KEEPALIVE = 19, NOTIFICATION ≥ 21,
/// ROUTE-REFRESH = 23) and RFC 8654 §4 (OPEN and KEEPALIVE never exceed 4096).
pub fn decode_message(msg: &[u8], ctx: &DecodeContext) -> Result<Message, MessageError> {
    let header = header_of(msg, ctx.max_message_len())?;
    let len = usize::from(header.len);
    let body = msg.get(HEADER_LEN..).unwrap_or_default();
    let bad_len = || MessageError::from(HeaderError::BadLength(header.len));
    match header.kind {
        message_type::OPEN => {
            if !(29..=MAX_MESSAGE_LEN).contains(&len) {
                return Err(bad_len());
            }
            Ok(Message::Open(decode_open(body)?))
        }
        message_type::UPDATE => {
            if len < 23 {
                return Err(bad_len());
            }
            Ok(Message::Update(decode_update(body, ctx)?))
        }
        message_type::NOTIFICATION => decode_notification(body)
            .map(Message::Notification)
            .ok_or_else(bad_len),
        message_type::KEEPALIVE => {
            if len != HEADER_LEN {
                return Err(bad_len());
            }
            Ok(Message::Keepalive)
        }
        message_type::ROUTE_REFRESH => {
            if len != 23 {
                return Err(bad_len());
            }
            decode_route_refresh(body)
                .map(Message::RouteRefresh)
                .ok_or_else(bad_len)
        }
        other => Err(HeaderError::BadType(other).into()),
    }
}

/// Appends one whole message to `out`. Fails, leaving `out` as it was, if the message would
/// exceed `ctx.max_message_len()` (an OPEN never exceeds 4096, RFC 8654 §4).
pub fn encode_message(
    msg: &Message,
    ctx: &EncodeContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let (kind, max) = match msg {
        Message::Open(_) => (message_type::OPEN, MAX_MESSAGE_LEN),
        Message::Update(_) => (message_type::UPDATE, ctx.max_message_len()),
        Message::Notification(_) => (message_type::NOTIFICATION, ctx.max_message_len()),
        Message::Keepalive => (message_type::KEEPALIVE, MAX_MESSAGE_LEN),
        Message::RouteRefresh(_) => (message_type::ROUTE_REFRESH, MAX_MESSAGE_LEN),
    };
    let start = begin(out, kind);
    let body = match msg {
        Message::Open(o) => encode_open(o, out),
        Message::Update(u) => encode_update(u, ctx, out),
        Message::Notification(n) => {
            encode_notification(n, out);
            Ok(())
        }
        Message::Keepalive => Ok(()),
        Message::RouteRefresh(rr) => {
            encode_route_refresh(rr, out);
            Ok(())
        }
    };
    if let Err(e) = body {
        out.truncate(start);
        return Err(e);
    }
    finish(out, start, max)
}
