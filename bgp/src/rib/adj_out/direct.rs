//! [`Direct`]: changes that go straight out, past the pending set.
//!
//! When a peer has nothing pending, a batch of changes in ascending key order (what the
//! speaker's propagation produces: each prefix once, in address order) needs no coalescing:
//! each is compared with what was sent, recorded as sent, and grouped for the encoder in
//! one step, instead of a pending-set insert now and a removal at the next take.

use std::sync::Arc;

use super::{pack, AdjRibOut, Grouper, PendingUpdates};
use crate::rib::attrs::RouteAttrs;
use crate::wire::{Family, Nlri};

/// A run of direct changes to one [`AdjRibOut`]; see [`AdjRibOut::direct`].
#[derive(Debug)]
pub struct Direct<'a> {
    out: &'a mut AdjRibOut,
    grouper: Grouper,
    /// The last key applied: keys must ascend, so no prefix comes twice.
    last: Option<u64>,
}

impl AdjRibOut {
    /// Starts a run of direct changes, if nothing is pending (a pending change to a prefix
    /// would otherwise be overtaken).
    pub fn direct(&mut self) -> Option<Direct<'_>> {
        (!self.has_pending()).then(|| Direct {
            out: self,
            grouper: Grouper::default(),
            last: None,
        })
    }
}

impl Direct<'_> {
    /// Applies "the peer should have `attrs` (None: nothing) for `nlri`" as sent, if it can
    /// go out directly: an IPv4 key above the last one applied. Returns false otherwise,
    /// and the caller queues this change and every later one the usual way
    /// ([`AdjRibOut::set`] / [`AdjRibOut::remove`]).
    pub fn apply(&mut self, nlri: Nlri, attrs: Option<&Arc<RouteAttrs>>) -> bool {
        let Some(key) = pack(&nlri) else {
            return false;
        };
        if self.last.is_some_and(|last| key <= last) {
            return false;
        }
        self.last = Some(key);
        let advertised = &mut self.out.v4.advertised;
        match attrs {
            None => {
                if advertised.remove(&key).is_some() {
                    self.grouper.push(Family::IPV4_UNICAST, nlri, None);
                }
            }
            Some(attrs) => {
                let old = advertised.insert(key, Arc::clone(attrs));
                // RFC 4271 §9.2: the route the peer already has is not sent again.
                if !old.is_some_and(|o| Arc::ptr_eq(&o, attrs)) {
                    self.grouper.push(Family::IPV4_UNICAST, nlri, Some(attrs));
                }
            }
        }
        true
    }

    /// What to send for the changes applied, grouped like [`AdjRibOut::take_pending`].
    pub fn finish(self) -> PendingUpdates {
        self.out.v4.compact();
        self.grouper.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{PathAttrs, Prefix};
    use std::net::IpAddr;

    fn nlri(s: &str) -> Nlri {
        Nlri {
            prefix: s.parse::<Prefix>().unwrap(),
            path_id: 0,
        }
    }

    fn attrs(hop: [u8; 4]) -> Arc<RouteAttrs> {
        Arc::new(RouteAttrs::new(PathAttrs::default(), IpAddr::from(hop)))
    }

    #[test]
    fn direct_changes_match_the_pending_path() {
        let (a, b) = (attrs([192, 0, 2, 1]), attrs([192, 0, 2, 2]));
        let mut queued = AdjRibOut::new();
        let mut direct = AdjRibOut::new();
        // Round 1 announces three prefixes; round 2 re-announces one unchanged, moves one
        // to another set and withdraws one plus one never sent.
        type Change<'a> = (&'a str, Option<&'a Arc<RouteAttrs>>);
        let rounds: [Vec<Change>; 2] = [
            vec![
                ("10.0.0.1/32", Some(&a)),
                ("10.0.0.2/32", Some(&a)),
                ("10.0.0.3/32", Some(&a)),
            ],
            vec![
                ("10.0.0.1/32", Some(&a)),
                ("10.0.0.2/32", Some(&b)),
                ("10.0.0.3/32", None),
                ("10.0.0.4/32", None),
            ],
        ];
        for round in &rounds {
            for (p, at) in round {
                match at {
                    Some(at) => queued.set(nlri(p), Arc::clone(at)),
                    None => queued.remove(nlri(p)),
                }
            }
            let want = queued.take_pending();
            let mut run = direct.direct().expect("nothing pending");
            for (p, at) in round {
                assert!(run.apply(nlri(p), *at));
            }
            assert_eq!(run.finish(), want);
            assert_eq!(
                direct.iter().collect::<Vec<_>>(),
                queued.iter().collect::<Vec<_>>()
            );
        }
        assert_eq!(direct.advertised_len(), 2);
    }

    #[test]
    fn only_ascending_ipv4_keys_go_direct() {
        let a = attrs([192, 0, 2, 1]);
        let mut out = AdjRibOut::new();
        let mut run = out.direct().expect("nothing pending");
        assert!(run.apply(nlri("10.0.0.2/32"), Some(&a)));
        assert!(!run.apply(nlri("10.0.0.2/32"), None), "a repeated prefix");
        assert!(!run.apply(nlri("10.0.0.1/32"), Some(&a)), "a lower prefix");
        assert!(!run.apply(nlri("2001:db8::/64"), Some(&a)), "IPv6");
        assert_eq!(run.finish().prefix_count(), 1);
        out.set(nlri("10.0.0.9/32"), a);
        assert!(out.direct().is_none(), "a change is pending");
    }
}
