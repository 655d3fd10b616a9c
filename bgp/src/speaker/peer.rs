//! The speaker's view of one configured neighbour.

use foldhash::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fsm::{Negotiated, State};
use crate::rib::{PeerId, RouteAttrs};
use crate::session::PeerHandle;
use crate::wire::{AddPathMode, Capability, Family};

use super::api::PeerSettings;
use super::policy_rules::Target;

/// Export results cached per source attribute set and source kind, so a million routes sharing one set
/// are transformed once. Keyed by the source `Arc`'s address, the source kind and, for a
/// reflected route, the source peer (id and router id: RFC 4456 ORIGINATOR_ID depends on
/// it); the source is held so the address cannot be reused while cached.
pub(crate) type ExportCache = HashMap<(usize, u8, u64), (Arc<RouteAttrs>, Option<Arc<RouteAttrs>>)>;

/// Largest export cache before it is cleared (it only holds distinct attribute sets).
pub(crate) const EXPORT_CACHE_MAX: usize = 65_536;

/// An Established session's state.
pub(crate) struct Session {
    pub negotiated: Box<Negotiated>,
    pub target: Target,
    /// The Adj-RIB-Out and its encoder, in their own task.
    pub out: super::exporter::Exporter,
    pub cache: ExportCache,
}

pub(crate) struct PeerSlot {
    pub id: PeerId,
    pub settings: PeerSettings,
    pub handle: PeerHandle,
    pub ebgp: bool,
    pub state: State,
    pub since: u64,
    pub info: String,
    pub session: Option<Session>,
}

impl PeerSlot {
    pub fn new(id: PeerId, settings: PeerSettings, handle: PeerHandle, local_asn: u32) -> Self {
        Self {
            id,
            ebgp: settings.asn != local_asn,
            settings,
            handle,
            state: State::Idle,
            since: now_secs(),
            info: String::new(),
            session: None,
        }
    }

    pub fn address(&self) -> IpAddr {
        self.settings.address
    }

    pub fn kind(&self) -> &'static str {
        if self.ebgp {
            "ebgp"
        } else if self.settings.rr_client {
            "rr-client"
        } else {
            "ibgp"
        }
    }
}

/// The add-path capability we advertise to a peer (RFC 7911 §4): the configured mode for
/// each of its unicast families. None when add-path is not configured.
pub(crate) fn add_path_capability(settings: &PeerSettings) -> Option<Capability> {
    let cfg = settings.add_path?;
    let entries: Vec<(Family, AddPathMode)> = settings
        .families
        .iter()
        .filter(|f| **f == Family::IPV4_UNICAST || **f == Family::IPV6_UNICAST)
        .map(|f| (*f, cfg.mode))
        .collect();
    (!entries.is_empty()).then_some(Capability::AddPath(entries))
}

/// What add-path negotiated, for `bramble status` (e.g. "add-path rx ipv4-unicast, tx
/// ipv4-unicast"); None when it is off in both directions.
pub(crate) fn add_path_note(neg: &Negotiated) -> Option<String> {
    let names = |fams: &[Family]| {
        fams.iter()
            .map(|f| super::core::family_name(*f))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut parts = Vec::new();
    if !neg.decode.add_path_rx.is_empty() {
        parts.push(format!("rx {}", names(&neg.decode.add_path_rx)));
    }
    if !neg.encode.add_path_tx.is_empty() {
        parts.push(format!("tx {}", names(&neg.encode.add_path_tx)));
    }
    (!parts.is_empty()).then(|| format!("add-path {}", parts.join(", ")))
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speaker::AddPathSettings;

    fn settings(add_path: Option<AddPathSettings>, families: Vec<Family>) -> PeerSettings {
        PeerSettings {
            address: "192.0.2.1".parse().unwrap(),
            asn: 64512,
            port: 179,
            local_address: None,
            passive: false,
            hold_time: None,
            families,
            import: Default::default(),
            export: Default::default(),
            connect_retry: 1,
            next_hop_v6: None,
            password: None,
            ttl_security: false,
            max_prefixes: None,
            max_prefixes_restart: 60,
            rr_client: false,
            add_path,
        }
    }

    #[test]
    fn capability_lists_the_unicast_families_with_the_mode() {
        let both = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
        assert_eq!(add_path_capability(&settings(None, both.clone())), None);
        let ap = Some(AddPathSettings {
            mode: AddPathMode::Receive,
            max_paths: 8,
        });
        assert_eq!(
            add_path_capability(&settings(ap, both)),
            Some(Capability::AddPath(vec![
                (Family::IPV4_UNICAST, AddPathMode::Receive),
                (Family::IPV6_UNICAST, AddPathMode::Receive),
            ]))
        );
        let other = Family { afi: 1, safi: 128 };
        assert_eq!(add_path_capability(&settings(ap, vec![other])), None);
    }
}
