//! Checks that the machine can run these tests; failing loudly rather than skipping.

use std::path::PathBuf;
use std::process::Command;

use crate::bramble::bramble_bin;
use crate::error::{Error, Result};

/// Whether `tool` is on `PATH` (or under the sbin directories `sudo` users may lack).
fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null 2>&1"))
        .env(
            "PATH",
            format!(
                "{}:/usr/sbin:/sbin",
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `Ok` when running as root with `ip`, `bird`, `birdc`, `gobgpd` and `gobgp` installed.
pub fn check_root_and_tools() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Prerequisite(
            "interop tests need root (network namespaces); run them as root or via .ci/run".into(),
        ));
    }
    let missing: Vec<&str> = ["ip", "bird", "birdc", "gobgpd", "gobgp"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Prerequisite(format!(
            "missing tools: {} (Debian: apt-get install -y bird2 gobgpd iproute2)",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// Panic with a clear message unless root and the daemons are there. Tests call this first:
/// CI installs the tools, so a missing one is a failure, not a skip.
pub fn require_root_and_tools() {
    if let Err(e) = check_root_and_tools() {
        panic!("{e}");
    }
}

/// [`require_root_and_tools`], plus the `bramble` binary; returns its path.
pub fn require_bramble() -> PathBuf {
    require_root_and_tools();
    let bin = bramble_bin();
    if !bin.is_file() {
        panic!(
            "prerequisite missing: bramble binary not found at {} (build it first: \
             `cargo build -p agent`, or set BRAMBLE_BIN)",
            bin.display()
        );
    }
    bin
}
