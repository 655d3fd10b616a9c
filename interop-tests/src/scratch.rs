//! Per-test scratch directories for configs, sockets and daemon logs.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::names::unique_token;

/// A directory under `$TMPDIR/interop-tests/` removed on drop — unless the thread is
/// panicking (a failed test) or `INTEROP_KEEP` is set, in which case its path is printed so the
/// daemon logs inside can be read.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Make a fresh directory whose name starts with `tag`.
    pub fn new(tag: &str) -> Result<Self> {
        // Short root: unix socket paths inside must stay under 108 bytes.
        let path = std::env::temp_dir()
            .join("interop-tests")
            .join(format!("{tag}-{}", unique_token()));
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path()/name`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Write `contents` to `self.path()/name` and return the full path.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf> {
        let p = self.join(name);
        std::fs::write(&p, contents).map_err(|e| Error::io(&p, e))?;
        Ok(p)
    }
}

impl ScratchDir {
    /// Keep the directory (do not remove it on drop) and return its path.
    pub fn keep(self) -> PathBuf {
        let p = self.path.clone();
        std::mem::forget(self);
        p
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("INTEROP_KEEP").is_some() {
            eprintln!(
                "interop-tests: kept logs and configs in {}",
                self.path.display()
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
