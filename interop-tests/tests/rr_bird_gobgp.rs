//! Route reflection (RFC 4456): Bramble as the reflector of two BIRD clients and one GoBGP
//! client, all iBGP in AS 64512 on one LAN (10.0.0.0/24). A route from one client reaches the
//! others with ORIGINATOR_ID = the originating client's router id and CLUSTER_LIST = [our
//! cluster id], next hop unchanged, and is not sent back to its originator.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdRoute, BirdStatic};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer};
use interop_tests::gobgp::{Gobgp, GobgpConfig, GobgpNeighbor, GobgpPath};
use interop_tests::{check, require_bramble, wait_until, Lan, Netns, ScratchDir};

const POLL: Duration = Duration::from_millis(500);
const ASN: u32 = 64512;
const RR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const BIRD1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const BIRD2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const GOBGP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
const RR_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLUSTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const FROM_BIRD1: &str = "10.77.0.0/24";
const FROM_GOBGP: &str = "10.88.0.0/24";

/// A BIRD client: router id = its address, one iBGP session to the reflector, exporting
/// `statics` (none for the second BIRD). Direct session and `gateway direct`: every next hop
/// is on the LAN.
fn bird_config(me: Ipv4Addr, statics: &[&str]) -> BirdConfig {
    let mut cfg = BirdConfig::new(me);
    if !statics.is_empty() {
        cfg.statics.push(BirdStatic::new("s4", statics));
    }
    let mut s = BirdBgp::new("reflector", ASN, IpAddr::V4(RR), ASN);
    s.local_address = Some(IpAddr::V4(me));
    // A directly connected iBGP session (BIRD's iBGP default is multihop).
    s.extra = "  direct;\n".into();
    let mut ch = BirdChannel::new("all", "where proto = \"s4\"");
    ch.extra = "gateway direct;".into();
    s.ipv4 = Some(ch);
    cfg.bgp.push(s);
    cfg
}

fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

/// BIRD's routes for `prefix` learned over the session to the reflector.
fn bird_learned(bird: &Bird, prefix: &str) -> interop_tests::Result<Vec<BirdRoute>> {
    Ok(bird
        .show_route(prefix)?
        .into_iter()
        .filter(|r| r.protocol == "reflector")
        .collect())
}

fn gobgp_paths(gobgp: &Gobgp, prefix: &str) -> interop_tests::Result<Vec<GobgpPath>> {
    Ok(gobgp.rib("ipv4")?.remove(prefix).unwrap_or_default())
}

/// Waits until `bird` has exactly one path for `prefix` from the reflector, reflected from
/// `originator` with next hop `next_hop`.
fn wait_bird_reflected(bird: &Bird, who: &str, prefix: &str, originator: Ipv4Addr) {
    wait_until(
        &format!("{who} learns {prefix} reflected"),
        Duration::from_secs(60),
        POLL,
        || {
            let r = bird_learned(bird, prefix)?;
            check(
                r.len() == 1
                    && r[0].originator_id == Some(originator)
                    && r[0].cluster_list == [CLUSTER]
                    && r[0].bgp_next_hop == [v4(originator)]
                    && r[0].local_pref == Some(100)
                    && r[0].as_path.is_empty(),
                || format!("{r:?}"),
            )
        },
    )
    .unwrap();
}

