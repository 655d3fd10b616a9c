//! Peers added and removed while the speaker runs (the node-to-node mesh, config reload).

use std::net::IpAddr;

use crate::session;

use super::api::{GracefulOptions, PeerSettings};
use super::core::{peer_config, Speaker};
use super::peer::PeerSlot;

impl Speaker {
    /// Starts a session with a new neighbour. Fails when one with that address exists.
    pub(crate) fn add_peer(&mut self, settings: PeerSettings) -> Result<(), String> {
        let addr = settings.address.to_canonical();
        if self
            .peers
            .iter()
            .any(|p| p.address().to_canonical() == addr)
        {
            return Err(format!("peer {addr} is already configured"));
        }
        // Ids are never reused: events of a removed peer's session may still be queued.
        let id = self.next_peer_id;
        self.next_peer_id = self.next_peer_id.saturating_add(1);
        // RFC 4724 §4.1: the Restart State bit only while our restart is still in progress.
        let gr = GracefulOptions {
            restarting: self.gr_options.restarting && self.selection_deferred(),
            ..self.gr_options.clone()
        };
        let handle = session::spawn_peer(
            id,
            peer_config(&self.cfg, &settings, &gr),
            self.events.clone(),
        );
        if let Some(l) = &self.listener {
            l.register(settings.address, &handle);
        }
        tracing::info!(peer = %addr, asn = settings.asn, "peer added");
        self.cfg.peers.push(settings.clone());
        self.peers
            .push(PeerSlot::new(id, settings, handle, self.cfg.asn));
        self.reindex();
        Ok(())
    }

    /// Stops the session with `address` (Cease / Peer De-configured), forgets its routes
    /// at once (no graceful restart for a removed peer) and drops the neighbour. Returns
    /// whether such a peer existed.
    pub(crate) fn remove_peer(&mut self, address: IpAddr) -> bool {
        let addr = address.to_canonical();
        let Some(idx) = self
            .peers
            .iter()
            .position(|p| p.address().to_canonical() == addr)
        else {
            return false;
        };
        let id = self.peers[idx].id;
        self.end_restart(id);
        self.limits.forget(id);
        if self.peers[idx].session.is_some() {
            self.session_down(idx);
        }
        // A peer with stale routes but no session (helper mode) loses them too.
        self.dirty.extend(self.rib.remove_peer(id));
        if let Some(l) = &self.listener {
            l.unregister(address);
        }
        // Dropping the last handle makes the session task send Cease / Peer De-configured
        // (RFC 4486 §4) and end.
        drop(self.peers.remove(idx));
        self.cfg.peers.retain(|p| p.address.to_canonical() != addr);
        self.reindex();
        tracing::info!(peer = %addr, "peer removed");
        true
    }

    /// Rebuilds the peer id → slot index map.
    pub(crate) fn reindex(&mut self) {
        self.index = self
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i))
            .collect();
    }
}
