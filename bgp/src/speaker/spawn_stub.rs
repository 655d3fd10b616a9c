//! STUB — temporary stand-in for the real speaker so the agent can be built and tested.
//! The integrator drops this file (and its `pub use`) when `speaker::spawn` exists.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::api::{PeerStatus, Request, SpeakerConfig, SpeakerHandle};

/// Starts a task that answers every request trivially: each configured peer is `Idle`,
/// every table is empty, announce/withdraw report how many prefixes they were given.
pub fn spawn(cfg: SpeakerConfig) -> SpeakerHandle {
    let (tx, mut rx) = mpsc::channel(16);
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            match req {
                Request::Status(reply) => {
                    let peers = cfg
                        .peers
                        .iter()
                        .map(|p| PeerStatus {
                            peer: p.address,
                            asn: p.asn,
                            kind: if p.asn == cfg.asn { "ibgp" } else { "ebgp" }.into(),
                            state: "Idle".into(),
                            since,
                            received: 0,
                            accepted: 0,
                            advertised: 0,
                            info: "stub speaker".into(),
                        })
                        .collect();
                    let _ = reply.send(peers);
                }
                Request::Routes { reply, .. } => {
                    let _ = reply.send(Ok(Vec::new()));
                }
                Request::Announce(routes, reply) => {
                    let _ = reply.send(Ok(routes.len()));
                }
                Request::Withdraw(prefixes, reply) => {
                    let _ = reply.send(Ok(prefixes.len()));
                }
                Request::Shutdown(reply) => {
                    let _ = reply.send(());
                    break;
                }
            }
        }
    });
    SpeakerHandle::new(tx)
}
