//! The error type shared by every helper in this crate.

use std::path::PathBuf;
use std::time::Duration;

/// Anything a helper can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program could not be started at all.
    #[error("cannot start `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why the OS refused.
        source: std::io::Error,
    },
    /// A program ran and exited non-zero.
    #[error("`{cmd}` exited with {status}: {output}")]
    Command {
        /// The command line.
        cmd: String,
        /// Exit status as printed by the OS.
        status: String,
        /// Its stderr (or stdout when stderr was empty), trimmed.
        output: String,
    },
    /// A condition did not hold within its time limit.
    #[error("timed out after {timeout:?} waiting for {what}; last observation: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit.
        timeout: Duration,
        /// The last error the probe returned, or "condition false".
        last: String,
    },
    /// A file could not be read or written.
    #[error("I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A daemon's or a client's output was not what the parser expected.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// What was parsed.
        what: String,
        /// Why it failed, with the offending text.
        detail: String,
    },
    /// A daemon died while it should be running.
    #[error("{label} is not running ({status}); stderr tail:\n{stderr}")]
    Died {
        /// Which daemon.
        label: String,
        /// Its exit status.
        status: String,
        /// Last lines of its stderr.
        stderr: String,
    },
    /// A polled condition does not hold yet; the text says what was seen (for
    /// [`crate::wait_until`] timeouts).
    #[error("not yet: {0}")]
    Pending(String),
    /// A required tool or privilege is missing.
    #[error("prerequisite missing: {0}")]
    Prerequisite(String),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// For [`crate::wait_until`] probes: `Ok(true)` if `ok`, else [`Error::Pending`] with `seen`,
/// so a timeout reports what was last observed.
pub fn check(ok: bool, seen: impl FnOnce() -> String) -> Result<bool> {
    if ok {
        Ok(true)
    } else {
        Err(Error::Pending(seen()))
    }
}

impl Error {
    /// A [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`Error::Parse`] for `what`.
    pub fn parse(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Parse {
            what: what.into(),
            detail: detail.into(),
        }
    }
}
