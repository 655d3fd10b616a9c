//! Namespaces, veth pairs and drivers for real BGP daemons, for tests and the lab.
//!
//! Every resource made here (network namespace, veth pair, daemon process, scratch directory)
//! is owned by a guard whose `Drop` removes it, also when a test panics, and carries a unique
//! name so tests can run in parallel.

pub mod bench;
pub mod bird;
pub mod bramble;
pub mod cni;
pub mod error;
pub mod etcd;
pub mod gobgp;
pub mod lab;
pub mod mrt;
pub mod names;
pub mod netns;
pub mod ports;
pub mod prefixes;
pub mod prereq;
pub mod process;
pub mod scratch;
pub mod topo;
pub mod veth;

pub use error::{check, Error, Result};
pub use etcd::{EtcdCluster, EtcdTls, MemberSpec};
pub use netns::Netns;
pub use prereq::{require_bramble, require_root_and_tools};
pub use process::{wait_until, ChildGuard};
pub use scratch::ScratchDir;
pub use veth::{Lan, Veth, VethEnd};
