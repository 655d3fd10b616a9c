//! `bramble agent --config FILE`: load the config, start the FIB programmer, the speaker and
//! the control server, run until SIGTERM or SIGINT, then shut down cleanly (leaving the
//! kernel routes in place).
//!
//! Graceful restart (RFC 4724), with `bgp.graceful_restart` on:
//! - start: when the FIB programmer finds our routes in the kernel (a previous run crashed,
//!   was killed or stopped for a restart), the speaker starts as the restarting speaker
//!   (`bgp::speaker::spawn_graceful`): Restart State and Forwarding State bits, route
//!   selection deferred until End-of-RIB from the peers (at most `bgp.selection_deferral`
//!   seconds); then the routes nobody wants again are deleted (`FibHandle::end_stale`).
//! - SIGTERM: a graceful stop. No NOTIFICATION is sent (RFC 4724 §4.2: only the end of the
//!   TCP connection starts the peers' helper mode; a Cease ends it unless both sides
//!   negotiated RFC 8538's N bit, which Bramble does not send yet), so the peers keep our
//!   routes for `bgp.restart_time` and the kernel keeps theirs — BIRD's `graceful restart`
//!   command stops the same way.
//! - SIGINT: a full stop. Cease / Administrative Shutdown to every peer (RFC 4486): the peers
//!   drop our routes at once. The kernel routes still stay for the next start to adopt.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use std::sync::Arc;

use bgp::policy::{Filter, PrefixRule};
use bgp::session::Md5Key;
use bgp::speaker::{AddPathSettings, FibSink, GracefulOptions, PeerSettings, SpeakerConfig};
use bgp::wire::Prefix;
use config::{Config, Password, Peer};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::fib_sink::{fib_config, ProgrammerSink};
use crate::ipam_service::{open_allocator, IpamService};
use crate::local_fib::LocalFib;
use crate::server::{ControlSocket, Services};

