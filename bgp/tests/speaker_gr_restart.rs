//! Graceful restart, restarting-speaker side (RFC 4724 §4.1) end to end: a speaker started
//! as restarting sends the Restart State and Forwarding State bits, defers route selection
//! (no UPDATE out, no FIB change) until the raw peer's End-of-RIB for every negotiated
//! family, then programs the FIB, advertises and sends End-of-RIB, and only then reports
//! `restart_complete` to the FIB sink. Also: the selection deferral timer, a peer that is
//! itself restarting (R bit) is not waited for, and a fresh start changes nothing.

mod common;

use common::raw::{msg, RawPeer};
use common::{config, free_port, peer, wait_for};

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bgp::speaker::{spawn, spawn_graceful, Announce, FibSink, GracefulOptions, SpeakerHandle};
use bgp::wire::Prefix;

const SPEAKER_AS: u32 = 65001;
const RAW_AS: u32 = 65002;
const RAW_ADDR: &str = "127.0.0.2";
const LOCAL: &str = "10.99.0.0/24";

// ----- a FIB sink that records what the speaker asks -----

#[derive(Debug, Clone, PartialEq, Eq)]
enum FibCall {
    Set(Prefix),
    Remove(Prefix),
    RestartComplete,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<FibCall>>>);

impl Recorder {
    /// The calls, without the "no route" the speaker sends for its own (local) route.
    fn calls(&self) -> Vec<FibCall> {
        let local: Prefix = LOCAL.parse().unwrap();
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c != FibCall::Remove(local))
            .cloned()
            .collect()
    }
}

impl FibSink for Recorder {
    fn set(&mut self, prefix: Prefix, _next_hops: Vec<IpAddr>) {
        self.0.lock().unwrap().push(FibCall::Set(prefix));
    }
    fn remove(&mut self, prefix: Prefix) {
        self.0.lock().unwrap().push(FibCall::Remove(prefix));
    }
    fn restart_complete(&mut self) {
        self.0.lock().unwrap().push(FibCall::RestartComplete);
    }
}

async fn start(restarting: bool, deferral: Duration) -> (SpeakerHandle, u16, Recorder) {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cfg = config(
        SPEAKER_AS,
        "10.255.0.1",
        Some(listen),
        vec![peer(RAW_ADDR, RAW_AS, port, "127.0.0.1", true)],
    );
    cfg.hold_time = 90;
    let fib = Recorder::default();
    let restart = GracefulOptions {
        restarting,
        selection_deferral: deferral,
        llgr_stale_time: 0,
    };
    let h = if restarting {
        spawn_graceful(cfg, Some(Box::new(fib.clone())), restart).await
    } else {
        spawn(cfg, Some(Box::new(fib.clone()))).await
    }
    .unwrap();
    let n = h
        .announce(vec![Announce {
            prefix: LOCAL.parse().unwrap(),
            next_hop: None,
            communities: vec![],
        }])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);
    (h, port, fib)
}

// ----- hand-built messages (RFC 4271 §4) -----

/// OPEN with IPv4/IPv6 unicast, 4-octet AS and the Graceful Restart capability (RFC 4724
/// §3) for both families with the given Restart State bit.
fn open(restarting: bool) -> Vec<u8> {
    let mut cap = vec![1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1, 65, 4];
    cap.extend_from_slice(&RAW_AS.to_be_bytes());
    let flags_time = (u16::from(restarting) << 15) | 120;
    cap.extend_from_slice(&[64, 10]);
    cap.extend_from_slice(&flags_time.to_be_bytes());
    cap.extend_from_slice(&[0, 1, 1, 0x80, 0, 2, 1, 0x80]);
    let mut body = vec![4];
    body.extend_from_slice(&u16::try_from(RAW_AS).unwrap().to_be_bytes());
    body.extend_from_slice(&90u16.to_be_bytes());
    body.extend_from_slice(&[10, 255, 0, 2]);
    body.push(u8::try_from(cap.len() + 2).unwrap());
    body.push(2);
    body.push(u8::try_from(cap.len()).unwrap());
    body.extend_from_slice(&cap);
    msg(1, &body)
}

fn update(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0];
    b.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    msg(2, &b)
}

