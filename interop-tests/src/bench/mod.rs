//! The issue-6 scale benchmark: N feeders → device under test → one monitor, in network
//! namespaces, for Bramble, BIRD and GoBGP.
//!
//! Layout of one run: a feeder namespace holds every benchmark speaker (tokio tasks of one
//! runtime: feeders, the monitor, route-reflector clients), each with its own address on the
//! feeder end of one veth (10.100.0.0/16); the DUT sits alone in its namespace at 10.100.0.1.
//! The baseline run has no DUT: the feeders connect straight to the monitor.

pub mod dut;
pub mod procfs;
pub mod repeat;
pub mod report;
pub mod scenario;
pub mod session;
pub mod wire;

use std::time::Duration;

/// Anything a benchmark run can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A socket or file operation failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A lab helper (namespace, veth, daemon) failed.
    #[error("{0}")]
    Lab(#[from] crate::Error),
    /// A peer sent something the harness cannot use, or a reading was malformed.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The run did not converge in time.
    #[error("timeout: {0}")]
    Timeout(String),
}

/// The four scenarios of issue 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Scenario {
    /// Few feeders, big tables: 10 × 100,000 /32s.
    A,
    /// Many feeders, small tables: 100 × 10,000 /32s.
    B,
    /// Route reflector: 200 iBGP clients × 500 /32s, each reflected to every client.
    C,
    /// Churn: 10 % of the routes withdrawn and re-announced in a loop.
    D,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 4] = [Scenario::A, Scenario::B, Scenario::C, Scenario::D];

    /// The letter used on the command line.
    pub fn letter(self) -> &'static str {
        match self {
            Scenario::A => "a",
            Scenario::B => "b",
            Scenario::C => "c",
            Scenario::D => "d",
        }
    }

    /// Parse a command-line letter.
    pub fn parse(s: &str) -> Option<Self> {
        Scenario::ALL.into_iter().find(|x| x.letter() == s)
    }

    /// A short description for reports.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::A => "few big feeders",
            Scenario::B => "many small feeders",
            Scenario::C => "route reflector",
            Scenario::D => "churn",
        }
    }

    /// Sizes of this scenario: full (issue 6) or `--quick`.
    pub fn sizes(self, quick: bool) -> Sizes {
        let (feeders, per_feeder, churn) = match (self, quick) {
            (Scenario::A, false) => (10, 100_000, 0),
            (Scenario::B, false) => (100, 10_000, 0),
            (Scenario::C, false) => (200, 500, 0),
            (Scenario::D, false) => (10, 10_000, 60),
            (Scenario::A, true) => (10, 2_000, 0),
            (Scenario::B, true) => (40, 250, 0),
            (Scenario::C, true) => (20, 100, 0),
            (Scenario::D, true) => (10, 1_000, 4),
        };
        Sizes {
            feeders,
            per_feeder,
            churn: Duration::from_secs(churn),
        }
    }
}

/// How big one scenario is.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Sizes {
    /// Feeder sessions (route-reflector clients in scenario c).
    pub feeders: usize,
    /// Unique /32s each feeder announces.
    pub per_feeder: u32,
    /// How long the churn loop runs (scenario d only).
    pub churn: Duration,
}

impl Sizes {
    /// Unique routes over all feeders.
    pub fn total(&self) -> u64 {
        self.feeders as u64 * u64::from(self.per_feeder)
    }
}
