//! Generators for large, deterministic sets of prefixes.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

/// `count` consecutive IPv4 prefixes of length `len` starting at `base`
/// (e.g. `base = 100.64.0.0, len = 24` → 100.64.0.0/24, 100.64.1.0/24, …).
/// Stops early rather than wrapping past 255.255.255.255.
pub fn ipv4_prefixes(base: Ipv4Addr, len: u8, count: usize) -> Vec<IpNetwork> {
    let len = len.min(32);
    let step: u64 = 1u64 << (32 - u32::from(len));
    let start = u64::from(u32::from(base));
    (0..count as u64)
        .map_while(|i| {
            let addr = u32::try_from(start + i * step).ok()?;
            Ipv4Network::new(Ipv4Addr::from(addr), len)
                .ok()
                .map(IpNetwork::V4)
        })
        .collect()
}

/// `count` consecutive IPv6 prefixes of length `len` (≤ 64) starting at `base`
/// (e.g. `2001:db8:100::/48`, `2001:db8:101::/48`, …).
pub fn ipv6_prefixes(base: Ipv6Addr, len: u8, count: usize) -> Vec<IpNetwork> {
    let len = len.clamp(1, 128);
    let step: u128 = 1u128 << (128 - u32::from(len));
    let start = u128::from(base);
    (0..count as u128)
        .map_while(|i| {
            let addr = start.checked_add(i.checked_mul(step)?)?;
            Ipv6Network::new(Ipv6Addr::from(addr), len)
                .ok()
                .map(IpNetwork::V6)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_host_routes() {
        let p = ipv4_prefixes(Ipv4Addr::new(10, 100, 0, 0), 32, 300);
        assert_eq!(p.len(), 300);
        assert_eq!(p[0].to_string(), "10.100.0.0/32");
        assert_eq!(p[299].to_string(), "10.100.1.43/32");
    }

    #[test]
    fn v6_48s() {
        let p = ipv6_prefixes("2001:db8::".parse().unwrap(), 48, 3);
        let s: Vec<String> = p.iter().map(|n| n.to_string()).collect();
        assert_eq!(s, ["2001:db8::/48", "2001:db8:1::/48", "2001:db8:2::/48"]);
    }
}
