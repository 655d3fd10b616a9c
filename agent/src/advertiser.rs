//! What this node originates for its IPAM addresses, as a pure diff: [`desired`] turns what
//! the node holds into the prefixes to announce and the blocks to blackhole, and an
//! [`Advertiser`] remembers what is in place and [`Advertiser::plan`]s the changes.
//!
//! - host-routes: one /32 (/128) per address this node allocated;
//! - aggregate: each block this node owns, plus a /32 (/128) per address it borrowed from
//!   another node's block; each owned block is also blackholed in the kernel, so traffic for
//!   its unallocated addresses is dropped here rather than looping back to the fabric.
//!   Addresses of an owned block that other nodes hold (lent: they borrowed them, on a shared
//!   etcd store) are cut out of the blackhole, which then covers the rest of the block with
//!   the fewest prefixes: traffic for a lent address follows the borrower's /32 (or, on a
//!   node that learns only a default route, the way to the fabric) instead of being dropped.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp::wire::Prefix;
use config::Advertise;

/// What the node holds, as read from the allocator (`owned_blocks`, `borrowed`, `lent`,
/// `addresses`).
pub type Holdings = ipam::NodeHoldings;

/// The prefixes to originate and the blocks to blackhole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub announce: BTreeSet<Prefix>,
    pub blackhole: BTreeSet<Prefix>,
}

/// The host prefix of `ip` (/32 or /128).
pub fn host_prefix(ip: IpAddr) -> Prefix {
    Prefix::from(ip)
}

/// What `mode` wants originated for `held`.
pub fn desired(mode: Advertise, held: &Holdings) -> Desired {
    match mode {
        Advertise::HostRoutes => Desired {
            announce: held.addresses.iter().copied().map(host_prefix).collect(),
            blackhole: BTreeSet::new(),
        },
        Advertise::Aggregate => {
            let blocks: BTreeSet<Prefix> = held.owned_blocks.iter().copied().collect();
            let mut announce = blocks.clone();
            announce.extend(held.borrowed.iter().copied().map(host_prefix));
            let blackhole = blocks.iter().flat_map(|&b| carve(b, &held.lent)).collect();
            Desired {
                announce,
                blackhole,
            }
        }
    }
}

/// `block` without the host addresses in `holes`: the fewest prefixes that cover the rest of
/// the block — except that a host prefix (/32, /128) is never blackholed unless it is the
/// whole block, because it may be a local container's own host route; so the address next to
/// a hole (its /31 or /127 sibling) is left uncovered. `[block]` when no hole is inside it.
pub fn carve(block: Prefix, holes: &[IpAddr]) -> Vec<Prefix> {
    let inside: Vec<IpAddr> = holes
        .iter()
        .copied()
        .filter(|h| block.contains(*h))
        .collect();
    if inside.is_empty() {
        return vec![block];
    }
    let mut out = Vec::new();
    carve_into(block, &inside, &mut out);
    out
}

fn carve_into(net: Prefix, holes: &[IpAddr], out: &mut Vec<Prefix>) {
    let mine: Vec<IpAddr> = holes.iter().copied().filter(|h| net.contains(*h)).collect();
    let host = net.prefix() == if net.is_ipv4() { 32 } else { 128 };
    if mine.is_empty() {
        if !host {
            out.push(net);
        }
        return;
    }
    if let Some((low, high)) = halves(net) {
        carve_into(low, &mine, out);
        carve_into(high, &mine, out);
    }
}

