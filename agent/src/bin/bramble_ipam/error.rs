//! CNI errors: the spec's well-known codes (CNI spec 1.1.0, "Error" section) and the
//! plugin-specific ones (100 and up), printed as the spec's JSON error object.

use serde::Serialize;

/// 1: the netconf's `cniVersion` is not one this plugin speaks.
pub const INCOMPATIBLE_VERSION: u32 = 1;
/// 4: a required `CNI_*` variable is missing or malformed (also: unknown `CNI_COMMAND`).
pub const INVALID_ENV: u32 = 4;
/// 5: reading stdin failed.
pub const IO_FAILURE: u32 = 5;
/// 6: stdin is not the JSON the spec describes.
pub const DECODE: u32 = 6;
/// 7: the netconf decodes but is invalid (unknown pool, bad family, no name...).
pub const INVALID_CONFIG: u32 = 7;
/// 11: transient; the runtime may retry (agent unreachable, store contention).
pub const TRY_AGAIN: u32 = 11;
/// 50: STATUS: the plugin cannot serve ADD now.
pub const NOT_AVAILABLE: u32 = 50;
/// 100: every address of the pool(s) is taken.
pub const POOL_EXHAUSTED: u32 = 100;
/// 101: the requested address (`CNI_ARGS` `IP=`) belongs to someone else or is reserved.
pub const ADDRESS_UNAVAILABLE: u32 = 101;
/// 102: CHECK: the handle holds no address.
pub const NO_ALLOCATION: u32 = 102;
/// 103: CHECK: the handle holds other addresses than `prevResult` says.
pub const ADDRESS_MISMATCH: u32 = 103;
/// 999: anything else.
pub const OTHER: u32 = 999;

/// A failure reported to the runtime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}")]
pub struct CniError {
    /// The spec's numeric code.
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer explanation; may be empty.
    pub details: String,
}

impl CniError {
    /// An error with no details.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The JSON error object, `cniVersion` first.
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        let wire = Wire {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        };
        serde_json::to_string(&wire).unwrap_or_else(|_| {
            format!(
                r#"{{"cniVersion":"{cni_version}","code":{},"msg":"error"}}"#,
                self.code
            )
        })
    }
}

/// Maps an error message from the agent (an `ipam::IpamError` rendered as text) to a code.
pub fn classify_agent_message(message: &str) -> u32 {
    let m = message.to_ascii_lowercase();
    if m.contains("exhausted") {
        POOL_EXHAUSTED
    } else if m.contains("already allocated")
        || m.contains("is reserved")
        || m.contains("already holds")
        || m.contains("strict affinity")
    {
        ADDRESS_UNAVAILABLE
    } else if m.contains("no configured pool")
        || m.contains("in no configured pool")
        || m.contains("is disabled")
        || m.contains("no enabled")
        || m.contains("mixes address families")
        || m.contains("invalid handle")
    {
        INVALID_CONFIG
    } else if m.contains("gave up after")
        || m.contains("conflict")
        || m.contains("store unavailable")
    {
        // CNI spec: 11 = try again later (etcd away, or lost compare-and-swap races).
        TRY_AGAIN
    } else {
        OTHER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_store_is_try_again_later() {
        let m = "store unavailable: etcd got no answer within 5s (last error: connection refused)";
        assert_eq!(classify_agent_message(m), TRY_AGAIN);
    }

    #[test]
    fn error_json_has_the_spec_shape() {
        let e = CniError::new(TRY_AGAIN, "agent unreachable").with_details("connect: ENOENT");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.1.0")).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["code"], 11);
        assert_eq!(v["msg"], "agent unreachable");
        assert_eq!(v["details"], "connect: ENOENT");
        let bare = CniError::new(OTHER, "x").to_json("0.4.0");
        assert!(!bare.contains("details"));
    }

    #[test]
    fn agent_messages_map_to_codes() {
        assert_eq!(
            classify_agent_message("v4 pools [10.0.0.0/30] exhausted for node n: no free address"),
            POOL_EXHAUSTED
        );
        assert_eq!(
            classify_agent_message("no configured pool 10.9.0.0/16"),
            INVALID_CONFIG
        );
        assert_eq!(
            classify_agent_message("10.0.0.1 is already allocated to handle h"),
            ADDRESS_UNAVAILABLE
        );
        assert_eq!(
            classify_agent_message("gave up after 8 conflicting attempts (x)"),
            TRY_AGAIN
        );
        assert_eq!(classify_agent_message("disk on fire"), OTHER);
    }
}
