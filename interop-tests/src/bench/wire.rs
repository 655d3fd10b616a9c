//! The few BGP-4 messages the benchmark's own speakers need, encoded by hand (RFC 4271 §4),
//! and a cheap counter of the IPv4 /32s an UPDATE announces or withdraws.
//!
//! The feeders pre-encode their whole table once, so nothing here is on a hot path except
//! [`scan_update`], which walks NLRI bytes without allocating.

use std::net::Ipv4Addr;

/// BGP message header length (RFC 4271 §4.1).
pub const HEADER_LEN: usize = 19;
/// The largest message without the extended message capability (RFC 4271 §4.1).
pub const MAX_MESSAGE: usize = 4096;

/// Message type codes (RFC 4271 §4.1).
pub const OPEN: u8 = 1;
/// UPDATE.
pub const UPDATE: u8 = 2;
/// NOTIFICATION.
pub const NOTIFICATION: u8 = 3;
/// KEEPALIVE.
pub const KEEPALIVE: u8 = 4;

/// AS_TRANS (RFC 6793 §9): the 2-octet stand-in for a 4-octet AS.
const AS_TRANS: u16 = 23456;

fn header(out: &mut Vec<u8>, len: usize, kind: u8) {
    out.extend_from_slice(&[0xff; 16]);
    // Callers never build a message over MAX_MESSAGE, so the length fits in u16.
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    out.push(kind);
}

/// An OPEN for `asn` with hold time `hold` and identifier `id`, offering IPv4 unicast
/// (RFC 4760) and 4-octet AS numbers (RFC 6793).
pub fn open(asn: u32, hold: u16, id: Ipv4Addr) -> Vec<u8> {
    let my_as = u16::try_from(asn).unwrap_or(AS_TRANS);
    let mut caps = Vec::new();
    // Capability 1 (multiprotocol): AFI 1, reserved, SAFI 1.
    caps.extend_from_slice(&[2, 6, 1, 4, 0, 1, 0, 1]);
    // Capability 65 (4-octet AS).
    caps.extend_from_slice(&[2, 6, 65, 4]);
    caps.extend_from_slice(&asn.to_be_bytes());
    let len = HEADER_LEN + 10 + caps.len();
    let mut out = Vec::with_capacity(len);
    header(&mut out, len, OPEN);
    out.push(4);
    out.extend_from_slice(&my_as.to_be_bytes());
    out.extend_from_slice(&hold.to_be_bytes());
    out.extend_from_slice(&id.octets());
    out.push(u8::try_from(caps.len()).unwrap_or(0));
    out.extend_from_slice(&caps);
    out
}

/// A KEEPALIVE.
pub fn keepalive() -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    header(&mut out, HEADER_LEN, KEEPALIVE);
    out
}

/// The path attributes one feeder puts on every route it announces.
#[derive(Debug, Clone, Copy)]
pub enum Attrs {
    /// eBGP: ORIGIN IGP, AS_PATH `asn` (4-octet), NEXT_HOP.
    External {
        /// The feeder's AS.
        asn: u32,
        /// NEXT_HOP (the feeder's own address).
        next_hop: Ipv4Addr,
    },
    /// iBGP: ORIGIN IGP, empty AS_PATH, NEXT_HOP, LOCAL_PREF 100.
    Internal {
        /// NEXT_HOP (the client's own address).
        next_hop: Ipv4Addr,
    },
}

impl Attrs {
    fn encode(&self) -> Vec<u8> {
        // Well-known transitive attributes: flags 0x40 (RFC 4271 §5).
        let mut a = vec![0x40, 1, 1, 0];
        match *self {
            Attrs::External { asn, next_hop } => {
                a.extend_from_slice(&[0x40, 2, 6, 2, 1]);
                a.extend_from_slice(&asn.to_be_bytes());
                a.extend_from_slice(&[0x40, 3, 4]);
                a.extend_from_slice(&next_hop.octets());
            }
            Attrs::Internal { next_hop } => {
                a.extend_from_slice(&[0x40, 2, 0]);
                a.extend_from_slice(&[0x40, 3, 4]);
                a.extend_from_slice(&next_hop.octets());
                a.extend_from_slice(&[0x40, 5, 4, 0, 0, 0, 100]);
            }
        }
        a
    }
}

