//! A driver for BIRD 2: config writer, daemon in a namespace, `birdc` queries.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::process::{command_error, run_unchecked, wait_until, ChildGuard};

/// One BIRD channel (`ipv4 { … }` / `ipv6 { … }`) of a BGP protocol.
#[derive(Debug, Clone)]
pub struct BirdChannel {
    /// What follows `import`: `all`, `none` or `filter { … }`.
    pub import: String,
    /// What follows `export`: `all`, `none`, `where proto = "s4"` or `filter { … }`.
    pub export: String,
    /// Extra channel statements, written verbatim (e.g. `next hop self;`).
    pub extra: String,
}

impl BirdChannel {
    /// `import all; export all;`.
    pub fn all() -> Self {
        Self::new("all", "all")
    }

    /// `import IMPORT; export EXPORT;`.
    pub fn new(import: &str, export: &str) -> Self {
        Self {
            import: import.to_string(),
            export: export.to_string(),
            extra: String::new(),
        }
    }
}

/// A `protocol bgp NAME { … }` block.
#[derive(Debug, Clone)]
pub struct BirdBgp {
    /// Protocol name, used by `show protocols` and `enable`/`disable`.
    pub name: String,
    /// `local … as N`.
    pub local_as: u32,
    /// `local ADDR` (source address), optional.
    pub local_address: Option<IpAddr>,
    /// `neighbor ADDR`.
    pub neighbor: IpAddr,
    /// `neighbor … as N`.
    pub neighbor_as: u32,
    /// `neighbor … port N`, when not 179.
    pub neighbor_port: Option<u16>,
    /// `hold time N` (keepalive is a third of it).
    pub hold_time: u16,
    /// `passive on`.
    pub passive: bool,
    /// The IPv4 unicast channel, if any.
    pub ipv4: Option<BirdChannel>,
    /// The IPv6 unicast channel, if any.
    pub ipv6: Option<BirdChannel>,
    /// Extra protocol statements, written verbatim.
    pub extra: String,
    /// `password "…";` (TCP MD5, RFC 2385).
    pub password: Option<String>,
    /// `ttl security on;` (GTSM, RFC 5082).
    pub ttl_security: bool,
    /// `multihop N;` (the peer is N hops away; with `ttl_security` BIRD then accepts TTL
    /// 256 − N and up).
    pub multihop: Option<u8>,
}

impl BirdBgp {
    /// A session to `neighbor` in `neighbor_as` with hold time 9 and an IPv4 channel that
    /// imports and exports everything.
    pub fn new(name: &str, local_as: u32, neighbor: IpAddr, neighbor_as: u32) -> Self {
        Self {
            name: name.to_string(),
            local_as,
            local_address: None,
            neighbor,
            neighbor_as,
            neighbor_port: None,
            hold_time: 9,
            passive: false,
            ipv4: Some(BirdChannel::all()),
            ipv6: None,
            extra: String::new(),
            password: None,
            ttl_security: false,
            multihop: None,
        }
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "protocol bgp {} {{", self.name);
        match self.local_address {
            Some(a) => {
                let _ = writeln!(out, "  local {a} as {};", self.local_as);
            }
            None => {
                let _ = writeln!(out, "  local as {};", self.local_as);
            }
        }
        let port = self
            .neighbor_port
            .map(|p| format!(" port {p}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  neighbor {}{port} as {};",
            self.neighbor, self.neighbor_as
        );
        let _ = writeln!(out, "  hold time {};", self.hold_time);
        // Fast retries so tests do not wait for BIRD's defaults (120 s / 60–300 s).
        out.push_str("  connect retry time 1;\n  error wait time 1, 5;\n");
        if self.passive {
            out.push_str("  passive on;\n");
        }
        if let Some(pw) = &self.password {
            let _ = writeln!(out, "  password \"{}\";", pw.replace(['"', '\\'], ""));
        }
        if self.ttl_security {
            out.push_str("  ttl security on;\n");
        }
        if let Some(n) = self.multihop {
            let _ = writeln!(out, "  multihop {n};");
        }
        for (fam, ch) in [("ipv4", &self.ipv4), ("ipv6", &self.ipv6)] {
            if let Some(ch) = ch {
                let _ = writeln!(
                    out,
                    "  {fam} {{ import {}; export {}; {} }};",
                    ch.import, ch.export, ch.extra
                );
            }
        }
        out.push_str(&self.extra);
        out.push_str("}\n");
    }
}

