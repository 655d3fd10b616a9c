//! A driver for GoBGP 3: `gobgpd` config writer, daemon in a namespace, `gobgp` CLI queries,
//! and bulk announcing through MRT injection.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::mrt::{table_dump_v2, MrtRoute, NO_ADVERTISE};
use crate::names::unique_token;
use crate::netns::Netns;
use crate::process::{command_error, wait_until, ChildGuard};

/// The prefix [`Gobgp::announce_bulk`] uses as its end-of-stream marker (TEST-NET-1).
pub const BULK_SENTINEL: &str = "192.0.2.254/32";

/// The gRPC port `gobgpd` listens on inside its namespace (each namespace has its own
/// loopback, so the default is safe; it is still passed explicitly).
pub const API_PORT: u16 = 50051;

/// One `[[neighbors]]` entry.
#[derive(Debug, Clone)]
pub struct GobgpNeighbor {
    /// `neighbor-address`.
    pub address: IpAddr,
    /// `peer-as`.
    pub peer_as: u32,
    /// `transport.config.local-address`, optional.
    pub local_address: Option<IpAddr>,
    /// `transport.config.remote-port`, when not 179.
    pub remote_port: Option<u16>,
    /// `transport.config.passive-mode`.
    pub passive: bool,
    /// `timers.config.hold-time` (keepalive is a third of it).
    pub hold_time: u16,
    /// `timers.config.connect-retry`.
    pub connect_retry: u16,
    /// Address families (`ipv4-unicast`, `ipv6-unicast`).
    pub families: Vec<String>,
    /// Extra TOML appended after this neighbor, verbatim.
    pub extra: String,
}

impl GobgpNeighbor {
    /// A neighbor with hold time 9, connect retry 1 and both unicast families.
    pub fn new(address: IpAddr, peer_as: u32) -> Self {
        Self {
            address,
            peer_as,
            local_address: None,
            remote_port: None,
            passive: false,
            hold_time: 9,
            connect_retry: 1,
            families: vec!["ipv4-unicast".into(), "ipv6-unicast".into()],
            extra: String::new(),
        }
    }
}

/// A whole `gobgpd` config.
#[derive(Debug, Clone)]
pub struct GobgpConfig {
    /// `global.config.as`.
    pub asn: u32,
    /// `global.config.router-id`.
    pub router_id: Ipv4Addr,
    /// `global.config.port`: the BGP listen port (-1 = do not listen).
    pub listen_port: i32,
    /// Neighbors.
    pub neighbors: Vec<GobgpNeighbor>,
}

impl GobgpConfig {
    /// A config listening on 179 with no neighbors.
    pub fn new(asn: u32, router_id: Ipv4Addr) -> Self {
        Self {
            asn,
            router_id,
            listen_port: 179,
            neighbors: Vec::new(),
        }
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = {}\n",
            self.asn, self.router_id, self.listen_port
        );
        for n in &self.neighbors {
            let _ = writeln!(
                o,
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
                n.address, n.peer_as
            );
            // Short timers; idle-hold-time-after-reset defaults to 30 s, far too slow for tests.
            let _ = writeln!(
                o,
                "  [neighbors.timers.config]\n    hold-time = {}\n    keepalive-interval = {}\n    \
                 connect-retry = {}\n    idle-hold-time-after-reset = 1",
                n.hold_time,
                (n.hold_time / 3).max(1),
                n.connect_retry
            );
            let _ = writeln!(o, "  [neighbors.transport.config]");
            if let Some(a) = n.local_address {
                let _ = writeln!(o, "    local-address = \"{a}\"");
            }
            if let Some(p) = n.remote_port {
                let _ = writeln!(o, "    remote-port = {p}");
            }
            let _ = writeln!(o, "    passive-mode = {}", n.passive);
            for f in &n.families {
                let _ = writeln!(
                    o,
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{f}\""
                );
            }
            o.push_str(&n.extra);
            o.push('\n');
        }
        o
    }
}

/// One path of a prefix in `gobgp global rib -j`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GobgpPath {
    /// Selected as best.
    pub best: bool,
    /// NEXT_HOP, or the MP_REACH_NLRI next hop.
    pub next_hop: Option<IpAddr>,
    /// AS_PATH, flattened.
    pub as_path: Vec<u32>,
    /// The neighbor it came from (absent for local routes).
    pub neighbor: Option<IpAddr>,
    /// ORIGINATOR_ID (RFC 4456, attribute type 9).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456, attribute type 10).
    pub cluster_list: Vec<Ipv4Addr>,
}

