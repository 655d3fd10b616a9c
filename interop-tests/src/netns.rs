//! Network namespaces that delete themselves.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::names::unique_token;
use crate::process::{run, run_unchecked, signal, ChildGuard};

/// A network namespace (`ip netns add`), with its loopback up.
///
/// Drop kills every process still inside it (`ip netns pids`: SIGTERM, then SIGKILL) and deletes
/// it, which also deletes every interface in it (so the veth pairs ending there go too).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace named `PREFIX-TOKEN`, unique across processes and calls.
    pub fn new(prefix: &str) -> Result<Self> {
        Self::create(format!("{prefix}-{}", unique_token()))
    }

    /// A namespace with a fixed `name` (the lab): a leftover of that name is removed first.
    pub fn fixed(name: &str) -> Result<Self> {
        if Path::new("/run/netns").join(name).exists() {
            drop(Netns {
                name: name.to_string(),
            });
        }
        Self::create(name.to_string())
    }

    fn create(name: String) -> Result<Self> {
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        // Forwarding on, so a node can route between its links like a real host or switch.
        let _ = ns.exec("sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
        let _ = ns.exec("sysctl", ["-qw", "net.ipv6.conf.all.forwarding=1"]);
        // Keep IPv6 addresses when a link goes down, so a cut-and-restored veth comes back
        // with its addresses as IPv4 does (the kernel flushes them otherwise).
        let _ = ns.exec("sysctl", ["-qw", "net.ipv6.conf.all.keep_addr_on_down=1"]);
        let _ = ns.exec(
            "sysctl",
            ["-qw", "net.ipv6.conf.default.keep_addr_on_down=1"],
        );
        Ok(ns)
    }

    /// The namespace name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A [`Command`] that runs `program` inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.arg("netns").arg("exec").arg(&self.name).arg(program);
        c
    }

    /// Run `program args…` inside; error unless it exits 0.
    pub fn exec<I, S>(&self, program: &str, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(self.command(program).args(args))
    }

    /// Run `program args…` inside; return its output whatever the exit status.
    pub fn exec_unchecked<I, S>(&self, program: &str, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_unchecked(self.command(program).args(args))
    }

    /// Run `ip -n NAME args…` (cheaper than `ip netns exec`); returns stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let out = run(Command::new("ip").arg("-n").arg(&self.name).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Start a long-running `program args…` inside, logging to `log_dir/LABEL.std{out,err}`.
    pub fn spawn<I, S>(
        &self,
        program: &str,
        args: I,
        label: &str,
        log_dir: &Path,
    ) -> Result<ChildGuard>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        ChildGuard::spawn(cmd, label, log_dir)
    }

    /// Process ids of every process inside the namespace.
    pub fn pids(&self) -> Vec<i32> {
        run_unchecked(Command::new("ip").args(["netns", "pids", &self.name]))
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn kill_all(&self) {
        let pids = self.pids();
        if pids.is_empty() {
            return;
        }
        for &p in &pids {
            signal(p, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !self.pids().is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in self.pids() {
            signal(p, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !self.pids().is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let r = run_unchecked(Command::new("ip").args(["netns", "del", &self.name]));
        if let Ok(o) = r {
            if !o.status.success() {
                eprintln!(
                    "interop-tests: ip netns del {} failed: {}",
                    self.name,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
        }
    }
}
