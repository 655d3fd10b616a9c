//! The Bramble lab: a BIRD top-of-rack router, two Bramble nodes and a container behind each
//! node, in network namespaces (see `interop_tests::lab` for the picture). It waits until each
//! node's kernel holds the other's block (installed by Bramble from BGP), prints what each
//! node sees, and pings container to container across the ToR.
//!
//! Run as root after `cargo build` (the `bramble` binary must exist, or set `BRAMBLE_BIN`):
//! `cargo run -p interop-tests --bin lab [-- --keep]`. With `--keep` the lab stays up until
//! Ctrl-C; try `ip netns exec bramble-lab-node1 ip route`. Leftovers of an earlier run are
//! removed at start.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use interop_tests::lab::{Lab, NODES};
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

fn run(keep: bool, dir: &ScratchDir) -> Result<(), Box<dyn std::error::Error>> {
    let bin = interop_tests::bramble::bramble_bin();
    if !bin.is_file() {
        return Err(format!(
            "bramble binary not found at {} (cargo build, or set BRAMBLE_BIN)",
            bin.display()
        )
        .into());
    }
    let lab = Lab::start("bramble-lab", true, dir.path())?;
    println!("lab up: ToR (BIRD) + node1, node2 (Bramble) + containers c1, c2");
    lab.wait_converged(Duration::from_secs(90))?;
    for ((n, agent), ns) in NODES.iter().zip(&lab.agents).zip(&lab.nodes) {
        section(&format!("{}: bramble status", n.name));
        print!("{}", agent.client(&["status"])?);
        section(&format!("{}: bramble routes --table loc", n.name));
        print!("{}", agent.client(&["routes", "--table", "loc"])?);
        section(&format!("{}: bramble routes --table fib", n.name));
        print!("{}", agent.client(&["routes", "--table", "fib"])?);
        section(&format!("{}: ip route (kernel)", n.name));
        print!("{}", ns.ip(&["route"])?);
    }
    section("tor: birdc show route");
    println!("{}", lab.bird.birdc(&["show", "route"])?);
    section(&format!(
        "c1 ({}) -> c2 ({}): ping across the ToR",
        NODES[0].container_ip, NODES[1].container_ip
    ));
    print!("{}", lab.ping(0, 1)?);
    section("c2 -> c1");
    print!("{}", lab.ping(1, 0)?);
    println!("\nlab OK: containers on different nodes reach each other over BGP-learned routes");

    if keep {
        println!(
            "\nlab running; try `ip netns exec bramble-lab-c1 ping {}` or \
             `ip netns exec bramble-lab-node1 {} status --socket {}`. Ctrl-C to tear down.",
            NODES[1].container_ip,
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
