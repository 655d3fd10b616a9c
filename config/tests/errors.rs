//! Every kind of error points at the right line and column, with the exact message.

use config::{parse_with_host, HostFacts};

fn host() -> HostFacts {
    HostFacts {
        hostname: Some("testhost".into()),
        router_id: Some("192.0.2.9".parse().unwrap()),
    }
}

/// The whole error text for `text` (which must be invalid).
fn err(text: &str) -> String {
    match parse_with_host(text, "b.toml", &host()) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

const PEER: &str = "[[bgp.peers]]\naddress = \"192.0.2.254\"\nasn = 65000\n";

#[test]
fn syntax_error() {
    assert_eq!(
        err("[node]\nasn = \n"),
        "b.toml:2:7: invalid string: expected `\"`, `'`"
    );
    assert_eq!(
        err("[node]\nasn = 1\n[node]\n"),
        "b.toml:3:1: invalid table header: duplicate key `node` in document root"
    );
}

#[test]
fn type_error() {
    assert_eq!(
        err("[node]\nasn = \"x\"\n"),
        "b.toml:2:7: invalid type: string \"x\", expected i64"
    );
    assert_eq!(
        err("[fib]\nenabled = 1\n"),
        "b.toml:2:11: invalid type: integer `1`, expected a boolean"
    );
}

#[test]
fn unknown_keys() {
    assert_eq!(
        err("[node]\nasn = 1\nfoo = 2\n"),
        "b.toml:3:1: unknown field `foo`, expected one of `name`, `router_id`, `asn`"
    );
    assert_eq!(
        err("nodes = 1\n"),
        "b.toml:1:1: unknown field `nodes`, expected one of `node`, `api`, `bgp`, `fib`, `ipam`, `policy`"
    );
    let e = err(&format!("{PEER}bogus = true\n"));
    assert!(
        e.starts_with("b.toml:4:1: unknown field `bogus`, expected one of `address`"),
        "{e}"
    );
}

#[test]
fn missing_required_key() {
    assert_eq!(
        err("[[bgp.peers]]\nasn = 1\n"),
        "b.toml:1:1: missing field `address`"
    );
}

#[test]
fn bad_ip_addresses() {
    assert_eq!(
        err("[[bgp.peers]]\naddress = \"192.0.2.300\"\nasn = 1\n"),
        "b.toml:2:11: bgp.peers.address: \"192.0.2.300\" is not an IP address"
    );
    assert_eq!(
        err(&format!("{PEER}local_address = \"nope\"\n")),
        "b.toml:4:17: bgp.peers.local_address: \"nope\" is not an IP address"
    );
    assert_eq!(
        err(&format!("{PEER}local_address = \"2001:db8::1\"\n")),
        "b.toml:4:17: bgp.peers.local_address: 2001:db8::1 is not of the same family as the peer address 192.0.2.254"
    );
    assert_eq!(
        err(&format!("{PEER}next_hop_v6 = \"192.0.2.1\"\n")),
        "b.toml:4:15: bgp.peers.next_hop_v6: 192.0.2.1 is not an IPv6 address"
    );
    assert_eq!(
        err(&format!("{PEER}next_hop_v6 = \"fe80::1%eth0\"\n")),
        "b.toml:4:15: bgp.peers.next_hop_v6: \"fe80::1%eth0\" is not an IP address"
    );
    assert_eq!(
        err(&format!("{PEER}next_hop_v6 = \"::\"\n")),
        "b.toml:4:15: bgp.peers.next_hop_v6: :: is not a usable next hop"
    );
    assert_eq!(
        err("[bgp]\nlisten = \"0.0.0.0:99999\"\n"),
        "b.toml:2:10: bgp.listen: \"0.0.0.0:99999\" is not an address (e.g. \"0.0.0.0:179\" or \"[::]:179\")"
    );
}

#[test]
fn router_id_must_be_ipv4() {
    assert_eq!(
        err("[node]\nrouter_id = \"2001:db8::1\"\n"),
        "b.toml:2:13: node.router_id: 2001:db8::1 is not an IPv4 address"
    );
    assert_eq!(
        err("[node]\nrouter_id = \"0.0.0.0\"\n"),
        "b.toml:2:13: node.router_id: 0.0.0.0 is not a usable identifier"
    );
    assert_eq!(
        err("[bgp]\ncluster_id = \"::1\"\n"),
        "b.toml:2:14: bgp.cluster_id: ::1 is not an IPv4 address"
    );
}

#[test]
fn router_id_missing_and_not_detectable() {
    let no_addr = HostFacts {
        hostname: Some("h".into()),
        router_id: None,
    };
    let e = parse_with_host("[node]\nasn = 65001\n", "b.toml", &no_addr).unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.toml:1:1: node.router_id is not set and this host has no global IPv4 address; set it"
    );
}

