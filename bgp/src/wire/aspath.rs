// ===== AS_PATH / AS4_PATH (RFC 4271 §4.3 b, RFC 6793 §3, RFC 5065 §3) =====
//
// A sequence of path segments:
//
//  +-----------------+-----------------+------------------------------------+
//  | segment type(1) | segment len (1) | segment len x AS number (2 or 4)   |
//  +-----------------+-----------------+------------------------------------+
//
// Types: 1 AS_SET, 2 AS_SEQUENCE, 3 AS_CONFED_SEQUENCE, 4 AS_CONFED_SET.
// AS numbers are two octets towards an OLD speaker and in AS4_PATH they are always four.

//! AS_PATH codec and the RFC 6793 §4.2.3 AS_PATH / AS4_PATH merge.

use bytes::{BufMut, BytesMut};

use super::{AsPath, AsSegment, SegmentType, AS_TRANS};

fn segment_type(t: u8) -> Option<SegmentType> {
    Some(match t {
        1 => SegmentType::Set,
        2 => SegmentType::Sequence,
        3 => SegmentType::ConfedSequence,
        4 => SegmentType::ConfedSet,
        _ => return None,
    })
}

/// Decodes an AS_PATH (or AS4_PATH with `four_octet` set). `None` when malformed per
/// RFC 7606 §7.2: unknown segment type, zero-length segment, overrun or underrun.
pub(crate) fn decode_as_path(mut buf: &[u8], four_octet: bool) -> Option<AsPath> {
    let width = if four_octet { 4 } else { 2 };
    let mut segments = Vec::new();
    while let Some((&kind, rest)) = buf.split_first() {
        let (&count, rest) = rest.split_first()?;
        let kind = segment_type(kind)?;
        if count == 0 {
            return None;
        }
        let (body, rest) = rest.split_at_checked(usize::from(count) * width)?;
        let asns = if four_octet {
            body.chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            body.chunks_exact(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .collect()
        };
        segments.push(AsSegment { kind, asns });
        buf = rest;
    }
    Some(AsPath { segments })
}

/// Encoded size of a path; segments longer than 255 ASes are split, empty ones skipped.
pub(crate) fn as_path_len(path: &AsPath, four_octet: bool) -> usize {
    let width = if four_octet { 4 } else { 2 };
    path.segments
        .iter()
        .filter(|s| !s.asns.is_empty())
        .map(|s| s.asns.len().div_ceil(255) * 2 + s.asns.len() * width)
        .sum()
}

/// Appends a path. With `four_octet` false every AS above 65535 becomes AS_TRANS
/// (RFC 6793 §4.2.2).
pub(crate) fn encode_as_path(path: &AsPath, four_octet: bool, out: &mut BytesMut) {
    for seg in &path.segments {
        for chunk in seg.asns.chunks(255) {
            out.put_u8(seg.kind as u8);
            out.put_u8(chunk.len() as u8);
            for &asn in chunk {
                if four_octet {
                    out.put_u32(asn);
                } else {
                    out.put_u16(u16::try_from(asn).unwrap_or(AS_TRANS));
                }
            }
        }
    }
}

fn is_confed(kind: SegmentType) -> bool {
    matches!(kind, SegmentType::ConfedSequence | SegmentType::ConfedSet)
}

/// Whether an OLD speaker needs AS4_PATH to learn this path (RFC 6793 §4.2.2).
pub(crate) fn needs_as4_path(path: &AsPath) -> bool {
    path.segments
        .iter()
        .filter(|s| !is_confed(s.kind))
        .any(|s| s.asns.iter().any(|&a| a > u32::from(u16::MAX)))
}

/// The AS4_PATH to send: the path without confederation segments (RFC 6793 §3).
pub(crate) fn as4_path_of(path: &AsPath) -> AsPath {
    AsPath {
        segments: path
            .segments
            .iter()
            .filter(|s| !is_confed(s.kind))
            .cloned()
            .collect(),
    }
}

fn count(path: &AsPath) -> usize {
    path.length()
}

impl AsPath {
    /// Puts `asn` in front (RFC 4271 §5.1.2): into the leading AS_SEQUENCE, or a new one when
    /// the path starts with another segment type or the sequence already holds 255 ASes.
    /// (RFC 6793: 4-octet numbers here; the codec substitutes AS_TRANS on 2-octet sessions.)
    pub fn prepend(&mut self, asn: u32) {
        match self.segments.first_mut() {
            Some(seg) if seg.kind == SegmentType::Sequence && seg.asns.len() < 255 => {
                seg.asns.insert(0, asn);
            }
            _ => self.segments.insert(
                0,
                AsSegment {
                    kind: SegmentType::Sequence,
                    asns: vec![asn],
                },
            ),
        }
    }

    /// Path length as RFC 4271 §9.1.2.2 a) and RFC 6793 §4.2.3 count it: an AS_SET counts 1,
    /// confederation segments 0 (RFC 5065 §5.3).
    pub fn length(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
            })
            .sum()
    }
}

/// Drops confederation segments from a received AS4_PATH (RFC 6793 §6).
pub(crate) fn strip_confed(path: &mut AsPath) {
    path.segments.retain(|s| !is_confed(s.kind));
}

/// RFC 6793 §4.2.3: rebuild the real path from AS_PATH and AS4_PATH. When AS_PATH is
/// shorter than AS4_PATH, AS4_PATH is ignored. Otherwise the leading ASes of AS_PATH that
/// AS4_PATH lacks are kept (with any confederation segments in front) and AS4_PATH follows.
pub(crate) fn merge_as4_path(as_path: &AsPath, as4_path: &AsPath) -> AsPath {
    let (n, n4) = (count(as_path), count(as4_path));
    if n < n4 {
        return as_path.clone();
    }
    let mut needed = n - n4;
    let mut segments = Vec::with_capacity(as_path.segments.len() + as4_path.segments.len());
    for seg in &as_path.segments {
        match seg.kind {
            SegmentType::ConfedSequence | SegmentType::ConfedSet => segments.push(seg.clone()),
            _ if needed == 0 => break,
            SegmentType::Set => {
                segments.push(seg.clone());
                needed -= 1;
            }
            SegmentType::Sequence => {
                let take = needed.min(seg.asns.len());
                segments.push(AsSegment {
                    kind: SegmentType::Sequence,
                    asns: seg.asns.iter().take(take).copied().collect(),
                });
                needed -= take;
            }
        }
    }
    segments.extend(as4_path.segments.iter().cloned());
    AsPath { segments }
}
