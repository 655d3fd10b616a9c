//! The node-to-node mesh: iBGP sessions with the other registered nodes, added and removed
//! as the node registry changes (`bgp.mesh`).
//!
//! Who peers with whom ([`plan`]):
//! - `mesh = true` on an ordinary node: every other registered node of the same AS that is
//!   also in the full mesh. Route reflectors (`bgp.cluster_id` set) stay out of it.
//! - `mesh = "reflectors"` on an ordinary node: the registered route reflectors only.
//! - a route reflector with the mesh on: every node with `mesh = "reflectors"` as its route
//!   reflector client (RFC 4456), and the other reflectors as ordinary iBGP peers.
//!
//! One session per pair: the side with the lower address is passive and waits for the
//! other's connection.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use bgp::policy::Filter;
use bgp::speaker::{PeerSettings, PeerStatus, SpeakerHandle};
use bgp::wire::Family;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::api::{NodeInfo, NodeMesh, NodeRole};
use crate::registry::NodeView;

/// Seconds between connection attempts of a mesh session.
const MESH_CONNECT_RETRY: u16 = 2;

/// One session the mesh wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPeer {
    /// The other node's name.
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    /// We have the lower address: wait for the other side to connect.
    pub passive: bool,
    /// We reflect its routes (we are a reflector, it is a mesh node).
    pub rr_client: bool,
}

/// The sessions `me` should have with the registered `nodes` (`me` itself may be among
/// them), keyed by peer address.
pub fn plan<'a>(
    me: &NodeInfo,
    nodes: impl IntoIterator<Item = &'a NodeInfo>,
) -> BTreeMap<IpAddr, MeshPeer> {
    let mut out = BTreeMap::new();
    let Some(&mine) = me.addresses.first() else {
        return out;
    };
    if me.mesh == NodeMesh::Off {
        return out;
    }
    for n in nodes {
        let Some(&theirs) = n.addresses.first() else {
            continue;
        };
        // The mesh is iBGP only; a node that shares our address is a misconfiguration.
        if n.name == me.name || n.asn != me.asn || theirs == mine || n.mesh == NodeMesh::Off {
            continue;
        }
        let rr_client = match (me.role, me.mesh, n.role, n.mesh) {
            // The full mesh of ordinary nodes.
            (NodeRole::Node, NodeMesh::Full, NodeRole::Node, NodeMesh::Full) => false,
            // Ordinary nodes that peer with the reflectors only.
            (NodeRole::Node, NodeMesh::Reflectors, NodeRole::Reflector, _) => false,
            // A reflector: its clients, and the other reflectors.
            (NodeRole::Reflector, _, NodeRole::Node, NodeMesh::Reflectors) => true,
            (NodeRole::Reflector, _, NodeRole::Reflector, _) => false,
            _ => continue,
        };
        out.insert(
            theirs,
            MeshPeer {
                name: n.name.clone(),
                address: theirs,
                port: n.port,
                passive: mine < theirs,
                rr_client,
            },
        );
    }
    out
}

/// What every mesh session shares: where we connect from, which families, and the export
/// policy the node uses for its own addresses.
#[derive(Debug, Clone)]
pub struct MeshTemplate {
    pub local_address: Option<IpAddr>,
    /// Export filter (the pool rules when IPAM pools are configured, else none: iBGP
    /// exports everything it may, RFC 8212 only restricts eBGP).
    pub export: Filter,
}

impl MeshTemplate {
    /// The speaker settings for one mesh session.
    pub fn settings(&self, p: &MeshPeer, asn: u32) -> PeerSettings {
        PeerSettings {
            address: p.address,
            asn,
            port: p.port,
            local_address: self
                .local_address
                .filter(|l| l.is_ipv4() == p.address.is_ipv4()),
            passive: p.passive,
            hold_time: None,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            // iBGP: an absent import list accepts everything (RFC 8212 is about eBGP).
            import: Filter::default(),
            export: self.export.clone(),
            connect_retry: MESH_CONNECT_RETRY,
            next_hop_v6: None,
            password: None,
            ttl_security: false,
            max_prefixes: None,
            max_prefixes_restart: bgp::speaker::DEFAULT_MAX_PREFIXES_RESTART,
            rr_client: p.rr_client,
            add_path: None,
        }
    }
}