/// The two halves of `net`, `None` for a host prefix.
fn halves(net: Prefix) -> Option<(Prefix, Prefix)> {
    let len = net.prefix() + 1;
    match net {
        Prefix::V4(n) if n.prefix() < 32 => {
            let base = u32::from(n.network());
            let step = 1u32 << (32 - len);
            let low = ipnetwork::Ipv4Network::new(Ipv4Addr::from(base), len).ok()?;
            let high = ipnetwork::Ipv4Network::new(Ipv4Addr::from(base | step), len).ok()?;
            Some((Prefix::V4(low), Prefix::V4(high)))
        }
        Prefix::V6(n) if n.prefix() < 128 => {
            let base = u128::from(n.network());
            let step = 1u128 << (128 - len);
            let low = ipnetwork::Ipv6Network::new(Ipv6Addr::from(base), len).ok()?;
            let high = ipnetwork::Ipv6Network::new(Ipv6Addr::from(base | step), len).ok()?;
            Some((Prefix::V6(low), Prefix::V6(high)))
        }
        _ => None,
    }
}

/// The changes that take the node from what is in place to what is desired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub announce: Vec<Prefix>,
    pub withdraw: Vec<Prefix>,
    pub blackhole: Vec<Prefix>,
    pub unblackhole: Vec<Prefix>,
}

impl Plan {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty()
            && self.withdraw.is_empty()
            && self.blackhole.is_empty()
            && self.unblackhole.is_empty()
    }
}

/// What is announced and blackholed now. Each part of a [`Plan`] is recorded once it was
/// applied, so a part that failed (speaker busy or gone) is planned again next time.
#[derive(Debug, Default)]
pub struct Advertiser {
    current: Desired,
}

impl Advertiser {
    /// What is in place.
    #[cfg(test)]
    pub fn current(&self) -> &Desired {
        &self.current
    }

    /// The changes from what is in place to `want`, each list in prefix order.
    pub fn plan(&self, want: &Desired) -> Plan {
        let cur = &self.current;
        Plan {
            announce: want.announce.difference(&cur.announce).copied().collect(),
            withdraw: cur.announce.difference(&want.announce).copied().collect(),
            blackhole: want.blackhole.difference(&cur.blackhole).copied().collect(),
            unblackhole: cur.blackhole.difference(&want.blackhole).copied().collect(),
        }
    }

    /// `prefixes` were announced.
    pub fn announced(&mut self, prefixes: &[Prefix]) {
        self.current.announce.extend(prefixes.iter().copied());
    }

    /// `prefixes` were withdrawn.
    pub fn withdrawn(&mut self, prefixes: &[Prefix]) {
        for p in prefixes {
            self.current.announce.remove(p);
        }
    }

    /// `blocks` were blackholed.
    pub fn blackholed(&mut self, blocks: &[Prefix]) {
        self.current.blackhole.extend(blocks.iter().copied());
    }