#[test]
fn bramble_reflects_between_bird_and_gobgp_clients() {
    require_bramble();
    let dir = ScratchDir::new("rr-bird-gobgp").unwrap();
    let lan = Lan::new("rr-lan").unwrap();
    let node = Netns::new("rr-node").unwrap();
    let b1 = Netns::new("rr-bird1").unwrap();
    let b2 = Netns::new("rr-bird2").unwrap();
    let g = Netns::new("rr-gobgp").unwrap();
    let mut links = Vec::new();
    for (ns, addr) in [(&node, RR), (&b1, BIRD1), (&b2, BIRD2), (&g, GOBGP)] {
        let l = lan.attach(ns).unwrap();
        l.a().add_addr(&format!("{addr}/24")).unwrap();
        links.push(l);
    }
    let (d1, d2, dg) = (dir.join("bird1"), dir.join("bird2"), dir.join("gobgp"));
    for d in [&d1, &d2, &dg] {
        std::fs::create_dir_all(d).unwrap();
    }

    let bird1 = Bird::start(&b1, &d1, &bird_config(BIRD1, &[FROM_BIRD1])).unwrap();
    let bird2 = Bird::start(&b2, &d2, &bird_config(BIRD2, &[])).unwrap();
    let mut gc = GobgpConfig::new(ASN, GOBGP);
    let mut gn = GobgpNeighbor::new(v4(RR), ASN);
    gn.families = vec!["ipv4-unicast".into()];
    gc.neighbors.push(gn);
    let gobgp = Gobgp::start(&g, &dg, &gc).unwrap();

    let mut cfg = BrambleConfig::new("rr", RR_ID, ASN, dir.path());
    cfg.bgp.cluster_id = Some(CLUSTER);
    for a in [BIRD1, BIRD2, GOBGP] {
        let mut p = BramblePeer::new(v4(a), ASN);
        p.families = vec!["ipv4-unicast".into()];
        p.rr_client = true;
        cfg.bgp.peers.push(p);
    }
    let bramble = Bramble::start(&node, dir.path(), &cfg).unwrap();
    wait_until(
        "all sessions Established",
        Duration::from_secs(60),
        POLL,
        || {
            let mut states = Vec::new();
            for a in [BIRD1, BIRD2, GOBGP] {
                states.push(bramble.peer_state(v4(a))?);
            }
            check(
                states.iter().all(|s| s.as_deref() == Some("Established"))
                    && bird1.is_established("reflector")?
                    && bird2.is_established("reflector")?
                    && gobgp.is_established(v4(RR))?,
                || format!("Bramble sees {states:?}"),
            )
        },
    )
    .unwrap();
    for a in [BIRD1, BIRD2, GOBGP] {
        let st = bramble.peer_status(v4(a)).unwrap().unwrap();
        assert_eq!(st["type"].as_str(), Some("rr-client"), "{st}");
    }

    // BIRD1's route: reflected to BIRD2 and GoBGP (RFC 4456 §8 attributes, next hop kept).
    wait_bird_reflected(&bird2, "BIRD2", FROM_BIRD1, BIRD1);
    wait_until(
        "GoBGP learns the BIRD1 route reflected",
        Duration::from_secs(60),
        POLL,
        || {
            let p = gobgp_paths(&gobgp, FROM_BIRD1)?;
            check(
                p.len() == 1
                    && p[0].originator_id == Some(BIRD1)
                    && p[0].cluster_list == [CLUSTER]
                    && p[0].next_hop == Some(v4(BIRD1))
                    && p[0].neighbor == Some(v4(RR)),
                || format!("{p:?}"),
            )
        },
    )
    .unwrap();
    // Not sent back to BIRD1: it holds only its own static route.
    let back = bird_learned(&bird1, FROM_BIRD1).unwrap();
    assert!(back.is_empty(), "{back:?}");
    let to_bird1 = bramble.routes("adj-out", Some(v4(BIRD1))).unwrap();
    assert!(
        to_bird1
            .iter()
            .all(|r| r["prefix"].as_str() != Some(FROM_BIRD1)),
        "adj-out to BIRD1: {to_bird1:?}"
    );

    // GoBGP's route reaches both BIRDs, reflected with GoBGP's router id.
    gobgp.announce(FROM_GOBGP, v4(GOBGP)).unwrap();
    wait_bird_reflected(&bird1, "BIRD1", FROM_GOBGP, GOBGP);
    wait_bird_reflected(&bird2, "BIRD2", FROM_GOBGP, GOBGP);

    // Withdrawals are reflected too.
    gobgp.withdraw(FROM_GOBGP).unwrap();
    wait_until(
        "the BIRDs drop the GoBGP route",
        Duration::from_secs(60),
        POLL,
        || {
            let a = bird_learned(&bird1, FROM_GOBGP)?;
            let b = bird_learned(&bird2, FROM_GOBGP)?;
            check(a.is_empty() && b.is_empty(), || format!("{a:?} {b:?}"))
        },
    )
    .unwrap();
    drop(links);
}
