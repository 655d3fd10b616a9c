//! The ADD result an IPAM plugin prints (CNI spec 1.1.0 §5 "IPAM plugin result": `ips`,
//! `routes`, `dns`, no `interfaces`).
//!
//! The format is chosen so that the reference `ptp` plugin produces Calico's layout. `ptp`
//! puts `address` on the container side as given, deletes the kernel's prefix route for it,
//! adds `gateway/32 dev eth0 scope link` and `<prefix> via gateway`; on the host side it puts
//! `gateway/32` on the veth and adds `address/32 dev veth` (always a host route). A /32
//! `address` makes `ptp` fail (a /32 has no kernel prefix route to delete), so each address
//! is reported with the pool's prefix length by default (`10.244.1.5/16`, gateway
//! 169.254.1.1): the container reaches the pool through the host, and the host has the /32.
//! A default route is only reported when the gateway is inside that prefix (the route is
//! added before the gateway's link route exists, so it must be on-link then), or when the
//! netconf lists `routes` explicitly. `hostPrefix: true` reports /32 (/128) with a default
//! route instead, for main plugins that set up point-to-point links themselves.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::netconf::{family_of_ip, IpamConf};

/// One allocated address as it will be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// Address with the reported prefix length.
    pub address: IpNetwork,
    /// The gateway to report with it.
    pub gateway: IpAddr,
}

#[derive(Serialize)]
struct Ip {
    /// Only before 1.0.0 ("4" or "6").
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    address: String,
    gateway: String,
}

#[derive(Serialize)]
struct Route {
    dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gw: Option<String>,
}

#[derive(Serialize)]
struct Dns {}

#[derive(Serialize)]
struct CniResult<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    ips: Vec<Ip>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    dns: Dns,
}

/// The result JSON in `cni_version`'s shape.
pub fn render(cni_version: &str, ipam: &IpamConf, allocs: &[Allocation]) -> String {
    let pre_1_0 = cni_version.starts_with("0.");
    let ips = allocs
        .iter()
        .map(|a| Ip {
            version: pre_1_0.then(|| {
                if family_of_ip(&a.address.ip()) == 4 {
                    "4"
                } else {
                    "6"
                }
            }),
            address: a.address.to_string(),
            gateway: a.gateway.to_string(),
        })
        .collect();
    let routes = match &ipam.routes {
        Some(routes) => routes
            .iter()
            .map(|r| Route {
                dst: r.dst.to_string(),
                gw: r.gw.map(|g| g.to_string()),
            })
            .collect(),
        None => allocs
            .iter()
            .filter(|a| ipam.host_prefix || a.address.contains(a.gateway))
            .map(|a| Route {
                dst: if a.address.is_ipv4() {
                    "0.0.0.0/0".into()
                } else {
                    "::/0".into()
                },
                gw: None,
            })
            .collect(),
    };
    let result = CniResult {
        cni_version,
        ips,
        routes,
        dns: Dns {},
    };
    serde_json::to_string(&result).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(addr: &str, gw: &str) -> Allocation {
        Allocation {
            address: addr.parse().unwrap(),
            gateway: gw.parse().unwrap(),
        }
    }

    #[test]
    fn default_result_has_pool_prefix_and_no_unreachable_default_route() {
        let ipam = IpamConf::default();
        let out = render("1.1.0", &ipam, &[alloc("10.244.1.5/16", "169.254.1.1")]);
        assert_eq!(
            out,
            r#"{"cniVersion":"1.1.0","ips":[{"address":"10.244.1.5/16","gateway":"169.254.1.1"}],"dns":{}}"#
        );
    }

    #[test]
    fn gateway_inside_the_prefix_gets_a_default_route() {
        let ipam = IpamConf::default();
        let out = render("1.0.0", &ipam, &[alloc("10.244.1.5/16", "10.244.0.1")]);
        assert!(out.contains(r#""routes":[{"dst":"0.0.0.0/0"}]"#), "{out}");
    }

    #[test]
    fn old_versions_carry_the_ip_version_and_host_prefix_routes_default() {
        let ipam = IpamConf {
            host_prefix: true,
            ..IpamConf::default()
        };
        let out = render(
            "0.3.1",
            &ipam,
            &[
                alloc("10.244.1.5/32", "169.254.1.1"),
                alloc("fd00::5/128", "fe80::1"),
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][1]["version"], "6");
        assert_eq!(v["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(v["routes"][1]["dst"], "::/0");
    }
}
