//! The eBGP/iBGP rules applied on import and export (RFC 4271 §5, §9.1.3, RFC 1997).
//! Pure functions over attributes, so they are unit-tested without sessions.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, LazyLock};

use crate::reflector::{self, Reflection, ReflectionLoop};
use crate::rib::RouteAttrs;
use crate::wire::{AsPath, Community, PathAttrs};

/// Why an imported path is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportReject {
    /// Our own AS is in the AS_PATH (RFC 4271 §9.1.2).
    AsPathLoop,
    /// The peer's import filter (or RFC 8212 default deny) rejected it.
    Filtered,
    /// RFC 7606 treat-as-withdraw.
    Malformed,
    /// RFC 4456 §8: ORIGINATOR_ID or CLUSTER_LIST shows the route already passed here.
    Reflection(ReflectionLoop),
}

impl ImportReject {
    /// The note stored with every path rejected for this reason: one shared string, so a
    /// rejected path costs no allocation of its own.
    pub fn note(self) -> Arc<str> {
        static NOTES: LazyLock<[Arc<str>; 5]> = LazyLock::new(|| {
            [
                ImportReject::AsPathLoop,
                ImportReject::Filtered,
                ImportReject::Malformed,
                ImportReject::Reflection(ReflectionLoop::OriginatorId),
                ImportReject::Reflection(ReflectionLoop::ClusterList),
            ]
            .map(|r| Arc::from(r.as_str()))
        });
        let i = match self {
            ImportReject::AsPathLoop => 0,
            ImportReject::Filtered => 1,
            ImportReject::Malformed => 2,
            ImportReject::Reflection(ReflectionLoop::OriginatorId) => 3,
            ImportReject::Reflection(ReflectionLoop::ClusterList) => 4,
        };
        NOTES
            .get(i)
            .cloned()
            .unwrap_or_else(|| Arc::from(self.as_str()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ImportReject::AsPathLoop => "as-path loop",
            ImportReject::Filtered => "rejected by import filter",
            ImportReject::Malformed => "malformed (RFC 7606 treat-as-withdraw)",
            ImportReject::Reflection(l) => l.as_str(),
        }
    }
}

/// Normalises attributes received from a peer: LOCAL_PREF from an eBGP peer is ignored
/// (RFC 4271 §5.1.5), as are its ORIGINATOR_ID / CLUSTER_LIST; returns the loop verdict:
/// AS_PATH (RFC 4271 §9.1.2), then ORIGINATOR_ID / CLUSTER_LIST on iBGP (RFC 4456 §8;
/// `cluster_id` is ours when this node is a route reflector).
pub fn import_attrs(
    mut attrs: PathAttrs,
    local_asn: u32,
    ebgp: bool,
    router_id: Ipv4Addr,
    cluster_id: Option<Ipv4Addr>,
) -> (PathAttrs, Option<ImportReject>) {
    if ebgp {
        attrs.local_pref = None;
        reflector::strip_from_external(&mut attrs);
    }
    // RFC 9494 §4.3: a route that arrives long-lived stale is least preferred.
    if attrs
        .communities
        .contains(&crate::wire::Community::LLGR_STALE)
    {
        attrs.local_pref = Some(0);
    }
    let looped = attrs
        .as_path
        .as_ref()
        .is_some_and(|p| p.segments.iter().any(|s| s.asns.contains(&local_asn)));
    let verdict = if looped {
        Some(ImportReject::AsPathLoop)
    } else {
        reflector::import_loop(&attrs, router_id, cluster_id).map(ImportReject::Reflection)
    };
    (attrs, verdict)
}

/// Where a path came from, as the export rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Originated by this node (`bramble routes announce`).
    Local,
    Ebgp,
    Ibgp,
}

/// The session a path is exported on.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub ebgp: bool,
    pub local_asn: u32,
    /// Our address on this session: the next hop we set (next-hop-self).
    pub local_addr: IpAddr,
    /// An IPv6 address of ours for IPv6 routes sent over an IPv4 session, if known.
    pub local_v6: Option<Ipv6Addr>,
}

