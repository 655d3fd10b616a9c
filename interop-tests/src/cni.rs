//! A driver for CNI plugin chains: a main plugin (Debian's `ptp` by default) that delegates
//! address management to `bramble-ipam`, run exactly as a container runtime runs it.
//!
//! The main plugin runs inside the node namespace (`ip netns exec NODE /usr/lib/cni/ptp`),
//! with the network configuration on stdin and the `CNI_*` variables in its environment;
//! `CNI_NETNS` is `/run/netns/CONTAINER`, `CNI_PATH` lists the plugin directory and the
//! directory of the built `bramble-ipam`. `bramble-ipam` talks to the node's agent over the
//! control socket, which is a file, so the namespace does not matter to it.
//!
//! `ptp` cannot take a /32, so `bramble-ipam` reports each address with the pool's prefix
//! length and gateway 169.254.1.1: the container gets `POOL via 169.254.1.1`, the node gets a
//! /32 host route to the container's veth.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use serde_json::{json, Value};

use crate::bramble::bramble_bin;
use crate::error::{Error, Result};
use crate::netns::Netns;

/// The spec version the driver writes by default (`ptp` 1.1.x speaks up to 1.0.0).
pub const CNI_VERSION: &str = "1.0.0";

/// Where distributions install the reference plugins, in the order they are searched.
pub const PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];

/// The directory holding the reference plugins: `$CNI_PLUGIN_DIR` if set, else the first of
/// [`PLUGIN_DIRS`] that holds `ptp`, else `/usr/lib/cni`.
pub fn plugin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("CNI_PLUGIN_DIR") {
        return PathBuf::from(p);
    }
    PLUGIN_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("ptp").is_file())
        .unwrap_or_else(|| PathBuf::from(PLUGIN_DIRS[0]))
}

/// The built `bramble-ipam`: next to the `bramble` binary ([`bramble_bin`]).
pub fn ipam_bin() -> PathBuf {
    bramble_bin().with_file_name("bramble-ipam")
}

/// `Ok` when `PLUGIN_DIR/plugin` and the built `bramble-ipam` exist.
pub fn check_cni_plugins(plugin: &str) -> Result<()> {
    let main = plugin_dir().join(plugin);
    if !main.is_file() {
        return Err(Error::Prerequisite(format!(
            "CNI plugin {} not found (Debian: apt-get install -y containernetworking-plugins, \
             or set CNI_PLUGIN_DIR)",
            main.display()
        )));
    }
    let ipam = ipam_bin();
    if !ipam.is_file() {
        return Err(Error::Prerequisite(format!(
            "{} not built (cargo build --workspace --bins, or set BRAMBLE_BIN)",
            ipam.display()
        )));
    }
    Ok(())
}

/// Panic unless `ptp` and `bramble-ipam` are there (CI installs them: a failure, not a skip).
pub fn require_cni() {
    if let Err(e) = check_cni_plugins("ptp") {
        panic!("{e}");
    }
}

/// What one plugin invocation returned, whatever its exit status.
#[derive(Debug, Clone)]
pub struct CniOutput {
    /// The plugin's exit status.
    pub status: ExitStatus,
    /// Stdout parsed as JSON (`Null` when empty or not JSON: DEL and CHECK print nothing).
    pub json: Value,
    /// Stdout as text.
    pub stdout: String,
    /// Stderr as text.
    pub stderr: String,
}

impl CniOutput {
    /// Whether the plugin exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The spec's error `code` when the plugin printed an error object.
    pub fn error_code(&self) -> Option<u64> {
        self.json["code"].as_u64()
    }

    /// `Ok(self)` on success, else an [`Error::Command`] carrying the plugin's error object.
    fn ok(self, what: String) -> Result<Self> {
        if self.success() {
            return Ok(self);
        }
        let output = if self.stdout.trim().is_empty() {
            self.stderr.trim().to_string()
        } else {
            format!("{} {}", self.stdout.trim(), self.stderr.trim())
        };
        Err(Error::Command {
            cmd: what,
            status: self.status.to_string(),
            output,
        })
    }
}

/// The part of an ADD result the tests use, plus the whole result (the `prevResult` of a
/// CHECK or DEL).
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    /// The container's address.
    pub ip: IpAddr,
    /// The prefix length it was reported with (the pool's, for `ptp`).
    pub prefix_len: u8,
    /// The reported gateway.
    pub gateway: Option<IpAddr>,
    /// The host side of the veth (the interface without a `sandbox`), if reported.
    pub host_ifname: Option<String>,
    /// The result as the plugin printed it.
    pub raw: Value,
}

