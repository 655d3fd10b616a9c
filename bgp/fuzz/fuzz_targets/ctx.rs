//! The decode context a fuzz input selects with its first byte.

use bgp::wire::{DecodeContext, Family};

/// Bit 0: 4-octet AS; bit 1: extended messages; bit 2: add-path on both unicast
/// families; bit 3: eBGP session.
pub fn context(flags: u8) -> DecodeContext {
    DecodeContext {
        four_octet_as: flags & 1 != 0,
        extended_message: flags & 2 != 0,
        add_path_rx: if flags & 4 != 0 {
            vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
        } else {
            Vec::new()
        },
        extended_next_hop: Vec::new(),
        external: flags & 8 != 0,
    }
}
