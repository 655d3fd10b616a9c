//! Child processes that die with their guard, command helpers and polling.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a child gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// A command line, for error messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run `cmd` to completion; error unless it exits 0. Returns its output.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = run_unchecked(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(command_error(cmd, &out))
    }
}

/// Run `cmd` to completion whatever its exit status.
pub fn run_unchecked(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            cmd: describe(cmd),
            source,
        })
}

/// The [`Error::Command`] for a finished `cmd`.
pub fn command_error(cmd: &Command, out: &Output) -> Error {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = if stderr.trim().is_empty() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        stderr.into_owned()
    };
    Error::Command {
        cmd: describe(cmd),
        status: out.status.to_string(),
        output: text.trim().to_string(),
    }
}

/// Poll `probe` every `poll` until it returns `Ok(true)` or `timeout` passes.
///
/// Probe errors are not fatal (a daemon may not answer yet); the last one is reported in the
/// [`Error::Timeout`] so a failing test says what it last saw. The exception is
/// [`Error::Died`]: a dead daemon will not come back, so it is returned at once.
pub fn wait_until<F>(what: &str, timeout: Duration, poll: Duration, mut probe: F) -> Result<()>
where
    F: FnMut() -> Result<bool>,
{
    let start = Instant::now();
    loop {
        let last = match probe() {
            Ok(true) => return Ok(()),
            Ok(false) => String::from("condition false"),
            Err(e @ Error::Died { .. }) => return Err(e),
            Err(e) => e.to_string(),
        };
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.to_string(),
                timeout,
                last,
            });
        }
        std::thread::sleep(poll);
    }
}

/// Send `sig` to `pid`; errors (already gone) are ignored.
pub fn signal(pid: i32, sig: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// A running child process, killed on drop (SIGTERM, then SIGKILL after a grace period).
///
/// Its stdout and stderr go to `LABEL.stdout` / `LABEL.stderr` in a log directory, kept when a
/// test fails (see [`crate::ScratchDir`]).
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    label: String,
    stderr_path: PathBuf,
    stdout_path: PathBuf,
}

impl ChildGuard {
    /// Start `cmd` with output captured under `log_dir`.
    pub fn spawn(mut cmd: Command, label: &str, log_dir: &Path) -> Result<Self> {
        let stderr_path = log_dir.join(format!("{label}.stderr"));
        let stdout_path = log_dir.join(format!("{label}.stdout"));
        let err = File::create(&stderr_path).map_err(|e| Error::io(&stderr_path, e))?;
        let out = File::create(&stdout_path).map_err(|e| Error::io(&stdout_path, e))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            cmd: describe(&cmd),
            source,
        })?;
        Ok(Self {
            child,
            label: label.to_string(),
            stderr_path,
            stdout_path,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The label given at spawn.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Where stderr goes.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// Where stdout goes.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    /// The last `lines` lines of stderr.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `Ok(())` while the process runs; [`Error::Died`] with its stderr tail once it has exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Died {
                label: self.label.clone(),
                status: status.to_string(),
                stderr: self.stderr_tail(30),
            }),
            Err(e) => Err(Error::Died {
                label: self.label.clone(),
                status: e.to_string(),
                stderr: self.stderr_tail(30),
            }),
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.check_running().is_ok()
    }

    /// SIGTERM, wait up to the grace period, then SIGKILL; reap it.
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        let pid = i32::try_from(self.child.id()).unwrap_or(0);
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL at once (a crash), and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_as_soon_as_true() {
        let mut n = 0;
        let r = wait_until(
            "n reaches 3",
            Duration::from_secs(5),
            Duration::ZERO,
            || {
                n += 1;
                Ok(n >= 3)
            },
        );
        assert!(r.is_ok());
        assert_eq!(n, 3);
    }

    #[test]
    fn wait_until_times_out_with_last_error() {
        let r = wait_until(
            "never",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || Err(Error::parse("probe", "no answer yet")),
        );
        let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("never") && msg.contains("no answer yet"),
            "{msg}"
        );
    }

    #[test]
    fn guard_kills_child_on_drop() {
        let dir = crate::ScratchDir::new("proc").unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        let guard = ChildGuard::spawn(cmd, "sleep", dir.path()).unwrap();
        let pid = guard.pid() as i32;
        drop(guard);
        // SAFETY: signal 0 only probes for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "sleep {pid} survived its guard");
    }
}
