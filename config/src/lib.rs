//! Bramble configuration: the TOML model, its defaults, validation with
//! `FILE:LINE:COL: reason` errors, and the difference between two configs (for reload).
//!
//! ```no_run
//! let cfg = config::load(std::path::Path::new("/etc/bramble/bramble.toml"))?;
//! for peer in cfg.peers() {
//!     println!("{} AS{}", peer.address, peer.asn);
//! }
//! # Ok::<(), config::ConfigError>(())
//! ```

mod diff;
mod error;
mod host;
mod model;
mod raw;
mod validate;

use std::path::Path;

pub use diff::ConfigDiff;
pub use error::{ConfigError, Diagnostic};
pub use host::{first_global_ipv4, hostname, HostFacts};
pub use model::*;

use error::Locator;
use validate::Checker;

/// Reads and validates the file at `path`; defaults come from this host.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: file_name.clone(),
        source,
    })?;
    parse(&text, &file_name)
}

/// Validates `text`; `file_name` is only used in error messages. Defaults come from this host.
pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigError> {
    parse_with_host(text, file_name, &HostFacts::detect())
}

/// [`parse`] with the host facts given rather than read from the machine.
pub fn parse_with_host(
    text: &str,
    file_name: &str,
    host: &HostFacts,
) -> Result<Config, ConfigError> {
    let loc = Locator::new(text, file_name);
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        // toml puts details on further lines; keep the error to one line.
        let message: Vec<&str> = e.message().lines().map(str::trim).collect();
        ConfigError::Invalid(vec![loc.at(offset, message.join(": "))])
    })?;
    let mut checker = Checker::new(loc);
    let config = validate::resolve(&mut checker, &raw, host);
    checker.finish(config).map_err(ConfigError::Invalid)
}
