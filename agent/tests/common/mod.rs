//! The test harness shared by the agent's integration tests: the `bramble` binary, a config
//! for a harmless agent, a running agent killed on drop, and a network namespace removed on
//! drop.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub fn bramble() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bramble"));
    cmd.env_remove("BRAMBLE_SOCKET").env_remove("RUST_LOG");
    cmd
}

pub fn run(args: &[&str]) -> Output {
    bramble().args(args).output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A config for an agent whose control socket is `socket`. The two peers are loopback
/// addresses with nothing behind them, on port 1 (not 179, so a BGP listener some other test
/// runs on loopback is never contacted), retrying only once an hour. The FIB is off: these
/// agents run in the host's namespace and must not touch its routes.
pub fn agent_config(socket: &Path) -> String {
    format!(
        r#"
[node]
name = "test-node"
router_id = "192.0.2.1"
asn = 64512

[api]
socket = "{}"

[fib]
enabled = false

[[bgp.peers]]
address = "127.0.0.2"
asn = 65001
port = 1
connect_retry = 3600

[[bgp.peers]]
address = "127.0.0.3"
asn = 64512
port = 1
connect_retry = 3600
"#,
        socket.display()
    )
}

/// A running `bramble agent`, killed and reaped on drop.
pub struct Agent {
    pub child: Child,
    pub dir: TempDir,
    pub socket: PathBuf,
}

impl Agent {
    pub fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        // A parent directory that does not exist yet: the agent creates it.
        let socket = dir.path().join("run").join("ctl.sock");
        Self::start_in(dir, socket)
    }

    /// An agent on [`agent_config`] whose socket is `socket`, files in `dir`.
    pub fn start_in(dir: TempDir, socket: PathBuf) -> Agent {
        let config = agent_config(&socket);
        Self::start_with(dir, socket, &config, None)
    }

    /// An agent on `config` (whose `[api] socket` must be `socket`), run inside the network
    /// namespace `netns` when given (`ip netns exec` execs the agent, so the child is the
    /// agent itself and signals reach it).
    pub fn start_with(dir: TempDir, socket: PathBuf, config: &str, netns: Option<&Netns>) -> Agent {
        let config_path = dir.path().join("bramble.toml");
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(dir.path().join("agent.log")).unwrap();
        let mut cmd = match netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &ns.name])
                    .arg(env!("CARGO_BIN_EXE_bramble"))
                    .env_remove("BRAMBLE_SOCKET")
                    .env_remove("RUST_LOG");
                cmd
            }
            None => bramble(),
        };
        let child = cmd
            .args(["agent", "--config"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut agent = Agent { child, dir, socket };
        agent.wait_ready();
        agent
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("agent exited early ({status}): {}", self.log());
            }
            sleep(Duration::from_millis(50));
        }
        panic!("agent did not open its socket: {}", self.log());
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    pub fn socket(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    /// Runs a client subcommand against this agent.
    pub fn client(&self, args: &[&str]) -> Output {
        bramble()
            .args(args)
            .args(["--socket", self.socket()])
            .output()
            .unwrap()
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: plain kill(2) on the child this test started.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit: {}",
                self.log()
            );
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static NETNS_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace that exists while this value lives (deleted on drop, also when the
/// test panics). Drop any agent running in it first.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `bramble-agent-TAG-PID-N` with `lo` up.
    pub fn new(tag: &str) -> Netns {
        let n = NETNS_COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("bramble-agent-{tag}-{}-{n}", std::process::id());
        run_ok("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`; panics with its stderr on failure, returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run_ok("ip", &full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs a command, panicking with its stderr on failure; returns stdout.
pub fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