/// Exit status for a configuration that does not load.
const EXIT_CONFIG: u8 = 2;
/// How often a node on a shared (etcd) store re-reads what it holds and what others borrowed
/// from its blocks, whatever the etcd watch ([`crate::lent_watch`]) said: a safety net.
const CLUSTER_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs the agent in the foreground. Config errors print `FILE:LINE:COL: reason` and exit 2;
/// other start-up failures exit 1; a signal-initiated shutdown exits 0.
pub fn run(config_path: &Path) -> ExitCode {
    let cfg = match config::load(config_path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_tracing();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(serve(cfg, config_path)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line on stderr, like every other bramble failure.
            eprintln!("bramble: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn serve(cfg: Config, config_path: &Path) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;

    // Bind first: if another agent owns the socket, no BGP session is started.
    let socket = ControlSocket::bind(&cfg.api.socket)?;
    let graceful = cfg.bgp.graceful_restart;
    let result = run_bound(&cfg, &socket, Some(config_path), async {
        tokio::select! {
            _ = sigterm.recv() => {
                if graceful {
                    info!("SIGTERM received, stopping for a graceful restart (no Cease sent)");
                    Stop::GracefulRestart
                } else {
                    info!("SIGTERM received, shutting down");
                    Stop::Cease
                }
            }
            _ = sigint.recv() => {
                info!("SIGINT received, shutting down");
                Stop::Cease
            }
        }
    })
    .await;
    let path = socket.path().to_path_buf();
    let removed = socket
        .remove()
        .with_context(|| format!("cannot remove {}", path.display()));
    // A start-up failure is the more useful message.
    result.and(removed)?;
    info!("agent stopped");
    Ok(())
}

/// How the agent stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Cease to every peer (RFC 4486 Administrative Shutdown).
    Cease,
    /// No NOTIFICATION: the peers keep our routes as stale (RFC 4724).
    GracefulRestart,
}

/// Starts the FIB programmer (if enabled) and the speaker, serves the control socket until
/// `shutdown`, then stops the speaker and the programmer in that order.
async fn run_bound(
    cfg: &Config,
    socket: &ControlSocket,
    config_path: Option<&Path>,
    shutdown: impl std::future::Future<Output = Stop>,
) -> anyhow::Result<()> {
    for note in unsupported_settings(cfg) {
        warn!("{note}");
    }
    // Before anything else starts: a store that does not open stops the agent here.
    let allocator = open_allocator(cfg).await?;
    let fib = if cfg.fib.enabled {
        let fib = fib::Programmer::spawn(fib_config(cfg)).map_err(|e| {
            error!(error = %e, "cannot start the FIB programmer");
            // Display only: the fib crate's errors already print their source, and the
            // exit message is one line.
            anyhow::anyhow!(
                "cannot start the FIB programmer ({e}); set [fib] enabled = false to run without it"
            )
        })?;
        Some(fib)
    } else {
        info!("FIB programming is off ([fib] enabled = false)");
        None
    };
    let restart = graceful_options(cfg, fib.as_ref()).await;
    // The speaker says when its deferred route selection is done (RFC 4724 §4.1).
    let (restart_tx, restart_rx) = tokio::sync::oneshot::channel();
    let local_fib = fib.clone().map(LocalFib::new);
    let sink = local_fib.clone().map(|f| {
        let sink = ProgrammerSink::new(f);
        let sink = if restart.restarting {
            sink.on_restart_complete(restart_tx)
        } else {
            sink
        };
        Box::new(sink) as Box<dyn FibSink>
    });
    let speaker_cfg = match speaker_config(cfg) {
        Ok(c) => c,
        Err(e) => {
            if let Some(fib) = fib {
                fib.shutdown().await;
            }
            return Err(e);
        }
    };
    let speaker = match bgp::speaker::spawn_graceful(speaker_cfg, sink, restart.clone()).await {
        Ok(speaker) => speaker,
        Err(e) => {
            if let Some(fib) = fib {
                fib.shutdown().await;
            }
            return Err(anyhow::Error::new(e).context("cannot start the BGP speaker"));
        }
    };
    info!(
        node = %cfg.node.name,
        router_id = %cfg.node.router_id,
        asn = cfg.node.asn,
        peers = cfg.peers().len(),
        fib_table = cfg.fib.enabled.then_some(cfg.fib.table),
        socket = %socket.path().display(),
        "agent started"
    );

    // Aggregate mode on a shared store: an etcd watch says when other nodes borrow from (or
    // give back to) this node's blocks.
    let follow_lent = cfg.ipam.store == config::StoreKind::Etcd
        && cfg.bgp.advertise == config::Advertise::Aggregate
        && allocator.is_some();
    let (lent_tx, lent_rx) = tokio::sync::watch::channel(0u64);
    let lent_watch =
        follow_lent.then(|| crate::lent_watch::LentWatch::new(cfg.node.name.clone(), lent_tx));
    let ipam = match allocator {
        Some(allocator) => {
            let mut service =
                IpamService::new(allocator, cfg.bgp.advertise, speaker.clone(), local_fib);
            let shared = cfg.ipam.store == config::StoreKind::Etcd;
            if shared {
                service = service.serialize_writes();
            }
            // Allocations survive restarts: originate what this node already holds.
            service.sync().await;
            info!(
                pools = cfg.ipam.pools.len(),
                advertise = ?cfg.bgp.advertise,
                "IPAM started"
            );
            let service = Arc::new(service);
            // Empty blocks go back to the pool after the grace period (scarce addresses).
            let sweeper = Arc::clone(&service);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(sweeper.sweep_interval());
                tick.tick().await;
                loop {
                    tick.tick().await;
                    sweeper.release_empty_blocks().await;
                }
            });
            if shared {
                // Other nodes change the shared store too (borrowing from this node's
                // blocks): re-read it now and then so the blackholes follow.
                let refresher = Arc::clone(&service);
                let mut lent = follow_lent.then_some(lent_rx);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(CLUSTER_REFRESH);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    tick.tick().await;
                    loop {
                        match lent.as_mut() {
                            Some(rx) => tokio::select! {
                                _ = tick.tick() => {}
                                changed = rx.changed() => if changed.is_err() {
                                    lent = None;
                                },
                            },
                            None => {
                                tick.tick().await;
                            }
                        }
                        refresher.sync().await;
                    }
                });
            }
            Some(service)
        }
        None => None,
    };
    // The node registry and the mesh (when etcd is configured).
    let cluster = crate::registry::Cluster::start(cfg, &speaker, lent_watch);
    // Config reload: SIGHUP and `bramble reload`.
    let reload = config_path.map(|path| {
        Arc::new(crate::reload::Reloader::new(
            path.to_path_buf(),
            cfg.clone(),
            speaker.clone(),
        ))
    });
    let hup = match &reload {
        Some(r) => Some(crate::reload::watch_sighup(Arc::clone(r))?),
        None => None,
    };
    // Only once the agent's own routes (IPAM blackholes) are pinned again, so none of them
    // is deleted and re-added. Without any BGP peer nothing is re-learned: the programmer's
    // own stale window (restart_time + selection_deferral) removes the leftovers.
    let has_peers = !cfg.peers().is_empty();
    if let (true, true, Some(fib)) = (restart.restarting, has_peers, fib.clone()) {
        tokio::spawn(async move {
            // Err: the speaker stopped first; the programmer's stale window still applies.
            if restart_rx.await.is_ok() {
                fib.end_stale();
            }
        });
    }
    let services = Services {
        speaker: speaker.clone(),
        fib: fib.clone(),
        ipam,
        cluster: cluster.clone(),
        reload,
    };
    let stop = std::sync::Mutex::new(Stop::Cease);
    socket
        .serve(services, async {
            let how = shutdown.await;
            *stop.lock().unwrap_or_else(|e| e.into_inner()) = how;
        })
        .await;
    let stop = *stop.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hup) = hup {
        hup.abort();
    }
    if let Some(cluster) = cluster {
        match stop {
            Stop::Cease => cluster.stop().await,
            // The lease is left to lapse: a node back within its TTL keeps its mesh
            // sessions' peers (and their graceful-restart help) on the other nodes.
            Stop::GracefulRestart => {}
        }
    }

    let stopped = match stop {
        // RFC 4271 §6.7: peers are told with a Cease NOTIFICATION; the speaker sends it.
        Stop::Cease => speaker.shutdown().await,
        // RFC 4724: the sessions just end when the process exits.
        Stop::GracefulRestart => speaker.detach().await,
    };
    if let Err(e) = stopped {
        warn!(error = %e, "speaker was already stopped");
    }
    // After the speaker, so no change arrives once it is gone. The kernel routes stay
    // for the next start to adopt (RFC 4724 §4.1: forwarding state kept across a restart).
    if let Some(fib) = fib {
        fib.shutdown().await;
    }
    Ok(())
}

