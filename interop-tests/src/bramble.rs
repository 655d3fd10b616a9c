//! A driver for the Bramble agent: config writer, `bramble agent` in a namespace, and the
//! `bramble` client commands parsed as JSON.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::names::unique_token;
use crate::netns::Netns;
use crate::process::{command_error, run_unchecked, wait_until, ChildGuard};

/// The `bramble` binary: `$BRAMBLE_BIN`, else `target/debug/bramble` in the workspace
/// (building it is the caller's job; `.ci/run` builds it before the tests).
pub fn bramble_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BRAMBLE_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("debug").join("bramble")
}

/// `[node]`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSection {
    /// Node name.
    pub name: String,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Local AS.
    pub asn: u32,
}

/// `[api]`.
#[derive(Debug, Clone, Serialize)]
pub struct ApiSection {
    /// The control socket.
    pub socket: PathBuf,
}

/// One `[[bgp.peers]]`.
#[derive(Debug, Clone, Serialize)]
pub struct BramblePeer {
    /// Peer address.
    pub address: IpAddr,
    /// Peer AS (different from `node.asn` = eBGP).
    pub asn: u32,
    /// Peer TCP port.
    pub port: u16,
    /// Do not connect, only accept.
    pub passive: bool,
    /// Source address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_address: Option<IpAddr>,
    /// Per-peer hold time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<u16>,
    /// Seconds between connection attempts.
    pub connect_retry: u16,
    /// `ipv4-unicast`, `ipv6-unicast`.
    pub families: Vec<String>,
    /// Import prefix rules (eBGP denies everything unless set, RFC 8212).
    pub import: Vec<String>,
    /// Export prefix rules.
    pub export: Vec<String>,
    /// TCP MD5 key (RFC 2385).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// File holding the TCP MD5 key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// GTSM (RFC 5082).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ttl_security: bool,
    /// Maximum paths from this peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_prefixes: Option<u32>,
    /// Seconds down after exceeding `max_prefixes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_prefixes_restart: Option<u32>,
    /// A route-reflector client of this node (needs `bgp.cluster_id`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rr_client: bool,
    /// Add-path (RFC 7911): `receive`, `send` or `both`; absent = off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_path: Option<String>,
    /// Most paths per prefix sent with add-path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_path_max: Option<u16>,
}

impl BramblePeer {
    /// A peer on port 179, active, hold time 9, connect retry 1, both families, importing and
    /// exporting everything.
    pub fn new(address: IpAddr, asn: u32) -> Self {
        Self {
            address,
            asn,
            port: 179,
            passive: false,
            local_address: None,
            hold_time: Some(9),
            connect_retry: 1,
            families: vec!["ipv4-unicast".into(), "ipv6-unicast".into()],
            import: vec!["0.0.0.0/0 le 32".into(), "::/0 le 128".into()],
            export: vec!["0.0.0.0/0 le 32".into(), "::/0 le 128".into()],
            password: None,
            password_file: None,
            ttl_security: false,
            max_prefixes: None,
            max_prefixes_restart: None,
            rr_client: false,
            add_path: None,
            add_path_max: None,
        }
    }
}

/// `[bgp]`.
#[derive(Debug, Clone, Serialize)]
pub struct BgpSection {
    /// Listen address, e.g. `0.0.0.0:179` or `[::]:179`; absent = do not listen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Default hold time.
    pub hold_time: u16,
    /// Graceful restart (RFC 4724); absent = the agent's default (on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<bool>,
    /// Restart time in seconds (also how long the FIB keeps our routes after a
    /// restart); absent = the agent's default (120).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_time: Option<u16>,
    /// `host-routes` or `aggregate`; absent = the agent's default (host-routes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// RFC 4456 cluster id: set = this node is a route reflector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<Ipv4Addr>,
    /// Peers.
    pub peers: Vec<BramblePeer>,
}

/// `[fib]`.
#[derive(Debug, Clone, Serialize)]
pub struct FibSection {
    /// Program the kernel FIB (inside the node's namespace).
    pub enabled: bool,
}