/// The attributes a path is advertised with to `to`, or None when it must not be advertised
/// there. `attrs.next_hop` unspecified (0.0.0.0 / ::) means "this node". `rr` is given when
/// this node is a route reflector and the path goes from an iBGP peer to an iBGP peer.
pub fn export_attrs(
    src: &RouteAttrs,
    from: Source,
    to: &Target,
    rr: Option<&Reflection>,
) -> Option<RouteAttrs> {
    let a = &src.attrs;
    // RFC 1997: well-known communities.
    if a.communities.contains(&Community::NO_ADVERTISE) {
        return None;
    }
    if to.ebgp
        && (a.communities.contains(&Community::NO_EXPORT)
            || a.communities.contains(&Community::NO_EXPORT_SUBCONFED))
    {
        return None;
    }
    // RFC 4271 §9.2: a route learned from an iBGP peer is not advertised to other iBGP peers,
    // unless this node reflects it (RFC 4456 §6).
    let reflecting = from == Source::Ibgp && !to.ebgp;
    if reflecting && !reflector::may_reflect(rr) {
        return None;
    }
    let mut out = a.clone();
    if let (true, Some(rr)) = (reflecting, rr) {
        reflector::reflect(&mut out, rr);
    }
    let mut next_hop = src.next_hop;
    let mut link_local = src.link_local;
    if to.ebgp {
        // RFC 4271 §5.1.2: prepend our AS; §5.1.3: next hop self; §5.1.4: MED learned from
        // another AS is not passed on; §5.1.5: no LOCAL_PREF to eBGP; RFC 4456 §8:
        // ORIGINATOR_ID / CLUSTER_LIST stay inside the AS.
        out.as_path
            .get_or_insert_with(AsPath::default)
            .prepend(to.local_asn);
        next_hop = self_address(src.next_hop, to)?;
        link_local = None;
        if from != Source::Local {
            out.med = None;
        }
        out.local_pref = None;
        out.originator_id = None;
        out.cluster_list.clear();
    } else {
        // iBGP: LOCAL_PREF always present (RFC 4271 §5.1.5); the next hop of a route learned
        // over eBGP is passed unchanged (§5.1.3), our own routes get ours.
        out.local_pref = Some(a.local_pref.unwrap_or(100));
        if out.as_path.is_none() {
            out.as_path = Some(AsPath::default());
        }
        if src.next_hop.is_unspecified() {
            next_hop = self_address(src.next_hop, to)?;
            link_local = None;
        }
    }
    if out.origin.is_none() {
        out.origin = Some(crate::wire::Origin::Incomplete);
    }
    out.next_hop = match next_hop {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    };
    Some(RouteAttrs {
        attrs: out,
        next_hop,
        link_local,
    })
}

/// Applies the changes of the export policy rule that accepted a path to the attributes
/// [`export_attrs`] produced. RFC 4271 §5.1.5: whatever the policy says, no LOCAL_PREF goes
/// to an eBGP peer.
pub fn apply_export_policy(
    filter: &crate::policy::Filter,
    decision: crate::policy::Decision,
    out: &mut RouteAttrs,
    to: &Target,
) {
    filter.apply(decision, &mut out.attrs, to.local_asn, true);
    if to.ebgp {
        out.attrs.local_pref = None;
    }
}

/// Whether the rule behind an accepting `decision` changes attributes.
pub(crate) fn policy_changes(
    filter: &crate::policy::Filter,
    decision: crate::policy::Decision,
) -> bool {
    let rule = decision
        .rule
        .and_then(|i| filter.policy.as_ref().and_then(|p| p.rules.get(i)));
    rule.is_some_and(|r| !r.action.is_plain())
}

