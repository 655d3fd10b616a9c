//! Whole BGP messages (header included) under every decode context: decoding must never
//! panic, and whatever decodes must encode and decode again to the same message.
#![no_main]

use bgp::wire::{decode_message, encode_message, EncodeContext, Message};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

mod ctx;

const TRANSITIVE: u8 = 0x40;
const PARTIAL: u8 = 0x20;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, msg)) = data.split_first() else {
        return;
    };
    let dctx = ctx::context(flags);
    let Ok(decoded) = decode_message(msg, &dctx) else {
        return;
    };
    if let Message::Update(u) = &decoded {
        // RFC 7606 outcomes (treat-as-withdraw, attribute discard) are the receiver's verdict
        // on the input; they are not part of the message and do not round-trip.
        if u.treat_as_withdraw || !u.discarded.is_empty() {
            return;
        }
    }
    let ectx = EncodeContext {
        four_octet_as: dctx.four_octet_as,
        extended_message: dctx.extended_message,
        add_path_tx: dctx.add_path_rx.clone(),
    };
    let mut out = BytesMut::new();
    if encode_message(&decoded, &ectx, &mut out).is_err() {
        // Too big to re-encode (e.g. AS_PATH grown by the AS4 merge): not a decoder bug.
        return;
    }
    let again = decode_message(&out, &dctx).expect("our own encoding decodes");
    let mut expected = decoded;
    if let Message::Update(u) = &mut expected {
        // RFC 4271 §5: an unrecognized optional transitive attribute is passed on with the
        // Partial bit set.
        for a in &mut u.attrs.unknown {
            if a.flags & TRANSITIVE != 0 {
                a.flags |= PARTIAL;
            }
        }
        // The encoder writes attributes in ascending type order (RFC 4271 §5 SHOULD).
        u.attrs.unknown.sort_by_key(|a| a.type_code);
    }
    assert_eq!(again, expected, "decode(encode(m)) != m");
});
