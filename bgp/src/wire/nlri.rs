// ===== NLRI and withdrawn routes (RFC 4271 §4.3, RFC 4760 §5.1, RFC 7911 §3) =====
//
//  +---------------------------+
//  | Path Identifier (4 octets)|   only when add-path is negotiated for the family
//  +---------------------------+
//  |   Length (1 octet)        |   prefix length in bits
//  +---------------------------+
//  |   Prefix (variable)       |   ceil(Length / 8) octets, trailing bits irrelevant
//  +---------------------------+

//! Prefix lists: the hot loop of the codec.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};

use super::{Afi, IpNetwork, Ipv4Network, Ipv6Network, Nlri, AFI_IPV4, AFI_IPV6};

/// Decodes a whole prefix list of `afi` into `out`. Host bits are cleared; a prefix longer
/// than the address or running past the end of `buf` is an error (RFC 7606 §5.3).
pub(crate) fn decode_nlri(
    buf: &[u8],
    afi: Afi,
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), &'static str> {
    match afi {
        AFI_IPV4 => decode_v4(buf, add_path, out),
        AFI_IPV6 => decode_v6(buf, add_path, out),
        _ => Err("unsupported address family"),
    }
}

/// Splits off an RFC 7911 path identifier when add-path is on; `None` at the end of input.
#[inline(always)]
fn path_id(buf: &[u8], add_path: bool) -> Result<Option<(u32, &[u8])>, &'static str> {
    if !add_path {
        return Ok(if buf.is_empty() { None } else { Some((0, buf)) });
    }
    match buf {
        [] => Ok(None),
        [a, b, c, d, rest @ ..] => Ok(Some((u32::from_be_bytes([*a, *b, *c, *d]), rest))),
        _ => Err("truncated path identifier"),
    }
}

fn decode_v4(mut buf: &[u8], add_path: bool, out: &mut Vec<Nlri>) -> Result<(), &'static str> {
    out.reserve(buf.len() / if add_path { 9 } else { 5 });
    while let Some((path_id, rest)) = path_id(buf, add_path)? {
        let (&len, rest) = rest.split_first().ok_or("truncated prefix")?;
        // Prefix bytes read into a zeroed word; 4 - n trailing bytes stay zero.
        let (raw, rest) = match (len, rest) {
            (0, r) => (0, r),
            (1..=8, [a, r @ ..]) => (u32::from(*a) << 24, r),
            (9..=16, [a, b, r @ ..]) => (u32::from_be_bytes([*a, *b, 0, 0]), r),
            (17..=24, [a, b, c, r @ ..]) => (u32::from_be_bytes([*a, *b, *c, 0]), r),
            (25..=32, [a, b, c, d, r @ ..]) => (u32::from_be_bytes([*a, *b, *c, *d]), r),
            (33.., _) => return Err("IPv4 prefix length over 32"),
            _ => return Err("prefix overruns the field"),
        };
        let addr = Ipv4Addr::from(raw & v4_mask(len));
        let net = Ipv4Network::new(addr, len).map_err(|_| "IPv4 prefix length over 32")?;
        out.push(Nlri {
            prefix: IpNetwork::V4(net),
            path_id,
        });
        buf = rest;
    }
    Ok(())
}

fn decode_v6(mut buf: &[u8], add_path: bool, out: &mut Vec<Nlri>) -> Result<(), &'static str> {
    out.reserve(buf.len() / if add_path { 13 } else { 9 });
    while let Some((path_id, rest)) = path_id(buf, add_path)? {
        let (&len, rest) = rest.split_first().ok_or("truncated prefix")?;
        if len > 128 {
            return Err("IPv6 prefix length over 128");
        }
        let n = usize::from(len).div_ceil(8);
        let (bytes, rest) = rest
            .split_at_checked(n)
            .ok_or("prefix overruns the field")?;
        let mut octets = [0u8; 16];
        if let Some(dst) = octets.get_mut(..n) {
            dst.copy_from_slice(bytes);
        }
        let addr = Ipv6Addr::from(u128::from_be_bytes(octets) & v6_mask(len));
        let net = Ipv6Network::new(addr, len).map_err(|_| "IPv6 prefix length over 128")?;
        out.push(Nlri {
            prefix: IpNetwork::V6(net),
            path_id,
        });
        buf = rest;
    }
    Ok(())
}

#[inline(always)]
fn v4_mask(len: u8) -> u32 {
    // len <= 32 here; shifting a u64 keeps len == 0 well defined.
    (u64::from(u32::MAX) << (32 - u32::from(len).min(32))) as u32
}

#[inline(always)]
fn v6_mask(len: u8) -> u128 {
    match len {
        0 => 0,
        l => u128::MAX << (128 - u32::from(l).min(128)),
    }
}

/// Encoded size of one entry.
#[inline(always)]
pub(crate) fn nlri_len(n: &Nlri, add_path: bool) -> usize {
    let id = if add_path { 4 } else { 0 };
    id + 1 + usize::from(n.prefix.prefix()).div_ceil(8)
}

/// Appends one entry; host bits are cleared.
#[inline(always)]
pub(crate) fn encode_nlri(n: &Nlri, add_path: bool, out: &mut BytesMut) {
    if add_path {
        out.put_u32(n.path_id);
    }
    let len = n.prefix.prefix();
    let bytes = usize::from(len).div_ceil(8);
    out.put_u8(len);
    match n.prefix {
        IpNetwork::V4(p) => {
            let octets = p.network().octets();
            out.put_slice(octets.get(..bytes).unwrap_or(&octets));
        }
        IpNetwork::V6(p) => {
            let octets = p.network().octets();
            out.put_slice(octets.get(..bytes).unwrap_or(&octets));
        }
    }
}

/// Appends a prefix list.
pub(crate) fn encode_nlri_list(list: &[Nlri], add_path: bool, out: &mut BytesMut) {
    let total: usize = list.iter().map(|n| nlri_len(n, add_path)).sum();
    out.reserve(total);
    for n in list {
        encode_nlri(n, add_path, out);
    }
}

/// The AFI a prefix belongs to.
pub(crate) fn afi_of(p: &IpNetwork) -> Afi {
    match p {
        IpNetwork::V4(_) => AFI_IPV4,
        IpNetwork::V6(_) => AFI_IPV6,
    }
}
