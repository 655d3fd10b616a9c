//! Bramble configuration: TOML model, defaults, validation.
