//! Helpers shared by the IPAM tests: an agent started with `[ipam]` settings the driver's
//! `BrambleConfig` does not model (`max_blocks_per_node`, `strict_affinity`), killable and
//! restartable on the same store, its `bramble` client commands, and `bramble-ipam` calls.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use interop_tests::bramble::{bramble_bin, BrambleConfig};
use interop_tests::cni::{CniNetwork, CniOutput};
use interop_tests::{wait_until, ChildGuard, Netns};
use serde_json::Value;

/// `[ipam]` keys added to a rendered [`BrambleConfig`].
#[derive(Debug, Clone, Default)]
pub struct IpamExtra {
    /// `ipam.max_blocks_per_node`.
    pub max_blocks_per_node: Option<u32>,
    /// `ipam.strict_affinity`.
    pub strict_affinity: Option<bool>,
}

/// `cfg` as TOML with `extra` merged into `[ipam]`.
pub fn render(cfg: &BrambleConfig, extra: &IpamExtra) -> String {
    let mut doc: toml::Table = toml::from_str(&cfg.render().unwrap()).unwrap();
    let ipam = doc
        .get_mut("ipam")
        .and_then(toml::Value::as_table_mut)
        .expect("config has an [ipam] section");
    if let Some(max) = extra.max_blocks_per_node {
        ipam.insert(
            "max_blocks_per_node".into(),
            toml::Value::Integer(max.into()),
        );
    }
    if let Some(strict) = extra.strict_affinity {
        ipam.insert("strict_affinity".into(), toml::Value::Boolean(strict));
    }
    toml::to_string(&doc).unwrap()
}

/// A `bramble agent` in a namespace, started from a config file it can be restarted with.
pub struct Agent {
    ns_name: String,
    cfg_path: PathBuf,
    dir: PathBuf,
    label: String,
    socket: PathBuf,
    child: ChildGuard,
    starts: usize,
}

impl Agent {
    /// Writes the config to `dir/NAME.toml` and starts the agent in `ns`; returns once the
    /// control socket answers `bramble status`.
    pub fn start(ns: &Netns, dir: &Path, cfg: &BrambleConfig, extra: &IpamExtra) -> Agent {
        let cfg_path = dir.join(format!("{}.toml", cfg.node.name));
        std::fs::write(&cfg_path, render(cfg, extra)).unwrap();
        let label = format!("bramble-{}", cfg.node.name);
        let child = spawn(ns.name(), &cfg_path, &label, dir, 0);
        let mut a = Agent {
            ns_name: ns.name().to_string(),
            cfg_path,
            dir: dir.to_path_buf(),
            label,
            socket: cfg.api.socket.clone(),
            child,
            starts: 1,
        };
        a.wait_ready();
        a
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// SIGKILL (a crash); the process is reaped.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// SIGTERM, then SIGKILL after the driver's grace period.
    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// Starts the agent again with the same config (and so the same store); returns once it
    /// answers. Each start logs to its own file.
    pub fn restart(&mut self) {
        self.child.kill();
        let ns = self.ns_name.clone();
        self.child = spawn(&ns, &self.cfg_path, &self.label, &self.dir, self.starts);
        self.starts += 1;
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let socket = self.socket.clone();
        let child = &mut self.child;
        wait_until(
            "bramble control socket",
            Duration::from_secs(30),
            Duration::from_millis(20),
            || {
                child.check_running()?;
                Ok(client(&socket, &["status", "-o", "json"]).status.success())
            },
        )
        .unwrap();
    }

    /// `bramble ARGS… --socket S`, unchecked.
    pub fn client(&self, args: &[&str]) -> Output {
        client(&self.socket, args)
    }

    /// `bramble ARGS… --socket S`, which must succeed, parsed as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.client(args);
        assert!(out.status.success(), "bramble {args:?}: {}", show(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `bramble ipam allocate --handle H -o json`: the first address object.
    pub fn allocate(&self, handle: &str) -> Value {
        self.json(&["ipam", "allocate", "--handle", handle, "-o", "json"])[0].clone()
    }

    /// `bramble ipam show -o json`.
    pub fn show(&self) -> Value {
        self.json(&["ipam", "show", "-o", "json"])
    }

    /// `bramble ipam check -o json` (exit 1 when not clean, so unchecked).
    pub fn check(&self) -> Value {
        let out = self.client(&["ipam", "check", "-o", "json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("ipam check output: {e}: {}", show(&out)))
    }
}

fn spawn(ns: &str, cfg_path: &Path, label: &str, dir: &Path, n: usize) -> ChildGuard {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(bramble_bin())
        .arg("agent")
        .arg("--config")
        .arg(cfg_path)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or("info".into()),
        );
    ChildGuard::spawn(cmd, &format!("{label}-{n}"), dir).unwrap()
}

/// `bramble ARGS… --socket S` outside any namespace (the socket is a file).
pub fn client(socket: &Path, args: &[&str]) -> Output {
    Command::new(bramble_bin())
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .unwrap()
}

/// Exit status, stdout and stderr of `out`, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "{} stdout {:?} stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `bramble-ipam` alone (as `ptp` would) with `CNI_COMMAND=command` for container `id`
/// (ifname eth0, netns `/run/netns/ID`) and `conf` on stdin; whatever the exit status.
pub fn ipam(net: &CniNetwork, command: &str, id: &str, conf: &Value) -> CniOutput {
    let netns = Path::new("/run/netns").join(id);
    net.invoke_ipam(command, Some(&netns), id, "eth0", conf)
        .unwrap()
}

/// Exit status, stdout and stderr of a plugin run, for assertion messages.
pub fn show_cni(out: &CniOutput) -> String {
    format!(
        "{} stdout {:?} stderr {:?}",
        out.status, out.stdout, out.stderr
    )
}

/// Total `used` over the pools of an `ipam show` answer.
pub fn used(show: &Value) -> u64 {
    show.as_array()
        .unwrap()
        .iter()
        .map(|p| p["used"].as_u64().unwrap())
        .sum()
}

/// Every block of an `ipam show` answer.
pub fn blocks(show: &Value) -> Vec<Value> {
    show.as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["blocks"].as_array().cloned().unwrap_or_default())
        .collect()
}