/// A `protocol static NAME { ipv4|ipv6; route P blackhole; … }` block: routes to announce.
#[derive(Debug, Clone)]
pub struct BirdStatic {
    /// Protocol name (use it in export filters: `where proto = "NAME"`).
    pub name: String,
    /// `true` for an IPv6 table, `false` for IPv4.
    pub ipv6: bool,
    /// The prefixes, e.g. `10.1.0.0/24`.
    pub prefixes: Vec<String>,
}

impl BirdStatic {
    /// Blackhole routes for `prefixes` (family taken from the first, IPv4 if empty).
    pub fn new<P: ToString>(name: &str, prefixes: &[P]) -> Self {
        let prefixes: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
        let ipv6 = prefixes.first().is_some_and(|p| p.contains(':'));
        Self {
            name: name.to_string(),
            ipv6,
            prefixes,
        }
    }

    fn render(&self, out: &mut String) {
        let fam = if self.ipv6 { "ipv6" } else { "ipv4" };
        let _ = writeln!(out, "protocol static {} {{\n  {fam};", self.name);
        for p in &self.prefixes {
            let _ = writeln!(out, "  route {p} blackhole;");
        }
        out.push_str("}\n");
    }
}

/// A whole BIRD config.
#[derive(Debug, Clone)]
pub struct BirdConfig {
    /// `router id`.
    pub router_id: Ipv4Addr,
    /// BGP sessions.
    pub bgp: Vec<BirdBgp>,
    /// Static route sets to announce.
    pub statics: Vec<BirdStatic>,
    /// Extra top-level config, written verbatim (filters, functions).
    pub extra: String,
}

impl BirdConfig {
    /// A config with `router id` and `protocol device`, nothing else.
    pub fn new(router_id: Ipv4Addr) -> Self {
        Self {
            router_id,
            bgp: Vec::new(),
            statics: Vec::new(),
            extra: String::new(),
        }
    }

    /// The config text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "router id {};", self.router_id);
        out.push_str("log stderr all;\nprotocol device { scan time 10; }\n");
        out.push_str(&self.extra);
        out.push('\n');
        for s in &self.statics {
            s.render(&mut out);
        }
        for b in &self.bgp {
            b.render(&mut out);
        }
        out
    }
}

/// Counts from `show route count`: `SHOWN of ROUTES routes for NETWORKS networks in table T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteCount {
    /// Routes matching the query (e.g. of one protocol).
    pub shown: u64,
    /// All routes in the table.
    pub routes: u64,
    /// Networks (prefixes) in the table.
    pub networks: u64,
}

/// Parsed from `show protocols all NAME`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolInfo {
    /// The protocol state column: `up`, `down`, `start`.
    pub state: String,
    /// The Info column (e.g. `Established`, `Active  Socket: Connection refused`).
    pub info: String,
    /// `BGP state:` (`Established`, `Active`, `Connect`, `Idle`, `Down`, …).
    pub bgp_state: Option<String>,
    /// `Last error:` (e.g. `Received: Bad peer AS`).
    pub last_error: Option<String>,
    /// `Neighbor AS:`.
    pub neighbor_as: Option<u32>,
}

/// One route from `show route PREFIX all`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BirdRoute {
    /// The prefix.
    pub prefix: String,
    /// The protocol that brought it (`[NAME …]`).
    pub protocol: String,
    /// Marked `*` (BIRD's best).
    pub primary: bool,
    /// `via ADDR` next hops (several for ECMP).
    pub via: Vec<IpAddr>,
    /// `BGP.as_path`.
    pub as_path: Vec<u32>,
    /// `BGP.next_hop` (may list a global and a link-local address).
    pub bgp_next_hop: Vec<IpAddr>,
    /// `BGP.med`.
    pub med: Option<u32>,
    /// `BGP.local_pref`.
    pub local_pref: Option<u32>,
    /// `BGP.originator_id` (RFC 4456).
    pub originator_id: Option<Ipv4Addr>,
    /// `BGP.cluster_list` (RFC 4456), first entry = the last reflector.
    pub cluster_list: Vec<Ipv4Addr>,
}

