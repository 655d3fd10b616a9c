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
    /// `[[policy]]`: named import/export policies.
    #[serde(default)]
    pub policy: Vec<RawPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub name: S<String>,
    /// "accept" or "reject" when no rule matches.
    pub default: Option<S<String>>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: S<String>,
    // Match.
    pub prefix: Option<Vec<S<String>>>,
    pub as_path_contains: Option<Vec<S<i64>>>,
    pub origin_as: Option<Vec<S<i64>>>,
    pub as_path_length: Option<S<String>>,
    pub as_path: Option<S<String>>,
    pub community: Option<Vec<S<String>>>,
    pub large_community: Option<Vec<S<String>>>,
    // Action.
    pub action: Option<S<String>>,
    pub set_local_pref: Option<S<i64>>,
    pub set_med: Option<S<i64>>,
    pub strip_communities: Option<bool>,
    pub add_communities: Option<Vec<S<String>>>,
    pub remove_communities: Option<Vec<S<String>>>,
    pub add_large_communities: Option<Vec<S<String>>>,
    pub remove_large_communities: Option<Vec<S<String>>>,
    pub prepend: Option<S<i64>>,
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
    pub mesh: Option<S<RawMesh>>,
    pub mesh_lease: Option<S<i64>>,
    #[serde(default)]
    pub peers: Vec<RawPeer>,
}

/// `bgp.mesh`: `true` / `false` or a word (`"reflectors"`).
#[derive(Debug)]
pub enum RawMesh {
    Flag(bool),
    Word(String),
}

impl<'de> Deserialize<'de> for RawMesh {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawMesh;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or \"reflectors\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawMesh, E> {
                Ok(RawMesh::Flag(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawMesh, E> {
                Ok(RawMesh::Word(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
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
    pub add_path: Option<S<String>>,
    pub add_path_max: Option<S<i64>>,
    pub max_prefixes: Option<S<i64>>,
    pub max_prefixes_restart: Option<S<i64>>,
    pub families: Option<S<Vec<S<String>>>>,
    pub import: Option<Vec<S<String>>>,
    pub export: Option<Vec<S<String>>>,
    /// Name of a `[[policy]]` applied on import (after the `import` prefix list).
    pub import_policy: Option<S<String>>,
    /// Name of a `[[policy]]` applied on export (after the `export` prefix list).
    pub export_policy: Option<S<String>>,
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
    pub etcd_endpoints: Option<S<Vec<S<String>>>>,
    pub etcd_prefix: Option<S<String>>,
    pub etcd_ca: Option<S<String>>,
    pub etcd_cert: Option<S<String>>,
    pub etcd_key: Option<S<String>>,
    pub etcd_timeout: Option<S<i64>>,
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
