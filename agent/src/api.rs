//! The control API: newline-delimited JSON over a Unix socket. One [`Request`] per line from
//! the client, one [`Response`] per line back. Server and CLI share these types.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use bgp::speaker::{Announce, PeerStatus, RouteEntry, TableKind};
use bgp::wire::Prefix;
use serde::{Deserialize, Serialize};

/// Longest request line the server reads, in bytes: room for an announce of a few hundred
/// thousand prefixes (`routes announce --file`, about 80 bytes a prefix).
pub const MAX_REQUEST_LEN: u64 = 64 << 20;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// One entry per peer.
    Status,
    /// A table, optionally only one peer's paths.
    Routes {
        table: TableKind,
        peer: Option<IpAddr>,
    },
    /// Originate these routes.
    Announce { routes: Vec<Announce> },
    /// Stop originating these prefixes.
    Withdraw { prefixes: Vec<Prefix> },
    /// Allocate one address for `handle` (idempotent per handle and family).
    IpamAllocate {
        handle: String,
        pool: Option<Prefix>,
        ip: Option<IpAddr>,
        /// 4 or 6; None = from `pool` or `ip`, else 4.
        family: Option<u8>,
        /// Free-form attributes kept with the allocation (container id, namespace, ifname).
        attrs: BTreeMap<String, String>,
    },
    /// Release by handle or by address (exactly one given); idempotent.
    IpamRelease {
        handle: Option<String>,
        ip: Option<IpAddr>,
    },
    /// The addresses a handle holds (CNI CHECK).
    IpamGet { handle: String },
    /// Per-pool and per-block usage.
    IpamShow,
    /// Consistency check; `live_handles` = the handles that must be kept (CNI GC), `release`
    /// = free what is stale.
    IpamCheck {
        live_handles: Option<Vec<String>>,
        release: bool,
    },
    /// Whether the agent can allocate now (CNI STATUS).
    IpamStatus,
    /// The nodes in the etcd node registry (`bramble nodes`).
    Nodes,
    /// Re-read the config file and apply what can be applied without a restart
    /// (`bramble reload`, like SIGHUP).
    Reload,
}

/// What a node is in the BGP topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// An ordinary node (no `bgp.cluster_id`).
    Node,
    /// A route reflector (`bgp.cluster_id` set, RFC 4456).
    Reflector,
}

/// A node's `bgp.mesh` setting, as it registers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeMesh {
    /// `false`: peers only with its configured neighbours.
    Off,
    /// `true`: the full node-to-node mesh.
    Full,
    /// `"reflectors"`: peers with the registered route reflectors.
    Reflectors,
}

/// One node's entry in the registry: the JSON value of `<prefix>nodes/<name>`, written by
/// that node under an etcd lease it keeps alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub router_id: Ipv4Addr,
    pub asn: u32,
    /// Where the node accepts BGP sessions; mesh peers use the first.
    pub addresses: Vec<IpAddr>,
    /// Its BGP port.
    #[serde(default = "default_bgp_port")]
    pub port: u16,
    pub role: NodeRole,
    pub mesh: NodeMesh,
    /// The Bramble version it runs.
    pub version: String,
}

fn default_bgp_port() -> u16 {
    179
}

/// What a config reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// The file had no changes at all.
    pub unchanged: bool,
    pub peers_added: Vec<IpAddr>,
    pub peers_removed: Vec<IpAddr>,
    /// Peers whose session settings changed: removed and added again (session reset).
    pub peers_reset: Vec<IpAddr>,
    /// Peers whose import/export policy changed, applied without a session reset.
    pub policy_updated: Vec<PolicyUpdate>,
    /// Settings that changed but need an agent restart; not applied.
    pub restart_needed: Vec<String>,
    /// Parts that failed to apply (one line each).
    pub errors: Vec<String>,
}

/// One peer's policy change applied by a reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyUpdate {
    pub peer: IpAddr,
    pub import_changed: bool,
    pub export_changed: bool,
    /// Paths of the peer's Adj-RIB-In evaluated again (soft reconfiguration inbound).
    pub reevaluated: usize,
}

/// One allocated address, as the control API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamAddress {
    pub handle: String,
    pub ip: IpAddr,
    /// 32 or 128: Bramble gives each container a host route.
    pub prefix_len: u8,
    pub pool: Option<Prefix>,
    pub block: Prefix,
    /// The address came from another node's block.
    pub borrowed: bool,
    /// Allocation sequence number (a release may quote it).
    pub seq: u64,
}

/// What the agent answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    Status {
        peers: Vec<PeerStatus>,
    },
    Routes {
        routes: Vec<RouteEntry>,
    },
    /// Announce / withdraw done; how many prefixes were taken.
    Done {
        count: usize,
    },
    /// The request failed; a one-line reason.
    Error {
        message: String,
    },
    /// IpamAllocate / IpamGet.
    Allocated {
        addresses: Vec<IpamAddress>,
    },
    /// IpamShow: `ipam::PoolUsage` values.
    IpamUsage {
        pools: serde_json::Value,
    },
    /// IpamCheck: an `ipam::CheckReport`, and how many stale entries were released.
    IpamCheck {
        report: serde_json::Value,
        clean: bool,
        released: usize,
    },
    /// Nodes: the registered nodes by name, and whether the agent is connected to etcd now
    /// (when not, the list is the last one it saw).
    Nodes {
        nodes: Vec<NodeInfo>,
        connected: bool,
    },
    /// Reload: what was applied, and what needs a restart.
    Reloaded {
        report: ReloadReport,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_one_json_object_per_message() {
        let req = Request::Announce {
            routes: vec![Announce {
                prefix: "10.1.0.0/24".parse().unwrap(),
                next_hop: Some("192.0.2.1".parse().unwrap()),
                communities: vec![(65000, 100)],
            }],
        };
        let line = serde_json::to_string(&req).unwrap();
        assert_eq!(
            line,
            r#"{"request":"announce","routes":[{"prefix":"10.1.0.0/24","next_hop":"192.0.2.1","communities":[[65000,100]]}]}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), req);
        let status: Request = serde_json::from_str(r#"{"request":"status"}"#).unwrap();
        assert_eq!(status, Request::Status);
        let routes: Request =
            serde_json::from_str(r#"{"request":"routes","table":"adj-in","peer":null}"#).unwrap();
        assert_eq!(
            routes,
            Request::Routes {
                table: TableKind::AdjIn,
                peer: None
            }
        );
        let nodes: Request = serde_json::from_str(r#"{"request":"nodes"}"#).unwrap();
        assert_eq!(nodes, Request::Nodes);
        let done = serde_json::to_string(&Response::Done { count: 1 }).unwrap();
        assert_eq!(done, r#"{"response":"done","count":1}"#);
    }

    #[test]
    fn node_info_json() {
        let info = NodeInfo {
            name: "n1".into(),
            router_id: "192.0.2.1".parse().unwrap(),
            asn: 64512,
            addresses: vec!["192.0.2.1".parse().unwrap()],
            port: 179,
            role: NodeRole::Reflector,
            mesh: NodeMesh::Full,
            version: "0.1.0".into(),
        };
        let text = serde_json::to_string(&info).unwrap();
        assert_eq!(
            text,
            r#"{"name":"n1","router_id":"192.0.2.1","asn":64512,"addresses":["192.0.2.1"],"port":179,"role":"reflector","mesh":"full","version":"0.1.0"}"#
        );
        assert_eq!(serde_json::from_str::<NodeInfo>(&text).unwrap(), info);
    }
}
