//! Add-path (RFC 7911) receive in the RIB: several paths per peer and prefix, told apart by
//! path identifier, and the "report every path change" mode add-path send needs.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::rib::{PeerInfo, Rib, RouteAttrs};
use crate::wire::{AsPath, Nlri, Origin, PathAttrs, Prefix};

fn rib() -> Rib {
    let mut rib = Rib::new(64512, Ipv4Addr::new(10, 0, 0, 1));
    rib.register_peer(PeerInfo {
        id: 1,
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        asn: 64512,
        router_id: Ipv4Addr::new(10, 0, 0, 2),
        ibgp: true,
    })
    .unwrap();
    rib
}

fn attrs(rib: &mut Rib, nh: u8, local_pref: u32) -> Arc<RouteAttrs> {
    rib.intern(RouteAttrs::new(
        PathAttrs {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            local_pref: Some(local_pref),
            ..Default::default()
        },
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, nh)),
    ))
}

fn nlri(prefix: Prefix, path_id: u32) -> Nlri {
    Nlri { prefix, path_id }
}

#[test]
fn paths_from_one_peer_form_an_ecmp_set_and_withdraw_by_id() {
    let mut rib = rib();
    let p: Prefix = "10.9.0.0/24".parse().unwrap();
    let (a, b) = (attrs(&mut rib, 1, 100), attrs(&mut rib, 2, 100));
    assert!(rib.insert(1, nlri(p, 1), a).unwrap());
    assert!(rib.insert(1, nlri(p, 2), b).unwrap());
    let hops: Vec<IpAddr> = rib.ecmp(&p).iter().map(|x| x.attrs.next_hop).collect();
    assert_eq!(hops.len(), 2, "{hops:?}");
    assert_eq!(rib.path_count(), 2);
    assert_eq!(rib.counts(1).unwrap().accepted, 2);
    // Path id 3 was never sent: nothing happens.
    assert!(!rib.withdraw(1, nlri(p, 3)));
    assert!(rib.withdraw(1, nlri(p, 1)));
    let left: Vec<u32> = rib.ecmp(&p).iter().map(|x| x.path_id).collect();
    assert_eq!(left, [2]);
    assert_eq!(rib.path_count(), 1);
}

#[test]
fn report_all_paths_flags_changes_outside_the_ecmp_set() {
    let mut rib = rib();
    let p: Prefix = "10.9.0.0/24".parse().unwrap();
    let best = attrs(&mut rib, 1, 200);
    let worse = attrs(&mut rib, 2, 100);
    let worse2 = attrs(&mut rib, 3, 100);
    assert!(rib.insert(1, nlri(p, 1), best.clone()).unwrap());
    // A worse path does not change best or ECMP set: not reported by default.
    assert!(!rib.insert(1, nlri(p, 2), worse.clone()).unwrap());
    rib.set_report_all_paths(true);
    assert!(rib.reports_all_paths());
    assert!(rib.insert(1, nlri(p, 2), worse2.clone()).unwrap());
    // The same attribute set again is still a no-op.
    assert!(!rib.insert(1, nlri(p, 2), worse2).unwrap());
    assert!(rib.withdraw(1, nlri(p, 2)));
    assert!(!rib.withdraw(1, nlri(p, 2)));
    assert!(rib.insert(1, nlri(p, 2), worse).unwrap());
    assert_eq!(rib.remove_peer(1), vec![p]);
}