/// Whether this start is a graceful restart (RFC 4724 §4.1): graceful restart is configured
/// and the FIB programmer's first dump found routes of ours that a previous run left.
async fn graceful_options(cfg: &Config, fib: Option<&fib::FibHandle>) -> GracefulOptions {
    let selection_deferral = Duration::from_secs(u64::from(cfg.bgp.selection_deferral));
    let stale = match fib {
        Some(fib) if cfg.bgp.graceful_restart => {
            // Waits for the start-up dump.
            fib.flush().await;
            fib.status().await.stale
        }
        _ => 0,
    };
    if stale > 0 {
        info!(
            routes = stale,
            selection_deferral = cfg.bgp.selection_deferral,
            "graceful restart: routes of a previous run found in the kernel; restarting"
        );
    }
    GracefulOptions {
        restarting: stale > 0,
        selection_deferral,
        llgr_stale_time: cfg.bgp.llgr_stale_time,
    }
}

/// What the speaker needs from the config. Fails when a peer's `password_file` cannot be
/// read or its password is not a valid TCP MD5 key.
pub fn speaker_config(cfg: &Config) -> anyhow::Result<SpeakerConfig> {
    Ok(SpeakerConfig {
        router_id: cfg.node.router_id,
        asn: cfg.node.asn,
        listen: cfg.bgp.listen,
        hold_time: cfg.bgp.hold_time,
        graceful_restart: cfg.bgp.graceful_restart,
        restart_time: cfg.bgp.restart_time,
        cluster_id: cfg.bgp.cluster_id,
        peers: cfg
            .peers()
            .iter()
            .map(|p| peer_settings(p, &cfg.ipam.pools))
            .collect::<anyhow::Result<_>>()?,
    })
}

/// A peer's session settings. Export default: a peer without an `export` list exports, when
/// `[[ipam.pools]]` are configured, only prefixes inside the pools (`POOL le 32` / `POOL le
/// 128`): the node's container routes and nothing it merely learned elsewhere. Without pools
/// the absent list keeps its BGP meaning (RFC 8212: nothing to eBGP, everything to iBGP).
pub(crate) fn peer_settings(p: &Peer, pools: &[config::Pool]) -> anyhow::Result<PeerSettings> {
    // The pool default is the prefix-list part: an `export_policy` alone still only sees
    // the pools' prefixes.
    let export = match (&p.export.rules, pools.is_empty()) {
        (None, false) => Filter {
            rules: Some(pools.iter().map(|pool| pool_rule(pool.cidr)).collect()),
            policy: p.export.policy.clone(),
        },
        _ => p.export.clone(),
    };
    let password = p
        .password
        .as_ref()
        .map(md5_key)
        .transpose()
        .with_context(|| format!("peer {}", p.address))?;
    Ok(PeerSettings {
        address: p.address,
        asn: p.asn,
        port: p.port,
        local_address: p.local_address,
        passive: p.passive,
        hold_time: p.hold_time,
        families: p.families.clone(),
        import: p.import.clone(),
        export,
        connect_retry: p.connect_retry,
        next_hop_v6: p.next_hop_v6,
        password,
        ttl_security: p.ttl_security,
        max_prefixes: p.max_prefixes,
        max_prefixes_restart: p.max_prefixes_restart,
        rr_client: p.rr_client,
        add_path: p.add_path.map(|mode| AddPathSettings {
            mode,
            max_paths: p.add_path_max,
        }),
    })
}

