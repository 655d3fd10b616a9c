//! Bramble's BGP-4 speaker.
//!
//! `wire` (codec) and `fsm` (RFC 4271 §8 state machine) are sans-IO: no sockets, no clock.
//! `session` owns the sockets, `rib` holds the routing tables, `speaker` ties them together.

pub mod fsm;
pub mod policy;
pub mod reflector;
pub mod rib;
pub mod session;
pub mod speaker;
pub mod wire;