/// UPDATEs announcing the /32s `first .. first + count` with `attrs`, packed as many per
/// message as fit in 4,096 bytes, concatenated into one buffer.
pub fn announce_stream(first: u32, count: u32, attrs: Attrs) -> Vec<u8> {
    let attrs = attrs.encode();
    let fixed = HEADER_LEN + 2 + 2 + attrs.len();
    let per_msg = (MAX_MESSAGE - fixed) / 5;
    let mut out = Vec::with_capacity(count as usize * 5 + (count as usize / per_msg + 1) * fixed);
    let mut next = first;
    let end = first.saturating_add(count);
    while next < end {
        let n = (end - next).min(per_msg as u32);
        header(&mut out, fixed + n as usize * 5, UPDATE);
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&u16::try_from(attrs.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&attrs);
        for a in next..next + n {
            out.push(32);
            out.extend_from_slice(&a.to_be_bytes());
        }
        next += n;
    }
    out
}

/// UPDATEs withdrawing the /32s `first .. first + count`, as many per message as fit.
pub fn withdraw_stream(first: u32, count: u32) -> Vec<u8> {
    let fixed = HEADER_LEN + 2 + 2;
    let per_msg = (MAX_MESSAGE - fixed) / 5;
    let mut out = Vec::with_capacity(count as usize * 5 + (count as usize / per_msg + 1) * fixed);
    let mut next = first;
    let end = first.saturating_add(count);
    while next < end {
        let n = (end - next).min(per_msg as u32);
        header(&mut out, fixed + n as usize * 5, UPDATE);
        out.extend_from_slice(&u16::try_from(n * 5).unwrap_or(0).to_be_bytes());
        for a in next..next + n {
            out.push(32);
            out.extend_from_slice(&a.to_be_bytes());
        }
        out.extend_from_slice(&0u16.to_be_bytes());
        next += n;
    }
    out
}

