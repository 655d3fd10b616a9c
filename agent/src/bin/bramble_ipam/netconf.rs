//! The network configuration on stdin (CNI spec 1.1.0 §1) and this plugin's `ipam` section.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use serde::Deserialize;

use crate::error::{CniError, DECODE, INCOMPATIBLE_VERSION, INVALID_CONFIG};

/// Versions this plugin reports for VERSION and accepts in `cniVersion`.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The newest supported version; used for errors when the netconf's own is unusable.
pub const LATEST: &str = "1.1.0";
/// The control socket when the netconf names none.
pub const DEFAULT_SOCKET: &str = "/run/bramble/bramble.sock";
/// The gateway reported for IPv4 addresses unless `ipam.gateway` says otherwise: a link-local
/// address that `ptp` puts on every host-side veth, as Calico does.
pub const DEFAULT_GATEWAY4: &str = "169.254.1.1";
/// The IPv6 counterpart of [`DEFAULT_GATEWAY4`].
pub const DEFAULT_GATEWAY6: &str = "fe80::1";

/// The parts of the network configuration the plugin reads; anything else is ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct NetConf {
    /// Spec version of the configuration.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: Option<String>,
    /// Network name: the first part of every handle.
    #[serde(default)]
    pub name: Option<String>,
    /// The `ipam` section.
    #[serde(default)]
    pub ipam: Option<IpamConf>,
    /// The result of the ADD, on CHECK and DEL.
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<serde_json::Value>,
    /// GC: the attachments the runtime still knows.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// One `cni.dev/valid-attachments` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    /// `CNI_CONTAINERID` of the attachment.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME` of the attachment.
    pub ifname: String,
}

/// The `ipam` section: `{"type": "bramble-ipam", "socket": ..., "pool": ...}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConf {
    /// The agent's control socket.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Allocate from this pool (its family decides the address family).
    #[serde(default)]
    pub pool: Option<IpNetwork>,
    /// Dual stack: one address from each of these pools (at most one per family).
    #[serde(default)]
    pub pools: Option<Vec<IpNetwork>>,
    /// Without `pool`/`pools`: one address of each family from any of the agent's pools.
    #[serde(default)]
    pub families: Option<Vec<u8>>,
    /// IPv4 gateway to report (default 169.254.1.1).
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// IPv6 gateway to report (default fe80::1).
    #[serde(default)]
    pub gateway6: Option<IpAddr>,
    /// Routes to report, as `host-local` takes them; absent = see `routes` in the result docs.
    #[serde(default)]
    pub routes: Option<Vec<RouteConf>>,
    /// Report each address with its own prefix length (/32, /128) instead of the pool's.
    #[serde(default)]
    pub host_prefix: bool,
}

/// One configured route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RouteConf {
    /// Destination.
    pub dst: IpNetwork,
    /// Next hop; absent = the address's gateway.
    #[serde(default)]
    pub gw: Option<IpAddr>,
}

/// One address to ask the agent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub pool: Option<IpNetwork>,
    pub family: u8,
    pub ip: Option<IpAddr>,
}

