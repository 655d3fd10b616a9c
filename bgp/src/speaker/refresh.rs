//! Route refresh: RFC 2918 requests and RFC 7313 enhanced route refresh.
//!
//! As the sender of a refresh (the peer asked us): with enhanced route refresh negotiated,
//! the re-sent routes are framed by BoRR and EoRR (RFC 7313 §4) instead of End-of-RIB.
//! As the receiver (we asked, or the peer re-sends on its own): on BoRR every path of the
//! family the peer has in our Adj-RIB-In is marked stale; each path re-sent (or withdrawn)
//! clears its mark; on EoRR the paths still marked are removed (RFC 7313 §4).

use bytes::BytesMut;
use foldhash::{HashMap, HashSet};

use crate::rib::PeerId;
use crate::session::TrySend;
use crate::wire::{encode_message, EncodeContext, Family, Message, Nlri, RouteRefresh};

use super::core::Speaker;

/// RFC 7313 §3 message subtypes.
pub mod subtype {
    pub const REQUEST: u8 = 0;
    /// Beginning of Route Refresh.
    pub const BORR: u8 = 1;
    /// End of Route Refresh.
    pub const EORR: u8 = 2;
}

/// Per peer and family, the paths marked stale by a BoRR and not yet re-sent.
#[derive(Default)]
pub(crate) struct RefreshState {
    stale: HashMap<(PeerId, Family), HashSet<Nlri>>,
}

impl RefreshState {
    /// The peer sent (or withdrew) `nlri`: it is not stale any more.
    pub(crate) fn seen(&mut self, peer: PeerId, nlri: &Nlri) {
        if self.stale.is_empty() {
            return;
        }
        if let Some(set) = self.stale.get_mut(&(peer, Family::of(&nlri.prefix))) {
            set.remove(nlri);
        }
    }

    /// The peer's session is gone: no refresh of it is in progress any more.
    pub(crate) fn forget(&mut self, peer: PeerId) {
        self.stale.retain(|(p, _), _| *p != peer);
    }

    /// Paths still waiting for the peer's EoRR.
    #[cfg(test)]
    pub(crate) fn pending(&self, peer: PeerId) -> usize {
        self.stale
            .iter()
            .filter(|((p, _), _)| *p == peer)
            .map(|(_, s)| s.len())
            .sum()
    }
}

/// Appends a ROUTE-REFRESH of `subtype` for `family` to `buf`.
pub(crate) fn encode_refresh(family: Family, subtype: u8, ctx: &EncodeContext, buf: &mut BytesMut) {
    let msg = Message::RouteRefresh(RouteRefresh { family, subtype });
    if let Err(e) = encode_message(&msg, ctx, buf) {
        tracing::error!("encode ROUTE-REFRESH: {e}");
    }
}

/// Framing of re-sent routes: BoRR before them when enhanced route refresh was negotiated.
pub(crate) fn begin_resend(
    enhanced: bool,
    family: Family,
    ctx: &EncodeContext,
    buf: &mut BytesMut,
) {
    if enhanced {
        encode_refresh(family, subtype::BORR, ctx, buf);
    }
}

/// After re-sent routes: EoRR with enhanced route refresh, End-of-RIB without it.
pub(crate) fn end_resend(enhanced: bool, family: Family, ctx: &EncodeContext, buf: &mut BytesMut) {
    if enhanced {
        encode_refresh(family, subtype::EORR, ctx, buf);
    } else {
        crate::wire::encode_end_of_rib(family, buf);
    }
}

impl Speaker {
    /// A ROUTE-REFRESH from peer `idx`.
    pub(crate) fn on_refresh_message(&mut self, idx: usize, rr: RouteRefresh) {
        match rr.subtype {
            subtype::REQUEST => self.on_route_refresh(idx, rr.family),
            subtype::BORR => self.begin_of_refresh(idx, rr.family),
            subtype::EORR => self.end_of_refresh(idx, rr.family),
            // RFC 7313 §5: any other subtype is ignored.
            other => {
                tracing::debug!(
                    subtype = other,
                    "ROUTE-REFRESH with unknown subtype ignored"
                );
            }
        }
    }