/// The running mesh: which peers it added (for `bramble status`), and its task.
#[derive(Debug)]
pub struct Mesh {
    peers: Arc<RwLock<BTreeMap<IpAddr, MeshPeer>>>,
    task: JoinHandle<()>,
}

impl Mesh {
    /// Follows `view` and keeps the speaker's mesh sessions in line with it.
    pub fn spawn(
        me: NodeInfo,
        template: MeshTemplate,
        speaker: SpeakerHandle,
        view: watch::Receiver<NodeView>,
    ) -> Self {
        let peers = Arc::new(RwLock::new(BTreeMap::new()));
        let task = tokio::spawn(follow(me, template, speaker, view, Arc::clone(&peers)));
        Self { peers, task }
    }

    /// Marks the mesh sessions in a status listing: type `mesh` (`mesh-rr-client` for a
    /// reflector's clients).
    pub fn mark(&self, status: &mut [PeerStatus]) {
        let Ok(peers) = self.peers.read() else {
            return;
        };
        for s in status {
            if let Some(p) = peers.get(&s.peer.to_canonical()) {
                s.kind = if p.rr_client {
                    "mesh-rr-client"
                } else {
                    "mesh"
                }
                .to_string();
            }
        }
    }

    /// Stops following the registry (the sessions stay until the speaker stops).
    pub fn stop(&self) {
        self.task.abort();
    }
}

