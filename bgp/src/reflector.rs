//! BGP route reflection (RFC 4456), every protocol rule in one place.
//!
//! A node with a cluster id is a route reflector; the iBGP peers configured as its clients
//! form its cluster. Pure functions over attributes: the speaker's export and import paths
//! call them, the unit tests below check each rule without sessions.

use std::net::Ipv4Addr;

use crate::wire::PathAttrs;

/// What the export rules need to know to reflect one iBGP-learned route to one iBGP peer.
/// Only built when this node is a reflector (has a cluster id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reflection {
    /// Our cluster id (RFC 4456 §7).
    pub cluster_id: Ipv4Addr,
    /// The route was learned from one of our clients.
    pub from_client: bool,
    /// BGP Identifier of the peer the route was learned from.
    pub from_router_id: Ipv4Addr,
    /// The peer we are advertising to is one of our clients.
    pub to_client: bool,
}

/// RFC 4456 §6: whether a route learned over iBGP may be advertised to another iBGP peer.
/// A route from a client goes to every client and every non-client (the originating client
/// is excluded by the speaker's "never back to its sender" rule); a route from a non-client
/// goes to the clients only. Without reflection (`rr` None) RFC 4271 §9.2 applies: never.
pub fn may_reflect(rr: Option<&Reflection>) -> bool {
    rr.is_some_and(|r| r.from_client || r.to_client)
}

/// RFC 4456 §8: the attributes a reflected route carries. ORIGINATOR_ID is set to the
/// BGP Identifier of the peer the route came from unless already present, and our cluster
/// id is prepended to CLUSTER_LIST. Everything else (next hop, LOCAL_PREF, MED, AS_PATH)
/// is left as received (§6: reflection does not change the path attributes).
pub fn reflect(attrs: &mut PathAttrs, rr: &Reflection) {
    if attrs.originator_id.is_none() {
        attrs.originator_id = Some(rr.from_router_id);
    }
    attrs.cluster_list.insert(0, rr.cluster_id);
}

/// A reflected route that came back to where it has already been (RFC 4456 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReflectionLoop {
    /// ORIGINATOR_ID is our own BGP Identifier: we originated the route into the AS.
    OriginatorId,
    /// CLUSTER_LIST holds our cluster id: the route already passed through our cluster.
    ClusterList,
}

impl ReflectionLoop {
    pub fn as_str(self) -> &'static str {
        match self {
            ReflectionLoop::OriginatorId => "originator-id loop",
            ReflectionLoop::ClusterList => "cluster-list loop",
        }
    }
}

/// RFC 4456 §8 import check, for routes learned over iBGP. A route whose ORIGINATOR_ID is
/// our router id must be ignored by any BGP speaker (reflector or not); a reflector also
/// ignores a route whose CLUSTER_LIST contains its cluster id.
pub fn import_loop(
    attrs: &PathAttrs,
    router_id: Ipv4Addr,
    cluster_id: Option<Ipv4Addr>,
) -> Option<ReflectionLoop> {
    if attrs.originator_id == Some(router_id) {
        return Some(ReflectionLoop::OriginatorId);
    }
    match cluster_id {
        Some(id) if attrs.cluster_list.contains(&id) => Some(ReflectionLoop::ClusterList),
        _ => None,
    }
}

/// ORIGINATOR_ID and CLUSTER_LIST are AS-internal (RFC 4456 §8 "non-transitive", RFC 7606
/// §7.9/§7.10): when received from an external peer they are discarded.
pub fn strip_from_external(attrs: &mut PathAttrs) {
    attrs.originator_id = None;
    attrs.cluster_list.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn rr(from_client: bool, to_client: bool) -> Reflection {
        Reflection {
            cluster_id: ip("10.255.0.1"),
            from_client,
            from_router_id: ip("192.0.2.1"),
            to_client,
        }
    }

    #[test]
    fn from_client_goes_to_clients_and_non_clients() {
        assert!(may_reflect(Some(&rr(true, true))));
        assert!(may_reflect(Some(&rr(true, false))));
    }

    #[test]
    fn from_non_client_goes_to_clients_only() {
        assert!(may_reflect(Some(&rr(false, true))));
        assert!(!may_reflect(Some(&rr(false, false))));
    }

    #[test]
    fn without_reflection_ibgp_is_not_readvertised() {
        assert!(!may_reflect(None));
    }

    #[test]
    fn reflect_sets_originator_and_prepends_cluster() {
        let mut a = PathAttrs {
            next_hop: Some(ip("10.0.0.7")),
            local_pref: Some(150),
            ..Default::default()
        };
        reflect(&mut a, &rr(true, true));
        assert_eq!(a.originator_id, Some(ip("192.0.2.1")));
        assert_eq!(a.cluster_list, vec![ip("10.255.0.1")]);
        assert_eq!(a.next_hop, Some(ip("10.0.0.7")));
        assert_eq!(a.local_pref, Some(150));
    }

    #[test]
    fn reflect_keeps_an_existing_originator_and_prepends() {
        let mut a = PathAttrs {
            originator_id: Some(ip("192.0.2.99")),
            cluster_list: vec![ip("10.255.0.2")],
            ..Default::default()
        };
        reflect(&mut a, &rr(false, true));
        assert_eq!(a.originator_id, Some(ip("192.0.2.99")));
        assert_eq!(a.cluster_list, vec![ip("10.255.0.1"), ip("10.255.0.2")]);
    }

    #[test]
    fn import_drops_our_originator_id_even_without_cluster() {
        let a = PathAttrs {
            originator_id: Some(ip("192.0.2.5")),
            ..Default::default()
        };
        assert_eq!(
            import_loop(&a, ip("192.0.2.5"), None),
            Some(ReflectionLoop::OriginatorId)
        );
        assert_eq!(import_loop(&a, ip("192.0.2.6"), None), None);
    }

    #[test]
    fn import_drops_our_cluster_id() {
        let a = PathAttrs {
            originator_id: Some(ip("192.0.2.5")),
            cluster_list: vec![ip("10.255.0.2"), ip("10.255.0.1")],
            ..Default::default()
        };
        let me = ip("192.0.2.9");
        assert_eq!(
            import_loop(&a, me, Some(ip("10.255.0.1"))),
            Some(ReflectionLoop::ClusterList)
        );
        assert_eq!(import_loop(&a, me, Some(ip("10.255.0.3"))), None);
        // A client (no cluster id) accepts reflected routes.
        assert_eq!(import_loop(&a, me, None), None);
        assert_eq!(ReflectionLoop::ClusterList.as_str(), "cluster-list loop");
    }

    #[test]
    fn external_routes_lose_reflection_attributes() {
        let mut a = PathAttrs {
            originator_id: Some(ip("192.0.2.5")),
            cluster_list: vec![ip("10.255.0.2")],
            ..Default::default()
        };
        strip_from_external(&mut a);
        assert_eq!(a.originator_id, None);
        assert!(a.cluster_list.is_empty());
    }
}
