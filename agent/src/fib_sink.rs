//! The agent's side of the kernel FIB: the [`FibSink`] the speaker feeds (backed by the
//! `fib` crate's programmer), the programmer's settings from the config, and the
//! `routes --table fib` listing built from the programmer's status.

use std::net::IpAddr;
use std::time::Duration;

use bgp::speaker::{FibSink, RouteEntry};
use bgp::wire::Prefix;
use fib::{FibConfig, FibStatus, NextHop, Route, RouteKind};

use tokio::sync::oneshot;

use crate::local_fib::LocalFib;

/// Interval of the programmer's full resync against the kernel.
const RESYNC: Duration = Duration::from_secs(90);

/// Hands the speaker's Loc-RIB changes to the FIB programmer, through [`LocalFib`] so the
/// agent's own routes (IPAM blackholes) win. Never blocks: the handle only records the wish
/// and wakes the programmer's task.
pub struct ProgrammerSink(LocalFib, Option<oneshot::Sender<()>>);

impl ProgrammerSink {
    pub fn new(fib: LocalFib) -> Self {
        Self(fib, None)
    }

    /// Signals `done` when the speaker's deferred route selection after a restart is over
    /// ([`FibSink::restart_complete`]); the agent then ends the FIB's stale window.
    pub fn on_restart_complete(self, done: oneshot::Sender<()>) -> Self {
        Self(self.0, Some(done))
    }
}

impl FibSink for ProgrammerSink {
    fn set(&mut self, prefix: Prefix, next_hops: Vec<IpAddr>) {
        if next_hops.is_empty() {
            // The kernel refuses a unicast route without next hops (EINVAL); no next hop
            // means no route.
            self.0.speaker_remove(prefix);
            return;
        }
        let hops = next_hops.into_iter().map(NextHop::via).collect();
        self.0.speaker_set(Route::unicast(prefix, hops));
    }

    fn remove(&mut self, prefix: Prefix) {
        self.0.speaker_remove(prefix);
    }

    fn restart_complete(&mut self) {
        if let Some(done) = self.1.take() {
            let _ = done.send(());
        }
    }
}

/// The programmer's settings: table and protocol from `[fib]`; with graceful restart, our
/// routes left by the previous run survive for the speaker to want them again (RFC 4724
/// §4.1: the forwarding state is kept across the restart) until the speaker's deferred
/// route selection is over (`FibHandle::end_stale`), or at the latest `bgp.restart_time` +
/// `bgp.selection_deferral` seconds; without graceful restart they are deleted at once.
pub fn fib_config(cfg: &config::Config) -> FibConfig {
    let stale_after = if cfg.bgp.graceful_restart {
        Duration::from_secs(u64::from(cfg.bgp.restart_time) + u64::from(cfg.bgp.selection_deferral))
    } else {
        Duration::ZERO
    };
    FibConfig {
        table: cfg.fib.table,
        protocol: cfg.fib.protocol,
        stale_after,
        resync: RESYNC,
    }
}

/// `routes --table fib`: one entry per installed route (as the kernel holds it) marked best,
/// then one per route the kernel refused, with its error as the note. Sorted by prefix.
pub fn fib_routes(status: &FibStatus) -> Vec<RouteEntry> {
    let mut out: Vec<RouteEntry> = status
        .installed
        .iter()
        .map(|(wanted, held)| installed_entry(wanted, held))
        .collect();
    out.extend(status.failed.iter().map(|(prefix, error)| RouteEntry {
        note: Some(error.clone()),
        ..entry(*prefix, None)
    }));
    out.sort_by(|a, b| a.prefix.cmp(&b.prefix).then(b.best.cmp(&a.best)));
    out
}