/// ORIGIN IGP, AS_PATH [RAW_AS], NEXT_HOP 127.0.0.2; NLRI 10.1.0.0/24.
fn route_update() -> Vec<u8> {
    let mut a = vec![0x40, 1, 1, 0, 0x40, 2, 6, 2, 1];
    a.extend_from_slice(&RAW_AS.to_be_bytes());
    a.extend_from_slice(&[0x40, 3, 4, 127, 0, 0, 2]);
    update(&a, &[24, 10, 1, 0])
}

/// End-of-RIB (RFC 4724 §2): IPv4 an empty UPDATE, IPv6 an empty MP_UNREACH_NLRI.
fn end_of_rib(v6: bool) -> Vec<u8> {
    if v6 {
        update(&[0x80, 15, 3, 0, 2, 1], &[])
    } else {
        update(&[], &[])
    }
}

/// The Graceful Restart capability in an OPEN body: (R bit, [(AFI, F bit)]).
fn gr_capability(open_body: &[u8]) -> Option<(bool, Vec<(u16, bool)>)> {
    let opt_len = usize::from(*open_body.get(9)?);
    let mut params = open_body.get(10..10 + opt_len)?;
    while let [ptype, plen, rest @ ..] = params {
        let (value, next) = rest.split_at(usize::from(*plen));
        if *ptype == 2 {
            let mut caps = value;
            while let [code, clen, crest @ ..] = caps {
                let (v, cnext) = crest.split_at(usize::from(*clen));
                if *code == 64 {
                    let r = v[0] & 0x80 != 0;
                    let fams = v[2..]
                        .chunks(4)
                        .map(|c| (u16::from_be_bytes([c[0], c[1]]), c[3] & 0x80 != 0))
                        .collect();
                    return Some((r, fams));
                }
                caps = cnext;
            }
        }
        params = next;
    }
    None
}

// ----- the raw peer -----

type Raw = RawPeer;

async fn raw_up(port: u16, restarting: bool) -> Raw {
    RawPeer::up(RAW_ADDR, port, &open(restarting)).await
}

fn is_end_of_rib(body: &[u8]) -> bool {
    body == [0, 0, 0, 0] || body == [0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]
}

/// Whether an UPDATE body announces 10.99.0.0/24 in its (IPv4) NLRI.
fn announces_local(body: &[u8]) -> bool {
    body.ends_with(&[24, 10, 99, 0])
}

async fn info(h: &SpeakerHandle) -> String {
    h.status().await.unwrap()[0].info.clone()
}

#[tokio::test]
async fn restarting_speaker_defers_selection_until_end_of_rib() {
    let (h, port, fib) = start(true, Duration::from_secs(120)).await;
    assert!(
        info(&h).await.contains("route selection deferred"),
        "{}",
        info(&h).await
    );
    let mut raw = raw_up(port, false).await;

    // RFC 4724 §3: Restart State bit, Forwarding State bit for both families.
    let (r, fams) = gr_capability(&raw.their_open).expect("GR capability in the OPEN");
    assert!(r, "Restart State bit");
    assert_eq!(fams, vec![(1, true), (2, true)]);

    raw.send(&route_update()).await;
    wait_for("the peer's route in the Loc-RIB", || async {
        common::loc(&h)
            .await
            .iter()
            .any(|r| r.prefix.to_string() == "10.1.0.0/24")
    })
    .await;
    assert!(
        info(&h).await.contains("route selection deferred"),
        "{}",
        info(&h).await
    );
    // Deferred: nothing advertised, nothing sent to the FIB.
    let early = raw.updates(Duration::from_millis(700)).await;
    assert!(early.is_empty(), "advertised before End-of-RIB: {early:?}");
    assert!(fib.calls().is_empty(), "{:?}", fib.calls());

    // End-of-RIB for IPv4 only: still waiting for IPv6.
    raw.send(&end_of_rib(false)).await;
    let early = raw.updates(Duration::from_millis(500)).await;
    assert!(
        early.is_empty(),
        "advertised before every End-of-RIB: {early:?}"
    );
    assert!(fib.calls().is_empty(), "{:?}", fib.calls());

    raw.send(&end_of_rib(true)).await;
    let out = raw.updates(Duration::from_secs(2)).await;
    let announced = out.iter().position(|b| announces_local(b));
    let eor = out.iter().position(|b| is_end_of_rib(b));
    assert!(announced.is_some(), "our route was not advertised: {out:?}");
    assert!(eor.is_some(), "no End-of-RIB: {out:?}");
    assert!(announced < eor, "End-of-RIB before our routes: {out:?}");
    wait_for("restart_complete", || async {
        fib.calls().contains(&FibCall::RestartComplete)
    })
    .await;
    // The learned route reached the FIB before the stale forwarding state may go.
    assert_eq!(
        fib.calls(),
        vec![
            FibCall::Set("10.1.0.0/24".parse().unwrap()),
            FibCall::RestartComplete
        ]
    );
    assert!(
        info(&h).await.contains("graceful restart complete"),
        "{}",
        info(&h).await
    );

    // The restart is over: a session that comes up later must not claim one (RFC 4724 §4.1).
    drop(raw);
    wait_for("the session gone", || async {
        h.status().await.unwrap()[0].state != "Established"
    })
    .await;
    let raw = raw_up(port, false).await;
    let (r, _) = gr_capability(&raw.their_open).expect("GR capability in the second OPEN");
    assert!(
        !r,
        "Restart State bit still set after the restart completed"
    );
}

