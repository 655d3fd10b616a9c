//! Graceful restart data plane (issue 5, test 3): two Bramble nodes behind a BIRD ToR, all
//! with graceful restart on. One container per node (a namespace with a /32 from the node's
//! IPAM on a veth, Calico style: default via 169.254.1.1). The containers ping each other
//! every 10 ms, both ways, while Bramble on node1 is SIGKILLed and restarted three times,
//! then stopped with SIGTERM (a graceful stop: no Cease) and started once more.
//! Each restart finds its routes in the kernel, so it restarts as RFC 4724 §4.1 says
//! (Restart State and Forwarding State bits, selection deferred until BIRD's End-of-RIB):
//! no packet may be lost, and `ip monitor route` in both node namespaces must record no
//! deletion of Bramble's routes.
//!
//! ```text
//!                    tor (BIRD AS 65000, graceful restart on, kernel export)
//!           10.0.1.1 /                           \ 10.0.2.1
//!   10.0.1.2 node1 (Bramble AS 64512)      node2 (Bramble AS 64513) 10.0.2.2
//!            | cont0 169.254.1.1                  | cont0 169.254.1.1
//!           c1 (10.244.0.x/32)                   c2 (10.244.128.x/32)
//! ```

mod fib_common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use fib_common::{strip_timestamp, Monitor};
use interop_tests::bird::{Bird, BirdBgp, BirdConfig};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer, FibSection, IpamPool};
use interop_tests::process::signal;
use interop_tests::{check, require_bramble, wait_until, ChildGuard, Netns, ScratchDir, Veth};

const POOL: &str = "10.244.0.0/16";
const TOR_AS: u32 = 65000;
const RESTARTS: usize = 3;
/// (name, AS, link index, the half of the pool the node never allocates from).
const NODES: [(&str, u32, u8, &str); 2] = [
    ("node1", 64512, 1, "10.244.128.0/17"),
    ("node2", 64513, 2, "10.244.0.0/17"),
];

fn tor_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, i, 1)
}

fn node_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, i, 2)
}

fn bramble_config(n: usize, dir: &Path) -> BrambleConfig {
    let (name, asn, i, reserved) = NODES[n];
    let mut cfg = BrambleConfig::new(name, node_addr(i), asn, dir)
        .with_ipam(vec![IpamPool::new(POOL, 26)], "host-routes")
        .with_reservations(&[reserved]);
    cfg.fib = Some(FibSection { enabled: true });
    cfg.bgp.graceful_restart = Some(true);
    cfg.bgp.restart_time = Some(120);
    let mut p = BramblePeer::new(IpAddr::V4(tor_addr(i)), TOR_AS);
    p.local_address = Some(IpAddr::V4(node_addr(i)));
    p.families = vec!["ipv4-unicast".into()];
    p.import = vec![format!("{POOL} le 32")];
    p.export = vec![format!("{POOL} le 32")];
    cfg.bgp.peers.push(p);
    cfg
}

/// Wires a container namespace to `node`: `ip`/32 on its eth0, default via 169.254.1.1 (the
/// node's end of the veth), and a /32 host route to it on the node.
fn wire_container(node: &Netns, c: &Netns, ip: IpAddr) -> Veth {
    let veth = Veth::between(node.name(), "cont0", c.name(), "eth0").unwrap();
    node.ip(&["addr", "add", "169.254.1.1/32", "dev", "cont0"])
        .unwrap();
    node.ip(&["route", "add", &format!("{ip}/32"), "dev", "cont0"])
        .unwrap();
    c.ip(&["addr", "add", &format!("{ip}/32"), "dev", "eth0"])
        .unwrap();
    c.ip(&["link", "set", "lo", "up"]).unwrap();
    c.ip(&["route", "add", "169.254.1.1", "dev", "eth0"])
        .unwrap();
    c.ip(&[
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ])
    .unwrap();
    veth
}

