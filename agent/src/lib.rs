//! The agent's control API as a library, for clients other than the `bramble` CLI (the
//! `bramble-ipam` CNI plugin).

pub mod api;
pub mod client;
