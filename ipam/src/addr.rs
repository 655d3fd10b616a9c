//! Address arithmetic on `u128`, shared by IPv4 and IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

/// Address family of a pool, block or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// `4` → `V4`, `6` → `V6`, anything else → `None` (the CLI's `--family 4|6`).
    pub fn from_number(n: u8) -> Option<Family> {
        match n {
            4 => Some(Family::V4),
            6 => Some(Family::V6),
            _ => None,
        }
    }

    /// The family of an address.
    pub fn of_ip(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The family of a network.
    pub fn of_net(net: IpNetwork) -> Family {
        Family::of_ip(net.ip())
    }

    /// Address width in bits: 32 or 128.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// `4` or `6`.
    pub fn number(self) -> u8 {
        match self {
            Family::V4 => 4,
            Family::V6 => 6,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IPv{}", self.number())
    }
}

pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `v` must fit the family (callers derive it from a network of that family).
pub(crate) fn from_u128(v: u128, family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// Number of addresses in a network; saturates at `u128::MAX` for `::/0`.
pub(crate) fn net_size(net: IpNetwork) -> u128 {
    let host_bits = u32::from(Family::of_net(net).bits() - net.prefix());
    1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
}

/// First and last address of a network as integers.
pub(crate) fn net_range(net: IpNetwork) -> (u128, u128) {
    let start = to_u128(net.network());
    (start, start.saturating_add(net_size(net) - 1))
}

/// The network of `prefix` bits containing `ip`.
pub(crate) fn enclosing(ip: IpAddr, prefix: u8) -> Option<IpNetwork> {
    IpNetwork::new(ip, prefix)
        .ok()
        .and_then(|n| IpNetwork::new(n.network(), prefix).ok())
}

/// `inner` lies entirely inside `outer` (same family).
pub(crate) fn net_contains(outer: IpNetwork, inner: IpNetwork) -> bool {
    if Family::of_net(outer) != Family::of_net(inner) {
        return false;
    }
    let (os, oe) = net_range(outer);
    let (is, ie) = net_range(inner);
    os <= is && ie <= oe
}

/// The two networks share at least one address.
pub(crate) fn nets_overlap(a: IpNetwork, b: IpNetwork) -> bool {
    if Family::of_net(a) != Family::of_net(b) {
        return false;
    }
    let (as_, ae) = net_range(a);
    let (bs, be) = net_range(b);
    as_ <= be && bs <= ae
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_containment() {
        let pool: IpNetwork = "10.244.0.0/16".parse().unwrap();
        let block: IpNetwork = "10.244.1.64/26".parse().unwrap();
        assert_eq!(net_size(block), 64);
        assert!(net_contains(pool, block));
        assert!(!net_contains(block, pool));
        assert!(nets_overlap(pool, block));
        let ip: IpAddr = "10.244.1.77".parse().unwrap();
        assert_eq!(enclosing(ip, 26), Some(block));
        let all6: IpNetwork = "::/0".parse().unwrap();
        assert_eq!(net_size(all6), u128::MAX);
        let v6: IpNetwork = "fd00::/122".parse().unwrap();
        assert_eq!(
            from_u128(to_u128(v6.ip()) + 1, Family::V6),
            "fd00::1".parse::<IpAddr>().unwrap()
        );
        assert!(!nets_overlap(pool, v6));
    }
}
