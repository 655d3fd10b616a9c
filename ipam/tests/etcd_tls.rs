//! [`EtcdStore`] over TLS with a client certificate, against a real etcd that requires one
//! (certificates made with `openssl` for the test).

use interop_tests::etcd::{EtcdCluster, EtcdTls};
use interop_tests::ScratchDir;
use ipam::{EtcdOptions, EtcdStore, Store, StoreError};
use std::time::Duration;

#[test]
fn store_talks_tls_with_a_client_certificate() {
    let dir = ScratchDir::new("etcd-tls").unwrap();
    let tls = EtcdTls::generate(dir.path()).unwrap();
    let cluster = EtcdCluster::single_tls(tls.clone()).unwrap();
    let endpoints = cluster.client_endpoints();
    assert!(endpoints[0].starts_with("https://"), "{endpoints:?}");

    let mut opts = EtcdOptions::new(endpoints.clone());
    opts.ca = Some(tls.ca.clone());
    opts.cert = Some(tls.cert.clone());
    opts.key = Some(tls.key.clone());
    let s = EtcdStore::open(&opts).unwrap();
    let rev = s.compare_and_swap("k", None, Some(b"v".to_vec())).unwrap();
    assert_eq!(s.get("k").unwrap(), Some((b"v".to_vec(), rev)));
    assert_eq!(cluster.keys("/bramble/").unwrap(), vec!["/bramble/k"]);

    // Without a client certificate the server refuses: a bounded error, not a hang.
    let mut anon = EtcdOptions::new(endpoints).timeout(Duration::from_secs(1));
    anon.ca = Some(tls.ca);
    let s = EtcdStore::open(&anon).unwrap();
    let r = s.get("k");
    assert!(
        matches!(
            r,
            Err(StoreError::Timeout { .. }) | Err(StoreError::Backend(_))
        ),
        "{r:?}"
    );
}