#[test]
fn asn_zero_and_as_trans() {
    assert_eq!(
        err("[node]\nasn = 0\n"),
        "b.toml:2:7: node.asn: 0 is out of range (1..=4294967295)"
    );
    assert_eq!(
        err("[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 4294967296\n"),
        "b.toml:3:7: bgp.peers.asn: 4294967296 is out of range (1..=4294967295)"
    );
    assert_eq!(
        err("[node]\nasn = 23456\n"),
        "b.toml:2:7: node.asn: 23456 is AS_TRANS (RFC 6793), not a usable AS"
    );
}

#[test]
fn hold_time_one_two_or_too_big() {
    for (value, col) in [("1", 13), ("2", 13), ("65536", 13), ("-3", 13)] {
        assert_eq!(
            err(&format!("[bgp]\nhold_time = {value}\n")),
            format!("b.toml:2:{col}: bgp.hold_time: {value} is not a valid hold time (0 or 3..=65535, RFC 4271 §4.2)")
        );
    }
    assert_eq!(
        err(&format!("{PEER}hold_time = 2\n")),
        "b.toml:4:13: bgp.peers.hold_time: 2 is not a valid hold time (0 or 3..=65535, RFC 4271 §4.2)"
    );
    // 0 (no keepalives) and 3 are fine.
    assert!(parse_with_host("[bgp]\nhold_time = 0\n", "b.toml", &host()).is_ok());
    assert!(parse_with_host("[bgp]\nhold_time = 3\n", "b.toml", &host()).is_ok());
}

#[test]
fn other_ranges() {
    assert_eq!(
        err("[bgp]\nrestart_time = 4096\n"),
        "b.toml:2:16: bgp.restart_time: 4096 is out of range (0..=4095)"
    );
    assert_eq!(
        err("[bgp]\nselection_deferral = 0\n"),
        "b.toml:2:22: bgp.selection_deferral: 0 is out of range (1..=3600)"
    );
    assert_eq!(
        err("[bgp]\nllgr_stale_time = 16777216\n"),
        "b.toml:2:19: bgp.llgr_stale_time: 16777216 is out of range (0..=16777215)"
    );
    assert_eq!(
        err(&format!("{PEER}port = 0\n")),
        "b.toml:4:8: bgp.peers.port: 0 is out of range (1..=65535)"
    );
    assert_eq!(
        err("[fib]\nprotocol = 2\n"),
        "b.toml:2:12: fib.protocol: 2 is out of range (5..=255)"
    );
}

#[test]
fn duplicate_peer_address() {
    let text = format!("{PEER}\n[[bgp.peers]]\naddress = \"192.0.2.254\"\nasn = 65001\n");
    assert_eq!(
        err(&text),
        "b.toml:6:11: bgp.peers.address: duplicate peer 192.0.2.254 (first defined on line 2)"
    );
    // The same address written differently is still the same peer.
    let v6 = "[[bgp.peers]]\naddress = \"2001:db8::1\"\nasn = 1\n\
              [[bgp.peers]]\naddress = \"2001:db8:0::1\"\nasn = 1\n";
    assert_eq!(
        err(v6),
        "b.toml:5:11: bgp.peers.address: duplicate peer 2001:db8::1 (first defined on line 2)"
    );
}

#[test]
fn bad_prefix_rules() {
    assert_eq!(
        err(&format!("{PEER}import = [\"10.0.0.0/8 le 32\", \"10.0.0.1/8\"]\n")),
        "b.toml:4:31: bgp.peers.import: prefix 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)"
    );
    assert_eq!(
        err(&format!("{PEER}export = [\"10.0.0.0/8 le 33\"]\n")),
        "b.toml:4:11: bgp.peers.export: invalid length \"33\" (must be 8..=32)"
    );
    assert_eq!(
        err(&format!("{PEER}export = [\"banana\"]\n")),
        "b.toml:4:11: bgp.peers.export: invalid prefix \"banana\""
    );
}