/// Bramble's (protocol 196) destinations in `ns`.
fn proto196(ns: &Netns) -> BTreeSet<String> {
    ns.ip(&["-4", "route", "show", "proto", "196"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// `ping -i 0.01` from `ns` to `dst`, stopped by [`stop_ping`].
fn start_ping(ns: &Netns, dst: IpAddr, label: &str, dir: &Path) -> ChildGuard {
    ns.spawn(
        "ping",
        ["-n", "-i", "0.01", "-W", "1", &dst.to_string()],
        label,
        dir,
    )
    .unwrap()
}

/// What one ping run saw.
#[derive(Debug)]
struct PingResult {
    transmitted: u64,
    /// Sequence numbers answered.
    answered: BTreeSet<u64>,
}

impl PingResult {
    /// Sequence numbers not answered up to the last answered one (the last request or two
    /// may still have been in flight when ping was interrupted).
    fn lost(&self) -> Vec<u64> {
        let last = self.answered.iter().next_back().copied().unwrap_or(0);
        (1..=last).filter(|s| !self.answered.contains(s)).collect()
    }
}

/// SIGINT (ping prints its summary), wait for it to exit, parse what it printed.
fn stop_ping(mut ping: ChildGuard) -> PingResult {
    signal(i32::try_from(ping.pid()).unwrap(), libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ping.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(ping.stdout_path()).unwrap();
    let answered = text
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    let transmitted = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no ping summary:\n{}", tail(&text)));
    PingResult {
        transmitted,
        answered,
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[test]
fn sigkilled_bramble_restarts_three_times_without_losing_a_packet() {
    // Plus one SIGTERM round: see the module docs.
    require_bramble();
    let dir = ScratchDir::new("gr-zero-loss").unwrap();
    let tor = Netns::new("grz-tor").unwrap();
    tor.exec("sysctl", ["-qw", "net.ipv4.ip_forward=1"])
        .unwrap();
    let mut nodes = Vec::new();
    let mut links = Vec::new();
    for (name, _, i, _) in NODES {
        let ns = Netns::new(&format!("grz-{name}")).unwrap();
        ns.exec("sysctl", ["-qw", "net.ipv4.ip_forward=1"]).unwrap();
        let link = Veth::between(tor.name(), &format!("to-{name}"), ns.name(), "eth0").unwrap();
        link.a().add_addr(&format!("{}/30", tor_addr(i))).unwrap();
        link.b().add_addr(&format!("{}/30", node_addr(i))).unwrap();
        nodes.push(ns);
        links.push(link);
    }

    // The ToR: graceful restart helper for both nodes (RFC 4724 §4.2), routes to its kernel.
    let mut bird_cfg = BirdConfig::new(Ipv4Addr::new(10, 0, 0, 1));
    for (name, asn, i, _) in NODES {
        let mut s = BirdBgp::new(name, TOR_AS, IpAddr::V4(node_addr(i)), asn);
        s.local_address = Some(IpAddr::V4(tor_addr(i)));
        s.extra = "  graceful restart on;\n".into();
        bird_cfg.bgp.push(s);
    }
    bird_cfg.extra = "protocol kernel { ipv4 { export all; }; }\n".into();
    let bird = Bird::start(&tor, dir.path(), &bird_cfg).unwrap();

    let mut agents = Vec::new();
    let mut containers = Vec::new();
    let mut ips = Vec::new();
    for (n, (name, ..)) in NODES.iter().enumerate() {
        let ndir = dir.path().join(name);
        std::fs::create_dir_all(&ndir).unwrap();
        let agent = Bramble::start(&nodes[n], &ndir, &bramble_config(n, &ndir)).unwrap();
        let ip = agent.ipam_allocate(&format!("grz.{name}.eth0")).unwrap();
        let c = Netns::new(&format!("grz-c{}", n + 1)).unwrap();
        let veth = wire_container(&nodes[n], &c, ip);
        links.push(veth);
        containers.push(c);
        ips.push(ip);
        agents.push(agent);
    }
    // Each node holds the other's container /32 as a Bramble route via the ToR.
    for n in 0..2 {
        let want = format!("{}", ips[1 - n]);
        wait_until(
            &format!("{} installs {want}", NODES[n].0),
            Duration::from_secs(90),
            Duration::from_millis(200),
            || {
                let have = proto196(&nodes[n]);
                check(have.contains(&want), || format!("{have:?}"))
            },
        )
        .unwrap();
    }
    let before: Vec<BTreeSet<String>> = nodes.iter().map(proto196).collect();

    let monitors: Vec<Monitor> = nodes
        .iter()
        .enumerate()
        .map(|(n, ns)| Monitor::start(ns, dir.path(), &format!("monitor-{}", NODES[n].0)))
        .collect();
    let pings = [
        start_ping(&containers[0], ips[1], "ping-c1-c2", dir.path()),
        start_ping(&containers[1], ips[0], "ping-c2-c1", dir.path()),
    ];
    std::thread::sleep(Duration::from_secs(1));

    let node1_dir = dir.path().join(NODES[0].0);
    let cfg1 = bramble_config(0, &node1_dir);
    let mut restart_times = Vec::new();
    // Three crashes (the issue's test), then one graceful stop (SIGTERM: no Cease sent).
    let rounds = (1..=RESTARTS)
        .map(|r| (r, false))
        .chain([(RESTARTS + 1, true)]);
    for (round, sigterm) in rounds {
        let t0 = Instant::now();
        if sigterm {
            agents[0].process().stop();
            let log = std::fs::read_to_string(agents[0].process().stderr_path()).unwrap();
            assert!(
                log.contains("stopping for a graceful restart"),
                "SIGTERM did not stop gracefully:\n{}",
                tail(&log)
            );
        } else {
            agents[0].process().kill();
        }
        // BIRD notices the closed session and keeps node1's routes as stale.
        wait_until(
            "BIRD sees node1's session go",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || Ok(!bird.is_established(NODES[0].0)?),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        agents[0] = Bramble::start(&nodes[0], &node1_dir, &cfg1).unwrap();
        wait_until(
            &format!("round {round}: node1's graceful restart completes"),
            Duration::from_secs(120),
            Duration::from_millis(100),
            || {
                let info = agents[0]
                    .peer_status(IpAddr::V4(tor_addr(1)))?
                    .map(|p| p["info"].to_string())
                    .unwrap_or_default();
                check(info.contains("graceful restart complete"), || info.clone())
            },
        )
        .unwrap();
        restart_times.push(t0.elapsed());
        wait_until(
            "BIRD re-established with node1",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || bird.is_established(NODES[0].0),
        )
        .unwrap();
        // Let traffic run on the settled state before the next kill.
        std::thread::sleep(Duration::from_secs(2));
        let log = std::fs::read_to_string(agents[0].process().stderr_path()).unwrap();
        assert!(
            log.contains("routes of a previous run found in the kernel; restarting"),
            "round {round}: node1 did not restart gracefully:\n{}",
            tail(&log)
        );
    }

    let results: Vec<PingResult> = pings.into_iter().map(stop_ping).collect();
    let recordings: Vec<String> = monitors.into_iter().map(Monitor::stop).collect();
    for (label, r) in ["c1 -> c2", "c2 -> c1"].iter().zip(&results) {
        eprintln!(
            "{label}: {} sent, {} answered, lost {:?}",
            r.transmitted,
            r.answered.len(),
            r.lost()
        );
        assert!(r.answered.len() > 100, "{label}: {r:?}");
        assert!(
            r.lost().is_empty(),
            "{label}: {} packets lost: {:?}",
            r.lost().len(),
            r.lost()
        );
        assert!(
            r.transmitted - r.answered.len() as u64 <= 2,
            "{label}: {r:?}"
        );
    }
    for (n, rec) in recordings.iter().enumerate() {
        let events: Vec<&str> = rec
            .lines()
            .map(strip_timestamp)
            .filter(|l| !l.is_empty() && !l.starts_with("Timestamp"))
            .collect();
        let deleted: Vec<&&str> = events
            .iter()
            .filter(|l| {
                l.starts_with("Deleted")
                    && (l.contains("proto 196") || ips.iter().any(|ip| l.contains(&ip.to_string())))
            })
            .collect();
        assert!(
            deleted.is_empty(),
            "{}: routes in use were deleted:\n{rec}",
            NODES[n].0
        );
        let churned = events.iter().filter(|l| l.contains("proto 196")).count();
        eprintln!(
            "{}: {churned} route events of Bramble's during the restarts",
            NODES[n].0
        );
    }
    let after: Vec<BTreeSet<String>> = nodes.iter().map(proto196).collect();
    assert_eq!(before, after);
    eprintln!("node1 restart to graceful-restart-complete: {restart_times:?}");
    drop(agents);
    drop(bird);
    drop(links);
}
