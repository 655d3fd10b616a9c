//! Config reload (SIGHUP, `bramble reload`): re-read the file, diff it against the running
//! config, and apply what can be applied while running — peers added and removed, peers
//! whose session settings changed reset (removed and added again), import/export policy
//! changes applied without touching the session (soft reconfiguration). Changes that need
//! a restart (router id, AS, listen address, [fib], [ipam]…) are reported and not applied.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bgp::speaker::SpeakerHandle;
use config::Config;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::api::{PolicyUpdate, ReloadReport};
use crate::daemon::peer_settings;

/// Reloads the config file into the running speaker. One reload at a time.
pub struct Reloader {
    path: PathBuf,
    speaker: SpeakerHandle,
    /// The configuration in effect (parts needing a restart keep their old values).
    running: Mutex<Config>,
}

impl Reloader {
    pub fn new(path: PathBuf, running: Config, speaker: SpeakerHandle) -> Self {
        Reloader {
            path,
            speaker,
            running: Mutex::new(running),
        }
    }

    /// Re-reads the file and applies the differences. Fails (changing nothing) when the
    /// file does not load; the error lists `FILE:LINE:COL: reason` lines.
    pub async fn reload(&self) -> anyhow::Result<ReloadReport> {
        let new = config::load(&self.path)?;
        let mut running = self.running.lock().await;
        let diff = running.diff(&new);
        let mut report = ReloadReport {
            unchanged: diff.is_empty(),
            restart_needed: diff.restart_reasons.clone(),
            ..Default::default()
        };
        // What stays as it was until a restart: node, api, global bgp settings, fib, ipam.
        let mut applied = new.clone();
        applied.node = running.node.clone();
        applied.api = running.api.clone();
        applied.fib = running.fib.clone();
        applied.ipam = running.ipam.clone();
        applied.bgp = config::Bgp {
            peers: new.bgp.peers.clone(),
            ..running.bgp.clone()
        };
        let pools = applied.ipam.pools.clone();
        let find = |addr| applied.peers().iter().find(|p| p.address == addr);
        let gone = || anyhow::anyhow!("the BGP speaker is not running");

        for addr in &diff.peers_removed {
            self.speaker.remove_peer(*addr).await.map_err(|_| gone())?;
            report.peers_removed.push(*addr);
        }
        for addr in diff.peers_changed.iter().chain(&diff.peers_added) {
            let Some(peer) = find(*addr) else { continue };
            let settings = match peer_settings(peer, &pools) {
                Ok(s) => s,
                Err(e) => {
                    report.errors.push(format!("{e:#}"));
                    continue;
                }
            };
            let reset = diff.peers_changed.contains(addr);
            if reset {
                self.speaker.remove_peer(*addr).await.map_err(|_| gone())?;
            }
            match self.speaker.add_peer(settings).await.map_err(|_| gone())? {
                Ok(()) if reset => report.peers_reset.push(*addr),
                Ok(()) => report.peers_added.push(*addr),
                Err(e) => report.errors.push(format!("peer {addr}: {e}")),
            }
        }
        for addr in &diff.peers_policy_changed {
            let Some(peer) = find(*addr) else { continue };
            let settings = match peer_settings(peer, &pools) {
                Ok(s) => s,
                Err(e) => {
                    report.errors.push(format!("{e:#}"));
                    continue;
                }
            };
            match self
                .speaker
                .update_peer(settings)
                .await
                .map_err(|_| gone())?
            {
                Ok(c) => report.policy_updated.push(PolicyUpdate {
                    peer: *addr,
                    import_changed: c.import_changed,
                    export_changed: c.export_changed,
                    reevaluated: c.reevaluated,
                }),
                Err(e) => report.errors.push(format!("peer {addr}: {e}")),
            }
        }
        for what in &report.restart_needed {
            warn!(setting = %what, "changed in the config file; needs an agent restart, not applied");
        }
        info!(
            added = report.peers_added.len(),
            removed = report.peers_removed.len(),
            reset = report.peers_reset.len(),
            policy = report.policy_updated.len(),
            errors = report.errors.len(),
            "configuration reloaded"
        );
        *running = applied;
        Ok(report)
    }
}

/// Reloads on every SIGHUP until the task is dropped (aborted).
pub fn watch_sighup(reloader: Arc<Reloader>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            info!("SIGHUP received, reloading the configuration");
            if let Err(e) = reloader.reload().await {
                // Keep running with the old config; each line is FILE:LINE:COL: reason.
                warn!("reload failed, configuration unchanged: {e:#}");
            }
        }
    }))
}

/// One line per change, for `bramble reload` text output.
pub fn describe(r: &ReloadReport) -> String {
    let mut out = String::new();
    if r.unchanged {
        out.push_str("configuration unchanged\n");
    }
    for p in &r.peers_added {
        out.push_str(&format!("peer {p}: added\n"));
    }
    for p in &r.peers_removed {
        out.push_str(&format!("peer {p}: removed\n"));
    }
    for p in &r.peers_reset {
        out.push_str(&format!(
            "peer {p}: session settings changed, session reset\n"
        ));
    }
    for u in &r.policy_updated {
        let what = match (u.import_changed, u.export_changed) {
            (true, true) => "import and export policy",
            (true, false) => "import policy",
            (false, true) => "export policy",
            (false, false) => "policy (no effective change)",
        };
        out.push_str(&format!(
            "peer {}: {what} applied without a session reset ({} paths re-evaluated)\n",
            u.peer, u.reevaluated
        ));
    }
    for s in &r.restart_needed {
        out.push_str(&format!("{s}: changed, needs a restart (not applied)\n"));
    }
    for e in &r.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_lists_every_change() {
        let r = ReloadReport {
            unchanged: false,
            peers_added: vec!["192.0.2.1".parse().unwrap()],
            policy_updated: vec![PolicyUpdate {
                peer: "192.0.2.2".parse().unwrap(),
                import_changed: true,
                export_changed: false,
                reevaluated: 3,
            }],
            restart_needed: vec!["node.router_id".into()],
            ..Default::default()
        };
        assert_eq!(
            describe(&r),
            "peer 192.0.2.1: added\n\
             peer 192.0.2.2: import policy applied without a session reset (3 paths re-evaluated)\n\
             node.router_id: changed, needs a restart (not applied)\n"
        );
    }
}
