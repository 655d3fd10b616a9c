//! Two FSMs joined by a perfect network, in virtual time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bgp::fsm::{ConnId, Fsm, FsmConfig, Input, Output, State, Timer};

pub struct Side {
    pub fsm: Fsm,
    pub timers: HashMap<Timer, Instant>,
    pub log: Vec<Output>,
    /// Connections this side has closed.
    pub closed: HashSet<ConnId>,
}

impl Side {
    pub fn new(cfg: FsmConfig, seed: u64) -> Self {
        Side {
            fsm: Fsm::with_seed(cfg, seed),
            timers: HashMap::new(),
            log: Vec::new(),
            closed: HashSet::new(),
        }
    }
}

/// Two FSMs joined by a perfect network in virtual time.
pub struct Pair {
    pub sides: [Side; 2],
    pub now: Instant,
    pub events: VecDeque<(usize, Input)>,
    pub next_conn: u64,
    /// When false, Connect attempts fail (the other side is unreachable).
    pub reachable: bool,
}

impl Pair {
    pub fn new(a: FsmConfig, b: FsmConfig) -> Self {
        Pair {
            sides: [Side::new(a, 1), Side::new(b, 2)],
            now: Instant::now(),
            events: VecDeque::new(),
            next_conn: 1,
            reachable: true,
        }
    }

    /// Both sides start at the same instant (their Connects cross).
    pub fn start_both(&mut self) {
        self.events.push_back((0, Input::ManualStart));
        self.events.push_back((1, Input::ManualStart));
        self.pump();
    }

    pub fn input(&mut self, side: usize, input: Input) {
        self.events.push_back((side, input));
        self.pump();
    }

    fn pump(&mut self) {
        while let Some((s, input)) = self.events.pop_front() {
            let now = self.now;
            if let Input::MessageReceived(id, _) = &input {
                if self.sides[s].closed.contains(id) {
                    continue;
                }
            }
            let outputs = self.sides[s].fsm.handle(input, now);
            for o in outputs {
                self.apply(s, o);
            }
        }
    }

    fn apply(&mut self, s: usize, o: Output) {
        let other = 1 - s;
        match &o {
            Output::Connect => {
                let id = ConnId(self.next_conn);
                self.next_conn += 1;
                if self.reachable {
                    self.events.push_back((s, Input::TcpConnected(id, true)));
                    self.events
                        .push_back((other, Input::TcpConnected(id, false)));
                } else {
                    self.events.push_back((s, Input::TcpFailed(id)));
                }
            }
            Output::SendMessage(id, m) if !self.sides[s].closed.contains(id) => {
                self.events
                    .push_back((other, Input::MessageReceived(*id, m.clone())));
            }
            Output::CloseConnection(id) => {
                let newly_closed = self.sides[s].closed.insert(*id);
                let other_open = !self.sides[other].closed.contains(id);
                if newly_closed && other_open {
                    self.events.push_back((other, Input::TcpClosed(*id)));
                }
            }
            Output::ArmTimer(t, at) => {
                self.sides[s].timers.insert(*t, *at);
            }
            Output::StopTimer(t) => {
                self.sides[s].timers.remove(t);
            }
            _ => {}
        }
        self.sides[s].log.push(o);
    }

    /// Advances virtual time by `d`, firing timers in order.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = (0..2)
                .flat_map(|s| self.sides[s].timers.iter().map(move |(t, at)| (*at, s, *t)))
                .filter(|(at, _, _)| *at <= end)
                .min();
            let Some((at, s, t)) = next else { break };
            self.now = self.now.max(at);
            self.sides[s].timers.remove(&t);
            self.input(s, Input::TimerExpired(t));
        }
        self.now = end;
    }

    pub fn state(&self, s: usize) -> State {
        self.sides[s].fsm.state()
    }

    pub fn count(&self, s: usize, pred: impl Fn(&Output) -> bool) -> usize {
        self.sides[s].log.iter().filter(|o| pred(o)).count()
    }
}