/// Why an UPDATE could not be scanned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed UPDATE: {0}")]
pub struct Malformed(&'static str);

fn be16(b: &[u8], at: usize) -> Result<usize, Malformed> {
    match b.get(at..at + 2) {
        Some(&[x, y]) => Ok(usize::from(u16::from_be_bytes([x, y]))),
        _ => Err(Malformed("truncated length")),
    }
}

/// Walk IPv4 NLRI bytes (RFC 4271 §4.3 prefix encoding), calling `f(addr, len)` for each.
fn walk_prefixes(mut b: &[u8], f: &mut impl FnMut(u32, u8)) -> Result<(), Malformed> {
    while let Some((&len, rest)) = b.split_first() {
        if len > 32 {
            return Err(Malformed("IPv4 prefix longer than 32"));
        }
        let bytes = usize::from(len).div_ceil(8);
        let (p, rest) = if rest.len() >= bytes {
            rest.split_at(bytes)
        } else {
            return Err(Malformed("truncated prefix"));
        };
        let mut octets = [0u8; 4];
        octets[..bytes].copy_from_slice(p);
        f(u32::from_be_bytes(octets), len);
        b = rest;
    }
    Ok(())
}

/// Scan an UPDATE body (after the 19-byte header): `withdraw(addr, len)` for every withdrawn
/// IPv4 prefix, `announce(addr, len)` for every announced one, in the classic fields and in
/// MP_REACH / MP_UNREACH for AFI 1 / SAFI 1 (RFC 4760).
pub fn scan_update(
    body: &[u8],
    withdraw: &mut impl FnMut(u32, u8),
    announce: &mut impl FnMut(u32, u8),
) -> Result<(), Malformed> {
    let wlen = be16(body, 0)?;
    let withdrawn = body.get(2..2 + wlen).ok_or(Malformed("withdrawn length"))?;
    walk_prefixes(withdrawn, withdraw)?;
    let alen = be16(body, 2 + wlen)?;
    let attrs_at = 4 + wlen;
    let mut attrs = body
        .get(attrs_at..attrs_at + alen)
        .ok_or(Malformed("attribute length"))?;
    let nlri = body.get(attrs_at + alen..).unwrap_or(&[]);
    while attrs.len() >= 3 {
        let (flags, code) = (attrs[0], attrs[1]);
        let (len, hdr) = if flags & 0x10 != 0 {
            (be16(attrs, 2)?, 4)
        } else {
            (usize::from(attrs[2]), 3)
        };
        let value = attrs
            .get(hdr..hdr + len)
            .ok_or(Malformed("attribute value"))?;
        match code {
            // MP_REACH_NLRI: AFI, SAFI, next hop length + next hop, reserved, NLRI.
            14 if value.get(..3) == Some(&[0, 1, 1]) => {
                let nh = usize::from(*value.get(3).ok_or(Malformed("MP_REACH"))?);
                let at = 4 + nh + 1;
                walk_prefixes(value.get(at..).ok_or(Malformed("MP_REACH"))?, announce)?;
            }
            // MP_UNREACH_NLRI: AFI, SAFI, withdrawn routes.
            15 if value.get(..3) == Some(&[0, 1, 1]) => {
                walk_prefixes(value.get(3..).unwrap_or(&[]), withdraw)?;
            }
            _ => {}
        }
        attrs = attrs.get(hdr + len..).unwrap_or(&[]);
    }
    walk_prefixes(nlri, announce)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(stream: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut s = stream;
        while !s.is_empty() {
            let len = usize::from(u16::from_be_bytes([s[16], s[17]]));
            assert!(len <= MAX_MESSAGE);
            assert_eq!(s[18], UPDATE);
            out.push(&s[HEADER_LEN..len]);
            s = &s[len..];
        }
        out
    }

    #[test]
    fn announce_stream_round_trips() {
        let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
        let attrs = Attrs::External {
            asn: 64700,
            next_hop: Ipv4Addr::new(10, 100, 1, 1),
        };
        let s = announce_stream(base, 2000, attrs);
        let msgs = split(&s);
        assert_eq!(msgs.len(), 3, "2000 /32s need 3 packed UPDATEs");
        let mut got = Vec::new();
        for m in msgs {
            scan_update(m, &mut |_, _| panic!("no withdrawals"), &mut |a, l| {
                assert_eq!(l, 32);
                got.push(a)
            })
            .unwrap();
        }
        assert_eq!(got, (base..base + 2000).collect::<Vec<_>>());
    }

    #[test]
    fn withdraw_stream_round_trips() {
        let s = withdraw_stream(7, 1000);
        let mut got = Vec::new();
        for m in split(&s) {
            scan_update(m, &mut |a, _| got.push(a), &mut |_, _| panic!("no nlri")).unwrap();
        }
        assert_eq!(got, (7..1007).collect::<Vec<_>>());
    }

    #[test]
    fn mp_reach_ipv4_is_counted() {
        // MP_REACH_NLRI (optional, 0x80) AFI 1 SAFI 1, next hop 4 bytes, reserved, 10.0.0.1/32.
        let attr = [
            0x80, 14, 18, 0, 1, 1, 4, 10, 0, 0, 9, 0, 32, 10, 0, 0, 1, 24, 10, 1, 2,
        ];
        let mut body = vec![0, 0, 0, attr.len() as u8];
        body.extend_from_slice(&attr);
        let mut got = Vec::new();
        scan_update(&body, &mut |_, _| {}, &mut |a, l| got.push((a, l))).unwrap();
        assert_eq!(got, vec![(0x0a00_0001, 32), (0x0a01_0200, 24)]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in [
            &[][..],
            &[0, 9, 1][..],
            &[0, 0, 0, 5, 0x40][..],
            &[0, 0, 0, 0, 33],
        ] {
            assert!(scan_update(body, &mut |_, _| {}, &mut |_, _| {}).is_err());
        }
    }

    #[test]
    fn open_has_capabilities() {
        let o = open(65000, 240, Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(o.len(), u16::from_be_bytes([o[16], o[17]]) as usize);
        assert_eq!(o[18], OPEN);
        assert_eq!(&o[19..22], &[4, 0xfd, 0xe8]);
        assert_eq!(o[28] as usize, o.len() - 29);
    }
}
