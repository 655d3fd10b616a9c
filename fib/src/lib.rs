//! Kernel FIB programming over rtnetlink.
mod netlink;
mod programmer;
mod route;
mod state;
mod table;
pub use netlink::NetlinkTable;
pub use programmer::{FibConfig, FibError, FibHandle, FibStatus, Programmer};
pub use route::{NextHop, Route, RouteKind};
pub use table::*;