impl NetConf {
    /// Decodes stdin; a syntax or type error is code 6.
    pub fn parse(stdin: &[u8]) -> Result<Self, CniError> {
        serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(DECODE, "failed to decode the network configuration")
                .with_details(e.to_string())
        })
    }

    /// The `cniVersion`, if it is one this plugin supports.
    pub fn supported_version(&self) -> Option<&str> {
        self.cni_version
            .as_deref()
            .filter(|v| SUPPORTED_VERSIONS.contains(v))
    }

    /// The version to answer in: the netconf's, which must be supported and at least `min`
    /// (CHECK needs 0.4.0, GC and STATUS 1.1.0).
    pub fn version_at_least(&self, min: &str, what: &str) -> Result<String, CniError> {
        let Some(v) = self.supported_version() else {
            return Err(CniError::new(
                INCOMPATIBLE_VERSION,
                format!(
                    "incompatible CNI version {:?}",
                    self.cni_version.as_deref().unwrap_or("")
                ),
            )
            .with_details(format!("supported: {}", SUPPORTED_VERSIONS.join(", "))));
        };
        if semver(v) < semver(min) {
            return Err(CniError::new(
                INCOMPATIBLE_VERSION,
                format!("{what} needs cniVersion {min} or later, the configuration has {v}"),
            ));
        }
        Ok(v.to_string())
    }

    /// The network name, validated as the spec requires.
    pub fn network_name(&self) -> Result<&str, CniError> {
        let name = self.name.as_deref().ok_or_else(|| {
            CniError::new(INVALID_CONFIG, "the network configuration has no name")
        })?;
        if !is_cni_identifier(name) {
            return Err(CniError::new(
                INVALID_CONFIG,
                format!("invalid network name {name:?}"),
            ));
        }
        Ok(name)
    }

    /// The `ipam` section (required).
    pub fn ipam(&self) -> Result<&IpamConf, CniError> {
        self.ipam.as_ref().ok_or_else(|| {
            CniError::new(
                INVALID_CONFIG,
                "the network configuration has no ipam section",
            )
        })
    }
}

impl IpamConf {
    /// The control socket path.
    pub fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }

    /// The gateway reported for `family`.
    pub fn gateway(&self, family: u8) -> IpAddr {
        let (set, default) = if family == 6 {
            (self.gateway6, DEFAULT_GATEWAY6)
        } else {
            (self.gateway, DEFAULT_GATEWAY4)
        };
        set.unwrap_or_else(|| default.parse().unwrap_or(IpAddr::from([169, 254, 1, 1])))
    }

    /// What to allocate: one address per configured pool, else per family (default IPv4).
    /// `ips` are requested addresses (`CNI_ARGS` `IP=`), matched to the slot of their family.
    pub fn wants(&self, ips: &[IpAddr]) -> Result<Vec<Want>, CniError> {
        let mut wants: Vec<Want> = Vec::new();
        let pools: Vec<IpNetwork> = match (&self.pool, &self.pools) {
            (Some(p), None) => vec![*p],
            (None, Some(ps)) => ps.clone(),
            (Some(p), Some(ps)) => std::iter::once(*p).chain(ps.iter().copied()).collect(),
            (None, None) => Vec::new(),
        };
        if !pools.is_empty() {
            if self.families.is_some() {
                return Err(CniError::new(
                    INVALID_CONFIG,
                    "ipam: give either pool/pools or families, not both",
                ));
            }
            for pool in pools {
                wants.push(Want {
                    pool: Some(pool),
                    family: family_of_net(&pool),
                    ip: None,
                });
            }
        } else {
            for &family in self.families.as_deref().unwrap_or(&[4]) {
                if family != 4 && family != 6 {
                    return Err(CniError::new(
                        INVALID_CONFIG,
                        format!("ipam.families: {family} is neither 4 nor 6"),
                    ));
                }
                wants.push(Want {
                    pool: None,
                    family,
                    ip: None,
                });
            }
        }
        if wants.is_empty() {
            return Err(CniError::new(INVALID_CONFIG, "ipam: nothing to allocate"));
        }
        for (i, w) in wants.iter().enumerate() {
            if wants.iter().skip(i + 1).any(|o| o.family == w.family) {
                return Err(CniError::new(
                    INVALID_CONFIG,
                    format!("ipam: more than one IPv{} pool or family given", w.family),
                ));
            }
        }
        for ip in ips {
            let fam = family_of_ip(ip);
            let slot = wants
                .iter_mut()
                .find(|w| w.family == fam && w.ip.is_none())
                .ok_or_else(|| {
                    CniError::new(
                        INVALID_CONFIG,
                        format!("CNI_ARGS IP={ip}: no IPv{fam} address is configured"),
                    )
                })?;
            if let Some(pool) = slot.pool {
                if !pool.contains(*ip) {
                    return Err(CniError::new(
                        INVALID_CONFIG,
                        format!("CNI_ARGS IP={ip} is not in pool {pool}"),
                    ));
                }
            }
            slot.ip = Some(*ip);
        }
        Ok(wants)
    }
}

