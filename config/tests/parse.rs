//! Valid files: the DESIGN.md example, defaults, the resolved view and diff.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use bgp::policy::{Filter, PrefixRule};
use bgp::wire::Family;
use config::*;

fn host() -> HostFacts {
    HostFacts {
        hostname: Some("testhost".into()),
        router_id: Some("198.51.100.7".parse().unwrap()),
    }
}

fn parse(text: &str) -> Config {
    parse_with_host(text, "t.toml", &host()).unwrap()
}

/// The "Config (TOML)" block of DESIGN.md, verbatim.
const DESIGN: &str = r#"
[node]
name = "node1"            # default: hostname
router_id = "192.0.2.1"   # default: first global IPv4 address
asn = 64512               # default 64512

[api]
socket = "/run/bramble/bramble.sock"
metrics = "127.0.0.1:9469"      # Prometheus text format; absent = off

[bgp]
listen = "0.0.0.0:179"          # absent = do not listen
hold_time = 90
advertise = "host-routes"       # or "aggregate" (block + borrowed /32s)
graceful_restart = true
restart_time = 120
selection_deferral = 30
llgr_stale_time = 86400
# cluster_id = "192.0.2.1"      # set = this node is a route reflector

[[bgp.peers]]
address = "192.0.2.254"
asn = 65000                     # different from node.asn = eBGP
port = 179
passive = false
password = "secret"             # TCP MD5 (RFC 2385); or password_file
ttl_security = false            # GTSM (RFC 5082)
rr_client = false
max_prefixes = 100000
families = ["ipv4-unicast", "ipv6-unicast"]
import = ["10.0.0.0/8 le 32"]   # eBGP default is deny (RFC 8212) unless set
export = ["10.244.0.0/16 le 32"]

[fib]
enabled = true
table = 254
protocol = 196                  # rtm_protocol that marks Bramble's routes

[ipam]
store = "sled"                  # or "etcd"
path = "/var/lib/bramble/ipam"
# etcd_endpoints = ["http://127.0.0.1:2379"]
strict_affinity = false

[[ipam.pools]]
cidr = "10.244.0.0/16"
block_size = 26                 # default 26 (IPv4), 122 (IPv6)
"#;

fn rule(s: &str) -> PrefixRule {
    s.parse().unwrap()
}

#[test]
fn design_example_parses() {
    let c = parse(DESIGN);
    assert_eq!(
        c.node,
        Node {
            name: "node1".into(),
            router_id: Ipv4Addr::new(192, 0, 2, 1),
            asn: 64512,
        }
    );
    assert_eq!(c.api.socket, PathBuf::from("/run/bramble/bramble.sock"));
    assert_eq!(c.api.metrics, Some("127.0.0.1:9469".parse().unwrap()));
    assert_eq!(c.bgp.listen, Some("0.0.0.0:179".parse().unwrap()));
    assert_eq!(c.bgp.hold_time, 90);
    assert_eq!(c.bgp.advertise, Advertise::HostRoutes);
    assert!(c.bgp.graceful_restart);
    assert_eq!(c.bgp.restart_time, 120);
    assert_eq!(c.bgp.selection_deferral, 30);
    assert_eq!(c.bgp.llgr_stale_time, 86400);
    assert_eq!(c.bgp.cluster_id, None);
    assert_eq!(
        c.peers(),
        &[Peer {
            address: "192.0.2.254".parse().unwrap(),
            asn: 65000,
            port: 179,
            passive: false,
            password: Some(Password::Inline("secret".into())),
            ttl_security: false,
            rr_client: false,
            add_path: None,
            add_path_max: 8,
            max_prefixes: Some(100_000),
            max_prefixes_restart: 60,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            import: Filter::prefixes(vec![rule("10.0.0.0/8 le 32")]),
            export: Filter::prefixes(vec![rule("10.244.0.0/16 le 32")]),
            local_address: None,
            hold_time: None,
            connect_retry: 5,
            description: None,
            next_hop_v6: None,
        }]
    );
    assert!(c.peers()[0].is_ebgp(c.node.asn));
    assert_eq!(
        c.fib,
        Fib {
            enabled: true,
            table: 254,
            protocol: 196
        }
    );
    assert_eq!(c.ipam.store, StoreKind::Sled);
    assert_eq!(c.ipam.path, PathBuf::from("/var/lib/bramble/ipam"));
    assert!(c.ipam.etcd_endpoints.is_empty());
    assert!(!c.ipam.strict_affinity);
    assert_eq!(
        c.ipam.pools,
        vec![Pool {
            cidr: "10.244.0.0/16".parse().unwrap(),
            block_size: 26
        }]
    );
}