/// `[ipam]`, pointed at the test's scratch directory so parallel agents never share a store.
#[derive(Debug, Clone, Serialize)]
pub struct IpamSection {
    /// `sled`.
    pub store: String,
    /// Store directory.
    pub path: PathBuf,
    /// Networks this node never hands out (`reservations`); none = key omitted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<String>,
    /// `[[ipam.pools]]`; none = IPAM off.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<IpamPool>,
}

/// One `[[ipam.pools]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct IpamPool {
    /// The pool, e.g. `10.244.0.0/16`.
    pub cidr: String,
    /// Block prefix length; absent = the agent's default (/26, /122).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
}

impl IpamPool {
    /// A pool with blocks of `block_size`.
    pub fn new(cidr: &str, block_size: u8) -> Self {
        Self {
            cidr: cidr.to_string(),
            block_size: Some(block_size),
        }
    }
}

/// A whole Bramble config.
#[derive(Debug, Clone, Serialize)]
pub struct BrambleConfig {
    /// `[node]`.
    pub node: NodeSection,
    /// `[api]`.
    pub api: ApiSection,
    /// `[bgp]`.
    pub bgp: BgpSection,
    /// `[fib]`; tests default to off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fib: Option<FibSection>,
    /// `[ipam]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamSection>,
}

impl BrambleConfig {
    /// A config for node `name` whose socket and IPAM store live in `dir`; listens on
    /// `0.0.0.0:179`; hold time 9; FIB off; no peers.
    pub fn new(name: &str, router_id: Ipv4Addr, asn: u32, dir: &Path) -> Self {
        Self {
            node: NodeSection {
                name: name.to_string(),
                router_id,
                asn,
            },
            api: ApiSection {
                socket: dir.join("bramble.sock"),
            },
            bgp: BgpSection {
                listen: Some("0.0.0.0:179".into()),
                hold_time: 9,
                graceful_restart: None,
                restart_time: None,
                advertise: None,
                cluster_id: None,
                peers: Vec::new(),
            },
            fib: Some(FibSection { enabled: false }),
            ipam: Some(IpamSection {
                store: "sled".into(),
                path: dir.join("ipam"),
                reservations: Vec::new(),
                pools: Vec::new(),
            }),
        }
    }

    /// Turns IPAM on with `pools`, originating as `advertise` (`host-routes` / `aggregate`).
    pub fn with_ipam(mut self, pools: Vec<IpamPool>, advertise: &str) -> Self {
        self.bgp.advertise = Some(advertise.to_string());
        if let Some(ipam) = self.ipam.as_mut() {
            ipam.pools = pools;
        }
        self
    }

    /// Adds `reservations` to `[ipam]` (networks this node never hands out).
    pub fn with_reservations(mut self, reservations: &[&str]) -> Self {
        if let Some(ipam) = self.ipam.as_mut() {
            ipam.reservations
                .extend(reservations.iter().map(|r| r.to_string()));
        }
        self
    }

    /// The TOML text.
    pub fn render(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::parse("bramble config", e.to_string()))
    }
}

/// A `bramble agent` in a namespace. Killed on drop.
#[derive(Debug)]
pub struct Bramble {
    bin: PathBuf,
    socket: PathBuf,
    dir: PathBuf,
    child: ChildGuard,
}

