//! Scenario 6: best path selection (RFC 4271 §9.1.2.2) between two BIRD peers in the same
//! neighbour AS announcing one prefix: shorter AS_PATH wins, then lower MED, then equal paths
//! form an ECMP set.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use interop_tests::bird::{Bird, BirdBgp, BirdChannel, BirdConfig, BirdStatic};
use interop_tests::bramble::{route_flag, route_peer, Bramble, BrambleConfig, BramblePeer};
use interop_tests::{check, require_bramble, wait_until, Netns, ScratchDir, Veth};

const POLL: Duration = Duration::from_millis(500);
const PREFIX: &str = "10.99.0.0/24";
const NODE_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// BIRD router `i` (1 or 2): AS 65001, address 10.0.i.1, Bramble at 10.0.i.2; exports the
/// static PREFIX through `export_filter`.
fn router_config(i: u8, export_filter: &str) -> BirdConfig {
    let mut cfg = BirdConfig::new(Ipv4Addr::new(10, 0, i, 1));
    cfg.statics.push(BirdStatic::new("s4", &[PREFIX]));
    let mut s = BirdBgp::new(
        "bramble",
        65001,
        IpAddr::V4(Ipv4Addr::new(10, 0, i, 2)),
        64512,
    );
    s.ipv4 = Some(BirdChannel::new("none", export_filter));
    cfg.bgp.push(s);
    cfg
}

fn peer(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, i, 1))
}

/// Bramble's Loc-RIB entries for PREFIX as (peer, best, ecmp), once both paths are there.
fn paths(bramble: &Bramble) -> interop_tests::Result<Vec<(Option<IpAddr>, bool, bool)>> {
    Ok(bramble
        .loc_routes_for(PREFIX)?
        .iter()
        .map(|r| (route_peer(r), route_flag(r, "best"), route_flag(r, "ecmp")))
        .collect())
}

fn wait_for_best(bramble: &Bramble, what: &str, want: IpAddr) {
    wait_until(what, Duration::from_secs(60), POLL, || {
        let p = paths(bramble)?;
        let best: Vec<_> = p
            .iter()
            .filter(|(_, b, _)| *b)
            .map(|(a, _, _)| *a)
            .collect();
        check(p.len() == 2 && best == [Some(want)], || {
            format!("paths {p:?}")
        })
    })
    .unwrap();
}

#[test]
fn best_path_by_as_path_then_med_then_ecmp() {
    require_bramble();
    let dir = ScratchDir::new("br-best").unwrap();
    let node = Netns::new("br-best-node").unwrap();
    let r1 = Netns::new("br-best-r1").unwrap();
    let r2 = Netns::new("br-best-r2").unwrap();
    for (i, r) in [(1u8, &r1), (2u8, &r2)] {
        let l = Veth::new(r, &node).unwrap();
        l.a().add_addr(&format!("10.0.{i}.1/30")).unwrap();
        l.b().add_addr(&format!("10.0.{i}.2/30")).unwrap();
    }
    let d1 = dir.join("r1");
    let d2 = dir.join("r2");
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::create_dir_all(&d2).unwrap();

    // Phase 1: r2 prepends once more, so r1's path is shorter.
    let b1 = Bird::start(&r1, &d1, &router_config(1, "all")).unwrap();
    let prepend = "filter { bgp_path.prepend(65001); accept; }";
    let b2 = Bird::start(&r2, &d2, &router_config(2, prepend)).unwrap();

    let mut cfg = BrambleConfig::new("node", NODE_ID, 64512, dir.path());
    for i in [1u8, 2] {
        cfg.bgp.peers.push(BramblePeer::new(peer(i), 65001));
    }
    let bramble = Bramble::start(&node, dir.path(), &cfg).unwrap();
    wait_until(
        "both sessions Established",
        Duration::from_secs(60),
        POLL,
        || {
            let s1 = bramble.peer_state(peer(1))?;
            let s2 = bramble.peer_state(peer(2))?;
            check(
                s1.as_deref() == Some("Established") && s2.as_deref() == Some("Established"),
                || format!("r1 {s1:?}, r2 {s2:?}"),
            )
        },
    )
    .unwrap();
    wait_for_best(&bramble, "r1 best by shorter AS_PATH", peer(1));

    // Phase 2: equal AS_PATH length; r2 sends the lower MED.
    b1.reconfigure(&router_config(1, "filter { bgp_med = 20; accept; }"))
        .unwrap();
    b2.reconfigure(&router_config(2, "filter { bgp_med = 10; accept; }"))
        .unwrap();
    wait_for_best(&bramble, "r2 best by lower MED", peer(2));

    // Phase 3: equal in every step before the tie-breakers: both in the ECMP set.
    b1.reconfigure(&router_config(1, "all")).unwrap();
    b2.reconfigure(&router_config(2, "all")).unwrap();
    wait_until(
        "both paths flagged ecmp",
        Duration::from_secs(60),
        POLL,
        || {
            let p = paths(&bramble)?;
            let best = p.iter().filter(|(_, b, _)| *b).count();
            check(
                p.len() == 2 && p.iter().all(|(_, _, e)| *e) && best >= 1,
                || format!("paths {p:?}"),
            )
        },
    )
    .unwrap();
}