/// 4 or 6.
pub fn family_of_ip(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        4
    } else {
        6
    }
}

/// 4 or 6.
pub fn family_of_net(net: &IpNetwork) -> u8 {
    family_of_ip(&net.ip())
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`: the spec's rule for network names and container ids.
pub fn is_cni_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `major.minor.patch` as a comparable triple (missing or bad parts count as 0).
fn semver(v: &str) -> (u32, u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> NetConf {
        NetConf::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn parses_the_documented_netconf() {
        let c = conf(
            r#"{"cniVersion":"1.1.0","name":"net","type":"ptp","ipam":{"type":"bramble-ipam",
                "socket":"/run/x.sock","pool":"10.244.0.0/16"}}"#,
        );
        assert_eq!(c.version_at_least("1.1.0", "GC").unwrap(), "1.1.0");
        assert_eq!(c.network_name().unwrap(), "net");
        let ipam = c.ipam().unwrap();
        assert_eq!(ipam.socket(), PathBuf::from("/run/x.sock"));
        let wants = ipam.wants(&[]).unwrap();
        assert_eq!(
            wants,
            vec![Want {
                pool: Some("10.244.0.0/16".parse().unwrap()),
                family: 4,
                ip: None
            }]
        );
    }

    #[test]
    fn dual_stack_and_requested_addresses() {
        let c = conf(r#"{"cniVersion":"1.0.0","name":"n","ipam":{"families":[4,6]}}"#);
        let ip6: IpAddr = "fd00::5".parse().unwrap();
        let wants = c.ipam().unwrap().wants(&[ip6]).unwrap();
        assert_eq!(wants.len(), 2);
        assert_eq!(wants[1].ip, Some(ip6));
        assert_eq!(
            c.ipam().unwrap().gateway(6),
            "fe80::1".parse::<IpAddr>().unwrap()
        );
        let two_v4 = conf(r#"{"name":"n","ipam":{"pools":["10.0.0.0/8","192.168.0.0/16"]}}"#);
        assert_eq!(
            two_v4.ipam().unwrap().wants(&[]).unwrap_err().code,
            INVALID_CONFIG
        );
        let bad_family = conf(r#"{"name":"n","ipam":{"families":[5]}}"#);
        assert_eq!(
            bad_family.ipam().unwrap().wants(&[]).unwrap_err().code,
            INVALID_CONFIG
        );
        let outside = conf(r#"{"name":"n","ipam":{"pool":"10.0.0.0/8"}}"#);
        let e = outside
            .ipam()
            .unwrap()
            .wants(&["192.0.2.1".parse().unwrap()]);
        assert_eq!(e.unwrap_err().code, INVALID_CONFIG);
    }

    #[test]
    fn versions_and_names_are_checked() {
        let old = conf(r#"{"cniVersion":"0.3.1","name":"n"}"#);
        assert_eq!(old.version_at_least("0.3.0", "ADD").unwrap(), "0.3.1");
        assert_eq!(
            old.version_at_least("0.4.0", "CHECK").unwrap_err().code,
            INCOMPATIBLE_VERSION
        );
        let future = conf(r#"{"cniVersion":"9.0.0","name":"n"}"#);
        assert_eq!(
            future.version_at_least("0.3.0", "ADD").unwrap_err().code,
            INCOMPATIBLE_VERSION
        );
        assert_eq!(
            conf(r#"{"name":"-x"}"#).network_name().unwrap_err().code,
            INVALID_CONFIG
        );
        assert_eq!(conf("{}").network_name().unwrap_err().code, INVALID_CONFIG);
        assert_eq!(NetConf::parse(b"{nope").unwrap_err().code, DECODE);
        assert_eq!(
            NetConf::parse(br#"{"ipam":{"pool":"not a cidr"}}"#)
                .unwrap_err()
                .code,
            DECODE
        );
        assert!(is_cni_identifier("abc-1.2_x"));
        assert!(!is_cni_identifier(""));
        assert!(!is_cni_identifier("a/b"));
    }
}
