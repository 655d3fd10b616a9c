//! Add-path (RFC 7911), Bramble as a route-reflector client: a reflector (GoBGP, then BIRD)
//! with add-path send passes Bramble both paths of a prefix that two BIRD clients announce
//! with different next hops; Bramble (`add_path = "receive"`) puts both in one ECMP set and
//! installs a multipath kernel route. Everything is iBGP in AS 64512 on one LAN
//! (10.0.0.0/24).

mod fib_common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer, FibSection};
use interop_tests::gobgp::{Gobgp, GobgpConfig, GobgpNeighbor};
use interop_tests::{check, require_bramble, wait_until, Lan, Netns, ScratchDir, Veth};

const POLL: Duration = Duration::from_millis(500);
const ASN: u32 = 64512;
const RR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CLIENT2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const NODE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
const PREFIX: &str = "10.77.0.0/24";

fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

/// A BIRD client announcing `PREFIX` (next hop: itself) to the reflector.
fn bird_client(me: Ipv4Addr) -> BirdConfig {
    let mut cfg = BirdConfig::new(me);
    cfg.statics.push(BirdStatic::new("s4", &[PREFIX]));
    let mut s = BirdBgp::new("reflector", ASN, v4(RR), ASN);
    s.local_address = Some(v4(me));
    // A directly connected iBGP session (BIRD's iBGP default is multihop).
    s.extra = "  direct;\n".into();
    let mut ch = BirdChannel::new("all", "where proto = \"s4\"");
    ch.extra = "gateway direct;".into();
    s.ipv4 = Some(ch);
    cfg.bgp.push(s);
    cfg
}

/// The lab: a LAN with the reflector, two BIRD clients and the Bramble node.
/// Fields drop in order: the BIRDs, the links, the namespaces, the LAN, the directory.
struct Lab {
    _clients: Vec<Bird>,
    _links: Vec<Veth>,
    _nss: Vec<Netns>,
    rr: Netns,
    node: Netns,
    _lan: Lan,
    dir: ScratchDir,
}

fn lab(tag: &str) -> Lab {
    let dir = ScratchDir::new(&format!("ap-{tag}")).unwrap();
    let lan = Lan::new(&format!("ap{tag}")).unwrap();
    let rr = Netns::new(&format!("ap{tag}-rr")).unwrap();
    let node = Netns::new(&format!("ap{tag}-node")).unwrap();
    let c1 = Netns::new(&format!("ap{tag}-c1")).unwrap();
    let c2 = Netns::new(&format!("ap{tag}-c2")).unwrap();
    let mut links = Vec::new();
    for (ns, addr) in [(&rr, RR), (&c1, CLIENT1), (&c2, CLIENT2), (&node, NODE)] {
        let l = lan.attach(ns).unwrap();
        l.a().add_addr(&format!("{addr}/24")).unwrap();
        links.push(l);
    }
    let mut clients = Vec::new();
    for (ns, addr, name) in [(&c1, CLIENT1, "c1"), (&c2, CLIENT2, "c2")] {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        clients.push(Bird::start(ns, &d, &bird_client(addr)).unwrap());
    }
    Lab {
        _clients: clients,
        _links: links,
        _nss: vec![c1, c2],
        rr,
        node,
        _lan: lan,
        dir,
    }
}

/// Bramble on the node: one session, to the reflector, add-path receive, FIB on.
fn start_bramble(lab: &Lab) -> Bramble {
    let mut cfg = BrambleConfig::new("node", NODE, ASN, lab.dir.path());
    cfg.bgp.listen = None;
    cfg.fib = Some(FibSection { enabled: true });
    let mut p = BramblePeer::new(v4(RR), ASN);
    p.families = vec!["ipv4-unicast".into()];
    p.add_path = Some("receive".into());
    cfg.bgp.peers.push(p);
    Bramble::start(&lab.node, lab.dir.path(), &cfg).unwrap()
}