/// The TCP MD5 key of a peer: inline, or the file's contents read now (at start) without
/// the trailing newline an editor or `echo` leaves.
fn md5_key(password: &Password) -> anyhow::Result<Md5Key> {
    let text = match password {
        Password::Inline(s) => s.clone(),
        Password::File(path) => {
            let mut s = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read password_file {}", path.display()))?;
            if s.ends_with('\n') {
                s.pop();
                if s.ends_with('\r') {
                    s.pop();
                }
            }
            s
        }
    };
    Ok(Md5Key::new(text)?)
}

/// `POOL le 32` (IPv4) or `POOL le 128` (IPv6): the pool and everything inside it.
pub(crate) fn pool_rule(pool: Prefix) -> PrefixRule {
    PrefixRule {
        prefix: pool,
        ge: pool.prefix(),
        le: if pool.is_ipv4() { 32 } else { 128 },
    }
}

/// Settings that have no effect as configured, one warning each, so none is silently
/// ignored.
pub fn unsupported_settings(cfg: &Config) -> Vec<String> {
    let reflector = cfg.bgp.cluster_id.is_some();
    cfg.peers()
        .iter()
        .filter(|p| p.rr_client && !reflector)
        .map(|p| {
            format!(
                "peer {}: rr_client has no effect without bgp.cluster_id (this node is not a route reflector)",
                p.address
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gr_config(text: &str) -> Config {
        config::parse_with_host(
            &format!("[node]\nname = \"n\"\nrouter_id = \"192.0.2.1\"\n{text}"),
            "t.toml",
            &config::HostFacts::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_start_that_finds_our_routes_is_a_graceful_restart() {
        let cfg = gr_config("[bgp]\nselection_deferral = 42\nllgr_stale_time = 7\n");
        let fib_cfg = fib::FibConfig::default();
        // Nothing of ours in the kernel: a fresh start.
        let empty = fib::Programmer::spawn_with(fib::MemoryTable::new(196), &fib_cfg);
        let opts = graceful_options(&cfg, Some(&empty)).await;
        assert!(!opts.restarting);
        assert_eq!(opts.selection_deferral, Duration::from_secs(42));
        assert_eq!(opts.llgr_stale_time, 7);
        // A route of ours left by a previous run: restarting.
        let table = fib::MemoryTable::new(196);
        table.insert_raw(fib::Route::blackhole("10.9.0.0/24".parse().unwrap()), 196);
        let left = fib::Programmer::spawn_with(table.clone(), &fib_cfg);
        assert!(graceful_options(&cfg, Some(&left)).await.restarting);
        // Another protocol's route is not ours.
        let foreign = fib::MemoryTable::new(196);
        foreign.insert_raw(fib::Route::blackhole("10.9.0.0/24".parse().unwrap()), 4);
        let other = fib::Programmer::spawn_with(foreign, &fib_cfg);
        assert!(!graceful_options(&cfg, Some(&other)).await.restarting);
        // Without graceful restart, or without a FIB, never.
        let off = gr_config("[bgp]\ngraceful_restart = false\n");
        assert!(!graceful_options(&off, Some(&left)).await.restarting);
        assert!(!graceful_options(&cfg, None).await.restarting);
    }

    #[test]
    fn speaker_config_carries_every_peer_setting() {
        let host = config::HostFacts::default();
        let cfg = config::parse_with_host(
            r#"
[node]
name = "n"
router_id = "192.0.2.1"
asn = 64512
[bgp]
listen = "127.0.0.1:1179"
hold_time = 30
graceful_restart = false
restart_time = 60
[[bgp.peers]]
address = "127.0.0.2"
asn = 65001
port = 1179
local_address = "127.0.0.1"
passive = true
hold_time = 9
connect_retry = 77
families = ["ipv4-unicast"]
import = ["10.0.0.0/8 le 32"]
password = "x"
ttl_security = true
max_prefixes = 10
max_prefixes_restart = 7
"#,
            "t.toml",
            &host,
        )
        .unwrap();
        let s = speaker_config(&cfg).unwrap();
        assert_eq!(
            s.router_id,
            "192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap()
        );
        assert_eq!(s.asn, 64512);
        assert_eq!(s.listen, Some("127.0.0.1:1179".parse().unwrap()));
        assert_eq!(
            (s.hold_time, s.graceful_restart, s.restart_time),
            (30, false, 60)
        );
        let [p] = s.peers.as_slice() else { panic!() };
        assert_eq!(p.address, "127.0.0.2".parse::<std::net::IpAddr>().unwrap());
        assert_eq!((p.asn, p.port, p.passive), (65001, 1179, true));
        assert_eq!(p.local_address, Some("127.0.0.1".parse().unwrap()));
        assert_eq!((p.hold_time, p.connect_retry), (Some(9), 77));
        assert_eq!(p.families, vec![bgp::wire::Family::IPV4_UNICAST]);
        assert_eq!(p.import, cfg.peers()[0].import);
        assert_eq!(p.export.rules, None);
        assert_eq!(p.password, Some(Md5Key::new("x").unwrap()));
        assert_eq!((p.ttl_security, p.max_prefixes), (true, Some(10)));
        assert_eq!(p.max_prefixes_restart, 7);
        assert!(unsupported_settings(&cfg).is_empty());
    }

    #[test]
    fn route_reflection_settings_reach_the_speaker() {
        let host = config::HostFacts::default();
        let text = |cluster: &str| {
            format!(
                r#"
[node]
name = "n"
router_id = "192.0.2.1"
asn = 64512
[bgp]
{cluster}
[[bgp.peers]]
address = "192.0.2.2"
asn = 64512
rr_client = true
[[bgp.peers]]
address = "192.0.2.3"
asn = 64512
"#
            )
        };
        let cfg = config::parse_with_host(&text(r#"cluster_id = "10.255.0.1""#), "t.toml", &host)
            .unwrap();
        let s = speaker_config(&cfg).unwrap();
        assert_eq!(s.cluster_id, Some("10.255.0.1".parse().unwrap()));
        let flags: Vec<bool> = s.peers.iter().map(|p| p.rr_client).collect();
        assert_eq!(flags, vec![true, false]);
        assert!(unsupported_settings(&cfg).is_empty());
        let cfg = config::parse_with_host(&text(""), "t.toml", &host).unwrap();
        assert_eq!(speaker_config(&cfg).unwrap().cluster_id, None);
        assert_eq!(unsupported_settings(&cfg).len(), 1);
    }

    #[test]
    fn with_pools_an_absent_export_list_exports_only_the_pools() {
        let host = config::HostFacts::default();
        let cfg = config::parse_with_host(
            r#"
[node]
name = "n"
router_id = "192.0.2.1"
asn = 64512
[[bgp.peers]]
address = "192.0.2.2"
asn = 65001
[[bgp.peers]]
address = "192.0.2.3"
asn = 65001
export = ["192.0.2.0/24"]
[[ipam.pools]]
cidr = "10.244.0.0/16"
[[ipam.pools]]
cidr = "fd00:244::/48"
"#,
            "t.toml",
            &host,
        )
        .unwrap();
        let s = speaker_config(&cfg).unwrap();
        let rules: Vec<String> = s.peers[0]
            .export
            .rules
            .as_ref()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(rules, ["10.244.0.0/16 le 32", "fd00:244::/48 le 128"]);
        let f = &s.peers[0].export;
        assert!(f.permits(&"10.244.3.4/32".parse().unwrap(), true));
        assert!(f.permits(&"10.244.0.0/26".parse().unwrap(), true));
        assert!(!f.permits(&"10.0.0.0/8".parse().unwrap(), true));
        assert!(!f.permits(&"192.0.2.0/24".parse().unwrap(), false));
        // An explicit list is kept as written.
        assert_eq!(s.peers[1].export, cfg.peers()[1].export);
    }

    #[test]
    fn password_files_are_read_at_start_without_the_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("bramble-md5-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(
            md5_key(&Password::File(file.clone())).unwrap(),
            Md5Key::new("s3cret").unwrap()
        );
        std::fs::write(&file, "with space \r\n").unwrap();
        assert_eq!(
            md5_key(&Password::File(file.clone())).unwrap(),
            Md5Key::new("with space ").unwrap()
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(md5_key(&Password::File(file.clone())).is_err());
        let missing = md5_key(&Password::File(dir.join("nope"))).unwrap_err();
        assert!(format!("{missing:#}").contains("cannot read password_file"));
        assert!(md5_key(&Password::Inline("x".repeat(81))).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
