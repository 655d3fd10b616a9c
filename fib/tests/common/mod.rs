//! Network-namespace fixture for kernel tests: a uniquely named namespace removed on
//! drop (also when the test fails), and a way to run async code inside it.

#![allow(dead_code)]

use std::fs::File;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace that exists while this value lives.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `fibt-TAG-PID-N` with `lo` up.
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("fibt-{tag}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Creates one veth pair per entry, both ends inside the namespace: `vethA` (with
    /// the given addresses) and its peer `vethA-p` (up, no address), so that addresses
    /// in those subnets are on-link gateways.
    pub fn with_veths(tag: &str, veths: &[(&str, &[&str])]) -> Self {
        let ns = Netns::new(tag);
        for (dev, addrs) in veths {
            let peer = format!("{dev}p");
            ns.ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer]);
            for addr in *addrs {
                if addr.contains(':') {
                    ns.ip(&["-6", "addr", "add", addr, "dev", dev, "nodad"]);
                } else {
                    ns.ip(&["addr", "add", addr, "dev", dev]);
                }
            }
            ns.ip(&["link", "set", &peer, "up"]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        ns
    }

    /// Runs `ip -n NAME ARGS`, panicking with its stderr on failure; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// The interface index of `dev`.
    pub fn ifindex(&self, dev: &str) -> u32 {
        let out = self.ip(&["-j", "link", "show", dev]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v[0]["ifindex"].as_u64().unwrap() as u32
    }

    /// `ip -j [-6] -n NAME route show proto PROTO [table T]`, parsed.
    pub fn routes(&self, v6: bool, proto: u8) -> Vec<Value> {
        let proto = proto.to_string();
        let mut args = vec!["-j"];
        if v6 {
            args.push("-6");
        }
        args.extend_from_slice(&["route", "show", "proto", &proto]);
        let out = self.ip(&args);
        if out.trim().is_empty() {
            return Vec::new();
        }
        match serde_json::from_str::<Value>(&out).unwrap() {
            Value::Array(routes) => routes,
            other => panic!("unexpected ip -j output {other}"),
        }
    }

    /// The route to `dst` as `ip -j route show DST` prints it (any protocol).
    pub fn route(&self, dst: &str) -> Option<Value> {
        let mut args = vec!["-j"];
        if dst.contains(':') {
            args.push("-6");
        }
        args.extend_from_slice(&["route", "show", dst]);
        let out = self.ip(&args);
        let v: Value = serde_json::from_str(out.trim()).ok()?;
        v.as_array()?.first().cloned()
    }

    /// Runs `make()`'s future to completion on a current-thread runtime in a thread that
    /// has entered this namespace, so that netlink sockets created there belong to it.
    pub fn block_on<F, Fut>(&self, make: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future,
        Fut::Output: Send,
    {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let handle = s.spawn(move || {
                let file = File::open(&path).unwrap();
                // SAFETY: setns on a valid namespace fd affects only this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(make())
            });
            match handle.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
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
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `ip -n NS monitor route` recording to a file until stopped.
pub struct Monitor {
    child: std::process::Child,
    path: std::path::PathBuf,
}

impl Monitor {
    pub fn start(ns: &Netns) -> Self {
        let path = std::env::temp_dir().join(format!("{}-monitor.txt", ns.name));
        let file = File::create(&path).unwrap();
        let child = Command::new("ip")
            .args(["-n", &ns.name, "monitor", "route"])
            .stdout(file)
            .spawn()
            .unwrap();
        // Let it subscribe before anything happens.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Monitor { child, path }
    }

    /// Stops the monitor and returns what it recorded.
    pub fn stop(mut self) -> String {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.path).unwrap()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.path);
    }
}