    /// The blackholes of `blocks` were removed.
    pub fn unblackholed(&mut self, blocks: &[Prefix]) {
        for b in blocks {
            self.current.blackhole.remove(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ps(list: &[&str]) -> Vec<Prefix> {
        list.iter().map(|s| p(s)).collect()
    }

    fn held() -> Holdings {
        Holdings {
            owned_blocks: ps(&["10.244.0.0/26", "fd00::/122"]),
            borrowed: vec![ip("10.244.1.5")],
            addresses: vec![ip("10.244.0.1"), ip("10.244.1.5"), ip("fd00::2")],
            lent: Vec::new(),
        }
    }

    #[test]
    fn host_routes_announce_one_host_prefix_per_address() {
        let d = desired(Advertise::HostRoutes, &held());
        assert_eq!(
            d.announce.into_iter().collect::<Vec<_>>(),
            ps(&["10.244.0.1/32", "10.244.1.5/32", "fd00::2/128"])
        );
        assert!(d.blackhole.is_empty());
    }

    #[test]
    fn aggregate_announces_blocks_and_borrowed_and_blackholes_blocks() {
        let d = desired(Advertise::Aggregate, &held());
        assert_eq!(
            d.announce.into_iter().collect::<Vec<_>>(),
            ps(&["10.244.0.0/26", "10.244.1.5/32", "fd00::/122"])
        );
        assert_eq!(
            d.blackhole.into_iter().collect::<Vec<_>>(),
            ps(&["10.244.0.0/26", "fd00::/122"])
        );
    }

    #[test]
    fn lent_addresses_are_cut_out_of_the_blackhole() {
        let mut h = held();
        h.lent = vec![ip("10.244.0.5"), ip("10.244.9.9")];
        let d = desired(Advertise::Aggregate, &h);
        // The block is still announced whole; the borrower announces the /32.
        assert!(d.announce.contains(&p("10.244.0.0/26")));
        assert_eq!(
            d.blackhole.into_iter().collect::<Vec<_>>(),
            ps(&[
                "10.244.0.0/30",
                "10.244.0.6/31",
                "10.244.0.8/29",
                "10.244.0.16/28",
                "10.244.0.32/27",
                "fd00::/122",
            ])
        );
        assert_eq!(
            carve(p("fd00::/126"), &[ip("fd00::1")]),
            ps(&["fd00::2/127"])
        );
        assert_eq!(carve(p("10.0.0.0/32"), &[]), ps(&["10.0.0.0/32"]));
        assert_eq!(
            carve(p("10.0.0.0/32"), &[ip("10.0.0.0")]),
            Vec::<Prefix>::new()
        );
    }

    #[test]
    fn carved_blackhole_covers_every_other_address_but_a_holes_neighbour() {
        let block = p("10.9.0.0/26");
        let holes = [ip("10.9.0.0"), ip("10.9.0.17"), ip("10.9.0.63")];
        let neighbours = [ip("10.9.0.1"), ip("10.9.0.16"), ip("10.9.0.62")];
        let parts = carve(block, &holes);
        for o in 0u32..64 {
            let a = IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 9, 0, 0)) + o));
            let covering = parts.iter().filter(|n| n.contains(a)).count();
            let want = !holes.contains(&a) && !neighbours.contains(&a);
            assert_eq!(covering, usize::from(want), "{a}");
        }
        assert!(parts.iter().all(|n| n.prefix() < 32));
    }

    #[test]
    fn plan_is_the_difference_and_converges_once_recorded() {
        let mut adv = Advertiser::default();
        let first = desired(Advertise::Aggregate, &held());
        let plan = adv.plan(&first);
        assert_eq!(
            plan.announce,
            ps(&["10.244.0.0/26", "10.244.1.5/32", "fd00::/122"])
        );
        assert!(plan.withdraw.is_empty() && plan.unblackhole.is_empty());
        assert_eq!(plan.blackhole, ps(&["10.244.0.0/26", "fd00::/122"]));
        adv.announced(&plan.announce);
        adv.blackholed(&plan.blackhole);
        assert!(adv.plan(&first).is_empty());
        assert_eq!(adv.current(), &first);

        // The borrowed address is released and the IPv6 block given back.
        let mut later = held();
        later.borrowed.clear();
        later.owned_blocks.pop();
        let next = desired(Advertise::Aggregate, &later);
        let plan = adv.plan(&next);
        assert!(plan.announce.is_empty() && plan.blackhole.is_empty());
        assert_eq!(plan.withdraw, ps(&["10.244.1.5/32", "fd00::/122"]));
        assert_eq!(plan.unblackhole, ps(&["fd00::/122"]));

        // A withdrawal that failed is not recorded, so it is planned again.
        adv.unblackholed(&plan.unblackhole);
        let again = adv.plan(&next);
        assert_eq!(again.withdraw, plan.withdraw);
        assert!(again.unblackhole.is_empty());
        adv.withdrawn(&again.withdraw);
        assert!(adv.plan(&next).is_empty());
    }

    #[test]
    fn switching_mode_replaces_everything() {
        let mut adv = Advertiser::default();
        let hosts = desired(Advertise::HostRoutes, &held());
        adv.announced(&adv.plan(&hosts).announce);
        let plan = adv.plan(&desired(Advertise::Aggregate, &held()));
        assert_eq!(plan.announce, ps(&["10.244.0.0/26", "fd00::/122"]));
        assert_eq!(plan.withdraw, ps(&["10.244.0.1/32", "fd00::2/128"]));
    }
}