async fn follow(
    me: NodeInfo,
    template: MeshTemplate,
    speaker: SpeakerHandle,
    mut view: watch::Receiver<NodeView>,
    current: Arc<RwLock<BTreeMap<IpAddr, MeshPeer>>>,
) {
    loop {
        let want = plan(&me, view.borrow_and_update().nodes.values());
        let have = current.read().map(|c| c.clone()).unwrap_or_default();
        for (addr, p) in &have {
            if want.get(addr) == Some(p) {
                continue;
            }
            match speaker.remove_peer(*addr).await {
                Ok(_) => info!(peer = %addr, node = %p.name, "mesh peer removed"),
                Err(_) => return,
            }
            if let Ok(mut c) = current.write() {
                c.remove(addr);
            }
        }
        for (addr, p) in &want {
            if have.get(addr) == Some(p) {
                continue;
            }
            match speaker.add_peer(template.settings(p, me.asn)).await {
                Ok(Ok(())) => {
                    info!(peer = %addr, node = %p.name, passive = p.passive, "mesh peer added");
                    if let Ok(mut c) = current.write() {
                        c.insert(*addr, p.clone());
                    }
                }
                // A configured [[bgp.peers]] entry with that address wins.
                Ok(Err(e)) => {
                    warn!(peer = %addr, node = %p.name, error = %e, "mesh peer not added")
                }
                Err(_) => return,
            }
        }
        if view.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, addr: &str, role: NodeRole, mesh: NodeMesh) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            router_id: "192.0.2.1".parse().unwrap(),
            asn: 64512,
            addresses: vec![addr.parse().unwrap()],
            port: 179,
            role,
            mesh,
            version: "0.1.0".into(),
        }
    }

    fn full(name: &str, addr: &str) -> NodeInfo {
        node(name, addr, NodeRole::Node, NodeMesh::Full)
    }

    fn addrs(p: &BTreeMap<IpAddr, MeshPeer>) -> Vec<String> {
        p.keys().map(ToString::to_string).collect()
    }

    #[test]
    fn full_mesh_one_session_per_pair() {
        let nodes: Vec<NodeInfo> = (1..=5)
            .map(|i| full(&format!("n{i}"), &format!("10.0.0.{i}")))
            .collect();
        let mut sessions = 0;
        for me in &nodes {
            let p = plan(me, &nodes);
            assert_eq!(p.len(), 4, "{}", me.name);
            assert!(!p.contains_key(&me.addresses[0]));
            for (addr, peer) in &p {
                // Exactly one side of each pair is passive: the lower address.
                let other = nodes.iter().find(|n| n.addresses[0] == *addr).unwrap();
                let back = &plan(other, &nodes)[&me.addresses[0]];
                assert_ne!(peer.passive, back.passive);
                assert_eq!(peer.passive, me.addresses[0] < *addr);
                assert!(!peer.rr_client);
                if !peer.passive {
                    sessions += 1;
                }
            }
        }
        assert_eq!(sessions, 10);
    }

    #[test]
    fn who_is_passive() {
        let me = full("a", "10.0.0.9");
        let p = plan(&me, &[full("b", "10.0.0.10"), full("c", "10.0.0.8")]);
        // Compared as addresses, not as text ("10.0.0.10" < "10.0.0.9" as strings).
        assert!(p[&"10.0.0.10".parse::<IpAddr>().unwrap()].passive);
        assert!(!p[&"10.0.0.8".parse::<IpAddr>().unwrap()].passive);
    }

    #[test]
    fn outsiders_are_left_out() {
        let me = full("a", "10.0.0.1");
        let mut other_as = full("x", "10.0.0.2");
        other_as.asn = 65001;
        let nodes = [
            me.clone(),
            other_as,
            full("dup", "10.0.0.1"),
            node("off", "10.0.0.3", NodeRole::Node, NodeMesh::Off),
            node("rr", "10.0.0.4", NodeRole::Reflector, NodeMesh::Full),
            node("rc", "10.0.0.5", NodeRole::Node, NodeMesh::Reflectors),
            full("ok", "10.0.0.6"),
        ];
        assert_eq!(addrs(&plan(&me, &nodes)), ["10.0.0.6"]);
        let mut off = me.clone();
        off.mesh = NodeMesh::Off;
        assert!(plan(&off, &nodes).is_empty());
    }

    #[test]
    fn reflector_mode() {
        let nodes = [
            node("rr1", "10.0.0.1", NodeRole::Reflector, NodeMesh::Reflectors),
            node("rr2", "10.0.0.2", NodeRole::Reflector, NodeMesh::Full),
            node("c1", "10.0.0.3", NodeRole::Node, NodeMesh::Reflectors),
            node("c2", "10.0.0.4", NodeRole::Node, NodeMesh::Reflectors),
            full("f1", "10.0.0.5"),
        ];
        // A client peers with the reflectors only.
        let c1 = plan(&nodes[2], &nodes);
        assert_eq!(addrs(&c1), ["10.0.0.1", "10.0.0.2"]);
        assert!(c1.values().all(|p| !p.rr_client && !p.passive));
        // A reflector: its clients as rr clients, the other reflector as plain iBGP; the
        // full-mesh node is not its business.
        let rr1 = plan(&nodes[0], &nodes);
        assert_eq!(addrs(&rr1), ["10.0.0.2", "10.0.0.3", "10.0.0.4"]);
        let flags: Vec<(bool, bool)> = rr1.values().map(|p| (p.rr_client, p.passive)).collect();
        assert_eq!(flags, [(false, true), (true, true), (true, true)]);
        // A full-mesh node ignores reflectors and reflector clients.
        assert!(plan(&nodes[4], &nodes).is_empty());
    }

    #[test]
    fn settings_are_ibgp_with_the_node_export_policy() {
        let t = MeshTemplate {
            local_address: Some("10.0.0.1".parse().unwrap()),
            export: Filter::prefixes(vec!["10.244.0.0/16 le 32".parse().unwrap()]),
        };
        let me = full("a", "10.0.0.1");
        let p = plan(&me, &[full("b", "10.0.0.2")]);
        let s = t.settings(&p[&"10.0.0.2".parse::<IpAddr>().unwrap()], 64512);
        assert_eq!(
            (s.asn, s.port, s.passive, s.rr_client),
            (64512, 179, true, false)
        );
        assert_eq!(s.local_address, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(s.import.rules, None);
        assert_eq!(s.export, t.export);
        // No IPv4 source for an IPv6 peer.
        let v6 = MeshPeer {
            name: "c".into(),
            address: "fd00::2".parse().unwrap(),
            port: 179,
            passive: false,
            rr_client: false,
        };
        assert_eq!(t.settings(&v6, 64512).local_address, None);
    }
}