/// Waits for Bramble to hold both paths as one ECMP set and the kernel to route `PREFIX`
/// over both clients.
fn wait_ecmp(bramble: &Bramble, node: &Netns) {
    // RFC 7911 §4: we said Receive, the reflector Send.
    let st = bramble.peer_status(v4(RR)).unwrap().unwrap();
    let info = st["info"].as_str().unwrap_or_default();
    assert!(info.contains("add-path rx ipv4-unicast"), "{st}");
    wait_until(
        "Bramble has both paths in one ECMP set",
        Duration::from_secs(90),
        POLL,
        || {
            let r = bramble.loc_routes_for(PREFIX)?;
            let mut hops: Vec<&str> = r.iter().filter_map(|x| x["next_hop"].as_str()).collect();
            hops.sort_unstable();
            check(
                hops == ["10.0.0.2", "10.0.0.3"]
                    && r.iter().all(|x| x["ecmp"].as_bool() == Some(true)),
                || format!("{r:?}"),
            )
        },
    )
    .unwrap();
    wait_until(
        "a multipath kernel route",
        Duration::from_secs(30),
        POLL,
        || {
            let routes = fib_common::kernel_gateways(node, false);
            check(
                routes.get(PREFIX).map(Vec::as_slice)
                    == Some(&["10.0.0.2".to_string(), "10.0.0.3".to_string()][..]),
                || format!("{routes:?}"),
            )
        },
    )
    .unwrap();
}

#[test]
fn gobgp_reflector_sends_both_paths_to_bramble() {
    require_bramble();
    let lab = lab("g");
    let mut gc = GobgpConfig::new(ASN, RR);
    for (addr, add_path) in [(CLIENT1, false), (CLIENT2, false), (NODE, true)] {
        let mut n = GobgpNeighbor::new(v4(addr), ASN);
        n.families = vec!["ipv4-unicast".into()];
        n.passive = true;
        let mut extra = String::new();
        if add_path {
            // Applies to the last (only) afi-safi entry.
            extra.push_str("    [neighbors.afi-safis.add-paths.config]\n      send-max = 8\n");
        }
        extra.push_str(&format!(
            "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    \
             route-reflector-cluster-id = \"{RR}\"\n"
        ));
        n.extra = extra;
        gc.neighbors.push(n);
    }
    let d = lab.dir.join("gobgp");
    std::fs::create_dir_all(&d).unwrap();
    let gobgp = Gobgp::start(&lab.rr, &d, &gc).unwrap();
    let bramble = start_bramble(&lab);
    wait_until(
        "sessions Established",
        Duration::from_secs(60),
        POLL,
        || {
            check(
                gobgp.is_established(v4(CLIENT1))?
                    && gobgp.is_established(v4(CLIENT2))?
                    && bramble.is_established(v4(RR))?,
                || "not yet".to_string(),
            )
        },
    )
    .unwrap();
    wait_ecmp(&bramble, &lab.node);
}

#[test]
fn bird_reflector_sends_both_paths_to_bramble() {
    require_bramble();
    let lab = lab("b");
    let mut cfg = BirdConfig::new(RR);
    for (name, addr, add_path) in [
        ("c1", CLIENT1, false),
        ("c2", CLIENT2, false),
        ("node", NODE, true),
    ] {
        let mut s = BirdBgp::new(name, ASN, v4(addr), ASN);
        s.local_address = Some(v4(RR));
        s.passive = true;
        s.extra = format!("  direct;\n  rr client;\n  rr cluster id {RR};\n");
        let mut ch = BirdChannel::new("all", "all");
        if add_path {
            ch.extra = "add paths tx;".into();
        }
        s.ipv4 = Some(ch);
        cfg.bgp.push(s);
    }
    let d = lab.dir.join("bird-rr");
    std::fs::create_dir_all(&d).unwrap();
    let bird = Bird::start(&lab.rr, &d, &cfg).unwrap();
    let bramble = start_bramble(&lab);
    wait_until(
        "sessions Established",
        Duration::from_secs(60),
        POLL,
        || {
            check(
                bird.is_established("c1")?
                    && bird.is_established("c2")?
                    && bird.is_established("node")?
                    && bramble.is_established(v4(RR))?,
                || "not yet".to_string(),
            )
        },
    )
    .unwrap();
    wait_ecmp(&bramble, &lab.node);
}