/// Our address of the family of `like` on this session.
fn self_address(like: IpAddr, to: &Target) -> Option<IpAddr> {
    match (like, to.local_addr) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => Some(to.local_addr),
        (IpAddr::V6(_), IpAddr::V4(_)) => to.local_v6.map(IpAddr::V6),
        // IPv4 routes over an IPv6 session need RFC 8950; not negotiated here.
        (IpAddr::V4(_), IpAddr::V6(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Origin;
    use crate::wire::{AsSegment, SegmentType};
    use std::net::Ipv4Addr;

    const RID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn learned(path: &[u32]) -> RouteAttrs {
        RouteAttrs {
            attrs: PathAttrs {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath {
                    segments: vec![AsSegment {
                        kind: SegmentType::Sequence,
                        asns: path.to_vec(),
                    }],
                }),
                next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
                med: Some(7),
                local_pref: Some(200),
                ..Default::default()
            },
            next_hop: v4("10.0.0.1"),
            link_local: None,
        }
    }

    fn target(ebgp: bool) -> Target {
        Target {
            ebgp,
            local_asn: 64512,
            local_addr: v4("10.9.9.9"),
            local_v6: None,
        }
    }

    #[test]
    fn ebgp_export_prepends_sets_next_hop_and_strips() {
        let out = export_attrs(&learned(&[65001]), Source::Ebgp, &target(true), None).unwrap();
        assert_eq!(
            out.attrs.as_path.unwrap().segments[0].asns,
            vec![64512, 65001]
        );
        assert_eq!(out.next_hop, v4("10.9.9.9"));
        assert_eq!(out.attrs.next_hop, Some(Ipv4Addr::new(10, 9, 9, 9)));
        assert_eq!(out.attrs.med, None);
        assert_eq!(out.attrs.local_pref, None);
    }

    #[test]
    fn ibgp_export_keeps_next_hop_and_sets_local_pref() {
        let mut src = learned(&[65001]);
        src.attrs.local_pref = None;
        let out = export_attrs(&src, Source::Ebgp, &target(false), None).unwrap();
        assert_eq!(out.next_hop, v4("10.0.0.1"));
        assert_eq!(out.attrs.local_pref, Some(100));
        assert_eq!(out.attrs.as_path.unwrap().segments[0].asns, vec![65001]);
        // iBGP-learned routes are not re-advertised to iBGP (RFC 4271 §9.2).
        assert!(export_attrs(&src, Source::Ibgp, &target(false), None).is_none());
        assert!(export_attrs(&src, Source::Ibgp, &target(true), None).is_some());
    }

    #[test]
    fn well_known_communities() {
        let mut src = learned(&[65001]);
        src.attrs.communities = vec![Community::NO_EXPORT];
        assert!(export_attrs(&src, Source::Ebgp, &target(true), None).is_none());
        assert!(export_attrs(&src, Source::Ebgp, &target(false), None).is_some());
        src.attrs.communities = vec![Community::NO_ADVERTISE];
        assert!(export_attrs(&src, Source::Ebgp, &target(false), None).is_none());
        src.attrs.communities = vec![Community::NO_EXPORT_SUBCONFED];
        assert!(export_attrs(&src, Source::Ebgp, &target(true), None).is_none());
    }

    #[test]
    fn local_routes_get_our_next_hop() {
        let src = RouteAttrs {
            attrs: PathAttrs {
                origin: Some(Origin::Igp),
                ..Default::default()
            },
            next_hop: v4("0.0.0.0"),
            link_local: None,
        };
        let out = export_attrs(&src, Source::Local, &target(false), None).unwrap();
        assert_eq!(out.next_hop, v4("10.9.9.9"));
        assert_eq!(out.attrs.as_path, Some(AsPath::default()));
        let v6 = RouteAttrs {
            next_hop: "::".parse().unwrap(),
            ..src
        };
        // No IPv6 address of ours on an IPv4 session: not advertised.
        assert!(export_attrs(&v6, Source::Local, &target(true), None).is_none());
    }

    #[test]
    fn import_loop_and_local_pref() {
        let (attrs, verdict) = import_attrs(learned(&[65001, 64512]).attrs, 64512, true, RID, None);
        assert_eq!(verdict, Some(ImportReject::AsPathLoop));
        assert_eq!(attrs.local_pref, None);
        let (attrs, verdict) = import_attrs(learned(&[65001]).attrs, 64512, false, RID, None);
        assert_eq!(verdict, None);
        assert_eq!(attrs.local_pref, Some(200));
    }

    fn reflection(from_client: bool, to_client: bool) -> Reflection {
        Reflection {
            cluster_id: Ipv4Addr::new(10, 255, 0, 1),
            from_client,
            from_router_id: Ipv4Addr::new(192, 0, 2, 1),
            to_client,
        }
    }

    #[test]
    fn reflected_route_keeps_next_hop_and_local_pref() {
        let src = learned(&[65001]);
        let rr = reflection(true, true);
        let out = export_attrs(&src, Source::Ibgp, &target(false), Some(&rr)).unwrap();
        assert_eq!(out.next_hop, v4("10.0.0.1"));
        assert_eq!(out.attrs.next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(out.attrs.local_pref, Some(200));
        assert_eq!(out.attrs.med, Some(7));
        assert_eq!(out.attrs.as_path.unwrap().segments[0].asns, vec![65001]);
        assert_eq!(out.attrs.originator_id, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(out.attrs.cluster_list, vec![Ipv4Addr::new(10, 255, 0, 1)]);
        // Client to non-client too; non-client to non-client not.
        let rr = reflection(true, false);
        assert!(export_attrs(&src, Source::Ibgp, &target(false), Some(&rr)).is_some());
        let rr = reflection(false, false);
        assert!(export_attrs(&src, Source::Ibgp, &target(false), Some(&rr)).is_none());
        // To eBGP the reflection attributes never leave the AS.
        let mut reflected = src.clone();
        reflected.attrs.originator_id = Some(Ipv4Addr::new(192, 0, 2, 1));
        reflected.attrs.cluster_list = vec![Ipv4Addr::new(10, 255, 0, 1)];
        let out = export_attrs(&reflected, Source::Ibgp, &target(true), None).unwrap();
        assert_eq!(out.attrs.originator_id, None);
        assert!(out.attrs.cluster_list.is_empty());
    }

    #[test]
    fn ebgp_routes_routes_are_not_reflected() {
        let src = learned(&[65001]);
        let rr = reflection(false, false);
        let out = export_attrs(&src, Source::Ebgp, &target(false), Some(&rr)).unwrap();
        assert_eq!(out.attrs.originator_id, None);
        assert!(out.attrs.cluster_list.is_empty());
    }

    #[test]
    fn import_reflection_loops() {
        let mut a = learned(&[65001]).attrs;
        a.originator_id = Some(RID);
        let (_, verdict) = import_attrs(a.clone(), 64512, false, RID, None);
        assert_eq!(
            verdict,
            Some(ImportReject::Reflection(ReflectionLoop::OriginatorId))
        );
        a.originator_id = Some(Ipv4Addr::new(192, 0, 2, 1));
        a.cluster_list = vec![Ipv4Addr::new(10, 255, 0, 1)];
        let (_, verdict) = import_attrs(a.clone(), 64512, false, RID, None);
        assert_eq!(verdict, None);
        let cluster = Some(Ipv4Addr::new(10, 255, 0, 1));
        let (_, verdict) = import_attrs(a.clone(), 64512, false, RID, cluster);
        assert_eq!(verdict.map(|v| v.as_str()), Some("cluster-list loop"));
        // From eBGP the attributes are discarded, so no loop is seen.
        a.originator_id = Some(RID);
        let (attrs, verdict) = import_attrs(a, 64512, true, RID, cluster);
        assert_eq!(verdict, None);
        assert_eq!(attrs.originator_id, None);
        assert!(attrs.cluster_list.is_empty());
    }
}