fn installed_entry(wanted: &Route, held: &Route) -> RouteEntry {
    let hops = match &held.kind {
        RouteKind::Blackhole => {
            return RouteEntry {
                best: true,
                note: Some("blackhole".into()),
                ..entry(held.dst, None)
            }
        }
        RouteKind::Unicast(hops) => hops,
    };
    let gateways = |hops: &[NextHop]| -> Vec<IpAddr> { hops.iter().map(|h| h.gateway).collect() };
    let list = |gws: &[IpAddr]| -> String {
        gws.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let held_gws = gateways(hops);
    let mut notes = Vec::new();
    if held_gws.len() > 1 {
        notes.push(format!("via {}", list(&held_gws)));
    }
    // A gateway that is not on-link was resolved through the kernel's route to it.
    if let RouteKind::Unicast(want) = &wanted.kind {
        let mut want_gws = gateways(want);
        let mut have = held_gws.clone();
        want_gws.sort();
        have.sort();
        if want_gws != have {
            notes.push(format!("resolved from {}", list(&want_gws)));
        }
    }
    RouteEntry {
        best: true,
        ecmp: held_gws.len() > 1,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        ..entry(held.dst, held_gws.first().copied())
    }
}

/// A FIB row: no BGP attributes, not best until said otherwise.
fn entry(prefix: Prefix, next_hop: Option<IpAddr>) -> RouteEntry {
    RouteEntry {
        prefix,
        peer: None,
        next_hop,
        as_path: Vec::new(),
        origin: String::new(),
        med: None,
        local_pref: None,
        communities: Vec::new(),
        large_communities: Vec::new(),
        best: false,
        ecmp: false,
        originator_id: None,
        cluster_list: Vec::new(),
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// prefix, next hop, best, ecmp, note
    type Row = (String, Option<IpAddr>, bool, bool, Option<String>);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pfx(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn status_becomes_route_entries() {
        let single = Route::unicast(pfx("10.2.0.0/24"), vec![NextHop::via(ip("10.0.0.1"))]);
        let ecmp = Route::unicast(
            pfx("10.1.0.0/24"),
            vec![NextHop::via(ip("10.0.0.1")), NextHop::via(ip("10.0.0.5"))],
        );
        let recursive = Route::unicast(pfx("10.3.0.0/24"), vec![NextHop::via(ip("192.0.2.9"))]);
        let resolved = Route::unicast(
            pfx("10.3.0.0/24"),
            vec![NextHop::via_dev(ip("10.0.0.1"), 3)],
        );
        let hole = Route::blackhole(pfx("10.244.0.0/26"));
        let status = FibStatus {
            installed: vec![
                (single.clone(), single),
                (ecmp.clone(), ecmp),
                (recursive, resolved),
                (hole.clone(), hole),
            ],
            failed: vec![(pfx("10.9.0.0/24"), "Network is unreachable".into())],
            ..Default::default()
        };
        let rows: Vec<Row> = fib_routes(&status)
            .into_iter()
            .map(|r| (r.prefix.to_string(), r.next_hop, r.best, r.ecmp, r.note))
            .collect();
        let note = |s: &str| Some(s.to_string());
        assert_eq!(
            rows,
            vec![
                (
                    "10.1.0.0/24".into(),
                    Some(ip("10.0.0.1")),
                    true,
                    true,
                    note("via 10.0.0.1, 10.0.0.5")
                ),
                (
                    "10.2.0.0/24".into(),
                    Some(ip("10.0.0.1")),
                    true,
                    false,
                    None
                ),
                (
                    "10.3.0.0/24".into(),
                    Some(ip("10.0.0.1")),
                    true,
                    false,
                    note("resolved from 192.0.2.9")
                ),
                (
                    "10.9.0.0/24".into(),
                    None,
                    false,
                    false,
                    note("Network is unreachable")
                ),
                ("10.244.0.0/26".into(), None, true, false, note("blackhole")),
            ]
        );
    }

    #[tokio::test]
    async fn the_sink_programs_the_table() {
        let table = fib::MemoryTable::new(196);
        let cfg = FibConfig {
            stale_after: Duration::ZERO,
            ..FibConfig::default()
        };
        let fib = fib::Programmer::spawn_with(table.clone(), &cfg);
        let mut sink = ProgrammerSink::new(LocalFib::new(fib.clone()));
        sink.set(pfx("10.1.0.0/24"), vec![ip("10.0.0.1"), ip("10.0.0.5")]);
        sink.set(pfx("10.2.0.0/24"), vec![ip("10.0.0.1")]);
        sink.set(pfx("2001:db8:1::/48"), vec![ip("2001:db8::1")]);
        fib.flush().await;
        let (route, proto) = table.get(&pfx("10.1.0.0/24")).unwrap();
        assert_eq!(proto, 196);
        assert_eq!(
            route.normalized(),
            Route::unicast(
                pfx("10.1.0.0/24"),
                vec![NextHop::via(ip("10.0.0.1")), NextHop::via(ip("10.0.0.5"))]
            )
        );
        assert_eq!(table.len(), 3);

        sink.remove(pfx("10.2.0.0/24"));
        // No next hop left: the route goes rather than being refused by the kernel.
        sink.set(pfx("2001:db8:1::/48"), vec![]);
        fib.flush().await;
        assert_eq!(table.len(), 1);
        let listed: Vec<String> = fib_routes(&fib.status().await)
            .iter()
            .map(|r| r.prefix.to_string())
            .collect();
        assert_eq!(listed, ["10.1.0.0/24"]);
        fib.shutdown().await;
        // Shutting down leaves the routes in the kernel (graceful restart).
        assert_eq!(table.len(), 1);
    }

    #[tokio::test]
    async fn restart_complete_is_signalled_once() {
        let fib = fib::Programmer::spawn_with(fib::MemoryTable::new(196), &FibConfig::default());
        let (tx, mut rx) = oneshot::channel();
        let mut sink = ProgrammerSink::new(LocalFib::new(fib)).on_restart_complete(tx);
        assert!(rx.try_recv().is_err());
        sink.restart_complete();
        assert!(rx.try_recv().is_ok());
        // A second call has nothing to send and does not panic.
        sink.restart_complete();
        // Without a signal wired, the call is a no-op.
        let fib = fib::Programmer::spawn_with(fib::MemoryTable::new(196), &FibConfig::default());
        ProgrammerSink::new(LocalFib::new(fib)).restart_complete();
    }

    #[test]
    fn fib_config_follows_the_config() {
        let parse = |text: &str| {
            config::parse_with_host(
                &format!("[node]\nname = \"n\"\nrouter_id = \"192.0.2.1\"\n{text}"),
                "t.toml",
                &config::HostFacts::default(),
            )
            .unwrap()
        };
        let f = fib_config(&parse(
            "[bgp]\nrestart_time = 30\nselection_deferral = 45\n[fib]\ntable = 100\nprotocol = 200\n",
        ));
        assert_eq!((f.table, f.protocol), (100, 200));
        assert_eq!(f.stale_after, Duration::from_secs(75));
        assert_eq!(f.resync, RESYNC);
        let f = fib_config(&parse(
            "[bgp]\ngraceful_restart = false\nrestart_time = 30\n",
        ));
        assert_eq!((f.table, f.protocol), (254, 196));
        assert_eq!(f.stale_after, Duration::ZERO);
    }
}