/// A `gobgpd` running in a namespace. Killed on drop.
#[derive(Debug)]
pub struct Gobgp {
    netns: String,
    dir: PathBuf,
    port: u16,
    asn: u32,
    router_id: Ipv4Addr,
    child: ChildGuard,
}

impl Gobgp {
    /// Write `cfg` to `dir/gobgpd.toml`, start `gobgpd` in `ns` with its API on
    /// `127.0.0.1:`[`API_PORT`]; return once the API answers.
    pub fn start(ns: &Netns, dir: &Path, cfg: &GobgpConfig) -> Result<Self> {
        let cfg_path = dir.join("gobgpd.toml");
        std::fs::write(&cfg_path, cfg.render()).map_err(|e| Error::io(&cfg_path, e))?;
        let api = format!("127.0.0.1:{API_PORT}");
        let args = [
            "-f".as_ref(),
            cfg_path.as_os_str(),
            "--api-hosts".as_ref(),
            api.as_ref(),
            "-l".as_ref(),
            "info".as_ref(),
        ];
        let child = ns.spawn::<_, &std::ffi::OsStr>("gobgpd", args, "gobgpd", dir)?;
        let mut g = Gobgp {
            netns: ns.name().to_string(),
            dir: dir.to_path_buf(),
            port: API_PORT,
            asn: cfg.asn,
            router_id: cfg.router_id,
            child,
        };
        wait_until(
            "gobgpd API",
            Duration::from_secs(20),
            Duration::from_millis(100),
            || {
                g.child.check_running()?;
                // Neighbors come from the config file a moment after the API opens.
                Ok(g.gobgp(&["neighbor"]).is_ok())
            },
        )?;
        Ok(g)
    }

