//! Which addresses of this node's blocks other nodes hold, followed by an etcd watch on
//! `<prefix>blocks/` (run by the registry's connection, see [`crate::registry`]).
//!
//! In aggregate mode a block's owner must carve the addresses other nodes borrowed out of its
//! blackhole. The watch sees every block write in the cluster; [`LentWatch`] keeps, per block
//! of this node, the set of addresses held by other nodes, and bumps a counter when a set
//! changes — the IPAM service then re-reads the store. Writes that change nothing for this
//! node (its own allocations, other nodes' blocks) wake nobody.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use tokio::sync::watch;

/// Follows the lent addresses of `node`'s blocks.
#[derive(Debug)]
pub struct LentWatch {
    node: String,
    /// Block key → addresses other nodes hold in it (only non-empty sets).
    lent: HashMap<Vec<u8>, BTreeSet<IpAddr>>,
    changed: watch::Sender<u64>,
}

impl LentWatch {
    /// Bumps `changed` whenever what `node` lends changes.
    pub fn new(node: impl Into<String>, changed: watch::Sender<u64>) -> Self {
        Self {
            node: node.into(),
            lent: HashMap::new(),
            changed,
        }
    }

    /// A new watch starts: events may have been missed, so a full read is due.
    pub fn restart(&mut self) {
        self.lent.clear();
        self.bump();
    }

    /// One block key written with `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        let now = match serde_json::from_slice::<ipam::Block>(value) {
            Ok(block) if block.affinity.as_deref() == Some(self.node.as_str()) => block
                .allocations
                .iter()
                .filter(|(_, r)| r.node != self.node)
                .map(|(&o, _)| block.ip(o))
                .collect(),
            // Another node's block, or one this node cannot read: nothing lent here.
            _ => BTreeSet::new(),
        };
        let before = if now.is_empty() {
            self.lent.remove(key)
        } else {
            self.lent.insert(key.to_vec(), now.clone())
        };
        if before.unwrap_or_default() != now {
            self.bump();
        }
    }

    /// One block key deleted.
    pub fn delete(&mut self, key: &[u8]) {
        if self.lent.remove(key).is_some() {
            self.bump();
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(owner: &str, holders: &[(u32, &str)]) -> Vec<u8> {
        let mut b = ipam::Block::new("10.0.0.0/26".parse().unwrap(), Some(owner.to_string()));
        b.seq = holders.len() as u64;
        for (i, (o, node)) in holders.iter().enumerate() {
            b.allocations.insert(
                *o,
                ipam::AllocRecord {
                    handle: format!("h{o}"),
                    seq: i as u64 + 1,
                    node: (*node).to_string(),
                    attrs: Default::default(),
                },
            );
        }
        serde_json::to_vec(&b).unwrap()
    }

    #[test]
    fn only_changes_to_what_this_node_lends_wake_it() {
        let (tx, rx) = watch::channel(0);
        let mut w = LentWatch::new("a", tx);
        let key = b"/bramble/blocks/10.0.0.0/26";
        // Its own allocations: nothing lent.
        w.put(key, &block("a", &[(1, "a"), (2, "a")]));
        assert_eq!(*rx.borrow(), 0);
        // b borrows .3: lent changes.
        w.put(key, &block("a", &[(1, "a"), (2, "a"), (3, "b")]));
        assert_eq!(*rx.borrow(), 1);
        // a allocates more: lent unchanged.
        w.put(key, &block("a", &[(1, "a"), (2, "a"), (3, "b"), (4, "a")]));
        assert_eq!(*rx.borrow(), 1);
        // Writes to b's blocks do not concern a.
        w.put(b"/bramble/blocks/10.0.1.0/26", &block("b", &[(5, "c")]));
        assert_eq!(*rx.borrow(), 1);
        // b releases .3; then the block goes.
        w.put(key, &block("a", &[(1, "a")]));
        assert_eq!(*rx.borrow(), 2);
        w.put(key, &block("a", &[(3, "c")]));
        w.delete(key);
        assert_eq!(*rx.borrow(), 4);
        // Unreadable values are not lent addresses; a restart asks for a full read.
        w.put(key, b"not json");
        assert_eq!(*rx.borrow(), 4);
        w.restart();
        assert_eq!(*rx.borrow(), 5);
    }
}
