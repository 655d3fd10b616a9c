//! The route model the FIB programmer installs: destination, next hops or blackhole.

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

/// One next hop of a unicast route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    /// The gateway address (same family as the destination).
    pub gateway: IpAddr,
    /// The outgoing interface; `None` lets the kernel (or, for a gateway that is not
    /// directly connected, a lookup of the gateway in the kernel's FIB) choose it.
    pub ifindex: Option<u32>,
}

impl NextHop {
    /// A next hop via `gateway`, interface chosen by the kernel.
    pub fn via(gateway: IpAddr) -> Self {
        Self {
            gateway,
            ifindex: None,
        }
    }

    /// A next hop via `gateway` out of interface `ifindex`.
    pub fn via_dev(gateway: IpAddr, ifindex: u32) -> Self {
        Self {
            gateway,
            ifindex: Some(ifindex),
        }
    }

    /// Whether the kernel's next hop `installed` fulfils this wanted next hop: the gateway
    /// must be equal, the interface too when one was asked for.
    pub fn is_fulfilled_by(&self, installed: &NextHop) -> bool {
        self.gateway == installed.gateway
            && match self.ifindex {
                None => true,
                Some(want) => installed.ifindex == Some(want),
            }
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ifindex {
            Some(ifindex) => write!(f, "via {} dev #{}", self.gateway, ifindex),
            None => write!(f, "via {}", self.gateway),
        }
    }
}

/// What a route does with the packets it matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Forward: one next hop is a plain route via a gateway, several an ECMP route
    /// (`RTA_MULTIPATH`). An empty list is refused by the kernel (`EINVAL`).
    Unicast(Vec<NextHop>),
    /// Drop silently (`RTN_BLACKHOLE`), e.g. for an IPAM block this node owns.
    Blackhole,
}

/// A route as the speaker wants it in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// The destination prefix; host bits are ignored by the kernel, give them as zero.
    pub dst: IpNetwork,
    /// Next hops or blackhole.
    pub kind: RouteKind,
}

impl Route {
    /// A unicast route to `dst` over `hops`.
    pub fn unicast(dst: IpNetwork, hops: Vec<NextHop>) -> Self {
        Self {
            dst,
            kind: RouteKind::Unicast(hops),
        }
    }

    /// A blackhole route to `dst`.
    pub fn blackhole(dst: IpNetwork) -> Self {
        Self {
            dst,
            kind: RouteKind::Blackhole,
        }
    }

    /// The same route with its next hops sorted and deduplicated, so that two routes that
    /// differ only in next-hop order compare equal.
    pub fn normalized(&self) -> Route {
        match &self.kind {
            RouteKind::Blackhole => self.clone(),
            RouteKind::Unicast(hops) => {
                let mut hops = hops.clone();
                hops.sort();
                hops.dedup();
                Route::unicast(self.dst, hops)
            }
        }
    }

    /// Whether the route `installed` (as dumped from the kernel) already is what `self`
    /// asks for: same destination and type, and a one-to-one match of next hops where a
    /// wanted next hop without interface matches an installed one with any interface.
    pub fn is_fulfilled_by(&self, installed: &Route) -> bool {
        self.dst == installed.dst && self.kind.is_fulfilled_by(&installed.kind)
    }
}

impl RouteKind {
    /// [`Route::is_fulfilled_by`] for two routes to the same destination.
    pub(crate) fn is_fulfilled_by(&self, installed: &RouteKind) -> bool {
        match (self, installed) {
            (RouteKind::Blackhole, RouteKind::Blackhole) => true,
            (RouteKind::Unicast(want), RouteKind::Unicast(have)) => {
                let mut want: Vec<NextHop> = want.clone();
                want.sort();
                want.dedup();
                if want.len() != have.len() {
                    return false;
                }
                let mut used = vec![false; have.len()];
                want.iter().all(|w| {
                    // Exact interface matches first would matter only for duplicate
                    // gateways on several interfaces; a greedy pass is enough here.
                    let found = have.iter().enumerate().find(|(i, h)| {
                        !used.get(*i).copied().unwrap_or(true) && w.is_fulfilled_by(h)
                    });
                    match found {
                        Some((i, _)) => {
                            if let Some(slot) = used.get_mut(i) {
                                *slot = true;
                            }
                            true
                        }
                        None => false,
                    }
                })
            }
            _ => false,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RouteKind::Blackhole => write!(f, "blackhole {}", self.dst),
            RouteKind::Unicast(hops) => {
                write!(f, "{}", self.dst)?;
                for hop in hops {
                    write!(f, " {hop}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn fulfilled_ignores_order_and_unset_ifindex() {
        let want = Route::unicast(
            net("10.1.0.0/24"),
            vec![
                NextHop::via(ip("192.0.2.2")),
                NextHop::via_dev(ip("192.0.2.1"), 3),
            ],
        );
        let have = Route::unicast(
            net("10.1.0.0/24"),
            vec![
                NextHop::via_dev(ip("192.0.2.1"), 3),
                NextHop::via_dev(ip("192.0.2.2"), 4),
            ],
        );
        assert!(want.is_fulfilled_by(&have));
        let wrong_dev = Route::unicast(
            net("10.1.0.0/24"),
            vec![
                NextHop::via_dev(ip("192.0.2.1"), 5),
                NextHop::via_dev(ip("192.0.2.2"), 4),
            ],
        );
        assert!(!want.is_fulfilled_by(&wrong_dev));
        let single = Route::unicast(
            net("10.1.0.0/24"),
            vec![NextHop::via_dev(ip("192.0.2.1"), 3)],
        );
        assert!(!want.is_fulfilled_by(&single));
        assert!(!want.is_fulfilled_by(&Route::blackhole(net("10.1.0.0/24"))));
        assert!(Route::blackhole(net("10.1.0.0/24"))
            .is_fulfilled_by(&Route::blackhole(net("10.1.0.0/24"))));
    }
}