/// A BIRD daemon running in a namespace. Killed on drop.
#[derive(Debug)]
pub struct Bird {
    config_path: PathBuf,
    socket: PathBuf,
    child: ChildGuard,
}

impl Bird {
    /// Write `cfg` to `dir/bird.conf` and start `bird -f` in `ns` with its control socket in
    /// `dir`; return once `birdc` answers.
    pub fn start(ns: &Netns, dir: &Path, cfg: &BirdConfig) -> Result<Self> {
        Self::start_with(ns, dir, cfg, &[])
    }

    /// As [`Bird::start`], after a crash: `bird -R` (graceful restart recovery), so BIRD
    /// comes back with the Restart State and Forwarding State bits set (RFC 4724 §3).
    pub fn start_recovering(ns: &Netns, dir: &Path, cfg: &BirdConfig) -> Result<Self> {
        Self::start_with(ns, dir, cfg, &["-R"])
    }

    fn start_with(ns: &Netns, dir: &Path, cfg: &BirdConfig, extra: &[&str]) -> Result<Self> {
        let config_path = dir.join("bird.conf");
        let socket = dir.join("bird.ctl");
        let pidfile = dir.join("bird.pid");
        std::fs::write(&config_path, cfg.render()).map_err(|e| Error::io(&config_path, e))?;
        let args = [
            "-f".as_ref(),
            "-c".as_ref(),
            config_path.as_os_str(),
            "-s".as_ref(),
            socket.as_os_str(),
            "-P".as_ref(),
            pidfile.as_os_str(),
        ];
        let args = args
            .into_iter()
            .chain(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        let child = ns.spawn("bird", args, "bird", dir)?;
        let mut bird = Bird {
            config_path,
            socket,
            child,
        };
        wait_until(
            "bird control socket",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                bird.child.check_running()?;
                Ok(bird.birdc(&["show", "status"]).is_ok())
            },
        )?;
        Ok(bird)
    }

    /// The control socket path (`birdc -s PATH`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon process.
    pub fn process(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// Run `birdc -s SOCK ARGS…` and return its output without the `BIRD … ready.` banner.
    /// The control socket is a file, so this runs outside the namespace.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("birdc");
        cmd.arg("-s").arg(&self.socket).args(args);
        let out = run_unchecked(&mut cmd)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(command_error(&cmd, &out));
        }
        Ok(strip_banner(&text))
    }

    /// Routes in `table` (e.g. `master4`): the `N of …` of `show route count table T`.
    pub fn route_count(&self, table: &str) -> Result<u64> {
        Ok(self.route_counts(table, None)?.shown)
    }

    /// Routes in `table` that `protocol` brought (`show route table T protocol P count`).
    pub fn route_count_from(&self, table: &str, protocol: &str) -> Result<u64> {
        Ok(self.route_counts(table, Some(protocol))?.shown)
    }

    /// The full counts line for `table`, optionally restricted to one protocol.
    pub fn route_counts(&self, table: &str, protocol: Option<&str>) -> Result<RouteCount> {
        let mut args = vec!["show", "route", "table", table];
        if let Some(p) = protocol {
            args.extend(["protocol", p]);
        }
        args.push("count");
        let text = self.birdc(&args)?;
        parse_route_count(&text)
    }

    /// `show protocols all NAME`, parsed.
    pub fn protocol_info(&self, name: &str) -> Result<ProtocolInfo> {
        let text = self.birdc(&["show", "protocols", "all", name])?;
        parse_protocol_info(name, &text)
    }

    /// The BGP state of protocol `name` (`Established`, `Active`, …).
    pub fn protocol_state(&self, name: &str) -> Result<String> {
        let info = self.protocol_info(name)?;
        Ok(info.bgp_state.unwrap_or(info.state))
    }

    /// Whether BGP protocol `name` is Established.
    pub fn is_established(&self, name: &str) -> Result<bool> {
        Ok(self.protocol_state(name)? == "Established")
    }

    /// `show route PREFIX all` (exact network): every route BIRD has for it; empty if none.
    pub fn show_route(&self, prefix: &str) -> Result<Vec<BirdRoute>> {
        let mut cmd = Command::new("birdc");
        cmd.arg("-s")
            .arg(&self.socket)
            .args(["show", "route", prefix, "all"]);
        let out = run_unchecked(&mut cmd)?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("Network not found") {
            return Ok(Vec::new());
        }
        if !out.status.success() {
            return Err(command_error(&cmd, &out));
        }
        Ok(parse_routes(&strip_banner(&text)))
    }

    /// Write `cfg` over the config file and `birdc configure` (e.g. to withdraw half of a
    /// static set); errors if BIRD rejects it.
    pub fn reconfigure(&self, cfg: &BirdConfig) -> Result<()> {
        std::fs::write(&self.config_path, cfg.render())
            .map_err(|e| Error::io(&self.config_path, e))?;
        let out = self.birdc(&["configure"])?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            Ok(())
        } else {
            Err(Error::parse("birdc configure", out))
        }
    }

    /// `birdc enable NAME`.
    pub fn enable(&self, name: &str) -> Result<()> {
        self.birdc(&["enable", name]).map(drop)
    }

    /// `birdc disable NAME`.
    pub fn disable(&self, name: &str) -> Result<()> {
        self.birdc(&["disable", name]).map(drop)
    }
}