    /// RFC 7313 §4: BoRR — mark every path of the family from this peer stale.
    fn begin_of_refresh(&mut self, idx: usize, family: Family) {
        let Some(slot) = self.peers.get(idx) else {
            return;
        };
        if slot.session.is_none() {
            return;
        }
        let id = slot.id;
        let set: HashSet<Nlri> = self
            .rib
            .adj_in(id)
            .map(|r| r.nlri)
            .filter(|n| Family::of(&n.prefix) == family)
            .collect();
        tracing::debug!(peer = %slot.address(), ?family, stale = set.len(), "BoRR received");
        self.refresh_state.stale.insert((id, family), set);
    }

    /// RFC 7313 §4: EoRR — remove the paths the peer did not re-send.
    fn end_of_refresh(&mut self, idx: usize, family: Family) {
        let Some(slot) = self.peers.get(idx) else {
            return;
        };
        let id = slot.id;
        // An EoRR without a BoRR is ignored (RFC 7313 §4 only asks to purge after a BoRR).
        let Some(stale) = self.refresh_state.stale.remove(&(id, family)) else {
            return;
        };
        tracing::debug!(peer = %slot.address(), ?family, purged = stale.len(), "EoRR received");
        for n in stale {
            self.soft_in.remove(id, &n);
            if self.rib.withdraw(id, n) {
                self.dirty.insert(n.prefix);
            }
        }
    }

    /// Asks peer `address` to re-send its routes (RFC 2918 §3; with RFC 7313 it answers
    /// with BoRR, the routes, EoRR). Our import side does not need it (soft reconfiguration
    /// inbound); this is for operators and tests.
    pub(crate) fn request_refresh(&mut self, address: std::net::IpAddr) -> Result<usize, String> {
        let slot = self
            .peers
            .iter()
            .find(|p| p.address() == address)
            .ok_or_else(|| format!("no such peer {address}"))?;
        let session = slot
            .session
            .as_ref()
            .ok_or_else(|| format!("peer {address} is not established"))?;
        if !session.negotiated.route_refresh && !session.negotiated.enhanced_route_refresh {
            return Err(format!("peer {address} did not advertise route refresh"));
        }
        let ctx = session.negotiated.encode.clone();
        let mut buf = BytesMut::new();
        for f in &session.negotiated.families {
            encode_refresh(*f, subtype::REQUEST, &ctx, &mut buf);
        }
        let n = session.negotiated.families.len();
        match slot.handle.try_send(buf.freeze()) {
            Ok(()) => Ok(n),
            Err(TrySend::Full(_)) => Err("the session's write queue is full; try again".into()),
            Err(TrySend::Gone) => Err(format!("peer {address} session is gone")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_message, DecodeContext};

    #[test]
    fn borr_and_eorr_encode_with_rfc7313_subtypes() {
        let ctx = EncodeContext::default();
        let mut buf = BytesMut::new();
        begin_resend(true, Family::IPV4_UNICAST, &ctx, &mut buf);
        // Header 19 + body 4; type 5.
        assert_eq!(buf.len(), 23);
        assert_eq!(buf[18], 5);
        assert_eq!(&buf[19..], &[0, 1, subtype::BORR, 1]);
        let msg = decode_message(&buf, &DecodeContext::default()).unwrap();
        assert_eq!(
            msg,
            Message::RouteRefresh(RouteRefresh {
                family: Family::IPV4_UNICAST,
                subtype: subtype::BORR
            })
        );
        let mut buf = BytesMut::new();
        end_resend(true, Family::IPV6_UNICAST, &ctx, &mut buf);
        assert_eq!(&buf[19..], &[0, 2, subtype::EORR, 1]);
        // Without enhanced refresh: no BoRR, and End-of-RIB (an UPDATE) after.
        let mut buf = BytesMut::new();
        begin_resend(false, Family::IPV4_UNICAST, &ctx, &mut buf);
        assert!(buf.is_empty());
        end_resend(false, Family::IPV4_UNICAST, &ctx, &mut buf);
        assert_eq!(buf[18], 2);
    }

    #[test]
    fn seen_clears_stale_marks() {
        let mut s = RefreshState::default();
        let n = Nlri {
            prefix: "10.0.0.0/24".parse().unwrap(),
            path_id: 0,
        };
        s.stale
            .insert((1, Family::IPV4_UNICAST), [n].into_iter().collect());
        assert_eq!(s.pending(1), 1);
        s.seen(2, &n);
        assert_eq!(s.pending(1), 1);
        s.seen(1, &n);
        assert_eq!(s.pending(1), 0);
        s.forget(1);
        assert!(s.stale.is_empty());
    }
}
