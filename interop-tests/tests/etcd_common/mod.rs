//! Shared by the cluster-mode tests: a LAN with a three-member etcd cluster (one namespace per
//! member) and Bramble nodes (one namespace each) whose `[ipam]` store is that cluster, plus
//! concurrent `bramble-ipam` ADDs.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use interop_tests::bramble::{bramble_bin, BrambleConfig, IpamPool};
use interop_tests::cni::{CniNetwork, CniOutput};
use interop_tests::etcd::EtcdCluster;
use interop_tests::{wait_until, ChildGuard, Lan, Netns, ScratchDir, Veth};
use serde_json::Value;

/// Store key prefix the tests use (the default).
pub const PREFIX: &str = "/bramble/";

/// etcd member `i`'s LAN address: 10.80.0.11, .12, …
pub fn etcd_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 80, 0, 11 + i as u8)
}

/// Node `i`'s LAN address: 10.80.0.21, .22, …
pub fn node_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 80, 0, 21 + i as u8)
}

/// A Bramble node on the LAN.
pub struct Node {
    pub name: String,
    pub ns: Netns,
    /// `a()` is the node's interface, `b()` the bridge port: set it down to cut the node off.
    pub link: Veth,
    pub socket: PathBuf,
    pub cfg_path: PathBuf,
    pub agent: Option<ChildGuard>,
}

/// etcd members and Bramble nodes on one LAN. Drop order: nodes, etcd, namespaces, LAN, dir.
pub struct EtcdLab {
    pub nodes: Vec<Node>,
    pub etcd: EtcdCluster,
    pub etcd_ns: Vec<(Netns, Veth)>,
    pub lan: Lan,
    pub dir: ScratchDir,
}

impl EtcdLab {
    /// `members` etcd members, healthy on return; no nodes yet.
    pub fn start(tag: &str, members: usize) -> EtcdLab {
        let dir = ScratchDir::new(tag).unwrap();
        let lan = Lan::new(&format!("{tag}-sw")).unwrap();
        let mut etcd_ns = Vec::new();
        for i in 0..members {
            let ns = Netns::new(&format!("{tag}-e")).unwrap();
            let link = lan.attach(&ns).unwrap();
            link.a().add_addr(&format!("{}/24", etcd_addr(i))).unwrap();
            etcd_ns.push((ns, link));
        }
        let specs: Vec<(&Netns, IpAddr)> = etcd_ns
            .iter()
            .enumerate()
            .map(|(i, (ns, _))| (ns, IpAddr::V4(etcd_addr(i))))
            .collect();
        let etcd = EtcdCluster::in_namespaces(&specs).unwrap();
        EtcdLab {
            nodes: Vec::new(),
            etcd,
            etcd_ns,
            lan,
            dir,
        }
    }

    /// Adds node `nodeN` (N = current count) with `[ipam]` on etcd: `pool` cut in
    /// `block`-sized blocks, `advertise` mode, `timeout` seconds per etcd call; `tweak` may
    /// edit the rendered TOML (peers, FIB) before the agent starts. Returns its index.
    pub fn add_node(
        &mut self,
        pool: &str,
        block: u8,
        timeout: u32,
        tweak: impl FnOnce(&mut BrambleConfig),
    ) -> usize {
        let i = self.nodes.len();
        let name = format!("node{i}");
        let ns = Netns::new(&format!("{}-n", name)).unwrap();
        let link = self.lan.attach(&ns).unwrap();
        link.a().add_addr(&format!("{}/24", node_addr(i))).unwrap();
        let ndir = self.dir.join(&name);
        std::fs::create_dir_all(&ndir).unwrap();
        let mut cfg = BrambleConfig::new(&name, node_addr(i), 65000, &ndir)
            .with_ipam(vec![IpamPool::new(pool, block)], "host-routes");
        tweak(&mut cfg);
        let mut doc: toml::Table = toml::from_str(&cfg.render().unwrap()).unwrap();
        let ipam = doc
            .get_mut("ipam")
            .and_then(toml::Value::as_table_mut)
            .unwrap();
        ipam.insert("store".into(), "etcd".into());
        ipam.insert(
            "etcd_endpoints".into(),
            toml::Value::Array(
                self.etcd
                    .client_endpoints()
                    .into_iter()
                    .map(toml::Value::String)
                    .collect(),
            ),
        );
        ipam.insert("etcd_prefix".into(), PREFIX.into());
        ipam.insert("etcd_timeout".into(), i64::from(timeout).into());
        let cfg_path = ndir.join("bramble.toml");
        std::fs::write(&cfg_path, toml::to_string(&doc).unwrap()).unwrap();
        let mut node = Node {
            name,
            ns,
            link,
            socket: cfg.api.socket.clone(),
            cfg_path,
            agent: None,
        };
        start_agent(&mut node, self.dir.path());
        self.nodes.push(node);
        i
    }