fn strip_banner(text: &str) -> String {
    text.lines()
        .filter(|l| !(l.starts_with("BIRD ") && l.trim_end().ends_with("ready.")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parse `N of M routes for K networks in table T` (the first such line).
pub fn parse_route_count(text: &str) -> Result<RouteCount> {
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if let [shown, "of", routes, "routes", "for", networks, "networks", ..] = w.as_slice() {
            let n = |s: &str| {
                s.parse::<u64>()
                    .map_err(|e| Error::parse("show route count", format!("{e}: {line}")))
            };
            return Ok(RouteCount {
                shown: n(shown)?,
                routes: n(routes)?,
                networks: n(networks)?,
            });
        }
    }
    Err(Error::parse("show route count", text))
}

/// Parse `show protocols all NAME` output.
pub fn parse_protocol_info(name: &str, text: &str) -> Result<ProtocolInfo> {
    let mut info = ProtocolInfo::default();
    let mut found = false;
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&name) && cols.len() >= 4 {
            // Name Proto Table State Since Info…
            found = true;
            info.state = cols[3].to_string();
            info.info = cols.get(5..).map(|c| c.join(" ")).unwrap_or_default();
            continue;
        }
        let t = line.trim();
        if let Some(v) = t.strip_prefix("BGP state:") {
            info.bgp_state = Some(v.trim().to_string());
        } else if let Some(v) = t.strip_prefix("Last error:") {
            info.last_error = Some(v.trim().to_string());
        } else if let Some(v) = t.strip_prefix("Neighbor AS:") {
            info.neighbor_as = v.trim().parse().ok();
        }
    }
    if found {
        Ok(info)
    } else {
        Err(Error::parse(format!("show protocols all {name}"), text))
    }
}

