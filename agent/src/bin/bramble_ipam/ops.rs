//! ADD, DEL, CHECK, GC and STATUS against the agent's control socket.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use agent::api::{IpamAddress, Request, Response};
use agent::client::{Client, ClientError};
use ipnetwork::IpNetwork;

use crate::error::{
    classify_agent_message, CniError, ADDRESS_MISMATCH, DECODE, NOT_AVAILABLE, NO_ALLOCATION,
    OTHER, TRY_AGAIN,
};
use crate::netconf::{family_of_ip, IpamConf, NetConf, Want};
use crate::result::Allocation;

/// Who the allocation is for: `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`.
pub struct Attachment<'a> {
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
}

/// `<network name>.<container id>.<ifname>` (DESIGN.md).
pub fn handle(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{network}.{container_id}.{ifname}")
}

/// A connection, with errors already in CNI form. `unreachable` is the code for "no agent":
/// 11 (try again later) for ADD/DEL/CHECK/GC, 50 (not available) for STATUS.
struct Agent {
    client: Client,
    unreachable: u32,
}

impl Agent {
    fn connect(socket: &Path, unreachable: u32) -> Result<Self, CniError> {
        let client = Client::connect(socket).map_err(|e| client_error(&e, unreachable))?;
        Ok(Self {
            client,
            unreachable,
        })
    }

    fn request(&mut self, req: &Request) -> Result<Response, CniError> {
        self.client
            .request(req)
            .map_err(|e| client_error(&e, self.unreachable))
    }
}