    /// `bramble ipam check -o json` on node `i`.
    pub fn check(&self, i: usize) -> Value {
        let out = client(&self.nodes[i].socket, &["ipam", "check", "-o", "json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("ipam check output: {e}: {}", show(&out)))
    }

    /// Every handle key in etcd.
    pub fn handle_keys(&self) -> Vec<String> {
        self.etcd.keys(&format!("{PREFIX}handles/")).unwrap()
    }
}

/// Starts (or restarts) the node's agent; returns once its control socket answers.
pub fn start_agent(node: &mut Node, log_dir: &Path) {
    node.agent = None;
    let mut cmd = node.ns.command(bramble_bin());
    cmd.arg("agent").arg("--config").arg(&node.cfg_path).env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or("info".into()),
    );
    let mut child = ChildGuard::spawn(cmd, &format!("bramble-{}", node.name), log_dir).unwrap();
    let socket = node.socket.clone();
    wait_until(
        "bramble control socket",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            child.check_running()?;
            Ok(client(&socket, &["status", "-o", "json"]).status.success())
        },
    )
    .unwrap();
    node.agent = Some(child);
}

/// `bramble ARGS… --socket S`, unchecked.
pub fn client(socket: &Path, args: &[&str]) -> Output {
    Command::new(bramble_bin())
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .unwrap()
}

pub fn show(out: &Output) -> String {
    format!(
        "{} stdout {:?} stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The CNI network of node `socket` (the plugin is `bramble-ipam` alone).
pub fn network(socket: &Path, pool: &str) -> CniNetwork {
    CniNetwork::ptp("etcdnet", pool, socket)
}

/// One ADD through `bramble-ipam` for container `id`: its output and how long it took.
pub fn add(net: &CniNetwork, id: &str) -> (CniOutput, Duration) {
    let netns = Path::new("/run/netns").join(id);
    let start = Instant::now();
    let out = net
        .invoke_ipam("ADD", Some(&netns), id, "eth0", &net.netconf())
        .unwrap();
    (out, start.elapsed())
}

/// The address of a successful ADD result.
pub fn added_ip(out: &CniOutput) -> IpAddr {
    let addr = out.json["ips"][0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {:?}", out.json));
    addr.split('/').next().unwrap().parse().unwrap()
}

/// What one concurrent ADD ended with.
pub struct AddOutcome {
    pub node: usize,
    pub id: String,
    pub out: CniOutput,
    pub took: Duration,
}

/// `per_node` ADDs on each of `nets` at once: `threads` workers per node, each doing its share
/// one after another. Container ids are `TAG-nN-K`.
pub fn concurrent_adds(
    nets: &[CniNetwork],
    tag: &str,
    per_node: usize,
    threads: usize,
) -> Vec<AddOutcome> {
    let mut workers = Vec::new();
    for (n, net) in nets.iter().enumerate() {
        let net = Arc::new(net.clone());
        for t in 0..threads {
            let net = Arc::clone(&net);
            let tag = tag.to_string();
            workers.push(std::thread::spawn(move || {
                (0..per_node)
                    .filter(|k| k % threads == t)
                    .map(|k| {
                        let id = format!("{tag}-n{n}-{k}");
                        let (out, took) = add(&net, &id);
                        AddOutcome {
                            node: n,
                            id,
                            out,
                            took,
                        }
                    })
                    .collect::<Vec<_>>()
            }));
        }
    }
    workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect()
}

/// `ETCD_TEST_ADDS` (ADDs per node), else `default`.
pub fn adds_per_node(default: usize) -> usize {
    std::env::var("ETCD_TEST_ADDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The JSON a CNI error must have (spec: `code`, `msg`, optional `details`).
pub fn assert_spec_error(out: &CniOutput) -> u64 {
    assert!(!out.success(), "expected a failure: {:?}", out.json);
    let code = out
        .error_code()
        .unwrap_or_else(|| panic!("no code: {:?}", out.json));
    assert!(out.json["msg"].is_string(), "{:?}", out.json);
    assert!(out.json["cniVersion"].is_string(), "{:?}", out.json);
    code
}
