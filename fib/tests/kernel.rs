//! The programmer against the real kernel, each test in its own network namespace.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use common::{Monitor, Netns};
use fib::{FibConfig, FibHandle, NextHop, Programmer, Route};
use ipnetwork::IpNetwork;
use serde_json::Value;

const PROTO: u8 = 196;

fn cfg() -> FibConfig {
    FibConfig {
        stale_after: Duration::ZERO,
        ..FibConfig::default()
    }
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn v4_dst(i: u32) -> IpNetwork {
    net(&format!("10.{}.{}.0/24", 100 + i / 256, i % 256))
}

fn v6_dst(i: u32) -> IpNetwork {
    net(&format!("2001:db8:100:{i:x}::/64"))
}

fn spawn() -> FibHandle {
    Programmer::spawn(cfg()).unwrap()
}

/// dst -> gateway of the single-path routes in an `ip -j route` listing.
fn gateways(routes: &[Value]) -> HashMap<String, String> {
    routes
        .iter()
        .map(|r| {
            (
                r["dst"].as_str().unwrap().to_string(),
                r["gateway"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn one_veth(tag: &str) -> Netns {
    Netns::with_veths(tag, &[("veth0", &["192.0.2.1/24", "2001:db8:1::1/64"])])
}

#[test]
fn installs_10k_v4_and_1k_v6_routes_and_follows_removals() {
    let ns = one_veth("bulk");
    let gw4 = |i: u32| Ipv4Addr::new(192, 0, 2, 2 + (i % 3) as u8);
    let gw6 = |i: u32| Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2 + (i % 3) as u16);
    ns.block_on(|| async {
        let fib = spawn();
        let started = Instant::now();
        for i in 0..10_000 {
            fib.set(Route::unicast(
                v4_dst(i),
                vec![NextHop::via(IpAddr::V4(gw4(i)))],
            ));
        }
        for i in 0..1_000 {
            fib.set(Route::unicast(
                v6_dst(i),
                vec![NextHop::via(IpAddr::V6(gw6(i)))],
            ));
        }
        fib.flush().await;
        let elapsed = started.elapsed();
        eprintln!(
            "installed 11000 routes in {elapsed:?} ({:.0} routes/s)",
            11_000.0 / elapsed.as_secs_f64()
        );
        let status = fib.status().await;
        assert_eq!(status.installed.len(), 11_000);
        assert!(
            status.failed.is_empty(),
            "{:?}",
            &status.failed[..3.min(status.failed.len())]
        );

        let v4 = gateways(&ns.routes(false, PROTO));
        assert_eq!(v4.len(), 10_000);
        for i in 0..10_000 {
            assert_eq!(
                v4.get(&v4_dst(i).to_string()),
                Some(&gw4(i).to_string()),
                "route {i}"
            );
        }
        let v6 = gateways(&ns.routes(true, PROTO));
        assert_eq!(v6.len(), 1_000);
        for i in 0..1_000 {
            assert_eq!(
                v6.get(&v6_dst(i).to_string()),
                Some(&gw6(i).to_string()),
                "route {i}"
            );
        }

        for i in (0..10_000).step_by(2) {
            fib.remove(v4_dst(i));
        }
        for i in (0..1_000).step_by(2) {
            fib.remove(v6_dst(i));
        }
        fib.flush().await;
        fib.shutdown().await;
        let v4 = gateways(&ns.routes(false, PROTO));
        assert_eq!(v4.len(), 5_000);
        assert!((1..10_000)
            .step_by(2)
            .all(|i| v4.contains_key(&v4_dst(i).to_string())));
        let v6 = gateways(&ns.routes(true, PROTO));
        assert_eq!(v6.len(), 500);
        assert!((1..1_000)
            .step_by(2)
            .all(|i| v6.contains_key(&v6_dst(i).to_string())));
    });
}

#[test]
fn ecmp_route_is_one_multipath_route_and_shrinks_by_replace() {
    let ns = Netns::with_veths(
        "ecmp",
        &[
            ("veth0", &["192.0.2.1/24", "2001:db8:1::1/64"]),
            ("veth1", &["198.51.100.1/24", "2001:db8:2::1/64"]),
        ],
    );
    let (if0, if1) = (ns.ifindex("veth0"), ns.ifindex("veth1"));
    let two4 = Route::unicast(
        net("10.70.0.0/24"),
        vec![
            NextHop::via_dev(ip("192.0.2.2"), if0),
            NextHop::via_dev(ip("198.51.100.2"), if1),
        ],
    );
    let two6 = Route::unicast(
        net("2001:db8:70::/64"),
        vec![
            NextHop::via(ip("2001:db8:1::2")),
            NextHop::via(ip("2001:db8:2::2")),
        ],
    );
    ns.block_on(|| async {
        let fib = spawn();
        fib.set(two4.clone());
        fib.set(two6.clone());
        fib.flush().await;
        assert!(fib.status().await.failed.is_empty());
        for (v6, dst, gws) in [
            (false, "10.70.0.0/24", ["192.0.2.2", "198.51.100.2"]),
            (true, "2001:db8:70::/64", ["2001:db8:1::2", "2001:db8:2::2"]),
        ] {
            let routes = ns.routes(v6, PROTO);
            assert_eq!(routes.len(), 1, "{routes:?}");
            assert_eq!(routes[0]["dst"], dst);
            let hops: Vec<&str> = routes[0]["nexthops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["gateway"].as_str().unwrap())
                .collect();
            assert_eq!(hops.len(), 2, "{routes:?}");
            for gw in gws {
                assert!(hops.contains(&gw), "{routes:?}");
            }
        }

        let monitor = Monitor::start(&ns);
        fib.set(Route::unicast(
            net("10.70.0.0/24"),
            vec![NextHop::via(ip("198.51.100.2"))],
        ));
        fib.set(Route::unicast(
            net("2001:db8:70::/64"),
            vec![NextHop::via(ip("2001:db8:2::2"))],
        ));
        fib.flush().await;
        fib.shutdown().await;
        let events = monitor.stop();
        assert!(
            !events.contains("Deleted"),
            "a moment without a route:\n{events}"
        );
        for (v6, dst, gw) in [
            (false, "10.70.0.0/24", "198.51.100.2"),
            (true, "2001:db8:70::/64", "2001:db8:2::2"),
        ] {
            let routes = ns.routes(v6, PROTO);
            assert_eq!(routes.len(), 1, "{routes:?}");
            assert_eq!(routes[0]["dst"], dst);
            assert_eq!(routes[0]["gateway"], gw, "{routes:?}");
            assert!(routes[0].get("nexthops").is_none(), "{routes:?}");
        }
    });
}

#[test]
fn restart_with_the_same_routes_changes_nothing() {
    let ns = one_veth("restart");
    let wanted: Vec<Route> = (0..200)
        .map(|i| Route::unicast(v4_dst(i), vec![NextHop::via(ip("192.0.2.2"))]))
        .chain((0..50).map(|i| Route::unicast(v6_dst(i), vec![NextHop::via(ip("2001:db8:1::2"))])))
        .chain([
            Route::blackhole(net("10.99.0.0/16")),
            Route::blackhole(net("2001:db8:99::/48")),
        ])
        .chain([Route::unicast(
            net("10.98.0.0/24"),
            vec![NextHop::via(ip("192.0.2.3")), NextHop::via(ip("192.0.2.4"))],
        )])
        .collect();
    ns.block_on(|| async {
        let fib = spawn();
        for r in &wanted {
            fib.set(r.clone());
        }
        fib.set(Route::unicast(
            net("10.97.0.0/24"),
            vec![NextHop::via(ip("192.0.2.2"))],
        ));
        fib.flush().await;
        assert_eq!(fib.status().await.installed.len(), wanted.len() + 1);
        fib.shutdown().await;

        let monitor = Monitor::start(&ns);
        let fib = spawn();
        for r in &wanted {
            fib.set(r.clone());
        }
        // Not wanted any more (stale, deleted at once) and a new one: proof the
        // monitor records.
        fib.set(Route::unicast(
            net("10.96.0.0/24"),
            vec![NextHop::via(ip("192.0.2.2"))],
        ));
        fib.flush().await;
        let status = fib.status().await;
        assert_eq!(status.installed.len(), wanted.len() + 1);
        fib.shutdown().await;
        let events = monitor.stop();
        let lines: Vec<&str> = events.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            lines.iter().any(|l| l.starts_with("10.96.0.0/24")),
            "{events}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("Deleted 10.97.0.0/24")),
            "{events}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l.contains("10.96.0.0/24") || l.contains("10.97.0.0/24")),
            "routes that were right were touched:\n{events}"
        );
    });
}

#[test]
fn foreign_routes_are_left_and_deleted_routes_come_back() {
    let ns = one_veth("owner");
    ns.ip(&[
        "route",
        "add",
        "10.60.0.0/24",
        "via",
        "192.0.2.9",
        "proto",
        "static",
    ]);
    ns.block_on(|| async {
        let fib = spawn();
        fib.set(Route::unicast(
            net("10.60.0.0/24"),
            vec![NextHop::via(ip("192.0.2.2"))],
        ));
        fib.set(Route::unicast(
            net("10.61.0.0/24"),
            vec![NextHop::via(ip("192.0.2.2"))],
        ));
        fib.flush().await;
        let status = fib.status().await;
        assert_eq!(status.foreign_conflicts, 1);
        assert_eq!(status.installed.len(), 1);
        assert_eq!(status.failed.len(), 1);
        assert_eq!(status.failed[0].0, net("10.60.0.0/24"));
        let foreign = ns.route("10.60.0.0/24").unwrap();
        assert_eq!(foreign["protocol"], "static");
        assert_eq!(foreign["gateway"], "192.0.2.9");

        ns.ip(&["route", "del", "10.61.0.0/24", "proto", "196"]);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let back = ns
                .routes(false, PROTO)
                .iter()
                .any(|r| r["dst"] == "10.61.0.0/24");
            if back {
                break;
            }
            assert!(Instant::now() < deadline, "deleted route not put back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(fib.status().await.repaired, 1);
        fib.shutdown().await;
        let foreign = ns.route("10.60.0.0/24").unwrap();
        assert_eq!(foreign["protocol"], "static");
    });
}

#[test]
fn blackholes_install_and_unreachable_gateway_fails_alone() {
    let ns = one_veth("bh");
    // A gateway reachable only through another route: resolved recursively.
    ns.ip(&[
        "route",
        "add",
        "203.0.113.0/24",
        "via",
        "192.0.2.5",
        "proto",
        "static",
    ]);
    ns.block_on(|| async {
        let fib = spawn();
        fib.set(Route::blackhole(net("10.80.0.0/16")));
        fib.set(Route::blackhole(net("2001:db8:80::/48")));
        fib.set(Route::unicast(
            net("10.81.0.0/24"),
            vec![NextHop::via(ip("198.18.0.1"))],
        ));
        fib.set(Route::unicast(
            net("2001:db8:81::/64"),
            vec![NextHop::via(ip("2001:db8:ff::1"))],
        ));
        fib.set(Route::unicast(
            net("10.82.0.0/24"),
            vec![NextHop::via(ip("192.0.2.2"))],
        ));
        fib.set(Route::unicast(
            net("10.83.0.0/24"),
            vec![NextHop::via(ip("203.0.113.7"))],
        ));
        fib.flush().await;
        let status = fib.status().await;
        let mut failed = status.failed.clone();
        failed.sort();
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert_eq!(failed[0].0, net("10.81.0.0/24"));
        assert_eq!(failed[1].0, net("2001:db8:81::/64"));
        for (_, err) in &failed {
            // IPv4 answers ENETUNREACH, IPv6 EHOSTUNREACH.
            assert!(
                err.contains("Network is unreachable") || err.contains("No route to host"),
                "{failed:?}"
            );
        }
        assert_eq!(status.installed.len(), 4);
        fib.shutdown().await;
    });
    let v4 = ns.routes(false, PROTO);
    let bh = v4.iter().find(|r| r["dst"] == "10.80.0.0/16").unwrap();
    assert_eq!(bh["type"], "blackhole");
    let v6 = ns.routes(true, PROTO);
    let bh6 = v6.iter().find(|r| r["dst"] == "2001:db8:80::/48").unwrap();
    assert_eq!(bh6["type"], "blackhole");
    assert!(v4
        .iter()
        .any(|r| r["dst"] == "10.82.0.0/24" && r["gateway"] == "192.0.2.2"));
    let recursive = v4.iter().find(|r| r["dst"] == "10.83.0.0/24").unwrap();
    assert_eq!(recursive["gateway"], "192.0.2.5", "{recursive}");
    assert_eq!(recursive["dev"], "veth0");
    assert!(!v4.iter().any(|r| r["dst"] == "10.81.0.0/24"));
}
