//! Path attributes: the input is the attribute section of an UPDATE announcing
//! 10.0.0.0/24, so every byte lands in the attribute decoder (RFC 7606 error handling).
#![no_main]

use bgp::wire::decode_message;
use libfuzzer_sys::fuzz_target;

mod ctx;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, attrs)) = data.split_first() else {
        return;
    };
    let nlri = [24u8, 10, 0, 0];
    let Ok(attr_len) = u16::try_from(attrs.len()) else {
        return;
    };
    let total = 19 + 2 + 2 + attrs.len() + nlri.len();
    let Ok(total16) = u16::try_from(total) else {
        return;
    };
    let mut msg = Vec::with_capacity(total);
    msg.extend_from_slice(&[0xff; 16]);
    msg.extend_from_slice(&total16.to_be_bytes());
    msg.push(2); // UPDATE
    msg.extend_from_slice(&0u16.to_be_bytes()); // no withdrawn routes
    msg.extend_from_slice(&attr_len.to_be_bytes());
    msg.extend_from_slice(attrs);
    msg.extend_from_slice(&nlri);
    let _ = decode_message(&msg, &ctx::context(flags));
});
