//! The file as serde reads it: every value that validation looks at is kept with its byte
//! span (`toml::Spanned`) so an error can point at it. Nothing here is checked yet; see
//! `validate.rs`, which turns this into the plain [`crate::Config`].
//!
//! Numbers are read as `i64` so that range errors get Bramble's own message ("must be
//! 3..=65535") at the value, rather than serde's "expected u16".

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub node: RawNode,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub bgp: RawBgp,
    #[serde(default)]
    pub fib: RawFib,
    #[serde(default)]
    pub ipam: RawIpam,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: Option<S<String>>,
    pub router_id: Option<S<String>>,
    pub asn: Option<S<i64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub socket: Option<S<String>>,
    pub metrics: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBgp {
    pub listen: Option<S<String>>,
    pub hold_time: Option<S<i64>>,
    pub advertise: Option<S<String>>,
    pub graceful_restart: Option<bool>,
    pub restart_time: Option<S<i64>>,
    pub selection_deferral: Option<S<i64>>,
    pub llgr_stale_time: Option<S<i64>>,
    pub cluster_id: Option<S<String>>,
    #[serde(default)]
    pub peers: Vec<RawPeer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    pub address: S<String>,
    pub asn: S<i64>,
    pub port: Option<S<i64>>,
    pub passive: Option<bool>,
    pub password: Option<S<String>>,
    pub password_file: Option<S<String>>,
    pub ttl_security: Option<bool>,
    pub rr_client: Option<S<bool>>,
    pub max_prefixes: Option<S<i64>>,
    pub max_prefixes_restart: Option<S<i64>>,
    pub families: Option<S<Vec<S<String>>>>,
    pub import: Option<Vec<S<String>>>,
    pub export: Option<Vec<S<String>>>,
    // Bramble extras (listed in the README).
    pub local_address: Option<S<String>>,
    pub hold_time: Option<S<i64>>,
    pub connect_retry: Option<S<i64>>,
    pub description: Option<String>,
    pub next_hop_v6: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFib {
    pub enabled: Option<bool>,
    pub table: Option<S<i64>>,
    pub protocol: Option<S<i64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawIpam {
    pub store: Option<S<String>>,
    pub path: Option<S<String>>,
    pub etcd_endpoints: Option<Vec<S<String>>>,
    pub strict_affinity: Option<bool>,
    pub max_blocks_per_node: Option<S<i64>>,
    pub reservations: Option<Vec<S<String>>>,
    pub release_grace: Option<S<i64>>,
    #[serde(default)]
    pub pools: Vec<RawPool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub cidr: S<String>,
    pub block_size: Option<S<i64>>,
}
