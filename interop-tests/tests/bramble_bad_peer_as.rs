//! Scenario 5: Bramble configured with the wrong AS for BIRD: Bramble sends NOTIFICATION
//! OPEN Message Error / Bad Peer AS (RFC 4271 §6.2), BIRD reports it, the agent stays up.

use std::time::Duration;

use interop_tests::bird::{Bird, BirdBgp, BirdConfig};
use interop_tests::bramble::{Bramble, BrambleConfig, BramblePeer};
use interop_tests::topo::PointToPoint as P2p;
use interop_tests::{check, require_bramble, wait_until, ScratchDir};

const POLL: Duration = Duration::from_millis(500);

#[test]
fn wrong_peer_as_is_reported_on_both_sides() {
    require_bramble();
    let dir = ScratchDir::new("br-badas").unwrap();
    let net = P2p::new("br-badas-bird", "br-badas-node").unwrap();

    // BIRD is AS 65000 and expects Bramble as AS 64512, which it is.
    let mut bcfg = BirdConfig::new(P2p::A4);
    bcfg.bgp
        .push(BirdBgp::new("bramble", 65000, P2p::b4(), 64512));
    let bird = Bird::start(&net.a, dir.path(), &bcfg).unwrap();

    // Bramble believes BIRD is AS 65099.
    let mut cfg = BrambleConfig::new("node1", P2p::B4, 64512, dir.path());
    cfg.bgp.peers.push(BramblePeer::new(P2p::a4(), 65099));
    let mut bramble = Bramble::start(&net.b, dir.path(), &cfg).unwrap();

    wait_until(
        "BIRD reports Bad peer AS",
        Duration::from_secs(60),
        POLL,
        || {
            let info = bird.protocol_info("bramble")?;
            let err = info.last_error.clone().unwrap_or_default();
            check(err.contains("Received: Bad peer AS"), || {
                format!("BIRD {:?}, last error {err:?}", info.bgp_state)
            })
        },
    )
    .unwrap();

    wait_until(
        "Bramble's status says Bad Peer AS",
        Duration::from_secs(30),
        POLL,
        || {
            let st = bramble.peer_status(P2p::a4())?;
            let info = st
                .as_ref()
                .and_then(|s| s["info"].as_str())
                .unwrap_or_default()
                .to_ascii_lowercase();
            check(info.contains("bad peer as"), || {
                format!("status row {st:?}")
            })
        },
    )
    .unwrap();

    assert_ne!(bird.protocol_state("bramble").unwrap(), "Established");
    assert_ne!(
        bramble.peer_state(P2p::a4()).unwrap().as_deref(),
        Some("Established")
    );
    bramble.process().check_running().unwrap();
    assert!(bramble.status().is_ok(), "the agent still answers");
}