/// Parse `show route … all` output into routes.
pub fn parse_routes(text: &str) -> Vec<BirdRoute> {
    let mut routes: Vec<BirdRoute> = Vec::new();
    let mut prefix = String::new();
    for line in text.lines() {
        if line.starts_with("Table ") || line.trim().is_empty() {
            continue;
        }
        let indented = line.starts_with(char::is_whitespace);
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        // A route line: `PREFIX  unicast [proto …] * (100) …` or, for a further route of the
        // same prefix, an indented `unicast [proto …] …`.
        let route_start = if !indented {
            if let Some(p) = words.first() {
                prefix = (*p).to_string();
            }
            Some(1)
        } else if words
            .first()
            .is_some_and(|w| matches!(*w, "unicast" | "blackhole" | "unreachable" | "prohibited"))
        {
            Some(0)
        } else {
            None
        };
        if let Some(i) = route_start {
            let rest = words.get(i..).unwrap_or_default();
            let protocol = rest
                .iter()
                .find_map(|w| w.strip_prefix('['))
                .unwrap_or_default()
                .trim_end_matches(']')
                .to_string();
            routes.push(BirdRoute {
                prefix: prefix.clone(),
                protocol,
                primary: rest.contains(&"*"),
                ..BirdRoute::default()
            });
            continue;
        }
        let Some(r) = routes.last_mut() else { continue };
        if let Some(v) = t.strip_prefix("via ") {
            if let Some(a) = v.split_whitespace().next().and_then(|a| a.parse().ok()) {
                r.via.push(a);
            }
        } else if let Some(v) = t.strip_prefix("BGP.as_path:") {
            r.as_path = v
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
        } else if let Some(v) = t.strip_prefix("BGP.next_hop:") {
            r.bgp_next_hop = v
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
        } else if let Some(v) = t.strip_prefix("BGP.med:") {
            r.med = v.trim().parse().ok();
        } else if let Some(v) = t.strip_prefix("BGP.local_pref:") {
            r.local_pref = v.trim().parse().ok();
        } else if let Some(v) = t.strip_prefix("BGP.originator_id:") {
            r.originator_id = v.trim().parse().ok();
        } else if let Some(v) = t.strip_prefix("BGP.cluster_list:") {
            r.cluster_list = v
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_count_line() {
        let c = parse_route_count("0 of 2 routes for 2 networks in table master4").unwrap();
        assert_eq!(
            c,
            RouteCount {
                shown: 0,
                routes: 2,
                networks: 2
            }
        );
    }

    #[test]
    fn protocol_info_fields() {
        let text = "Name       Proto      Table      State  Since         Info\n\
gobgp1     BGP        ---        start  18:04:24.280  Active        Socket: Connection refused\n\
  BGP state:          Active\n\
    Neighbor address: 10.0.0.2\n\
    Neighbor AS:      65002\n\
    Last error:       Received: Bad peer AS\n";
        let i = parse_protocol_info("gobgp1", text).unwrap();
        assert_eq!(i.state, "start");
        assert_eq!(i.bgp_state.as_deref(), Some("Active"));
        assert_eq!(i.last_error.as_deref(), Some("Received: Bad peer AS"));
        assert_eq!(i.neighbor_as, Some(65002));
        assert!(i.info.starts_with("Active"));
    }

    #[test]
    fn routes_with_two_paths() {
        let text = [
            "Table master4:",
            "10.20.0.0/24         unicast [b1 18:03:44.575] * (100) [AS65002i]",
            "\tvia 10.0.0.2 on ea",
            "\tType: BGP univ",
            "\tBGP.as_path: 65002",
            "\tBGP.next_hop: 10.0.0.2",
            "\tBGP.med: 10",
            "\tBGP.local_pref: 100",
            "                     unicast [b2 18:03:45.000] (100) [AS65003i]",
            "\tvia 10.0.1.2 on eb",
            "\tBGP.as_path: 65003 65003",
            "\tBGP.next_hop: 10.0.1.2",
            "\tBGP.originator_id: 10.0.0.2",
            "\tBGP.cluster_list: 10.0.0.99 10.0.0.98",
        ]
        .join("\n");
        let r = parse_routes(&text);
        assert_eq!(r.len(), 2);
        assert!(r[0].primary && !r[1].primary);
        assert_eq!(r[1].prefix, "10.20.0.0/24");
        assert_eq!(r[0].protocol, "b1");
        assert_eq!(r[0].med, Some(10));
        assert_eq!(r[1].as_path, vec![65003, 65003]);
        assert_eq!(r[1].via, vec!["10.0.1.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(r[0].originator_id, None);
        assert_eq!(r[1].originator_id, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(
            r[1].cluster_list,
            vec![Ipv4Addr::new(10, 0, 0, 99), Ipv4Addr::new(10, 0, 0, 98)]
        );
    }
}