impl Bramble {
    /// Write `cfg` to `dir/bramble-NAME.toml`, start `bramble agent --config FILE` in `ns`,
    /// return once `bramble status` answers on the control socket.
    pub fn start(ns: &Netns, dir: &Path, cfg: &BrambleConfig) -> Result<Self> {
        let bin = bramble_bin();
        let cfg_path = dir.join(format!("bramble-{}.toml", cfg.node.name));
        std::fs::write(&cfg_path, cfg.render()?).map_err(|e| Error::io(&cfg_path, e))?;
        if let Some(parent) = cfg.api.socket.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut cmd = ns.command(&bin);
        cmd.arg("agent").arg("--config").arg(&cfg_path).env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or("info".into()),
        );
        let child = ChildGuard::spawn(cmd, &format!("bramble-{}", cfg.node.name), dir)?;
        let mut b = Bramble {
            bin,
            socket: cfg.api.socket.clone(),
            dir: dir.to_path_buf(),
            child,
        };
        wait_until(
            "bramble control socket",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                b.child.check_running()?;
                Ok(b.status().is_ok())
            },
        )?;
        Ok(b)
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The agent process (e.g. to SIGKILL it, or to check it is still alive).
    pub fn process(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// Run `bramble ARGS… --socket S` (outside the namespace: the socket is a file) and
    /// return stdout; errors carry the one-line reason the client prints.
    pub fn client(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).arg("--socket").arg(&self.socket);
        let out = run_unchecked(&mut cmd)?;
        if !out.status.success() {
            return Err(command_error(&cmd, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// [`Bramble::client`] with its output parsed as JSON.
    pub fn client_json(&self, args: &[&str]) -> Result<Value> {
        let text = self.client(args)?;
        serde_json::from_str(&text).map_err(|e| {
            Error::parse(
                format!("bramble {}", args.join(" ")),
                format!("{e}: {}", text.chars().take(300).collect::<String>()),
            )
        })
    }

    /// `bramble status -o json`: one object per peer.
    pub fn status(&self) -> Result<Vec<Value>> {
        as_array(
            self.client_json(&["status", "-o", "json"])?,
            "bramble status",
        )
    }

    /// The status row of peer `addr`, if listed.
    pub fn peer_status(&self, addr: IpAddr) -> Result<Option<Value>> {
        let want = addr.to_string();
        Ok(self
            .status()?
            .into_iter()
            .find(|p| p["peer"].as_str() == Some(want.as_str())))
    }

    /// The `state` of peer `addr` (`Established`, `Idle`, …); `None` if not listed.
    pub fn peer_state(&self, addr: IpAddr) -> Result<Option<String>> {
        Ok(self
            .peer_status(addr)?
            .and_then(|p| p["state"].as_str().map(str::to_string)))
    }

    /// Whether peer `addr` is Established.
    pub fn is_established(&self, addr: IpAddr) -> Result<bool> {
        Ok(self.peer_state(addr)?.as_deref() == Some("Established"))
    }

    /// `bramble routes --table TABLE -o json [--peer ADDR]`.
    pub fn routes(&self, table: &str, peer: Option<IpAddr>) -> Result<Vec<Value>> {
        let peer = peer.map(|p| p.to_string());
        let mut args = vec!["routes", "--table", table, "-o", "json"];
        if let Some(p) = &peer {
            args.extend(["--peer", p.as_str()]);
        }
        as_array(self.client_json(&args)?, "bramble routes")
    }

    /// The Loc-RIB.
    pub fn loc_routes(&self) -> Result<Vec<Value>> {
        self.routes("loc", None)
    }

    /// Loc-RIB entries for exactly `prefix`.
    pub fn loc_routes_for(&self, prefix: &str) -> Result<Vec<Value>> {
        Ok(self
            .loc_routes()?
            .into_iter()
            .filter(|r| r["prefix"].as_str() == Some(prefix))
            .collect())
    }

    /// `bramble routes announce PREFIX`.
    pub fn announce(&self, prefix: &str) -> Result<()> {
        self.client(&["routes", "announce", prefix]).map(drop)
    }

    /// `bramble routes withdraw PREFIX`.
    pub fn withdraw(&self, prefix: &str) -> Result<()> {
        self.client(&["routes", "withdraw", prefix]).map(drop)
    }

    /// Announce many prefixes at once: `bramble routes announce --file PATH` (one per line).
    pub fn announce_many<P: ToString>(&self, prefixes: &[P]) -> Result<()> {
        let file = self.prefix_file(prefixes)?;
        self.client(&["routes", "announce", "--file", &file])
            .map(drop)
    }

    /// Withdraw many prefixes at once: `bramble routes withdraw --file PATH`.
    pub fn withdraw_many<P: ToString>(&self, prefixes: &[P]) -> Result<()> {
        let file = self.prefix_file(prefixes)?;
        self.client(&["routes", "withdraw", "--file", &file])
            .map(drop)
    }

    /// `bramble ipam allocate --handle HANDLE -o json`: the allocated address.
    pub fn ipam_allocate(&self, handle: &str) -> Result<IpAddr> {
        let got = self.client_json(&["ipam", "allocate", "--handle", handle, "-o", "json"])?;
        got[0]["ip"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::parse("bramble ipam allocate", got.to_string()))
    }

    /// `bramble ipam release --handle HANDLE`.
    pub fn ipam_release(&self, handle: &str) -> Result<()> {
        self.client(&["ipam", "release", "--handle", handle])
            .map(drop)
    }

    /// `bramble ipam show -o json`: one object per pool (`blocks` inside).
    pub fn ipam_show(&self) -> Result<Vec<Value>> {
        match self.client_json(&["ipam", "show", "-o", "json"])? {
            Value::Array(pools) => Ok(pools),
            other => Err(Error::parse("bramble ipam show", other.to_string())),
        }
    }

    fn prefix_file<P: ToString>(&self, prefixes: &[P]) -> Result<String> {
        let path = self.dir.join(format!("prefixes-{}.txt", unique_token()));
        let mut text = String::with_capacity(prefixes.len() * 20);
        for p in prefixes {
            text.push_str(&p.to_string());
            text.push('\n');
        }
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        Ok(path.to_string_lossy().into_owned())
    }
}

/// A route's `as_path` from `bramble routes -o json`, accepting an array of numbers or a
/// space-separated string.
pub fn route_as_path(r: &Value) -> Vec<u32> {
    match &r["as_path"] {
        Value::Array(a) => a
            .iter()
            .filter_map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect(),
        Value::String(s) => s
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// A route's `next_hop`, parsed.
pub fn route_next_hop(r: &Value) -> Option<IpAddr> {
    r["next_hop"].as_str().and_then(|s| s.parse().ok())
}

/// A route's `peer`, parsed (absent for local routes).
pub fn route_peer(r: &Value) -> Option<IpAddr> {
    r["peer"].as_str().and_then(|s| s.parse().ok())
}

/// A boolean field of a route (`best`, `ecmp`); absent = false.
pub fn route_flag(r: &Value, field: &str) -> bool {
    r[field].as_bool().unwrap_or(false)
}

fn as_array(v: Value, what: &str) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Null => Ok(Vec::new()),
        other => Err(Error::parse(
            what,
            format!("expected a JSON array, got {}", other),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_path_forms() {
        let a: Value = serde_json::json!({"as_path": [65001, 65002]});
        let b: Value = serde_json::json!({"as_path": "65001 65002"});
        assert_eq!(route_as_path(&a), vec![65001, 65002]);
        assert_eq!(route_as_path(&b), vec![65001, 65002]);
    }

    #[test]
    fn config_renders_documented_shape() {
        let dir = Path::new("/tmp/x");
        let mut c = BrambleConfig::new("node1", Ipv4Addr::new(192, 0, 2, 1), 64512, dir);
        let mut p = BramblePeer::new("10.0.0.1".parse().unwrap(), 65000);
        p.local_address = Some("10.0.0.2".parse().unwrap());
        c.bgp.peers.push(p);
        let t = c.render().unwrap();
        for want in [
            "[node]",
            "router_id = \"192.0.2.1\"",
            "socket = \"/tmp/x/bramble.sock\"",
            "[[bgp.peers]]",
            "address = \"10.0.0.1\"",
            "local_address = \"10.0.0.2\"",
            "hold_time = 9",
            "\"0.0.0.0/0 le 32\"",
        ] {
            assert!(t.contains(want), "missing {want} in\n{t}");
        }
    }
}