    /// The daemon process.
    pub fn process(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// The local AS.
    pub fn asn(&self) -> u32 {
        self.asn
    }

    /// Run `gobgp -p PORT ARGS…` inside the namespace; return stdout.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        let mut cmd = std::process::Command::new("ip");
        let port = self.port.to_string();
        cmd.args(["netns", "exec", &self.netns, "gobgp", "-p", &port])
            .args(args);
        let out = crate::process::run_unchecked(&mut cmd)?;
        if !out.status.success() {
            return Err(command_error(&cmd, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn gobgp_json(&self, args: &[&str]) -> Result<Value> {
        let text = self.gobgp(args)?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| {
            Error::parse(
                format!("gobgp {}", args.join(" ")),
                format!("{e}: {}", text.chars().take(300).collect::<String>()),
            )
        })
    }

    /// The FSM state of neighbor `addr`: `Idle`, `Connect`, `Active`, `OpenSent`,
    /// `OpenConfirm`, `Established` (from `gobgp neighbor ADDR -j`).
    pub fn neighbor_state(&self, addr: IpAddr) -> Result<String> {
        let v = self.gobgp_json(&["neighbor", &addr.to_string(), "-j"])?;
        let s = &v["state"]["session_state"];
        // GoBGP 3 prints the protobuf enum number; some builds print its name.
        let name = match s {
            Value::Number(n) => match n.as_u64() {
                Some(1) => "Idle",
                Some(2) => "Connect",
                Some(3) => "Active",
                Some(4) => "OpenSent",
                Some(5) => "OpenConfirm",
                Some(6) => "Established",
                _ => "Unknown",
            }
            .to_string(),
            Value::String(t) => {
                let t = t.to_ascii_lowercase();
                let t = t.trim_start_matches("session_state_");
                match t {
                    "idle" => "Idle",
                    "connect" => "Connect",
                    "active" => "Active",
                    "opensent" => "OpenSent",
                    "openconfirm" => "OpenConfirm",
                    "established" => "Established",
                    _ => "Unknown",
                }
                .to_string()
            }
            // An absent state means the neighbor never left Idle.
            _ => "Idle".to_string(),
        };
        Ok(name)
    }

    /// `gobgp neighbor ADDR -j` as JSON (state, timers, message counters, the last
    /// NOTIFICATION received…).
    pub fn neighbor(&self, addr: IpAddr) -> Result<Value> {
        self.gobgp_json(&["neighbor", &addr.to_string(), "-j"])
    }

    /// Whether neighbor `addr` is Established.
    pub fn is_established(&self, addr: IpAddr) -> Result<bool> {
        Ok(self.neighbor_state(addr)? == "Established")
    }

    /// The global RIB of `family` (`ipv4` or `ipv6`): prefix → paths.
    pub fn rib(&self, family: &str) -> Result<BTreeMap<String, Vec<GobgpPath>>> {
        let v = self.gobgp_json(&["global", "rib", "-a", family, "-j"])?;
        let mut out = BTreeMap::new();
        let Some(map) = v.as_object() else {
            return Ok(out);
        };
        for (prefix, paths) in map {
            let paths = paths
                .as_array()
                .map(|a| a.iter().map(parse_path).collect())
                .unwrap_or_default();
            out.insert(prefix.clone(), paths);
        }
        Ok(out)
    }

    /// (destinations, paths) in the global RIB of `family`, from `gobgp global rib summary`
    /// (cheap even with many routes).
    pub fn rib_summary(&self, family: &str) -> Result<(u64, u64)> {
        let text = self.gobgp(&["global", "rib", "summary", "-a", family])?;
        parse_summary(&text)
    }

    /// Number of destinations in the global RIB of `family`.
    pub fn rib_count(&self, family: &str) -> Result<u64> {
        Ok(self.rib_summary(family)?.0)
    }

    /// Announce `routes` (both families may be mixed) in one go and return once `gobgpd` has
    /// taken all of them into its RIB; the result is how long that took.
    ///
    /// How: the routes are written as an MRT TABLE_DUMP_V2 stream into a FIFO read by
    /// `gobgp mrt inject global FIFO`, which sends them over one gRPC `AddPathStream`. The
    /// GoBGP 3 CLI exits right after its last `Send` without waiting for the server, so the tail
    /// of a plain file is lost; with a FIFO the CLI keeps the stream open until we close our end.
    /// A sentinel route ([`BULK_SENTINEL`], tagged NO_ADVERTISE so no peer sees it) follows
    /// the routes; the server handles the stream in order, so once the sentinel is in the RIB
    /// every route before it is too. Then the FIFO is closed and the sentinel deleted.
    pub fn announce_bulk(&self, routes: &[MrtRoute]) -> Result<Duration> {
        let mut all = Vec::with_capacity(routes.len() + 1);
        all.extend_from_slice(routes);
        let mut sentinel = MrtRoute::new(
            BULK_SENTINEL
                .parse()
                .map_err(|e| Error::parse("sentinel", format!("{e}")))?,
            IpAddr::V4(self.router_id),
        );
        sentinel.communities = vec![NO_ADVERTISE];
        all.push(sentinel);
        // Peer AS 0 and BGP ID 0.0.0.0: GoBGP then treats the paths like `gobgp global rib add`
        // ones (no source), so `del PREFIX` can withdraw them one by one.
        let bytes = table_dump_v2(0, Ipv4Addr::UNSPECIFIED, &all);
        // A sentinel left over from a failed call would end the wait at once.
        if self.has_route(BULK_SENTINEL)? {
            self.withdraw(BULK_SENTINEL)?;
        }

        let fifo = self.dir.join(format!("inject-{}.fifo", unique_token()));
        make_fifo(&fifo)?;
        let start = Instant::now();
        let port = self.port.to_string();
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, "gobgp", "-p", &port])
            .args(["mrt", "inject", "global"])
            .arg(&fifo);
        let mut injector = ChildGuard::spawn(cmd, "gobgp-inject", &self.dir)?;
        let result = (|| {
            let mut writer = open_fifo_writer(&fifo, &mut injector)?;
            writer.write_all(&bytes).map_err(|e| Error::io(&fifo, e))?;
            wait_until(
                "GoBGP to take the injected routes",
                Duration::from_secs(300),
                Duration::from_millis(50),
                || {
                    injector.check_running()?;
                    self.has_route(BULK_SENTINEL)
                },
            )?;
            drop(writer); // EOF: the CLI ends its stream and exits.
            Ok(start.elapsed())
        })();
        injector.stop();
        let _ = std::fs::remove_file(&fifo);
        let cleanup = self.withdraw(BULK_SENTINEL);
        let took = result?;
        cleanup?;
        Ok(took)
    }

    /// Whether the global RIB holds `prefix` (exact match).
    pub fn has_route(&self, prefix: &str) -> Result<bool> {
        let fam = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let v = self.gobgp_json(&["global", "rib", "-a", fam, prefix, "-j"]);
        match v {
            Ok(Value::Object(m)) => Ok(m.contains_key(prefix)),
            Ok(_) => Ok(false),
            // Older builds print "Network not in table" instead of JSON.
            Err(Error::Parse { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Announce one route (`gobgp global rib -a FAM add PREFIX nexthop NH`).
    pub fn announce(&self, prefix: &str, next_hop: IpAddr) -> Result<()> {
        let fam = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.gobgp(&[
            "global",
            "rib",
            "-a",
            fam,
            "add",
            prefix,
            "nexthop",
            &next_hop.to_string(),
        ])
        .map(drop)
    }

    /// Withdraw one route.
    pub fn withdraw(&self, prefix: &str) -> Result<()> {
        let fam = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.gobgp(&["global", "rib", "-a", fam, "del", prefix])
            .map(drop)
    }

    /// Withdraw every locally announced route of `family` (`gobgp global rib -a FAM del all`).
    pub fn withdraw_all(&self, family: &str) -> Result<()> {
        self.gobgp(&["global", "rib", "-a", family, "del", "all"])
            .map(drop)
    }
}

/// `mkfifo(path, 0600)`.
fn make_fifo(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| Error::parse("fifo path", e.to_string()))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Open the FIFO for writing once the reader has opened it (non-blocking open fails with
/// ENXIO until then), giving up if the reader process dies.
fn open_fifo_writer(path: &Path, reader: &mut ChildGuard) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = None;
    wait_until(
        "gobgp mrt inject to open its input",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || {
            reader.check_running()?;
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
            {
                Ok(f) => {
                    file = Some(f);
                    Ok(true)
                }
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(false),
                Err(e) => Err(Error::io(path, e)),
            }
        },
    )?;
    let file = file.ok_or_else(|| Error::parse("fifo", "opened but lost"))?;
    // Back to blocking writes: the reader drains as gobgpd accepts.
    set_blocking(&file, path)?;
    Ok(file)
}

fn set_blocking(file: &File, path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a file descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0
        // SAFETY: as above.
        || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0
    {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

fn parse_path(p: &Value) -> GobgpPath {
    let mut path = GobgpPath {
        best: p["best"].as_bool().unwrap_or(false),
        next_hop: None,
        as_path: Vec::new(),
        neighbor: p["neighbor-ip"].as_str().and_then(|s| s.parse().ok()),
        originator_id: None,
        cluster_list: Vec::new(),
    };
    for a in p["attrs"].as_array().into_iter().flatten() {
        match a["type"].as_u64() {
            Some(2) => {
                for seg in a["as_paths"].as_array().into_iter().flatten() {
                    for asn in seg["asns"].as_array().into_iter().flatten() {
                        if let Some(n) = asn.as_u64().and_then(|n| u32::try_from(n).ok()) {
                            path.as_path.push(n);
                        }
                    }
                }
            }
            Some(3) | Some(14) => {
                if let Some(nh) = a["nexthop"].as_str().and_then(|s| s.parse().ok()) {
                    path.next_hop = Some(nh);
                }
            }
            Some(9) => path.originator_id = a["value"].as_str().and_then(|s| s.parse().ok()),
            Some(10) => {
                path.cluster_list = a["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
                    .collect();
            }
            _ => {}
        }
    }
    path
}

/// Parse `Destination: N, Path: M` from `gobgp global rib summary`.
fn parse_summary(text: &str) -> Result<(u64, u64)> {
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("Destination:") {
            let mut parts = rest.split(", Path:");
            let d = parts.next().and_then(|s| s.trim().parse().ok());
            let p = parts.next().and_then(|s| s.trim().parse().ok());
            if let (Some(d), Some(p)) = (d, p) {
                return Ok((d, p));
            }
        }
    }
    Err(Error::parse("gobgp global rib summary", text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary() {
        assert_eq!(
            parse_summary("Table ipv4-unicast\nDestination: 10000, Path: 10001\n").unwrap(),
            (10000, 10001)
        );
    }

    #[test]
    fn path_from_json() {
        let v: Value = serde_json::from_str(
            r#"{"nlri":{"prefix":"10.9.0.0/24"},"best":true,"attrs":[{"type":1,"value":0},
            {"type":2,"as_paths":[{"segment_type":2,"num":1,"asns":[65001]}]},
            {"type":3,"nexthop":"10.0.0.1"}],"neighbor-ip":"10.0.0.1"}"#,
        )
        .unwrap();
        let p = parse_path(&v);
        assert!(p.best);
        assert_eq!(p.as_path, vec![65001]);
        assert_eq!(p.next_hop, Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn config_has_timers() {
        let mut c = GobgpConfig::new(65002, Ipv4Addr::new(10, 0, 0, 2));
        c.neighbors
            .push(GobgpNeighbor::new("10.0.0.1".parse().unwrap(), 65001));
        let t = c.render();
        assert!(t.contains("hold-time = 9"), "{t}");
        assert!(t.contains("afi-safi-name = \"ipv6-unicast\""), "{t}");
    }
}
