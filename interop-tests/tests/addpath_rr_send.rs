//! Add-path (RFC 7911), Bramble as the route reflector: two BIRD clients announce one prefix
//! with different next hops; a third BIRD client with `add paths rx` gets both paths from
//! Bramble (`add_path = "send"`), each reflected (ORIGINATOR_ID, CLUSTER_LIST) with its own
//! next hop; when one announcer goes away only its path is withdrawn. iBGP in AS 64512 on
//! one LAN (10.0.0.0/24).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdRoute, BirdStatic};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer};
use interop_tests::{check, require_bramble, wait_until, Lan, Netns, ScratchDir};

const POLL: Duration = Duration::from_millis(500);
const ASN: u32 = 64512;
const RR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CLIENT2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const RECEIVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
const CLUSTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const PREFIX: &str = "10.77.0.0/24";

fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

/// A BIRD client of the reflector: announces `PREFIX` when `announce`, takes several paths
/// per prefix when `add_path_rx`.
fn bird_client(me: Ipv4Addr, announce: bool, add_path_rx: bool) -> BirdConfig {
    let mut cfg = BirdConfig::new(me);
    if announce {
        cfg.statics.push(BirdStatic::new("s4", &[PREFIX]));
    }
    let mut s = BirdBgp::new("reflector", ASN, v4(RR), ASN);
    s.local_address = Some(v4(me));
    s.extra = "  direct;\n".into();
    let export = if announce {
        "where proto = \"s4\""
    } else {
        "none"
    };
    let mut ch = BirdChannel::new("all", export);
    ch.extra = if add_path_rx {
        "gateway direct; add paths rx;".into()
    } else {
        "gateway direct;".into()
    };
    s.ipv4 = Some(ch);
    cfg.bgp.push(s);
    cfg
}

fn learned(bird: &Bird) -> interop_tests::Result<Vec<BirdRoute>> {
    Ok(bird
        .show_route(PREFIX)?
        .into_iter()
        .filter(|r| r.protocol == "reflector")
        .collect())
}

#[test]
fn bramble_reflector_sends_both_paths_to_a_bird_client() {
    require_bramble();
    let dir = ScratchDir::new("ap-send").unwrap();
    let lan = Lan::new("aps").unwrap();
    let node = Netns::new("aps-rr").unwrap();
    let n1 = Netns::new("aps-c1").unwrap();
    let n2 = Netns::new("aps-c2").unwrap();
    let n3 = Netns::new("aps-rx").unwrap();
    let mut links = Vec::new();
    for (ns, addr) in [(&node, RR), (&n1, CLIENT1), (&n2, CLIENT2), (&n3, RECEIVER)] {
        let l = lan.attach(ns).unwrap();
        l.a().add_addr(&format!("{addr}/24")).unwrap();
        links.push(l);
    }
    let mut birds = Vec::new();
    for (ns, addr, name, announce) in [
        (&n1, CLIENT1, "c1", true),
        (&n2, CLIENT2, "c2", true),
        (&n3, RECEIVER, "rx", false),
    ] {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        birds.push(Bird::start(ns, &d, &bird_client(addr, announce, !announce)).unwrap());
    }

    let mut cfg = BrambleConfig::new("rr", RR, ASN, dir.path());
    cfg.bgp.cluster_id = Some(CLUSTER);
    for a in [CLIENT1, CLIENT2, RECEIVER] {
        let mut p = BramblePeer::new(v4(a), ASN);
        p.families = vec!["ipv4-unicast".into()];
        p.rr_client = true;
        if a == RECEIVER {
            p.add_path = Some("send".into());
            p.add_path_max = Some(4);
        }
        cfg.bgp.peers.push(p);
    }
    let bramble = Bramble::start(&node, dir.path(), &cfg).unwrap();
    wait_until(
        "all sessions Established",
        Duration::from_secs(60),
        POLL,
        || {
            let mut ok = true;
            for a in [CLIENT1, CLIENT2, RECEIVER] {
                ok &= bramble.is_established(v4(a))?;
            }
            for b in &birds {
                ok &= b.is_established("reflector")?;
            }
            check(ok, || "not yet".to_string())
        },
    )
    .unwrap();

    let rx = &birds[2];
    wait_until(
        "the add-path BIRD client has both paths",
        Duration::from_secs(60),
        POLL,
        || {
            let r = learned(rx)?;
            let mut hops: Vec<IpAddr> = r.iter().flat_map(|x| x.bgp_next_hop.clone()).collect();
            hops.sort();
            check(
                r.len() == 2
                    && hops == [v4(CLIENT1), v4(CLIENT2)]
                    && r.iter().all(|x| {
                        x.cluster_list == [CLUSTER]
                            && x.originator_id.map(v4) == x.bgp_next_hop.first().copied()
                    }),
                || format!("{r:?}"),
            )
        },
    )
    .unwrap();
    // Without add-path a client gets the best path only: client 1's (lower router id), so
    // client 2 learns it and client 1 gets nothing back (RFC 4456 §6).
    wait_until(
        "client 2 has client 1's path",
        Duration::from_secs(30),
        POLL,
        || {
            let r = learned(&birds[1])?;
            check(r.len() == 1 && r[0].bgp_next_hop == [v4(CLIENT1)], || {
                format!("{r:?}")
            })
        },
    )
    .unwrap();
    let on_c1 = learned(&birds[0]).unwrap();
    assert!(on_c1.is_empty(), "{on_c1:?}");
    // Bramble's Adj-RIB-Out towards the receiver lists both.
    let out = bramble.routes("adj-out", Some(v4(RECEIVER))).unwrap();
    let n = out
        .iter()
        .filter(|r| r["prefix"].as_str() == Some(PREFIX))
        .count();
    assert_eq!(n, 2, "{out:?}");

    // Client 1 goes away: only its path is withdrawn from the receiver.
    birds[0].disable("reflector").unwrap();
    wait_until(
        "the receiver keeps only client 2's path",
        Duration::from_secs(60),
        POLL,
        || {
            let r = learned(rx)?;
            check(r.len() == 1 && r[0].bgp_next_hop == [v4(CLIENT2)], || {
                format!("{r:?}")
            })
        },
    )
    .unwrap();
    drop(bramble);
    drop(birds);
    drop(links);
}
