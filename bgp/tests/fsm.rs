//! The RFC 4271 §8 FSM in virtual time: two FSMs talking through a harness, plus one test
//! per rule.

#[path = "fsm/harness.rs"]
mod harness;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp::fsm::{ConnId, Fsm, FsmConfig, Input, Output, State, Timer, LARGE_HOLD_TIME};
use bgp::wire::{
    AddPathMode, Capability, Family, GracefulRestartCap, Message, Notification, Open, RouteRefresh,
    Update, AS_TRANS,
};
use harness::{Pair, Side};

const ID_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const ID_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn cfg(local: u32, remote: u32, id: Ipv4Addr) -> FsmConfig {
    let mut c = FsmConfig::new(local, remote, id);
    c.connect_retry = Duration::from_secs(10);
    c.capabilities = vec![
        Capability::MultiProtocol(Family::IPV4_UNICAST),
        Capability::RouteRefresh,
        Capability::FourOctetAs(local),
    ];
    c
}

fn pair() -> Pair {
    Pair::new(cfg(65001, 65002, ID_A), cfg(65002, 65001, ID_B))
}

fn sent_notification(side: &Side) -> Vec<Notification> {
    side.log
        .iter()
        .filter_map(|o| match o {
            Output::SendMessage(_, Message::Notification(n)) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

fn downs(log: &[Output]) -> Vec<String> {
    log.iter()
        .filter_map(|o| match o {
            Output::Down { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn is_keepalive(o: &Output) -> bool {
    matches!(o, Output::SendMessage(_, Message::Keepalive))
}

// ===== two FSMs =====

#[test]
fn both_active_collide_and_keep_the_higher_ids_connection() {
    let mut p = pair();
    p.start_both();
    assert_eq!(p.state(0), State::Established);
    assert_eq!(p.state(1), State::Established);
    // B (10.0.0.2) has the higher identifier: the connection B initiated survives on both.
    let a_conn = p.sides[0].fsm.established_conn().unwrap();
    let b_conn = p.sides[1].fsm.established_conn().unwrap();
    assert_eq!(a_conn, b_conn);
    assert_eq!(a_conn, ConnId(2), "B's Connect made connection 2");
    // The loser was closed with Cease / Connection Collision Resolution.
    let ceases: Vec<_> = p.sides.iter().flat_map(sent_notification).collect();
    assert!(
        ceases.iter().all(|n| (n.code, n.subcode) == (6, 7)),
        "{ceases:?}"
    );
    assert!(!ceases.is_empty());
    // Each side reported Established exactly once.
    for s in 0..2 {
        assert_eq!(
            p.count(s, |o| matches!(o, Output::Established(_))),
            1,
            "side {s}"
        );
    }
}

#[test]
fn state_changes_walk_the_rfc_states() {
    let mut p = Pair::new(cfg(65001, 65002, ID_A), {
        let mut b = cfg(65002, 65001, ID_B);
        b.passive = true;
        b
    });
    p.input(1, Input::ManualStart);
    assert_eq!(p.state(1), State::Active);
    p.input(0, Input::ManualStart);
    let changes: Vec<(State, State)> = p.sides[0]
        .log
        .iter()
        .filter_map(|o| match o {
            Output::StateChanged { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (State::Idle, State::Connect),
            (State::Connect, State::OpenSent),
            (State::OpenSent, State::OpenConfirm),
            (State::OpenConfirm, State::Established),
        ]
    );
    let names: Vec<String> = [
        State::Idle,
        State::Connect,
        State::Active,
        State::OpenSent,
        State::OpenConfirm,
        State::Established,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        names,
        [
            "Idle",
            "Connect",
            "Active",
            "OpenSent",
            "OpenConfirm",
            "Established"
        ]
    );
}

#[test]
fn passive_side_never_connects() {
    let mut b = cfg(65002, 65001, ID_B);
    b.passive = true;
    let mut a = cfg(65001, 65002, ID_A);
    a.passive = true;
    let mut p = Pair::new(a, b);
    p.input(0, Input::ManualStart);
    p.input(1, Input::ManualStart);
    p.advance(Duration::from_secs(3600));
    for s in 0..2 {
        assert_eq!(p.state(s), State::Active);
        assert_eq!(p.count(s, |o| matches!(o, Output::Connect)), 0);
    }
}

#[test]
fn keepalives_every_third_of_the_negotiated_hold_time() {
    let mut a = cfg(65001, 65002, ID_A);
    a.hold_time = 30;
    let mut p = Pair::new(a, cfg(65002, 65001, ID_B)); // B offers 90
    p.start_both();
    assert_eq!(p.state(0), State::Established);
    let conn = p.sides[1].fsm.established_conn().unwrap();
    let neg = p.sides[1].fsm.negotiated(conn).unwrap().clone();
    assert_eq!((neg.hold_time, neg.keepalive), (30, 10));
    let before = p.count(1, is_keepalive);
    p.advance(Duration::from_secs(600));
    assert_eq!(p.state(0), State::Established);
    assert_eq!(p.state(1), State::Established);
    // 600 s / 10 s = 60 keepalives in ten minutes.
    assert_eq!(p.count(1, is_keepalive) - before, 60);
}

#[test]
fn hold_time_zero_means_no_keepalives_and_no_hold_timer() {
    let mut a = cfg(65001, 65002, ID_A);
    a.hold_time = 0;
    let mut p = Pair::new(a, cfg(65002, 65001, ID_B));
    p.start_both();
    assert_eq!(p.state(0), State::Established);
    let ka_before = [p.count(0, is_keepalive), p.count(1, is_keepalive)];
    p.advance(Duration::from_secs(24 * 3600));
    assert_eq!(p.state(0), State::Established);
    assert_eq!(p.state(1), State::Established);
    assert_eq!(
        [p.count(0, is_keepalive), p.count(1, is_keepalive)],
        ka_before
    );
    for s in 0..2 {
        assert!(p.sides[s]
            .timers
            .keys()
            .all(|t| !matches!(t, Timer::Hold(_) | Timer::Keepalive(_))));
    }
}

#[test]
fn manual_stop_with_cease_takes_the_peer_down_with_a_reason() {
    let mut p = pair();
    p.start_both();
    assert_eq!(p.state(1), State::Established);
    let cease = Notification {
        code: 6,
        subcode: 2,
        data: b"\x0bmaintenance".to_vec(),
    };
    p.input(0, Input::ManualStop(Some(cease)));
    assert_eq!(p.state(0), State::Idle);
    assert_eq!(p.state(1), State::Idle);
    let reasons = downs(&p.sides[1].log);
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].contains("Cease / Administrative Shutdown")
            && reasons[0].contains("maintenance"),
        "{reasons:?}"
    );
    // The stopped side stays Idle; the other restarts after its idle hold, finds the stopped
    // side refusing and keeps retrying without ever getting up.
    p.advance(Duration::from_secs(600));
    assert_eq!(p.state(0), State::Idle);
    assert_ne!(p.state(1), State::Established);
    // A ManualStart brings it back.
    p.input(0, Input::ManualStart);
    assert_eq!(p.state(0), State::Established);
}

#[test]
fn session_restarts_after_idle_hold_following_an_error() {
    let mut p = pair();
    p.start_both();
    let conn = p.sides[0].fsm.established_conn().unwrap();
    // A sends garbage that B's codec rejects.
    p.input(
        1,
        Input::DecodeError(
            conn,
            Notification {
                code: 1,
                subcode: 2,
                data: vec![0, 5],
            },
        ),
    );
    assert_eq!(p.state(0), State::Idle);
    assert_eq!(p.state(1), State::Idle);
    assert!(downs(&p.sides[0].log)[0].contains("received NOTIFICATION: Message Header Error"));
    assert!(downs(&p.sides[1].log)[0].contains("sent NOTIFICATION: Message Header Error"));
    p.advance(Duration::from_secs(30));
    assert_eq!(p.state(0), State::Established);
    assert_eq!(p.state(1), State::Established);
}

#[test]
fn unreachable_peer_retries_with_jittered_connect_retry() {
    let mut p = pair();
    p.reachable = false;
    p.start_both();
    assert_eq!(p.state(0), State::Active);
    p.advance(Duration::from_secs(100));
    // 10 s × 0.75..1.0 per attempt: 1 + between 10 and 13 attempts in 100 s.
    let connects = p.count(0, |o| matches!(o, Output::Connect));
    assert!((11..=14).contains(&connects), "{connects}");
    p.reachable = true;
    p.advance(Duration::from_secs(10));
    assert_eq!(p.state(0), State::Established);
}

// ===== targeted rules, one FSM =====

fn t0() -> Instant {
    Instant::now()
}

fn open(asn: u32, id: Ipv4Addr, hold: u16, caps: Vec<Capability>) -> Open {
    Open {
        version: 4,
        asn,
        hold_time: hold,
        router_id: id,
        capabilities: caps,
    }
}

fn peer_open() -> Open {
    open(65002, ID_B, 90, vec![Capability::FourOctetAs(65002)])
}

fn notifications(out: &[Output]) -> Vec<(ConnId, Notification)> {
    out.iter()
        .filter_map(|o| match o {
            Output::SendMessage(id, Message::Notification(n)) => Some((*id, n.clone())),
            _ => None,
        })
        .collect()
}

fn armed(out: &[Output], timer: Timer) -> Option<Instant> {
    out.iter().rev().find_map(|o| match o {
        Output::ArmTimer(t, at) if *t == timer => Some(*at),
        _ => None,
    })
}

const C1: ConnId = ConnId(1);
const C2: ConnId = ConnId(2);

/// An FSM Established on C1 (incoming) at `now`.
fn established(cfg: FsmConfig, now: Instant) -> Fsm {
    let mut f = Fsm::with_seed(cfg, 7);
    f.handle(Input::ManualStart, now);
    f.handle(Input::TcpConnected(C1, false), now);
    f.handle(Input::MessageReceived(C1, Message::Open(peer_open())), now);
    let out = f.handle(Input::MessageReceived(C1, Message::Keepalive), now);
    assert!(out.iter().any(|o| matches!(o, Output::Established(_))));
    f
}

#[test]
fn large_hold_timer_until_open_then_negotiated() {
    let now = t0();
    let mut f = Fsm::new(cfg(65001, 65002, ID_A));
    f.handle(Input::ManualStart, now);
    let out = f.handle(Input::TcpConnected(C1, true), now);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::SendMessage(C1, Message::Open(o)) if o.asn == 65001)));
    assert_eq!(armed(&out, Timer::Hold(C1)), Some(now + LARGE_HOLD_TIME));
    assert_eq!(LARGE_HOLD_TIME, Duration::from_secs(240));
    let later = now + Duration::from_secs(5);
    let out = f.handle(
        Input::MessageReceived(C1, Message::Open(open(65002, ID_B, 45, vec![]))),
        later,
    );
    assert_eq!(f.state(), State::OpenConfirm);
    assert!(out.iter().any(is_keepalive));
    assert_eq!(
        armed(&out, Timer::Hold(C1)),
        Some(later + Duration::from_secs(45))
    );
    assert_eq!(
        armed(&out, Timer::Keepalive(C1)),
        Some(later + Duration::from_secs(15))
    );
}

#[test]
fn hold_timer_expiry_sends_code_4_and_backs_off() {
    let now = t0();
    let mut f = established(cfg(65001, 65002, ID_A), now);
    let out = f.handle(
        Input::TimerExpired(Timer::Hold(C1)),
        now + Duration::from_secs(90),
    );
    assert_eq!(
        notifications(&out),
        vec![(
            C1,
            Notification {
                code: 4,
                subcode: 0,
                data: vec![]
            }
        )]
    );
    assert!(out.contains(&Output::CloseConnection(C1)));
    assert_eq!(f.state(), State::Idle);
    assert!(downs(&out)[0].contains("Hold Timer Expired"));
    assert_eq!(
        armed(&out, Timer::IdleHold),
        Some(now + Duration::from_secs(95))
    );
}

#[test]
fn idle_hold_doubles_up_to_a_cap_and_resets_after_a_stable_session() {
    let mut c = cfg(65001, 65002, ID_A);
    c.idle_hold = Duration::from_secs(2);
    c.idle_hold_max = Duration::from_secs(20);
    c.idle_hold_reset = Duration::from_secs(60);
    let mut f = Fsm::with_seed(c, 3);
    let mut now = t0();
    let mut delays = Vec::new();
    f.handle(Input::ManualStart, now);
    for _ in 0..6 {
        f.handle(Input::TcpConnected(C1, true), now);
        // Wrong AS: an OPEN error each time.
        let out = f.handle(
            Input::MessageReceived(C1, Message::Open(open(65009, ID_B, 90, vec![]))),
            now,
        );
        let at = armed(&out, Timer::IdleHold).unwrap();
        delays.push((at - now).as_secs());
        // While Idle-holding, connections are refused.
        let out = f.handle(Input::TcpConnected(C2, false), now);
        assert!(out.contains(&Output::CloseConnection(C2)));
        now = at;
        let out = f.handle(Input::TimerExpired(Timer::IdleHold), now);
        assert!(out.contains(&Output::Connect));
    }
    assert_eq!(delays, vec![2, 4, 8, 16, 20, 20]);

    // A session that stays up past idle_hold_reset starts over at 2 s.
    f.handle(Input::TcpConnected(C1, true), now);
    f.handle(Input::MessageReceived(C1, Message::Open(peer_open())), now);
    f.handle(Input::MessageReceived(C1, Message::Keepalive), now);
    assert_eq!(f.state(), State::Established);
    now += Duration::from_secs(61);
    let out = f.handle(Input::TcpClosed(C1), now);
    assert_eq!(
        armed(&out, Timer::IdleHold),
        Some(now + Duration::from_secs(2))
    );
}

#[test]
fn connect_retry_is_jittered_between_three_quarters_and_all() {
    let mut c = cfg(65001, 65002, ID_A);
    c.connect_retry = Duration::from_secs(120);
    let now = t0();
    let mut seen = Vec::new();
    for seed in 0..200 {
        let mut f = Fsm::with_seed(c.clone(), seed);
        let out = f.handle(Input::ManualStart, now);
        assert_eq!(f.state(), State::Connect);
        let d = armed(&out, Timer::ConnectRetry).unwrap() - now;
        assert!(
            d >= Duration::from_secs(90) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        seen.push(d);
    }
    seen.sort();
    seen.dedup();
    assert!(seen.len() > 100, "jitter must vary");

    // Connect fails → Active; ConnectRetry expiry → Connect again.
    let mut f = Fsm::with_seed(c, 1);
    f.handle(Input::ManualStart, now);
    f.handle(Input::TcpFailed(C1), now);
    assert_eq!(f.state(), State::Active);
    let out = f.handle(Input::TimerExpired(Timer::ConnectRetry), now);
    assert!(out.contains(&Output::Connect));
    assert_eq!(f.state(), State::Connect);
}

#[test]
fn passive_fsm_waits_in_active() {
    let mut c = cfg(65001, 65002, ID_A);
    c.passive = true;
    let now = t0();
    let mut f = Fsm::new(c);
    let out = f.handle(Input::ManualStart, now);
    assert_eq!(f.state(), State::Active);
    assert!(!out.contains(&Output::Connect));
    assert!(armed(&out, Timer::ConnectRetry).is_none());
    let out = f.handle(Input::TimerExpired(Timer::ConnectRetry), now);
    assert!(!out.contains(&Output::Connect));
    f.handle(Input::TcpConnected(C1, false), now);
    assert_eq!(f.state(), State::OpenSent);
}

#[test]
fn bad_peer_as_carries_the_two_octet_my_as_field() {
    let now = t0();
    for (asn, data) in [(65009u32, 65009u16), (4_200_000_000, AS_TRANS)] {
        let mut f = Fsm::new(cfg(65001, 65002, ID_A));
        f.handle(Input::ManualStart, now);
        f.handle(Input::TcpConnected(C1, true), now);
        let out = f.handle(
            Input::MessageReceived(C1, Message::Open(open(asn, ID_B, 90, vec![]))),
            now,
        );
        assert_eq!(
            notifications(&out),
            vec![(
                C1,
                Notification {
                    code: 2,
                    subcode: 2,
                    data: data.to_be_bytes().to_vec()
                }
            )]
        );
        assert_eq!(f.state(), State::Idle);
        assert!(downs(&out)[0].contains("Bad Peer AS"));
    }
}

#[test]
fn four_octet_remote_as_is_accepted() {
    let now = t0();
    let mut f = Fsm::new(cfg(65001, 4_200_000_000, ID_A));
    f.handle(Input::ManualStart, now);
    f.handle(Input::TcpConnected(C1, true), now);
    let caps = vec![Capability::FourOctetAs(4_200_000_000)];
    f.handle(
        Input::MessageReceived(C1, Message::Open(open(4_200_000_000, ID_B, 90, caps))),
        now,
    );
    assert_eq!(f.state(), State::OpenConfirm);
    assert!(f.negotiated(C1).unwrap().four_octet_as);
}

#[test]
fn bad_bgp_identifier_for_our_own_id_or_zero() {
    let now = t0();
    for (remote, id) in [(65002, ID_A), (65001, ID_A), (65002, Ipv4Addr::UNSPECIFIED)] {
        let mut f = Fsm::new(cfg(65001, remote, ID_A));
        f.handle(Input::ManualStart, now);
        f.handle(Input::TcpConnected(C1, true), now);
        let out = f.handle(
            Input::MessageReceived(C1, Message::Open(open(remote, id, 90, vec![]))),
            now,
        );
        let n = notifications(&out);
        assert_eq!(
            (n[0].1.code, n[0].1.subcode),
            (2, 3),
            "remote AS {remote}, id {id}"
        );
        assert_eq!(f.state(), State::Idle);
    }
}

#[test]
fn unacceptable_hold_time_and_version() {
    let now = t0();
    for (version, hold, expect) in [(4u8, 1u16, (2u8, 6u8)), (4, 2, (2, 6)), (3, 90, (2, 1))] {
        let mut f = Fsm::new(cfg(65001, 65002, ID_A));
        f.handle(Input::ManualStart, now);
        f.handle(Input::TcpConnected(C1, true), now);
        let mut o = peer_open();
        o.version = version;
        o.hold_time = hold;
        let out = f.handle(Input::MessageReceived(C1, Message::Open(o)), now);
        let n = notifications(&out);
        assert_eq!((n[0].1.code, n[0].1.subcode), expect);
    }
}

fn negotiate(ours: Vec<Capability>, theirs: Vec<Capability>) -> bgp::fsm::Negotiated {
    let mut c = cfg(65001, 65002, ID_A);
    c.capabilities = ours;
    let now = t0();
    let mut f = Fsm::new(c);
    f.handle(Input::ManualStart, now);
    f.handle(Input::TcpConnected(C1, true), now);
    f.handle(
        Input::MessageReceived(C1, Message::Open(open(65002, ID_B, 90, theirs))),
        now,
    );
    f.negotiated(C1).unwrap().clone()
}

#[test]
fn families_are_the_intersection_or_ipv4_unicast_by_default() {
    use Capability::MultiProtocol as Mp;
    let v4 = Family::IPV4_UNICAST;
    let v6 = Family::IPV6_UNICAST;
    assert_eq!(
        negotiate(vec![Mp(v4), Mp(v6)], vec![Mp(v6)]).families,
        vec![v6]
    );
    assert_eq!(negotiate(vec![Mp(v4), Mp(v6)], vec![]).families, vec![v4]);
    assert_eq!(negotiate(vec![], vec![Mp(v4), Mp(v6)]).families, vec![v4]);
    assert_eq!(
        negotiate(vec![Mp(v6), Mp(v4)], vec![Mp(v4), Mp(v6)]).families,
        vec![v4, v6]
    );
}

#[test]
fn add_path_directions_follow_both_modes() {
    use AddPathMode::*;
    use Capability::{AddPath, MultiProtocol as Mp};
    let v4 = Family::IPV4_UNICAST;
    let v6 = Family::IPV6_UNICAST;
    let ours = vec![Mp(v4), Mp(v6), AddPath(vec![(v4, Both), (v6, Receive)])];
    let theirs = vec![Mp(v4), Mp(v6), AddPath(vec![(v4, Receive), (v6, Both)])];
    let n = negotiate(ours, theirs);
    assert_eq!(n.decode.add_path_rx, vec![v6]);
    assert_eq!(n.encode.add_path_tx, vec![v4]);

    let ours = vec![Mp(v4), AddPath(vec![(v4, Both)])];
    let n = negotiate(ours.clone(), vec![Mp(v4), AddPath(vec![(v4, Both)])]);
    assert_eq!(
        (n.decode.add_path_rx.clone(), n.encode.add_path_tx.clone()),
        (vec![v4], vec![v4])
    );
    let n = negotiate(ours, vec![Mp(v4)]);
    assert!(n.decode.add_path_rx.is_empty() && n.encode.add_path_tx.is_empty());
}

#[test]
fn optional_capabilities_need_both_sides() {
    let gr = GracefulRestartCap {
        restart_state: false,
        notification: true,
        restart_time: 120,
        families: vec![(Family::IPV4_UNICAST, true)],
    };
    let all = vec![
        Capability::ExtendedMessage,
        Capability::RouteRefresh,
        Capability::EnhancedRouteRefresh,
        Capability::FourOctetAs(65001),
        Capability::GracefulRestart(gr.clone()),
    ];
    let n = negotiate(all.clone(), {
        let mut t = all.clone();
        t[3] = Capability::FourOctetAs(65002);
        t
    });
    assert!(n.decode.extended_message && n.encode.extended_message);
    assert!(n.route_refresh && n.enhanced_route_refresh && n.four_octet_as);
    assert!(n.decode.four_octet_as && n.encode.four_octet_as);
    assert_eq!(n.graceful_restart, Some(gr));
    assert_eq!(n.peer_open.router_id, ID_B);

    let n = negotiate(all, vec![]);
    assert!(!n.decode.extended_message && !n.encode.extended_message);
    assert!(!n.route_refresh && !n.enhanced_route_refresh && !n.four_octet_as);
    assert_eq!(n.graceful_restart, None);
    assert_eq!(n.decode.max_message_len(), 4096);
}

#[test]
fn hold_time_is_the_smaller_offer() {
    let mut c = cfg(65001, 65002, ID_A);
    c.hold_time = 9;
    let now = t0();
    let mut f = Fsm::new(c);
    f.handle(Input::ManualStart, now);
    f.handle(Input::TcpConnected(C1, true), now);
    f.handle(Input::MessageReceived(C1, Message::Open(peer_open())), now);
    let n = f.negotiated(C1).unwrap();
    assert_eq!((n.hold_time, n.keepalive), (9, 3));
}

/// Two connections in OpenSent, then the peer's OPEN arrives on `open_on`.
fn collide(local: Ipv4Addr, remote: Ipv4Addr, open_on: ConnId) -> (Fsm, Vec<Output>) {
    let now = t0();
    let mut f = Fsm::new(cfg(65001, 65002, local));
    f.handle(Input::ManualStart, now);
    f.handle(Input::TcpConnected(C1, true), now); // ours
    f.handle(Input::TcpConnected(C2, false), now); // theirs
    let out = f.handle(
        Input::MessageReceived(open_on, Message::Open(open(65002, remote, 90, vec![]))),
        now,
    );
    (f, out)
}

#[test]
fn collision_keeps_the_connection_initiated_by_the_higher_identifier() {
    let hi = Ipv4Addr::new(192, 0, 2, 9);
    let lo = Ipv4Addr::new(192, 0, 2, 1);
    let cease = Notification {
        code: 6,
        subcode: 7,
        data: vec![],
    };
    // We are higher: our outgoing C1 survives, whichever connection the OPEN came on.
    for open_on in [C1, C2] {
        let (f, out) = collide(hi, lo, open_on);
        assert_eq!(notifications(&out), vec![(C2, cease.clone())]);
        assert!(out.contains(&Output::CloseConnection(C2)));
        assert!(!out.contains(&Output::CloseConnection(C1)));
        let expect = if open_on == C1 {
            State::OpenConfirm
        } else {
            State::OpenSent
        };
        assert_eq!(f.state(), expect);
        assert!(downs(&out).is_empty());
    }
    // We are lower: the peer's C2 survives.
    for open_on in [C1, C2] {
        let (f, out) = collide(lo, hi, open_on);
        assert_eq!(notifications(&out), vec![(C1, cease.clone())]);
        assert!(!out.contains(&Output::CloseConnection(C2)));
        assert_ne!(f.state(), State::Idle);
    }
}

#[test]
fn collision_loser_cease_does_not_penalise_the_session() {
    let now = t0();
    let mut f = Fsm::new(cfg(65001, 65002, ID_A));
    f.handle(Input::ManualStart, now);
    f.handle(Input::TcpConnected(C1, true), now);
    let cease = Notification {
        code: 6,
        subcode: 7,
        data: vec![],
    };
    let out = f.handle(
        Input::MessageReceived(C1, Message::Notification(cease)),
        now,
    );
    assert_eq!(f.state(), State::Active);
    assert!(armed(&out, Timer::ConnectRetry).is_some());
    assert!(armed(&out, Timer::IdleHold).is_none());
}

#[test]
fn incoming_connection_while_established_is_refused() {
    let now = t0();
    let mut f = established(cfg(65001, 65002, ID_A), now);
    let out = f.handle(Input::TcpConnected(C2, false), now);
    assert_eq!(
        notifications(&out),
        vec![(
            C2,
            Notification {
                code: 6,
                subcode: 7,
                data: vec![]
            }
        )]
    );
    assert!(out.contains(&Output::CloseConnection(C2)));
    assert_eq!(f.state(), State::Established);
    assert_eq!(f.established_conn(), Some(C1));
}

#[test]
fn notification_received_goes_idle_with_the_reason() {
    let now = t0();
    let mut f = established(cfg(65001, 65002, ID_A), now);
    let n = Notification {
        code: 6,
        subcode: 4,
        data: vec![],
    };
    let out = f.handle(Input::MessageReceived(C1, Message::Notification(n)), now);
    assert_eq!(f.state(), State::Idle);
    assert!(
        notifications(&out).is_empty(),
        "never answer a NOTIFICATION"
    );
    assert_eq!(
        downs(&out),
        vec!["received NOTIFICATION: Cease / Administrative Reset".to_string()]
    );
    assert!(out.contains(&Output::StateChanged {
        from: State::Established,
        to: State::Idle
    }));
}

#[test]
fn unexpected_messages_are_fsm_errors_with_rfc6608_subcodes() {
    let now = t0();
    let fsm_err = |sub| Notification {
        code: 5,
        subcode: sub,
        data: vec![],
    };
    // OpenSent: anything but OPEN.
    let mut f = Fsm::new(cfg(65001, 65002, ID_A));
    f.handle(Input::ManualStart, now);
    f.handle(Input::TcpConnected(C1, true), now);
    let out = f.handle(Input::MessageReceived(C1, Message::Keepalive), now);
    assert_eq!(notifications(&out), vec![(C1, fsm_err(1))]);
    assert_eq!(f.state(), State::Idle);
    // OpenConfirm: an UPDATE.
    let mut f = Fsm::new(cfg(65001, 65002, ID_A));
    f.handle(Input::ManualStart, now);
    f.handle(Input::TcpConnected(C1, true), now);
    f.handle(Input::MessageReceived(C1, Message::Open(peer_open())), now);
    let out = f.handle(
        Input::MessageReceived(C1, Message::Update(Update::default())),
        now,
    );
    assert_eq!(notifications(&out), vec![(C1, fsm_err(2))]);
    // Established: a second OPEN.
    let mut f = established(cfg(65001, 65002, ID_A), now);
    let out = f.handle(Input::MessageReceived(C1, Message::Open(peer_open())), now);
    assert_eq!(notifications(&out), vec![(C1, fsm_err(3))]);
    assert!(downs(&out)[0].contains("Established State"));
}

#[test]
fn updates_and_route_refresh_pass_through_and_restart_the_hold_timer() {
    let now = t0();
    let mut f = established(cfg(65001, 65002, ID_A), now);
    let later = now + Duration::from_secs(30);
    let u = Update {
        treat_as_withdraw: true,
        ..Update::default()
    };
    let out = f.handle(
        Input::MessageReceived(C1, Message::Update(u.clone())),
        later,
    );
    assert!(out.contains(&Output::Update(u)));
    assert_eq!(
        armed(&out, Timer::Hold(C1)),
        Some(later + Duration::from_secs(90))
    );
    let rr = RouteRefresh {
        family: Family::IPV4_UNICAST,
        subtype: 0,
    };
    let out = f.handle(Input::MessageReceived(C1, Message::RouteRefresh(rr)), later);
    assert!(out.contains(&Output::RouteRefresh(rr)));
}

#[test]
fn decode_error_sends_the_notification_and_goes_down() {
    let now = t0();
    let mut f = established(cfg(65001, 65002, ID_A), now);
    let n = Notification {
        code: 3,
        subcode: 1,
        data: vec![],
    };
    let out = f.handle(Input::DecodeError(C1, n.clone()), now);
    assert_eq!(notifications(&out), vec![(C1, n)]);
    assert_eq!(f.state(), State::Idle);
    assert!(downs(&out)[0]
        .contains("sent NOTIFICATION: UPDATE Message Error / Malformed Attribute List"));
}

#[test]
fn stale_inputs_are_ignored() {
    let now = t0();
    let mut f = established(cfg(65001, 65002, ID_A), now);
    let c9 = ConnId(9);
    assert!(f
        .handle(Input::MessageReceived(c9, Message::Keepalive), now)
        .is_empty());
    assert!(f.handle(Input::TcpClosed(c9), now).is_empty());
    assert!(f
        .handle(Input::TimerExpired(Timer::Hold(c9)), now)
        .is_empty());
    assert!(f
        .handle(Input::TimerExpired(Timer::ConnectRetry), now)
        .is_empty());
    assert!(f
        .handle(Input::TimerExpired(Timer::IdleHold), now)
        .is_empty());
    assert!(f.handle(Input::ManualStart, now).is_empty());
    assert_eq!(f.state(), State::Established);
}

#[test]
fn manual_stop_from_connect_cancels_the_attempt() {
    let now = t0();
    let mut f = Fsm::new(cfg(65001, 65002, ID_A));
    f.handle(Input::ManualStart, now);
    let out = f.handle(Input::ManualStop(None), now);
    assert!(out.contains(&Output::CancelConnect));
    assert!(out.contains(&Output::StopTimer(Timer::ConnectRetry)));
    assert_eq!(f.state(), State::Idle);
    // A late success of the cancelled attempt is closed.
    let out = f.handle(Input::TcpConnected(C1, true), now);
    assert!(out.contains(&Output::CloseConnection(C1)));
}
