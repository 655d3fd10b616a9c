//! From the raw serde model to a valid [`Config`]: defaults filled in, every semantic rule
//! checked, each problem located at the offending value.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;

use bgp::policy::{masked, Filter, PrefixRule};
use bgp::wire::{AddPathMode, Family, Prefix, AS_TRANS};

use crate::error::{Diagnostic, Locator};
use crate::host::HostFacts;
use crate::model::*;
use crate::raw::*;

mod policy;

/// Collects every problem; values that fail a check come back as `None` and the caller
/// carries on so later problems are reported too.
pub(crate) struct Checker<'a> {
    loc: Locator<'a>,
    errors: Vec<(usize, Diagnostic)>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(loc: Locator<'a>) -> Self {
        Self {
            loc,
            errors: Vec::new(),
        }
    }

    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors
            .push((span.start, self.loc.at(span.start, message)));
    }

    /// The diagnostics in file order, or the config when there are none.
    pub(crate) fn finish(mut self, config: Option<Config>) -> Result<Config, Vec<Diagnostic>> {
        match config {
            Some(c) if self.errors.is_empty() => Ok(c),
            _ => {
                self.errors.sort_by_key(|(offset, _)| *offset);
                Err(self.errors.into_iter().map(|(_, d)| d).collect())
            }
        }
    }

    fn ip(&mut self, v: &S<String>, key: &str) -> Option<IpAddr> {
        match v.get_ref().parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(
                    v.span(),
                    format!("{key}: {:?} is not an IP address", v.get_ref()),
                );
                None
            }
        }
    }

    fn ipv4(&mut self, v: &S<String>, key: &str) -> Option<Ipv4Addr> {
        match self.ip(v, key)? {
            IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
            IpAddr::V4(ip) => {
                self.err(v.span(), format!("{key}: {ip} is not a usable identifier"));
                None
            }
            IpAddr::V6(ip) => {
                self.err(v.span(), format!("{key}: {ip} is not an IPv4 address"));
                None
            }
        }
    }

    fn ipv6(&mut self, v: &S<String>, key: &str) -> Option<Ipv6Addr> {
        match self.ip(v, key)? {
            IpAddr::V6(ip) if !ip.is_unspecified() && !ip.is_multicast() => Some(ip),
            IpAddr::V6(ip) => {
                self.err(v.span(), format!("{key}: {ip} is not a usable next hop"));
                None
            }
            IpAddr::V4(ip) => {
                self.err(v.span(), format!("{key}: {ip} is not an IPv6 address"));
                None
            }
        }
    }

    fn socket_addr(&mut self, v: &S<String>, key: &str, default_port: u16) -> Option<SocketAddr> {
        let s = v.get_ref();
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Some(sa);
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(SocketAddr::new(ip, default_port));
        }
        self.err(
            v.span(),
            format!("{key}: {s:?} is not an address (e.g. \"0.0.0.0:179\" or \"[::]:179\")"),
        );
        None
    }

    /// An integer in `lo..=hi`, converted to `T`.
    fn int<T: TryFrom<i64>>(&mut self, v: &S<i64>, key: &str, lo: i64, hi: i64) -> Option<T> {
        let n = *v.get_ref();
        if n < lo || n > hi {
            self.err(
                v.span(),
                format!("{key}: {n} is out of range ({lo}..={hi})"),
            );
            return None;
        }
        T::try_from(n).ok()
    }

    /// `opt` checked with `int`, or `default` when absent.
    fn int_or<T: TryFrom<i64>>(
        &mut self,
        opt: &Option<S<i64>>,
        key: &str,
        lo: i64,
        hi: i64,
        default: T,
    ) -> Option<T> {
        match opt {
            Some(v) => self.int(v, key, lo, hi),
            None => Some(default),
        }
    }

    fn asn(&mut self, v: &S<i64>, key: &str) -> Option<u32> {
        let n = *v.get_ref();
        if n == i64::from(AS_TRANS) {
            // RFC 6793 §9: AS_TRANS is reserved and must not be configured as a real AS.
            self.err(
                v.span(),
                format!("{key}: {n} is AS_TRANS (RFC 6793), not a usable AS"),
            );
            return None;
        }
        self.int(v, key, 1, i64::from(u32::MAX))
    }

    /// RFC 4271 §4.2: the hold time is zero or at least three seconds.
    fn hold_time(&mut self, v: &S<i64>, key: &str) -> Option<u16> {
        let n = *v.get_ref();
        if n == 1 || n == 2 || !(0..=65535).contains(&n) {
            self.err(
                v.span(),
                format!("{key}: {n} is not a valid hold time (0 or 3..=65535, RFC 4271 §4.2)"),
            );
            return None;
        }
        u16::try_from(n).ok()
    }

    fn one_of<T: Copy>(&mut self, v: &S<String>, key: &str, choices: &[(&str, T)]) -> Option<T> {
        if let Some((_, t)) = choices.iter().find(|(name, _)| name == v.get_ref()) {
            return Some(*t);
        }
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
        self.err(
            v.span(),
            format!(
                "{key}: {:?} is not one of {}",
                v.get_ref(),
                names.join(", ")
            ),
        );
        None
    }

    fn filter(&mut self, rules: &Option<Vec<S<String>>>, key: &str) -> Option<Filter> {
        let Some(rules) = rules else {
            return Some(Filter::default());
        };
        let mut out = Vec::with_capacity(rules.len());
        let mut ok = true;
        for r in rules {
            match PrefixRule::from_str(r.get_ref()) {
                Ok(rule) => out.push(rule),
                Err(e) => {
                    self.err(r.span(), format!("{key}: {e}"));
                    ok = false;
                }
            }
        }
        ok.then_some(Filter::prefixes(out))
    }

    fn families(&mut self, v: &Option<S<Vec<S<String>>>>) -> Option<Vec<Family>> {
        let Some(list) = v else {
            return Some(vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
        };
        if list.get_ref().is_empty() {
            self.err(
                list.span(),
                "bgp.peers.families: must name at least one family",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for f in list.get_ref() {
            let family = self.one_of(
                f,
                "bgp.peers.families",
                &[
                    ("ipv4-unicast", Family::IPV4_UNICAST),
                    ("ipv6-unicast", Family::IPV6_UNICAST),
                ],
            );
            match family {
                Some(fam) if out.contains(&fam) => {
                    self.err(
                        f.span(),
                        format!("bgp.peers.families: {:?} is listed twice", f.get_ref()),
                    );
                    ok = false;
                }
                Some(fam) => out.push(fam),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// Checks `raw` and fills in defaults; `host` supplies `node.name` and `node.router_id`
/// when the file does not.
pub(crate) fn resolve(c: &mut Checker<'_>, raw: &RawConfig, host: &HostFacts) -> Option<Config> {
    let node = node(c, &raw.node, host);
    let api = api(c, &raw.api);
    let policies = policy::policies(c, &raw.policy);
    let bgp = bgp(
        c,
        &raw.bgp,
        node.as_ref().map(|n| n.asn),
        policies.as_deref(),
    );
    let fib = fib(c, &raw.fib);
    let ipam = ipam(c, &raw.ipam);
    if let (Some(m), Some(b), Some(i)) = (&raw.bgp.mesh, &bgp, &ipam) {
        if b.mesh != MeshMode::Off && i.etcd_endpoints.is_empty() {
            c.err(
                m.span(),
                "bgp.mesh: needs the etcd node registry (set ipam.etcd_endpoints)",
            );
        }
    }
    Some(Config {
        node: node?,
        api: api?,
        bgp: bgp?,
        fib: fib?,
        ipam: ipam?,
        policies: policies?,
    })
}

fn node(c: &mut Checker<'_>, raw: &RawNode, host: &HostFacts) -> Option<Node> {
    let name = match &raw.name {
        Some(n) if n.get_ref().trim().is_empty() => {
            c.err(n.span(), "node.name: must not be empty");
            None
        }
        Some(n) => Some(n.get_ref().clone()),
        None => {
            if host.hostname.is_none() {
                c.err(
                    0..0,
                    "node.name is not set and the host name is unknown; set it",
                );
            }
            host.hostname.clone()
        }
    };
    let router_id = match &raw.router_id {
        Some(r) => c.ipv4(r, "node.router_id"),
        None => {
            if host.router_id.is_none() {
                c.err(
                    0..0,
                    "node.router_id is not set and this host has no global IPv4 address; set it",
                );
            }
            host.router_id
        }
    };
    let asn = match &raw.asn {
        Some(a) => c.asn(a, "node.asn"),
        None => Some(DEFAULT_ASN),
    };
    Some(Node {
        name: name?,
        router_id: router_id?,
        asn: asn?,
    })
}

fn api(c: &mut Checker<'_>, raw: &RawApi) -> Option<Api> {
    let socket = match &raw.socket {
        Some(s) if s.get_ref().is_empty() => {
            c.err(s.span(), "api.socket: must not be empty");
            None
        }
        Some(s) => Some(PathBuf::from(s.get_ref())),
        None => Some(PathBuf::from(DEFAULT_SOCKET)),
    };
    let metrics = optional(
        raw.metrics
            .as_ref()
            .map(|m| c.socket_addr(m, "api.metrics", 9469)),
    );
    Some(Api {
        socket: socket?,
        metrics: metrics?,
    })
}

fn mesh_mode(c: &mut Checker<'_>, raw: &Option<S<RawMesh>>) -> Option<MeshMode> {
    let Some(m) = raw else {
        return Some(MeshMode::Off);
    };
    match m.get_ref() {
        RawMesh::Flag(true) => Some(MeshMode::Full),
        RawMesh::Flag(false) => Some(MeshMode::Off),
        RawMesh::Word(w) if w == "reflectors" => Some(MeshMode::Reflectors),
        RawMesh::Word(w) => {
            c.err(
                m.span(),
                format!("bgp.mesh: {w:?} is not one of true, false, \"reflectors\""),
            );
            None
        }
    }
}

fn bgp(
    c: &mut Checker<'_>,
    raw: &RawBgp,
    node_asn: Option<u32>,
    policies: Option<&[std::sync::Arc<bgp::policy::Policy>]>,
) -> Option<Bgp> {
    let listen = optional(
        raw.listen
            .as_ref()
            .map(|l| c.socket_addr(l, "bgp.listen", 179)),
    );
    let hold_time = match &raw.hold_time {
        Some(h) => c.hold_time(h, "bgp.hold_time"),
        None => Some(90),
    };
    let advertise = match &raw.advertise {
        Some(a) => c.one_of(
            a,
            "bgp.advertise",
            &[
                ("host-routes", Advertise::HostRoutes),
                ("aggregate", Advertise::Aggregate),
            ],
        ),
        None => Some(Advertise::HostRoutes),
    };
    // RFC 4724 §3: Restart Time is a 12-bit field.
    let restart_time = c.int_or(&raw.restart_time, "bgp.restart_time", 0, 4095, 120);
    // RFC 4724 §4.1: the Selection_Deferral_Time is configurable; 360 s is the common default.
    let selection_deferral = c.int_or(
        &raw.selection_deferral,
        "bgp.selection_deferral",
        1,
        3600,
        360,
    );
    // RFC 9494 §3: the Long-lived Stale Time is a 24-bit field.
    let llgr_stale_time = c.int_or(
        &raw.llgr_stale_time,
        "bgp.llgr_stale_time",
        0,
        0x00ff_ffff,
        0,
    );
    let cluster_id = optional(
        raw.cluster_id
            .as_ref()
            .map(|id| c.ipv4(id, "bgp.cluster_id")),
    );
    let mesh = mesh_mode(c, &raw.mesh);
    // etcd's minimum lease is a few election timeouts; an hour is plenty.
    let mesh_lease = c.int_or(
        &raw.mesh_lease,
        "bgp.mesh_lease",
        2,
        3600,
        DEFAULT_MESH_LEASE,
    );
    if let (Some(m), Some(MeshMode::Full | MeshMode::Reflectors), None) =
        (&raw.mesh, mesh, &raw.listen)
    {
        // The node with the lower address waits for the other's connection.
        c.err(
            m.span(),
            "bgp.mesh: needs bgp.listen (mesh peers connect to each other)",
        );
    }

    let mut peers = Vec::with_capacity(raw.peers.len());
    let mut all_ok = true;
    let mut seen: HashMap<IpAddr, usize> = HashMap::new();
    for p in &raw.peers {
        let resolved = peer(c, p, node_asn, policies);
        if let Some(peer) = &resolved {
            if let Some(first) = seen.get(&peer.address) {
                let (line, _) = c.loc.line_col(*first);
                c.err(
                    p.address.span(),
                    format!(
                        "bgp.peers.address: duplicate peer {} (first defined on line {line})",
                        peer.address
                    ),
                );
                all_ok = false;
            } else {
                seen.insert(peer.address, p.address.span().start);
            }
        }
        match resolved {
            Some(peer) => peers.push(peer),
            None => all_ok = false,
        }
    }
    Some(Bgp {
        listen: listen?,
        hold_time: hold_time?,
        advertise: advertise?,
        graceful_restart: raw.graceful_restart.unwrap_or(true),
        restart_time: restart_time?,
        selection_deferral: selection_deferral?,
        llgr_stale_time: llgr_stale_time?,
        cluster_id: cluster_id?,
        mesh: mesh?,
        mesh_lease: mesh_lease?,
        peers: all_ok.then_some(peers)?,
    })
}

fn peer(
    c: &mut Checker<'_>,
    raw: &RawPeer,
    node_asn: Option<u32>,
    policies: Option<&[std::sync::Arc<bgp::policy::Policy>]>,
) -> Option<Peer> {
    let address = c.ip(&raw.address, "bgp.peers.address");
    let asn = c.asn(&raw.asn, "bgp.peers.asn");
    let port = c.int_or(&raw.port, "bgp.peers.port", 1, 65535, 179u16);
    let password = match (&raw.password, &raw.password_file) {
        (Some(_), Some(f)) => {
            c.err(
                f.span(),
                "bgp.peers.password_file: set either password or password_file, not both",
            );
            None
        }
        (Some(p), None) => Some(Some(Password::Inline(p.get_ref().clone()))),
        (None, Some(f)) => Some(Some(Password::File(PathBuf::from(f.get_ref())))),
        (None, None) => Some(None),
    };
    let max_prefixes = optional(
        raw.max_prefixes
            .as_ref()
            .map(|m| c.int(m, "bgp.peers.max_prefixes", 1, i64::from(u32::MAX))),
    );
    let max_prefixes_restart = c.int_or(
        &raw.max_prefixes_restart,
        "bgp.peers.max_prefixes_restart",
        1,
        86_400,
        60u32,
    );
    let families = c.families(&raw.families);
    let import = c.filter(&raw.import, "bgp.peers.import");
    let export = c.filter(&raw.export, "bgp.peers.export");
    let import_policy =
        policy::reference(c, &raw.import_policy, policies, "bgp.peers.import_policy");
    let export_policy =
        policy::reference(c, &raw.export_policy, policies, "bgp.peers.export_policy");
    let local_address = optional(raw.local_address.as_ref().map(|l| {
        let local = c.ip(l, "bgp.peers.local_address")?;
        match address {
            Some(addr) if local.is_ipv4() != addr.is_ipv4() => {
                c.err(
                    l.span(),
                    format!(
                        "bgp.peers.local_address: {local} is not of the same family as the peer address {addr}"
                    ),
                );
                None
            }
            _ => Some(local),
        }
    }));
    let hold_time = optional(
        raw.hold_time
            .as_ref()
            .map(|h| c.hold_time(h, "bgp.peers.hold_time")),
    );
    let connect_retry = c.int_or(
        &raw.connect_retry,
        "bgp.peers.connect_retry",
        1,
        65535,
        5u16,
    );
    let next_hop_v6 = optional(
        raw.next_hop_v6
            .as_ref()
            .map(|n| c.ipv6(n, "bgp.peers.next_hop_v6")),
    );
    let rr_client = raw.rr_client.as_ref().is_some_and(|r| *r.get_ref());
    if let (Some(rr), Some(peer_asn), Some(node_asn)) = (&raw.rr_client, asn, node_asn) {
        // RFC 4456 §1: route reflection happens inside one AS.
        if *rr.get_ref() && peer_asn != node_asn {
            c.err(
                rr.span(),
                format!(
                    "bgp.peers.rr_client: a route-reflector client must be iBGP (asn {peer_asn} is not node.asn {node_asn})"
                ),
            );
            return None;
        }
    }
    let add_path = optional(raw.add_path.as_ref().map(|m| {
        c.one_of(
            m,
            "bgp.peers.add_path",
            &[
                ("receive", AddPathMode::Receive),
                ("send", AddPathMode::Send),
                ("both", AddPathMode::Both),
            ],
        )
    }));
    let add_path_max = c.int_or(
        &raw.add_path_max,
        "bgp.peers.add_path_max",
        1,
        64,
        DEFAULT_ADD_PATH_MAX,
    );
    if let (Some(max), Some(mode)) = (&raw.add_path_max, add_path) {
        // RFC 7911 §4: we only send several paths when we advertise Send (or Both).
        if !matches!(mode, Some(AddPathMode::Send | AddPathMode::Both)) {
            c.err(
                max.span(),
                "bgp.peers.add_path_max: has no effect unless add_path is \"send\" or \"both\"",
            );
            return None;
        }
    }
    Some(Peer {
        address: address?,
        asn: asn?,
        port: port?,
        passive: raw.passive.unwrap_or(false),
        password: password?,
        ttl_security: raw.ttl_security.unwrap_or(false),
        rr_client,
        add_path: add_path?,
        add_path_max: add_path_max?,
        max_prefixes: max_prefixes?,
        max_prefixes_restart: max_prefixes_restart?,
        families: families?,
        import: Filter {
            policy: import_policy?,
            ..import?
        },
        export: Filter {
            policy: export_policy?,
            ..export?
        },
        local_address: local_address?,
        hold_time: hold_time?,
        connect_retry: connect_retry?,
        description: raw.description.clone(),
        next_hop_v6: next_hop_v6?,
    })
}

fn fib(c: &mut Checker<'_>, raw: &RawFib) -> Option<Fib> {
    let table = c.int_or(&raw.table, "fib.table", 1, i64::from(u32::MAX), 254u32);
    // rtm_protocol 0..=4 are the kernel's own (unspec, redirect, kernel, boot, static).
    let protocol = c.int_or(&raw.protocol, "fib.protocol", 5, 255, 196u8);
    Some(Fib {
        enabled: raw.enabled.unwrap_or(true),
        table: table?,
        protocol: protocol?,
    })
}

fn ipam(c: &mut Checker<'_>, raw: &RawIpam) -> Option<Ipam> {
    let store = match &raw.store {
        Some(s) => c.one_of(
            s,
            "ipam.store",
            &[("sled", StoreKind::Sled), ("etcd", StoreKind::Etcd)],
        ),
        None => Some(StoreKind::Sled),
    };
    let path = match &raw.path {
        Some(p) if p.get_ref().is_empty() => {
            c.err(p.span(), "ipam.path: must not be empty");
            None
        }
        Some(p) => Some(PathBuf::from(p.get_ref())),
        None => Some(PathBuf::from(DEFAULT_IPAM_PATH)),
    };
    let etcd = etcd(c, raw, store == Some(StoreKind::Etcd));
    let max_blocks_per_node = optional(
        raw.max_blocks_per_node
            .as_ref()
            .map(|v| c.int::<u32>(v, "ipam.max_blocks_per_node", 1, i64::from(u32::MAX))),
    );
    let release_grace = match &raw.release_grace {
        Some(v) => c.int::<u32>(v, "ipam.release_grace", 0, i64::from(u32::MAX)),
        None => Some(DEFAULT_RELEASE_GRACE),
    };
    let reservations = reservations(c, raw.reservations.as_deref().unwrap_or_default());
    let mut pools: Vec<(Pool, usize)> = Vec::new();
    let mut all_ok = true;
    for p in &raw.pools {
        match pool(c, p, &pools) {
            Some(pool) => pools.push((pool, p.cidr.span().start)),
            None => all_ok = false,
        }
    }
    Some(Ipam {
        store: store?,
        path: path?,
        etcd_endpoints: etcd.as_ref()?.endpoints.clone(),
        etcd_prefix: etcd.as_ref()?.prefix.clone(),
        etcd_ca: etcd.as_ref()?.ca.clone(),
        etcd_cert: etcd.as_ref()?.cert.clone(),
        etcd_key: etcd.as_ref()?.key.clone(),
        etcd_timeout: etcd.as_ref()?.timeout,
        strict_affinity: raw.strict_affinity.unwrap_or(false),
        max_blocks_per_node: max_blocks_per_node?,
        reservations: reservations?,
        release_grace: release_grace?,
        pools: all_ok.then(|| pools.into_iter().map(|(p, _)| p).collect())?,
    })
}

/// The `ipam.etcd_*` keys, checked.
struct EtcdKeys {
    endpoints: Vec<String>,
    prefix: String,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    timeout: u32,
}

/// `ipam.etcd_*`: checked whatever the store (a typo should not wait until the switch to
/// etcd), defaults filled in; the default endpoint only when the store is etcd.
fn etcd(c: &mut Checker<'_>, raw: &RawIpam, is_etcd: bool) -> Option<EtcdKeys> {
    let mut ok = true;
    let path = |c: &mut Checker<'_>, v: &Option<S<String>>, key: &str, ok: &mut bool| match v {
        Some(p) if p.get_ref().is_empty() => {
            c.err(p.span(), format!("ipam.{key}: must not be empty"));
            *ok = false;
            None
        }
        Some(p) => Some(PathBuf::from(p.get_ref())),
        None => None,
    };
    let ca = path(c, &raw.etcd_ca, "etcd_ca", &mut ok);
    let cert = path(c, &raw.etcd_cert, "etcd_cert", &mut ok);
    let key = path(c, &raw.etcd_key, "etcd_key", &mut ok);
    match (&raw.etcd_cert, &raw.etcd_key) {
        (Some(v), None) => {
            c.err(v.span(), "ipam.etcd_cert: needs ipam.etcd_key too");
            ok = false;
        }
        (None, Some(v)) => {
            c.err(v.span(), "ipam.etcd_key: needs ipam.etcd_cert too");
            ok = false;
        }
        _ => {}
    }
    let tls = raw.etcd_ca.is_some() || raw.etcd_cert.is_some();
    let endpoints = match &raw.etcd_endpoints {
        Some(list) if list.get_ref().is_empty() => {
            c.err(
                list.span(),
                "ipam.etcd_endpoints: must list at least one endpoint",
            );
            ok = false;
            Vec::new()
        }
        Some(list) => {
            let list = list.get_ref();
            for e in list {
                let url = e.get_ref();
                let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
                let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
                if !scheme_ok || rest.is_empty() {
                    c.err(
                        e.span(),
                        format!(
                            "ipam.etcd_endpoints: {url:?} is not an http:// or https:// URL \
                             (e.g. \"http://10.0.0.1:2379\")"
                        ),
                    );
                    ok = false;
                } else if tls && !url.starts_with("https://") {
                    c.err(
                        e.span(),
                        format!("ipam.etcd_endpoints: {url:?} must be https:// when etcd_ca or etcd_cert is set"),
                    );
                    ok = false;
                }
            }
            list.iter().map(|e| e.get_ref().clone()).collect()
        }
        None if is_etcd => vec![DEFAULT_ETCD_ENDPOINT.to_string()],
        None => Vec::new(),
    };
    let prefix = match &raw.etcd_prefix {
        Some(p) => {
            let text = p.get_ref();
            if !text.starts_with('/') || !text.ends_with('/') {
                c.err(
                    p.span(),
                    format!("ipam.etcd_prefix: {text:?} must start and end with \"/\" (e.g. \"/bramble/\")"),
                );
                ok = false;
            }
            text.clone()
        }
        None => DEFAULT_ETCD_PREFIX.to_string(),
    };
    let timeout = c.int_or(
        &raw.etcd_timeout,
        "ipam.etcd_timeout",
        1,
        3600,
        DEFAULT_ETCD_TIMEOUT,
    );
    let timeout = timeout?;
    ok.then_some(EtcdKeys {
        endpoints,
        prefix,
        ca,
        cert,
        key,
        timeout,
    })
}

/// `ipam.reservations`: masked CIDRs (a bare address is taken as a host prefix).
fn reservations(c: &mut Checker<'_>, raw: &[S<String>]) -> Option<Vec<Prefix>> {
    let mut out = Vec::new();
    let mut all_ok = true;
    for r in raw {
        let text = r.get_ref();
        let parsed = if text.contains('/') {
            text.parse::<Prefix>().ok()
        } else {
            text.parse::<IpAddr>().ok().map(Prefix::from)
        };
        match parsed {
            None => {
                c.err(
                    r.span(),
                    format!("ipam.reservations: {text:?} is not a CIDR prefix or address"),
                );
                all_ok = false;
            }
            Some(p) if masked(p) != p => {
                c.err(
                    r.span(),
                    format!(
                        "ipam.reservations: {text} has host bits set (did you mean {}?)",
                        masked(p)
                    ),
                );
                all_ok = false;
            }
            Some(p) => out.push(p),
        }
    }
    all_ok.then_some(out)
}

fn pool(c: &mut Checker<'_>, raw: &RawPool, earlier: &[(Pool, usize)]) -> Option<Pool> {
    let text = raw.cidr.get_ref();
    let Ok(cidr) = text.parse::<Prefix>() else {
        c.err(
            raw.cidr.span(),
            format!("ipam.pools.cidr: {text:?} is not a CIDR prefix"),
        );
        return None;
    };
    if masked(cidr) != cidr {
        c.err(
            raw.cidr.span(),
            format!(
                "ipam.pools.cidr: {text} has host bits set (did you mean {}?)",
                masked(cidr)
            ),
        );
        return None;
    }
    if let Some((other, at)) = earlier.iter().find(|(o, _)| overlaps(&o.cidr, &cidr)) {
        let (line, _) = c.loc.line_col(*at);
        c.err(
            raw.cidr.span(),
            format!(
                "ipam.pools.cidr: {cidr} overlaps pool {} (line {line})",
                other.cidr
            ),
        );
        return None;
    }
    let (lo, hi, default) = if cidr.is_ipv4() {
        (20, 32, 26)
    } else {
        (116, 128, 122)
    };
    let block_size = match &raw.block_size {
        Some(b) => {
            let size: u8 = c.int(b, "ipam.pools.block_size", lo, hi)?;
            if size < cidr.prefix() {
                c.err(
                    b.span(),
                    format!("ipam.pools.block_size: /{size} blocks do not fit in the pool {cidr}"),
                );
                return None;
            }
            size
        }
        None => default.max(cidr.prefix()),
    };
    Some(Pool { cidr, block_size })
}

/// An optional value after its check: `Some(None)` absent, `Some(Some(v))` valid, `None`
/// invalid (already reported).
fn optional<T>(checked: Option<Option<T>>) -> Option<Option<T>> {
    match checked {
        None => Some(None),
        Some(Some(v)) => Some(Some(v)),
        Some(None) => None,
    }
}

fn overlaps(a: &Prefix, b: &Prefix) -> bool {
    match (a, b) {
        (Prefix::V4(x), Prefix::V4(y)) => x.contains(y.network()) || y.contains(x.network()),
        (Prefix::V6(x), Prefix::V6(y)) => x.contains(y.network()) || y.contains(x.network()),
        _ => false,
    }
}