#[test]
fn ipam_limits_and_reservations() {
    assert_eq!(
        err("[ipam]\nmax_blocks_per_node = 0\n"),
        "b.toml:2:23: ipam.max_blocks_per_node: 0 is out of range (1..=4294967295)"
    );
    assert_eq!(
        err("[ipam]\nreservations = [\"10.244.0.0/24\", \"10.244.1.1/24\"]\n"),
        "b.toml:2:34: ipam.reservations: 10.244.1.1/24 has host bits set (did you mean 10.244.1.0/24?)"
    );
    assert_eq!(
        err("[ipam]\nreservations = [\"gateway\"]\n"),
        "b.toml:2:17: ipam.reservations: \"gateway\" is not a CIDR prefix or address"
    );
}

#[test]
fn pools() {
    assert_eq!(
        err("[[ipam.pools]]\ncidr = \"10.244.0.1/16\"\n"),
        "b.toml:2:8: ipam.pools.cidr: 10.244.0.1/16 has host bits set (did you mean 10.244.0.0/16?)"
    );
    assert_eq!(
        err("[[ipam.pools]]\ncidr = \"10.244.0.0/16\"\nblock_size = 19\n"),
        "b.toml:3:14: ipam.pools.block_size: 19 is out of range (20..=32)"
    );
    assert_eq!(
        err("[[ipam.pools]]\ncidr = \"10.244.0.0/16\"\nblock_size = 122\n"),
        "b.toml:3:14: ipam.pools.block_size: 122 is out of range (20..=32)"
    );
    assert_eq!(
        err("[[ipam.pools]]\ncidr = \"fd00::/48\"\nblock_size = 115\n"),
        "b.toml:3:14: ipam.pools.block_size: 115 is out of range (116..=128)"
    );
    assert_eq!(
        err("[[ipam.pools]]\ncidr = \"10.244.0.0/24\"\nblock_size = 20\n"),
        "b.toml:3:14: ipam.pools.block_size: /20 blocks do not fit in the pool 10.244.0.0/24"
    );
    assert_eq!(
        err("[[ipam.pools]]\ncidr = \"10.0.0.0/8\"\n[[ipam.pools]]\ncidr = \"10.244.0.0/16\"\n"),
        "b.toml:4:8: ipam.pools.cidr: 10.244.0.0/16 overlaps pool 10.0.0.0/8 (line 2)"
    );
}

#[test]
fn password_and_password_file() {
    assert_eq!(
        err(&format!(
            "{PEER}password = \"s\"\npassword_file = \"/etc/k\"\n"
        )),
        "b.toml:5:17: bgp.peers.password_file: set either password or password_file, not both"
    );
}

#[test]
fn families() {
    assert_eq!(
        err(&format!("{PEER}families = [\"ipv4-unicast\", \"ipv4-multicast\"]\n")),
        "b.toml:4:29: bgp.peers.families: \"ipv4-multicast\" is not one of \"ipv4-unicast\", \"ipv6-unicast\""
    );
    assert_eq!(
        err(&format!("{PEER}families = []\n")),
        "b.toml:4:12: bgp.peers.families: must name at least one family"
    );
    assert_eq!(
        err(&format!(
            "{PEER}families = [\"ipv6-unicast\", \"ipv6-unicast\"]\n"
        )),
        "b.toml:4:29: bgp.peers.families: \"ipv6-unicast\" is listed twice"
    );
}

#[test]
fn advertise_and_store_choices() {
    assert_eq!(
        err("[bgp]\nadvertise = \"everything\"\n"),
        "b.toml:2:13: bgp.advertise: \"everything\" is not one of \"host-routes\", \"aggregate\""
    );
    assert_eq!(
        err("[ipam]\nstore = \"redis\"\n"),
        "b.toml:2:9: ipam.store: \"redis\" is not one of \"sled\", \"etcd\""
    );
}

#[test]
fn rr_client_must_be_ibgp() {
    assert_eq!(
        err(&format!("{PEER}rr_client = true\n")),
        "b.toml:4:13: bgp.peers.rr_client: a route-reflector client must be iBGP (asn 65000 is not node.asn 64512)"
    );
}

