//! The speaker actor: the one task that owns the RIBs. Sessions feed it events, the control
//! API queries it through a [`SpeakerHandle`].

mod api;
mod spawn_stub;

pub use api::*;
pub use spawn_stub::spawn;