fn client_error(e: &ClientError, unreachable: u32) -> CniError {
    let details = error_chain(e);
    match e {
        ClientError::Connect { .. } | ClientError::Io { .. } | ClientError::Closed => {
            CniError::new(unreachable, "the bramble agent is not reachable").with_details(details)
        }
        ClientError::Protocol(_) => {
            CniError::new(OTHER, "the bramble agent's answer was not understood")
                .with_details(details)
        }
        ClientError::Agent(message) => {
            CniError::new(classify_agent_message(message), message.clone())
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

fn unexpected(r: &Response) -> CniError {
    CniError::new(OTHER, "unexpected answer from the bramble agent").with_details(format!("{r:?}"))
}

/// ADD: one address per wanted family; idempotent (the agent answers an existing allocation
/// of the handle again). A failure part-way leaves what was allocated: the runtime's DEL
/// after a failed ADD releases the whole handle.
pub fn add(
    conf: &NetConf,
    ipam: &IpamConf,
    att: &Attachment<'_>,
    requested: &[IpAddr],
) -> Result<Vec<Allocation>, CniError> {
    let network = conf.network_name()?;
    let wants = ipam.wants(requested)?;
    let handle = handle(network, att.container_id, att.ifname);
    let attrs: BTreeMap<String, String> = [
        ("containerID", att.container_id),
        ("netns", att.netns),
        ("ifname", att.ifname),
        ("network", network),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut agent = Agent::connect(&ipam.socket(), TRY_AGAIN)?;
    let mut out = Vec::with_capacity(wants.len());
    for Want { pool, family, ip } in wants {
        let req = Request::IpamAllocate {
            handle: handle.clone(),
            pool,
            ip,
            family: Some(family),
            attrs: attrs.clone(),
        };
        let addresses = match agent.request(&req)? {
            Response::Allocated { addresses } => addresses,
            other => return Err(unexpected(&other)),
        };
        let addr = addresses
            .into_iter()
            .find(|a| family_of_ip(&a.ip) == family && ip.is_none_or(|want| want == a.ip))
            .ok_or_else(|| {
                CniError::new(OTHER, format!("the agent allocated no IPv{family} address"))
            })?;
        out.push(allocation(ipam, &addr)?);
    }
    Ok(out)
}

/// What the result reports for one address: see `result.rs` for why the prefix is the pool's.
fn allocation(ipam: &IpamConf, a: &IpamAddress) -> Result<Allocation, CniError> {
    let len = if ipam.host_prefix {
        a.prefix_len
    } else {
        a.pool.map_or(a.block.prefix(), |p| p.prefix())
    };
    let address = IpNetwork::new(a.ip, len).map_err(|e| {
        CniError::new(OTHER, "the agent reported a bad prefix length").with_details(e.to_string())
    })?;
    Ok(Allocation {
        address,
        gateway: ipam.gateway(family_of_ip(&a.ip)),
    })
}

/// DEL: release whatever the handle holds. Nothing held is success (the spec's DEL must
/// tolerate resources already gone); an unreachable agent is code 11, since the plugin cannot
/// know whether the address is still allocated and a silent success would leak it.
pub fn del(
    conf: &NetConf,
    ipam: &IpamConf,
    container_id: &str,
    ifname: &str,
) -> Result<(), CniError> {
    let network = conf.network_name()?;
    let mut agent = Agent::connect(&ipam.socket(), TRY_AGAIN)?;
    let req = Request::IpamRelease {
        handle: Some(handle(network, container_id, ifname)),
        ip: None,
    };
    match agent.request(&req)? {
        Response::Done { .. } | Response::Allocated { .. } => Ok(()),
        other => Err(unexpected(&other)),
    }
}

/// CHECK: the handle must hold an address, and every address in `prevResult.ips` (when
/// present) must be one it holds.
pub fn check(
    conf: &NetConf,
    ipam: &IpamConf,
    container_id: &str,
    ifname: &str,
) -> Result<(), CniError> {
    let network = conf.network_name()?;
    let expected = prev_result_ips(conf)?;
    let handle = handle(network, container_id, ifname);
    let mut agent = Agent::connect(&ipam.socket(), TRY_AGAIN)?;
    let held: BTreeSet<IpAddr> = match agent.request(&Request::IpamGet {
        handle: handle.clone(),
    })? {
        Response::Allocated { addresses } => addresses.iter().map(|a| a.ip).collect(),
        other => return Err(unexpected(&other)),
    };
    if held.is_empty() {
        return Err(CniError::new(
            NO_ALLOCATION,
            format!("handle {handle} holds no address"),
        ));
    }
    let missing: Vec<String> = expected
        .iter()
        .filter(|ip| !held.contains(ip))
        .map(IpAddr::to_string)
        .collect();
    if !missing.is_empty() {
        let held: Vec<String> = held.iter().map(IpAddr::to_string).collect();
        return Err(CniError::new(
            ADDRESS_MISMATCH,
            format!("handle {handle} does not hold {}", missing.join(", ")),
        )
        .with_details(format!("it holds {}", held.join(", "))));
    }
    Ok(())
}

/// The addresses in `prevResult.ips[].address` (CIDR form; the prefix length is ignored).
fn prev_result_ips(conf: &NetConf) -> Result<Vec<IpAddr>, CniError> {
    let Some(prev) = &conf.prev_result else {
        return Ok(Vec::new());
    };
    let bad = |what: &str| CniError::new(DECODE, format!("prevResult: {what}"));
    let Some(ips) = prev.get("ips") else {
        return Ok(Vec::new());
    };
    let ips = ips.as_array().ok_or_else(|| bad("ips is not a list"))?;
    ips.iter()
        .map(|ip| {
            let text = ip
                .get("address")
                .and_then(|a| a.as_str())
                .ok_or_else(|| bad("an ips entry has no address"))?;
            text.parse::<IpNetwork>()
                .map(|n| n.ip())
                .map_err(|_| bad(&format!("{text:?} is not an address in CIDR form")))
        })
        .collect()
}

/// GC: releases this network's handles that are not among `cni.dev/valid-attachments`.
/// The agent's check with `live_handles` reports every handle of this node not in the set,
/// including other networks' and operator-made ones, so the plugin releases only handles with
/// its own `<network>.` prefix, one by one, instead of letting the agent release them all.
/// Returns how many handles were released.
pub fn gc(conf: &NetConf, ipam: &IpamConf) -> Result<usize, CniError> {
    let network = conf.network_name()?;
    let live: Vec<String> = conf
        .valid_attachments
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|a| handle(network, &a.container_id, &a.ifname))
        .collect();
    let live_set: BTreeSet<&str> = live.iter().map(String::as_str).collect();
    let mut agent = Agent::connect(&ipam.socket(), TRY_AGAIN)?;
    let report = match agent.request(&Request::IpamCheck {
        live_handles: Some(live.clone()),
        release: false,
    })? {
        Response::IpamCheck { report, .. } => report,
        other => return Err(unexpected(&other)),
    };
    let prefix = format!("{network}.");
    let stale: BTreeSet<String> = report
        .get("leaked")
        .and_then(|l| l.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|leak| leak.get("handle").and_then(|h| h.as_str()))
        .filter(|h| h.starts_with(&prefix) && !live_set.contains(h))
        .map(str::to_string)
        .collect();
    for h in &stale {
        match agent.request(&Request::IpamRelease {
            handle: Some(h.clone()),
            ip: None,
        })? {
            Response::Done { .. } | Response::Allocated { .. } => {}
            other => return Err(unexpected(&other)),
        }
    }
    Ok(stale.len())
}

/// STATUS: the agent answers and says it can allocate; otherwise code 50.
pub fn status(ipam: &IpamConf) -> Result<(), CniError> {
    let mut agent = Agent::connect(&ipam.socket(), NOT_AVAILABLE)?;
    match agent.request(&Request::IpamStatus) {
        Ok(Response::Error { message }) => Err(CniError::new(NOT_AVAILABLE, message)),
        Ok(_) => Ok(()),
        Err(e) => Err(CniError::new(NOT_AVAILABLE, e.msg).with_details(e.details)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_network_container_ifname() {
        assert_eq!(handle("net", "abc123", "eth0"), "net.abc123.eth0");
    }

    #[test]
    fn prev_result_addresses_are_read() {
        let conf = NetConf::parse(
            br#"{"name":"n","prevResult":{"ips":[{"address":"10.0.0.5/32"},{"address":"fd00::5/128"}]}}"#,
        )
        .unwrap();
        let ips = prev_result_ips(&conf).unwrap();
        assert_eq!(
            ips,
            vec![
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        let bad =
            NetConf::parse(br#"{"name":"n","prevResult":{"ips":[{"address":"x"}]}}"#).unwrap();
        assert_eq!(prev_result_ips(&bad).unwrap_err().code, DECODE);
    }
}