#[test]
fn ipam_limits_and_reservations() {
    let c = parse(
        r#"
[ipam]
max_blocks_per_node = 4
reservations = ["10.244.0.0/30", "10.244.9.9", "fd00::1/128"]
"#,
    );
    assert_eq!(c.ipam.max_blocks_per_node, Some(4));
    let want: Vec<bgp::wire::Prefix> = ["10.244.0.0/30", "10.244.9.9/32", "fd00::1/128"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(c.ipam.reservations, want);
}

#[test]
fn empty_file_gets_every_default() {
    let c = parse("");
    assert_eq!(c.node.name, "testhost");
    assert_eq!(c.node.router_id, Ipv4Addr::new(198, 51, 100, 7));
    assert_eq!(c.node.asn, 64512);
    assert_eq!(c.api.socket, PathBuf::from("/run/bramble/bramble.sock"));
    assert_eq!(c.api.metrics, None);
    assert_eq!(
        c.bgp,
        Bgp {
            listen: None,
            hold_time: 90,
            advertise: Advertise::HostRoutes,
            graceful_restart: true,
            restart_time: 120,
            selection_deferral: 360,
            llgr_stale_time: 0,
            cluster_id: None,
            mesh: MeshMode::Off,
            mesh_lease: 10,
            peers: vec![],
        }
    );
    assert_eq!(
        c.fib,
        Fib {
            enabled: true,
            table: 254,
            protocol: 196
        }
    );
    assert_eq!(
        c.ipam,
        Ipam {
            store: StoreKind::Sled,
            path: "/var/lib/bramble/ipam".into(),
            etcd_endpoints: vec![],
            etcd_prefix: "/bramble/".into(),
            etcd_ca: None,
            etcd_cert: None,
            etcd_key: None,
            etcd_timeout: 5,
            strict_affinity: false,
            max_blocks_per_node: None,
            reservations: vec![],
            release_grace: 300,
            pools: vec![],
        }
    );
}

#[test]
fn peer_defaults_and_extras() {
    let c = parse(
        r#"
[[bgp.peers]]
address = "2001:db8::2"
asn = 64512

[[bgp.peers]]
address = "192.0.2.9"
asn = 65010
local_address = "192.0.2.1"
hold_time = 30
connect_retry = 60
description = "tor-a"
next_hop_v6 = "2001:db8::1"
password_file = "/etc/bramble/tor-a.key"
passive = true
ttl_security = true
families = ["ipv4-unicast"]
import = []
"#,
    );
    let [ibgp, ebgp] = c.peers() else {
        panic!("two peers expected")
    };
    assert_eq!(ibgp.address, "2001:db8::2".parse::<IpAddr>().unwrap());
    assert!(!ibgp.is_ebgp(c.node.asn));
    assert_eq!(ibgp.port, 179);
    assert!(!ibgp.passive && !ibgp.ttl_security && !ibgp.rr_client);
    assert_eq!(
        ibgp.families,
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    // Absent lists are "no policy": the speaker applies RFC 8212 for eBGP.
    assert_eq!(ibgp.import, Filter::default());
    assert_eq!(ibgp.export, Filter::default());
    assert_eq!(ibgp.connect_retry, 5);
    assert_eq!(ibgp.hold_time, None);
    assert_eq!(ibgp.password, None);

    assert_eq!(ebgp.local_address, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(ebgp.hold_time, Some(30));
    assert_eq!(ebgp.connect_retry, 60);
    assert_eq!(ebgp.description.as_deref(), Some("tor-a"));
    assert_eq!(ebgp.next_hop_v6, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(ibgp.next_hop_v6, None);
    assert_eq!(
        ebgp.password,
        Some(Password::File("/etc/bramble/tor-a.key".into()))
    );
    assert!(ebgp.passive && ebgp.ttl_security);
    assert_eq!(ebgp.families, vec![Family::IPV4_UNICAST]);
    // An empty list is a policy that matches nothing.
    assert_eq!(ebgp.import, Filter::prefixes(vec![]));
}

#[test]
fn pool_block_size_defaults_by_family() {
    let c = parse(
        "[[ipam.pools]]\ncidr = \"10.244.0.0/16\"\n[[ipam.pools]]\ncidr = \"fd00:10::/48\"\n\
         [[ipam.pools]]\ncidr = \"10.9.0.0/28\"\n",
    );
    let sizes: Vec<u8> = c.ipam.pools.iter().map(|p| p.block_size).collect();
    // A pool smaller than the default block is one block.
    assert_eq!(sizes, vec![26, 122, 28]);
}

#[test]
fn etcd_store_gets_a_default_endpoint() {
    let c = parse("[ipam]\nstore = \"etcd\"\n");
    assert_eq!(c.ipam.store, StoreKind::Etcd);
    assert_eq!(
        c.ipam.etcd_endpoints,
        vec!["http://127.0.0.1:2379".to_string()]
    );
}

#[test]
fn etcd_keys_are_read() {
    let c = parse(
        "[ipam]\nstore = \"etcd\"\netcd_endpoints = [\"https://10.0.0.1:2379\", \"https://10.0.0.2:2379\"]\n\
         etcd_prefix = \"/cluster-a/\"\netcd_ca = \"/etc/bramble/ca.pem\"\n\
         etcd_cert = \"/etc/bramble/node.pem\"\netcd_key = \"/etc/bramble/node-key.pem\"\n\
         etcd_timeout = 2\n",
    );
    assert_eq!(c.ipam.etcd_endpoints.len(), 2);
    assert_eq!(c.ipam.etcd_prefix, "/cluster-a/");
    assert_eq!(c.ipam.etcd_ca, Some("/etc/bramble/ca.pem".into()));
    assert_eq!(c.ipam.etcd_cert, Some("/etc/bramble/node.pem".into()));
    assert_eq!(c.ipam.etcd_key, Some("/etc/bramble/node-key.pem".into()));
    assert_eq!(c.ipam.etcd_timeout, 2);
}

#[test]
fn listen_accepts_a_bare_address() {
    let c = parse("[bgp]\nlisten = \"::\"\n");
    assert_eq!(c.bgp.listen, Some("[::]:179".parse().unwrap()));
}

#[test]
fn password_is_not_printed_by_debug() {
    let c = parse(DESIGN);
    assert!(!format!("{c:?}").contains("secret"));
}

#[test]
fn diff_lists_peer_changes() {
    let base = r#"
[[bgp.peers]]
address = "192.0.2.1"
asn = 65001
[[bgp.peers]]
address = "192.0.2.2"
asn = 65002
"#;
    let old = parse(base);
    assert!(old.diff(&old).is_empty());

    let new = parse(
        r#"
[[bgp.peers]]
address = "192.0.2.2"
asn = 65002
hold_time = 30
[[bgp.peers]]
address = "192.0.2.3"
asn = 65003
"#,
    );
    let d = old.diff(&new);
    assert_eq!(d.peers_added, vec!["192.0.2.3".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        d.peers_removed,
        vec!["192.0.2.1".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        d.peers_changed,
        vec!["192.0.2.2".parse::<IpAddr>().unwrap()]
    );
    assert!(!d.restart_needed);

    let other_asn = parse(&format!("[node]\nasn = 65100\n{base}"));
    let d = old.diff(&other_asn);
    assert!(d.restart_needed);
    assert!(d.peers_added.is_empty() && d.peers_changed.is_empty());
}

#[test]
fn load_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.toml");
    std::fs::write(&path, "[node]\nrouter_id = \"192.0.2.5\"\nasn = 0\n").unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3:7: node.asn: 0 is out of range (1..=4294967295)",
            path.display()
        )
    );
}

#[test]
fn add_path_keys() {
    let text = "[node]\nasn = 64512\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 64512\n\
                add_path = \"both\"\nadd_path_max = 2\n\
                [[bgp.peers]]\naddress = \"192.0.2.2\"\nasn = 64512\nadd_path = \"receive\"\n\
                [[bgp.peers]]\naddress = \"192.0.2.3\"\nasn = 64512\n";
    let c = parse(text);
    let got: Vec<_> = c
        .peers()
        .iter()
        .map(|p| (p.add_path, p.add_path_max))
        .collect();
    assert_eq!(
        got,
        [
            (Some(bgp::wire::AddPathMode::Both), 2),
            (Some(bgp::wire::AddPathMode::Receive), 8),
            (None, 8)
        ]
    );
}

#[test]
fn mesh_modes_and_lease() {
    let etcd = "[ipam]\netcd_endpoints = [\"http://192.0.2.1:2379\"]\n";
    let mode = |v: &str| {
        let c = parse(&format!("[bgp]\nlisten = \"0.0.0.0\"\nmesh = {v}\n{etcd}"));
        (c.bgp.mesh, c.bgp.mesh_lease)
    };
    assert_eq!(mode("true"), (MeshMode::Full, DEFAULT_MESH_LEASE));
    assert_eq!(mode("false"), (MeshMode::Off, 10));
    assert_eq!(mode("\"reflectors\""), (MeshMode::Reflectors, 10));
    let c = parse(&format!(
        "[bgp]\nlisten = \"0.0.0.0\"\nmesh = true\nmesh_lease = 30\n{etcd}"
    ));
    assert_eq!(c.bgp.mesh_lease, 30);
    assert_eq!(c.ipam.etcd_endpoints, ["http://192.0.2.1:2379"]);
    // Off needs neither etcd nor a listener.
    assert_eq!(parse("[bgp]\nmesh = false\n").bgp.mesh, MeshMode::Off);
}
