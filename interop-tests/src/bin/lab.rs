//! The Bramble lab: a BIRD top-of-rack router and two Bramble nodes in network namespaces.
//!
//! ```text
//!            bramble-lab-tor (BIRD, AS 65000)
//!            10.0.1.1 /     \ 10.0.2.1
//!                    /       \
//!  10.0.1.2 bramble-lab-node1  bramble-lab-node2 10.0.2.2
//!       (Bramble, AS 64512)      (Bramble, AS 64513)
//!       announces 10.244.1.0/26  announces 10.244.2.0/26
//! ```
//!
//! Run as root after `cargo build` (the `bramble` binary must exist, or set `BRAMBLE_BIN`):
//! `cargo run -p interop-tests --bin lab [-- --keep]`. With `--keep` the lab stays up until
//! Ctrl-C; try `ip netns exec bramble-lab-node1 ip route`. Leftovers of an earlier run are
//! removed at start.

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use interop_tests::bird::{Bird, BirdBgp, BirdConfig};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer, FibSection};
use interop_tests::prereq::check_root_and_tools;
use interop_tests::{check, wait_until, Netns, ScratchDir, Veth};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

struct Node {
    name: &'static str,
    asn: u32,
    index: u8,
    block: &'static str,
}

const NODES: [Node; 2] = [
    Node {
        name: "node1",
        asn: 64512,
        index: 1,
        block: "10.244.1.0/26",
    },
    Node {
        name: "node2",
        asn: 64513,
        index: 2,
        block: "10.244.2.0/26",
    },
];
const TOR_AS: u32 = 65000;

fn tor_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, i, 1)
}

fn node_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, i, 2)
}

fn section(title: &str) {
    println!("\n===== {title} =====");
}

fn run(keep: bool, dir: &ScratchDir) -> Result<(), Box<dyn std::error::Error>> {
    let bin = interop_tests::bramble::bramble_bin();
    if !bin.is_file() {
        return Err(format!(
            "bramble binary not found at {} (cargo build, or set BRAMBLE_BIN)",
            bin.display()
        )
        .into());
    }

    let tor = Netns::fixed("bramble-lab-tor")?;
    let mut nodes_ns = Vec::new();
    for n in &NODES {
        let ns = Netns::fixed(&format!("bramble-lab-{}", n.name))?;
        let link = Veth::between(tor.name(), &format!("to-{}", n.name), ns.name(), "eth0")?;
        link.a().add_addr(&format!("{}/30", tor_addr(n.index)))?;
        link.b().add_addr(&format!("{}/30", node_addr(n.index)))?;
        ns.ip(&[
            "route",
            "add",
            "default",
            "via",
            &tor_addr(n.index).to_string(),
        ])?;
        nodes_ns.push(ns);
    }

    let mut bird_cfg = BirdConfig::new(Ipv4Addr::new(10, 0, 0, 1));
    for n in &NODES {
        let mut s = BirdBgp::new(n.name, TOR_AS, IpAddr::V4(node_addr(n.index)), n.asn);
        s.local_address = Some(IpAddr::V4(tor_addr(n.index)));
        bird_cfg.bgp.push(s);
    }
    // The ToR also puts what it learns into its kernel table, like a real router.
    bird_cfg.extra = "protocol kernel { ipv4 { export all; }; }\n".into();
    let bird = Bird::start(&tor, dir.path(), &bird_cfg)?;

    let mut agents = Vec::new();
    for (n, ns) in NODES.iter().zip(&nodes_ns) {
        let ndir = dir.join(n.name);
        std::fs::create_dir_all(&ndir)?;
        let mut cfg = BrambleConfig::new(n.name, node_addr(n.index), n.asn, &ndir);
        cfg.fib = Some(FibSection { enabled: true });
        let mut p = BramblePeer::new(IpAddr::V4(tor_addr(n.index)), TOR_AS);
        p.local_address = Some(IpAddr::V4(node_addr(n.index)));
        p.families = vec!["ipv4-unicast".into()];
        p.import = vec!["10.244.0.0/16 le 32".into()];
        p.export = vec!["10.244.0.0/16 le 32".into()];
        cfg.bgp.peers.push(p);
        let agent = Bramble::start(ns, &ndir, &cfg)?;
        println!(
            "{}: bramble agent up, socket {}",
            n.name,
            agent.socket().display()
        );
        agents.push(agent);
    }

    for (n, agent) in NODES.iter().zip(&agents) {
        agent.announce(n.block)?;
        println!("{}: announced {}", n.name, n.block);
    }

    for (i, (n, agent)) in NODES.iter().zip(&agents).enumerate() {
        let other = &NODES[1 - i];
        wait_until(
            &format!("{} to learn {}", n.name, other.block),
            Duration::from_secs(90),
            Duration::from_millis(500),
            || {
                let seen = !agent.loc_routes_for(other.block)?.is_empty();
                check(seen, || {
                    format!("{} not yet in {}'s Loc-RIB", other.block, n.name)
                })
            },
        )?;
        println!("{}: sees {}", n.name, other.block);
    }

    for ((n, agent), ns) in NODES.iter().zip(&agents).zip(&nodes_ns) {
        section(&format!("{}: bramble status", n.name));
        print!("{}", agent.client(&["status"])?);
        section(&format!("{}: bramble routes --table loc", n.name));
        print!("{}", agent.client(&["routes", "--table", "loc"])?);
        section(&format!("{}: ip route", n.name));
        print!("{}", ns.ip(&["route"])?);
    }
    section("tor: birdc show route");
    println!("{}", bird.birdc(&["show", "route"])?);
    section("tor: birdc show protocols");
    println!("{}", bird.birdc(&["show", "protocols"])?);

    if keep {
        println!(
            "\nlab running; try `ip netns exec bramble-lab-node1 ping 10.244.2.1` or \
             `{} status --socket {}`. Ctrl-C to tear down.",
            bin.display(),
            agents
                .first()
                .map(|a| a.socket().display().to_string())
                .unwrap_or_default()
        );
        while !INTERRUPTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
        println!("tearing down");
    }
    // Drop order: agents and BIRD, then namespaces, then the scratch directory.
    drop(agents);
    drop(bird);
    drop(nodes_ns);
    drop(tor);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: lab [--keep]   (root; bird2 and a built bramble binary required)");
        return ExitCode::SUCCESS;
    }
    let keep = args.iter().any(|a| a == "--keep");
    install_signal_handlers();
    if let Err(e) = check_root_and_tools() {
        eprintln!("lab: {e}");
        return ExitCode::FAILURE;
    }
    let dir = match ScratchDir::new("bramble-lab") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("lab: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("lab files and logs: {}", dir.path().display());
    match run(keep, &dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab: {e}");
            eprintln!(
                "lab: configs and daemon logs kept in {}",
                dir.keep().display()
            );
            ExitCode::FAILURE
        }
    }
}
