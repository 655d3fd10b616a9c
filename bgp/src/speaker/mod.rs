//! The speaker actor: the one task that owns the RIBs. Session tasks feed it events, the
//! control API queries it through a [`SpeakerHandle`], and it hands Loc-RIB changes to a
//! [`FibSink`] (the kernel FIB programmer, wired by the agent).

mod api;
mod core;
mod dirty;
mod exporter;
mod graceful;
mod graceful_llgr;
mod graceful_restart;
mod inbound;
mod outbound;
mod peer;
mod peers;
mod policy_rules;
mod reconfig;
mod refresh;
mod view;

use std::net::IpAddr;

pub use api::*;
pub use policy_rules::{
    apply_export_policy, export_attrs, import_attrs, ImportReject, Source, Target,
};

use crate::wire::Prefix;

/// Where the speaker sends the routes the kernel should hold (the ECMP set of each Loc-RIB
/// entry learned from a peer). Implementations must not block: the speaker's loop calls them
/// for every change.
pub trait FibSink: Send + 'static {
    /// `prefix` should be routed via these next hops (one = plain route, several = ECMP).
    fn set(&mut self, prefix: Prefix, next_hops: Vec<IpAddr>);
    /// `prefix` should not be routed by us any more.
    fn remove(&mut self, prefix: Prefix);
    /// Graceful restart (RFC 4724 §4.1): route selection after a restart is done and every
    /// route the speaker wants has been `set`; forwarding state left by the previous run
    /// and not wanted again can go now. Called once, only when started with
    /// [`GracefulOptions::restarting`].
    fn restart_complete(&mut self) {}
}

/// Why the speaker could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Starts the speaker: binds the listener (if configured), starts one session task per
/// configured peer, and returns the handle the control API uses. Must run inside a tokio
/// runtime.
pub async fn spawn(
    cfg: SpeakerConfig,
    fib: Option<Box<dyn FibSink>>,
) -> Result<SpeakerHandle, SpeakerError> {
    core::Speaker::start(cfg, fib, GracefulOptions::default()).await
}

/// Like [`spawn`], after a restart: with `restart.restarting`, the speaker acts as the
/// restarting speaker of RFC 4724 §4.1 (Restart State and Forwarding State bits, route
/// selection deferred until End-of-RIB from the peers, then End-of-RIB sent and
/// [`FibSink::restart_complete`] called).
pub async fn spawn_graceful(
    cfg: SpeakerConfig,
    fib: Option<Box<dyn FibSink>>,
    restart: GracefulOptions,
) -> Result<SpeakerHandle, SpeakerError> {
    core::Speaker::start(cfg, fib, restart).await
}