impl CniResult {
    /// Parses an ADD result: the first entry of `ips`.
    pub fn parse(raw: Value) -> Result<Self> {
        let bad = |why: &str| Error::parse("CNI ADD result", format!("{why}: {raw}"));
        let address = raw["ips"][0]["address"]
            .as_str()
            .ok_or_else(|| bad("no ips[0].address"))?;
        let (ip, len) = address
            .split_once('/')
            .ok_or_else(|| bad("address without a prefix length"))?;
        let ip: IpAddr = ip.parse().map_err(|_| bad("bad address"))?;
        let prefix_len: u8 = len.parse().map_err(|_| bad("bad prefix length"))?;
        let gateway = raw["ips"][0]["gateway"]
            .as_str()
            .and_then(|g| g.parse().ok());
        let host_ifname = raw["interfaces"].as_array().and_then(|ifs| {
            ifs.iter()
                .find(|i| !matches!(i["sandbox"].as_str(), Some(s) if !s.is_empty()))
                .and_then(|i| i["name"].as_str().map(str::to_string))
        });
        Ok(Self {
            ip,
            prefix_len,
            gateway,
            host_ifname,
            raw,
        })
    }
}

/// One CNI network: a main plugin chained to `bramble-ipam` on one node's agent.
#[derive(Debug, Clone)]
pub struct CniNetwork {
    /// The network name (the first part of every IPAM handle).
    pub name: String,
    /// The main plugin's `type` (a file in `plugin_dir`), e.g. `ptp`.
    pub plugin: String,
    /// The pool `bramble-ipam` allocates from.
    pub pool: String,
    /// The node agent's control socket.
    pub socket: PathBuf,
    /// The reference plugins' directory ([`plugin_dir`]).
    pub plugin_dir: PathBuf,
    /// The directory holding `bramble-ipam` ([`ipam_bin`]'s).
    pub ipam_dir: PathBuf,
    /// `cniVersion` of the configuration.
    pub cni_version: String,
    /// Extra keys merged into the `ipam` section (e.g. `{"gateway": …}`).
    pub ipam_extra: Value,
}

impl CniNetwork {
    /// `ptp` + `bramble-ipam` allocating from `pool` through the agent at `socket`.
    pub fn ptp(name: &str, pool: &str, socket: &Path) -> Self {
        Self {
            name: name.to_string(),
            plugin: "ptp".into(),
            pool: pool.to_string(),
            socket: socket.to_path_buf(),
            plugin_dir: plugin_dir(),
            ipam_dir: ipam_bin()
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            cni_version: CNI_VERSION.into(),
            ipam_extra: Value::Null,
        }
    }

