//! The Bramble lab: a BIRD top-of-rack router, two Bramble nodes with IPAM, and containers
//! wired on each node by the CNI chain (`ptp` + `bramble-ipam`), in network namespaces (see
//! `interop_tests::lab` for the picture). It waits until each node's kernel holds the other
//! node's containers (installed by Bramble from BGP), prints what each node and the ToR see,
//! and pings every container on one node from every container on the other, both ways.
//!
//! Run as root after `cargo build --workspace --bins` (`bramble` and `bramble-ipam` must
//! exist, or set `BRAMBLE_BIN`; `/usr/lib/cni/ptp` from containernetworking-plugins):
//! `cargo run -p interop-tests --bin lab [-- --aggregate] [-- --keep]`. `--aggregate` makes
//! the agents advertise their blocks instead of one /32 per container. With `--keep` the lab
//! stays up until Ctrl-C; try `ip netns exec bramble-lab-node1 ip route`. Leftovers of an
//! earlier run are removed at start.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::time::Instant;

use interop_tests::lab::{Advertise, Lab, NODES};
use interop_tests::prereq::check_root_and_tools;
use interop_tests::ScratchDir;

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

fn section(title: &str) {
    println!("\n===== {title} =====");
}

fn run(
    keep: bool,
    advertise: Advertise,
    dir: &ScratchDir,
) -> Result<(), Box<dyn std::error::Error>> {
    let bin = interop_tests::bramble::bramble_bin();
    if !bin.is_file() {
        return Err(format!(
            "bramble binary not found at {} (cargo build --workspace --bins, or set BRAMBLE_BIN)",
            bin.display()
        )
        .into());
    }
    let t0 = Instant::now();
    let lab = Lab::start("bramble-lab", true, dir.path(), advertise)?;
    println!(
        "lab up in {:.1?}: ToR (BIRD) + node1, node2 (Bramble, advertise = {}) + {} containers",
        t0.elapsed(),
        advertise.as_str(),
        lab.containers.len()
    );
    for c in &lab.containers {
        println!(
            "  {} on {}: {} (netns {})",
            c.label, NODES[c.node].name, c.ip, c.id
        );
    }
    lab.wait_converged(Duration::from_secs(90))?;
    println!("converged after {:.1?}", t0.elapsed());
    for ((n, agent), ns) in NODES.iter().zip(&lab.agents).zip(&lab.nodes) {
        section(&format!("{}: bramble status", n.name));
        print!("{}", agent.client(&["status"])?);
        section(&format!("{}: bramble ipam show", n.name));
        print!("{}", agent.client(&["ipam", "show"])?);
        section(&format!("{}: bramble routes --table loc", n.name));
        print!("{}", agent.client(&["routes", "--table", "loc"])?);
        section(&format!("{}: bramble routes --table fib", n.name));
        print!("{}", agent.client(&["routes", "--table", "fib"])?);
        section(&format!("{}: ip route (kernel)", n.name));
        print!("{}", ns.ip(&["route"])?);
    }
    section("tor: birdc show route");
    println!("{}", lab.bird.birdc(&["show", "route"])?);

    section("pings across the ToR");
    let mut failed = 0;
    for (i, from) in lab.containers.iter().enumerate() {
        for to in &lab.containers {
            if from.node == to.node {
                continue;
            }
            match lab.ping_ip(i, to.ip, 2) {
                Ok(out) => {
                    let summary = out
                        .lines()
                        .filter(|l| l.contains("packet loss") || l.starts_with("rtt"))
                        .collect::<Vec<_>>()
                        .join("; ");
                    println!("{} -> {} ({}): {summary}", from.label, to.label, to.ip);
                }
                Err(e) => {
                    failed += 1;
                    println!("{} -> {} ({}): FAILED {e}", from.label, to.label, to.ip);
                }
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} ping(s) failed").into());
    }
    println!(
        "\nlab OK in {:.1?}: containers on different nodes reach each other over BGP-learned routes",
        t0.elapsed()
    );

    if keep {
        println!(
            "\nlab running; try `ip netns exec {} ping {}` or \
             `{} ipam show --socket {}`. Ctrl-C to tear down.",
            lab.containers
                .first()
                .map(|c| c.id.as_str())
                .unwrap_or_default(),
            lab.containers
                .last()
                .map(|c| c.ip.to_string())
                .unwrap_or_default(),
            bin.display(),
            lab.agents
                .first()
                .map(|a| a.socket().display().to_string())
                .unwrap_or_default()
        );
        while !INTERRUPTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
        println!("tearing down");
    }
    drop(lab);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: lab [--aggregate] [--keep]   (root; bird2, /usr/lib/cni/ptp and built \
             bramble + bramble-ipam binaries required)"
        );
        return ExitCode::SUCCESS;
    }
    let keep = args.iter().any(|a| a == "--keep");
    let advertise = if args.iter().any(|a| a == "--aggregate") {
        Advertise::Aggregate
    } else {
        Advertise::HostRoutes
    };
    if let Some(bad) = args
        .iter()
        .find(|a| !["--keep", "--aggregate"].contains(&a.as_str()))
    {
        eprintln!("lab: unknown argument {bad} (try --help)");
        return ExitCode::FAILURE;
    }
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
    match run(keep, advertise, &dir) {
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
