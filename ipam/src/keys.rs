//! Store key layout. Every key is UTF-8 text; values are JSON.
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `blocks/<cidr>` (`blocks/10.244.0.64/26`) | [`crate::Block`] | the block: bitmap, allocation records, sequence numbers, owner |
//! | `affinity/<node>/<cidr>` | [`crate::AffinityRecord`] | `node` claims (pending) or owns (confirmed) the block |
//! | `handles/<id>` | [`crate::HandleRecord`] | the (at most one IPv4 + one IPv6) address held by a handle |
//!
//! Pools and reservations are configuration, not store contents: every node reads them from its
//! own config file. A node name never contains `/`, so `affinity/<node>/` lists exactly one node.

use ipnetwork::IpNetwork;

pub(crate) const BLOCKS: &str = "blocks/";
pub(crate) const AFFINITY: &str = "affinity/";
pub(crate) const HANDLES: &str = "handles/";

pub(crate) fn block(cidr: IpNetwork) -> String {
    format!("{BLOCKS}{cidr}")
}

pub(crate) fn affinity(node: &str, cidr: IpNetwork) -> String {
    format!("{AFFINITY}{node}/{cidr}")
}

pub(crate) fn node_affinities(node: &str) -> String {
    format!("{AFFINITY}{node}/")
}

pub(crate) fn handle(id: &str) -> String {
    format!("{HANDLES}{id}")
}

/// `affinity/<node>/<cidr>` → `(node, cidr)`.
pub(crate) fn parse_affinity(key: &str) -> Option<(&str, IpNetwork)> {
    let rest = key.strip_prefix(AFFINITY)?;
    let (node, cidr) = rest.split_once('/')?;
    Some((node, cidr.parse().ok()?))
}

/// `handles/<id>` → `id`.
pub(crate) fn parse_handle(key: &str) -> Option<&str> {
    key.strip_prefix(HANDLES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_round_trip() {
        let cidr: IpNetwork = "fd00::40/122".parse().unwrap();
        let k = affinity("node-1", cidr);
        assert_eq!(k, "affinity/node-1/fd00::40/122");
        assert_eq!(parse_affinity(&k), Some(("node-1", cidr)));
        assert_eq!(parse_handle(&handle("net.c1.eth0")), Some("net.c1.eth0"));
        assert!(block(cidr).starts_with(BLOCKS));
    }
}