#[tokio::test]
async fn selection_deferral_timer_ends_the_wait() {
    let (h, port, fib) = start(true, Duration::from_secs(2)).await;
    let mut raw = raw_up(port, false).await;
    raw.send(&route_update()).await;
    // No End-of-RIB ever: the timer (RFC 4724 §4.1 (b)) lets selection go ahead.
    let out = raw.updates(Duration::from_secs(8)).await;
    assert!(out.iter().any(|b| announces_local(b)), "{out:?}");
    assert!(out.iter().any(|b| is_end_of_rib(b)), "{out:?}");
    assert_eq!(
        fib.calls(),
        vec![
            FibCall::Set("10.1.0.0/24".parse().unwrap()),
            FibCall::RestartComplete
        ]
    );
    drop(h);
}

#[tokio::test]
async fn a_peer_that_is_itself_restarting_is_not_waited_for() {
    let (h, port, fib) = start(true, Duration::from_secs(120)).await;
    // The peer sets the Restart State bit: RFC 4724 §4.1 excludes it from the wait.
    let mut raw = raw_up(port, true).await;
    let out = raw.updates(Duration::from_secs(2)).await;
    assert!(out.iter().any(|b| announces_local(b)), "{out:?}");
    assert!(out.iter().any(|b| is_end_of_rib(b)), "{out:?}");
    wait_for("restart_complete", || async {
        fib.calls().contains(&FibCall::RestartComplete)
    })
    .await;
    drop(h);
}

#[tokio::test]
async fn a_fresh_start_neither_sets_the_bits_nor_waits() {
    let (h, port, fib) = start(false, Duration::from_secs(120)).await;
    let mut raw = raw_up(port, false).await;
    let (r, fams) = gr_capability(&raw.their_open).expect("GR capability in the OPEN");
    assert!(!r);
    assert_eq!(fams, vec![(1, false), (2, false)]);
    let out = raw.updates(Duration::from_secs(2)).await;
    assert!(out.iter().any(|b| announces_local(b)), "{out:?}");
    assert!(out.iter().any(|b| is_end_of_rib(b)), "{out:?}");
    raw.send(&route_update()).await;
    wait_for("the route in the FIB", || async {
        fib.calls() == vec![FibCall::Set("10.1.0.0/24".parse().unwrap())]
    })
    .await;
    drop(h);
}

#[tokio::test]
async fn without_peers_selection_goes_ahead_at_once() {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let fib = Recorder::default();
    let _h = spawn_graceful(
        config(SPEAKER_AS, "10.255.0.1", Some(listen), vec![]),
        Some(Box::new(fib.clone())),
        GracefulOptions {
            restarting: true,
            selection_deferral: Duration::from_secs(120),
            llgr_stale_time: 0,
        },
    )
    .await
    .unwrap();
    wait_for("restart_complete", || async {
        fib.calls() == vec![FibCall::RestartComplete]
    })
    .await;
}