#[test]
fn several_errors_are_all_reported_in_file_order() {
    let text = "[node]\nasn = 0\n[bgp]\nhold_time = 1\n[[bgp.peers]]\naddress = \"x\"\nasn = 1\n";
    assert_eq!(
        err(text),
        "b.toml:2:7: node.asn: 0 is out of range (1..=4294967295)\n\
         b.toml:4:13: bgp.hold_time: 1 is not a valid hold time (0 or 3..=65535, RFC 4271 §4.2)\n\
         b.toml:6:11: bgp.peers.address: \"x\" is not an IP address"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    // "é" is two bytes but one column.
    assert_eq!(
        err("[node]\nname = \"é\"\nasn = 0\n"),
        "b.toml:3:7: node.asn: 0 is out of range (1..=4294967295)"
    );
    assert_eq!(
        err("[node]\nname = \"é\"; asn = 0\n"),
        "b.toml:2:11: expected newline, `#`"
    );
}

#[test]
fn io_error_names_the_file() {
    let e = config::load(std::path::Path::new("/nonexistent/bramble.toml")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/nonexistent/bramble.toml: No such file or directory (os error 2)"
    );
}

#[test]
fn add_path_mode_and_max() {
    assert_eq!(
        err(&format!("{PEER}add_path = \"all\"\n")),
        "b.toml:4:12: bgp.peers.add_path: \"all\" is not one of \"receive\", \"send\", \"both\""
    );
    assert_eq!(
        err(&format!("{PEER}add_path = \"send\"\nadd_path_max = 0\n")),
        "b.toml:5:16: bgp.peers.add_path_max: 0 is out of range (1..=64)"
    );
    assert_eq!(
        err(&format!("{PEER}add_path = \"receive\"\nadd_path_max = 4\n")),
        "b.toml:5:16: bgp.peers.add_path_max: has no effect unless add_path is \"send\" or \"both\""
    );
}

#[test]
fn mesh_errors_point_at_the_value() {
    let etcd = "[ipam]\netcd_endpoints = [\"http://127.0.0.1:2379\"]\n";
    assert_eq!(
        err(&format!(
            "[bgp]\nlisten = \"0.0.0.0\"\nmesh = \"all\"\n{etcd}"
        )),
        "b.toml:3:8: bgp.mesh: \"all\" is not one of true, false, \"reflectors\""
    );
    assert_eq!(
        err(&format!("[bgp]\nlisten = \"0.0.0.0\"\nmesh = 3\n{etcd}")),
        "b.toml:3:8: invalid type: integer `3`, expected true, false or \"reflectors\""
    );
    assert_eq!(
        err(&format!("[bgp]\nmesh = true\n{etcd}")),
        "b.toml:2:8: bgp.mesh: needs bgp.listen (mesh peers connect to each other)"
    );
    assert_eq!(
        err("[bgp]\nlisten = \"0.0.0.0\"\nmesh = \"reflectors\"\n"),
        "b.toml:3:8: bgp.mesh: needs the etcd node registry (set ipam.etcd_endpoints)"
    );
    assert_eq!(
        err(&format!(
            "[bgp]\nlisten = \"0.0.0.0\"\nmesh = true\nmesh_lease = 1\n{etcd}"
        )),
        "b.toml:4:14: bgp.mesh_lease: 1 is out of range (2..=3600)"
    );
}

#[test]
fn etcd_keys() {
    assert_eq!(
        err("[ipam]\nstore = \"etcd\"\netcd_endpoints = [\"10.0.0.1:2379\"]\n"),
        "b.toml:3:19: ipam.etcd_endpoints: \"10.0.0.1:2379\" is not an http:// or https:// URL \
         (e.g. \"http://10.0.0.1:2379\")"
    );
    assert_eq!(
        err("[ipam]\nstore = \"etcd\"\netcd_endpoints = []\n"),
        "b.toml:3:18: ipam.etcd_endpoints: must list at least one endpoint"
    );
    assert_eq!(
        err("[ipam]\netcd_prefix = \"bramble\"\n"),
        "b.toml:2:15: ipam.etcd_prefix: \"bramble\" must start and end with \"/\" (e.g. \"/bramble/\")"
    );
    assert_eq!(
        err("[ipam]\netcd_timeout = 0\n"),
        "b.toml:2:16: ipam.etcd_timeout: 0 is out of range (1..=3600)"
    );
    assert_eq!(
        err("[ipam]\netcd_cert = \"/c.pem\"\n"),
        "b.toml:2:13: ipam.etcd_cert: needs ipam.etcd_key too"
    );
    assert_eq!(
        err("[ipam]\nstore = \"etcd\"\netcd_ca = \"/ca.pem\"\netcd_endpoints = [\"http://e:2379\"]\n"),
        "b.toml:4:19: ipam.etcd_endpoints: \"http://e:2379\" must be https:// when etcd_ca or \
         etcd_cert is set"
    );
}
