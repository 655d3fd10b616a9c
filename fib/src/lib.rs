//! Kernel FIB programming over rtnetlink.
mod netlink;
mod route;
mod table;
pub use netlink::NetlinkTable;
pub use route::{NextHop, Route, RouteKind};
pub use table::*;