    /// The network configuration written to the plugin's stdin.
    pub fn netconf(&self) -> Value {
        let mut ipam = json!({
            "type": "bramble-ipam",
            "socket": self.socket,
            "pool": self.pool,
        });
        if let (Some(dst), Some(src)) = (ipam.as_object_mut(), self.ipam_extra.as_object()) {
            for (k, v) in src {
                dst.insert(k.clone(), v.clone());
            }
        }
        json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "type": self.plugin,
            "ipam": ipam,
        })
    }

    /// `CNI_PATH`: the plugin directory, then `bramble-ipam`'s.
    pub fn cni_path(&self) -> String {
        format!("{}:{}", self.plugin_dir.display(), self.ipam_dir.display())
    }

    /// Runs the main plugin once inside `node` with `conf` on stdin: `CNI_COMMAND=command`,
    /// `CNI_NETNS=netns` (omitted when `None`), and returns what it printed, whatever the
    /// exit status (for error tests).
    pub fn invoke(
        &self,
        node: &Netns,
        command: &str,
        netns: Option<&Path>,
        container_id: &str,
        ifname: &str,
        conf: &Value,
    ) -> Result<CniOutput> {
        let mut cmd = node.command(self.plugin_dir.join(&self.plugin));
        set_env(
            &mut cmd,
            command,
            netns,
            container_id,
            ifname,
            &self.cni_path(),
        );
        feed(cmd, conf)
    }

    /// Runs `bramble-ipam` alone (outside any namespace: the socket is a file), as the main
    /// plugin would; whatever the exit status.
    pub fn invoke_ipam(
        &self,
        command: &str,
        netns: Option<&Path>,
        container_id: &str,
        ifname: &str,
        conf: &Value,
    ) -> Result<CniOutput> {
        let mut cmd = Command::new(self.ipam_dir.join("bramble-ipam"));
        set_env(
            &mut cmd,
            command,
            netns,
            container_id,
            ifname,
            &self.cni_path(),
        );
        feed(cmd, conf)
    }

    /// ADD: wires `container` (its `ifname`) to `node` and returns the parsed result.
    pub fn add(
        &self,
        node: &Netns,
        container: &Netns,
        container_id: &str,
        ifname: &str,
    ) -> Result<CniResult> {
        let out = self
            .invoke(
                node,
                "ADD",
                Some(&netns_path(container)),
                container_id,
                ifname,
                &self.netconf(),
            )?
            .ok(self.what("ADD", container_id))?;
        CniResult::parse(out.json)
    }

    /// DEL: unwires `container` and releases its address (idempotent, as the spec requires).
    pub fn del(
        &self,
        node: &Netns,
        container: &Netns,
        container_id: &str,
        ifname: &str,
    ) -> Result<()> {
        self.invoke(
            node,
            "DEL",
            Some(&netns_path(container)),
            container_id,
            ifname,
            &self.netconf(),
        )?
        .ok(self.what("DEL", container_id))
        .map(drop)
    }

    /// CHECK against the ADD result `prev` (the main plugin checks the interfaces and
    /// addresses, `bramble-ipam` the allocation). Needs `cniVersion` 0.4.0 or later.
    pub fn check(
        &self,
        node: &Netns,
        container: &Netns,
        container_id: &str,
        ifname: &str,
        prev: &CniResult,
    ) -> Result<()> {
        let mut conf = self.netconf();
        conf["prevResult"] = prev.raw.clone();
        self.invoke(
            node,
            "CHECK",
            Some(&netns_path(container)),
            container_id,
            ifname,
            &conf,
        )?
        .ok(self.what("CHECK", container_id))
        .map(drop)
    }

    fn what(&self, command: &str, container_id: &str) -> String {
        format!(
            "{} {command} (network {}, container {container_id})",
            self.plugin, self.name
        )
    }
}

/// `/run/netns/NAME`: the path `ip netns` binds a namespace to.
pub fn netns_path(ns: &Netns) -> PathBuf {
    Path::new("/run/netns").join(ns.name())
}

fn set_env(
    cmd: &mut Command,
    command: &str,
    netns: Option<&Path>,
    container_id: &str,
    ifname: &str,
    cni_path: &str,
) {
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", cni_path);
    match netns {
        Some(p) => cmd.env("CNI_NETNS", p),
        None => cmd.env_remove("CNI_NETNS"),
    };
}

/// Runs `cmd` with `conf` on stdin and collects its output.
fn feed(mut cmd: Command, conf: &Value) -> Result<CniOutput> {
    let what = crate::process::describe(&cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            cmd: what.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin that exits before reading closes the pipe; its output says why.
        let _ = stdin.write_all(conf.to_string().as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| Error::Spawn { cmd: what, source })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(CniOutput {
        status: out.status,
        json: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_ptp_result() {
        let raw = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:ff"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:00", "sandbox": "/run/netns/c"}
            ],
            "ips": [{"interface": 1, "address": "10.244.0.5/16", "gateway": "169.254.1.1"}],
        });
        let r = CniResult::parse(raw).unwrap();
        assert_eq!(r.ip, "10.244.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(r.prefix_len, 16);
        assert_eq!(r.gateway, Some("169.254.1.1".parse().unwrap()));
        assert_eq!(r.host_ifname.as_deref(), Some("veth1234"));
        assert!(CniResult::parse(json!({"ips": []})).is_err());
        assert!(CniResult::parse(json!({"ips": [{"address": "10.0.0.1"}]})).is_err());
    }

    #[test]
    fn netconf_has_ipam_section_and_extras() {
        let mut n = CniNetwork::ptp("podnet", "10.244.0.0/16", Path::new("/tmp/b.sock"));
        n.ipam_extra = json!({"gateway": "169.254.1.2"});
        let c = n.netconf();
        assert_eq!(c["type"], "ptp");
        assert_eq!(c["name"], "podnet");
        assert_eq!(c["ipam"]["type"], "bramble-ipam");
        assert_eq!(c["ipam"]["pool"], "10.244.0.0/16");
        assert_eq!(c["ipam"]["socket"], "/tmp/b.sock");
        assert_eq!(c["ipam"]["gateway"], "169.254.1.2");
    }
}
