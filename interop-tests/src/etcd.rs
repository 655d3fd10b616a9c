//! A driver for real `etcd` (Debian's etcd-server, v3 API): one member or an N-member cluster,
//! on loopback or inside network namespaces, with kill / pause / restart of single members.
//!
//! ```no_run
//! # fn main() -> interop_tests::Result<()> {
//! use interop_tests::etcd::{EtcdCluster, MemberSpec};
//! // Three members on 127.0.0.1 with free ports:
//! let mut cluster = EtcdCluster::loopback(3)?;
//! let endpoints = cluster.client_endpoints(); // ["http://127.0.0.1:40123", …]
//! cluster.kill(1); // SIGKILL one member
//! cluster.restart(1)?; // same data dir, rejoins, waits until healthy
//! # drop(endpoints);
//! # Ok(()) }
//! ```
//!
//! Every member has its own data directory under a [`ScratchDir`] (kept on failure, with the
//! member logs). Dropping the cluster stops every member (SIGTERM, then SIGKILL) and removes the
//! directory.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::names::unique_token;
use crate::netns::Netns;
use crate::ports::free_port;
use crate::process::{command_error, run_unchecked, signal, wait_until, ChildGuard};
use crate::scratch::ScratchDir;

/// The etcd server binary: `$ETCD_BIN`, else `etcd` on `PATH` (Debian: `/usr/bin/etcd`).
pub fn etcd_bin() -> String {
    std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".to_string())
}

/// The etcdctl binary: `$ETCDCTL_BIN`, else `etcdctl` on `PATH`.
pub fn etcdctl_bin() -> String {
    std::env::var("ETCDCTL_BIN").unwrap_or_else(|_| "etcdctl".to_string())
}

/// How long a cluster gets to elect a leader and answer health checks.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// Where one member runs and listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    /// Network namespace to run in (by name; it must outlive the cluster), or `None` for the
    /// test's own namespace.
    pub netns: Option<String>,
    /// Address the member listens on (clients and peers).
    pub ip: IpAddr,
    /// Client port (etcd's default is 2379).
    pub client_port: u16,
    /// Peer port (etcd's default is 2380).
    pub peer_port: u16,
}

impl MemberSpec {
    /// A member on 127.0.0.1 in the current namespace, with two free ports picked now.
    pub fn loopback() -> Result<Self> {
        Ok(Self {
            netns: None,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            client_port: free_port()?,
            peer_port: free_port()?,
        })
    }

    /// A member inside `ns`, listening on `ip` (an address configured in `ns`) with etcd's
    /// default ports 2379 / 2380 (the namespace is the test's own, so they are free).
    pub fn in_netns(ns: &Netns, ip: IpAddr) -> Self {
        Self {
            netns: Some(ns.name().to_string()),
            ip,
            client_port: 2379,
            peer_port: 2380,
        }
    }

    /// `http://IP:CLIENT_PORT`.
    pub fn client_url(&self) -> String {
        url(self.ip, self.client_port)
    }

    /// `http://IP:PEER_PORT`.
    pub fn peer_url(&self) -> String {
        url(self.ip, self.peer_port)
    }
}

fn url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("http://{a}:{port}"),
        IpAddr::V6(a) => format!("http://[{a}]:{port}"),
    }
}

/// PEM files for client TLS: a CA, and one certificate + key signed by it that serves both
/// as the server's (SAN `IP:127.0.0.1`) and as the client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The certificate (server and client auth).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl EtcdTls {
    /// Make a throw-away CA and a certificate for 127.0.0.1 in `dir` with `openssl`.
    pub fn generate(dir: &Path) -> Result<Self> {
        let p = |n: &str| dir.join(n);
        let ext = p("ext.cnf");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n\
             basicConstraints=CA:FALSE\n",
        )
        .map_err(|e| Error::io(&ext, e))?;
        let openssl = |args: &[&std::ffi::OsStr]| -> Result<()> {
            crate::process::run(Command::new("openssl").args(args)).map(|_| ())
        };
        let os = |s: &str| std::ffi::OsString::from(s);
        let ca_key = p("ca.key");
        let ca = p("ca.pem");
        let key = p("node.key");
        let csr = p("node.csr");
        let cert = p("node.pem");
        let run = |args: Vec<std::ffi::OsString>| {
            let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
            openssl(&refs)
        };
        run(vec![
            os("req"),
            os("-x509"),
            os("-newkey"),
            os("rsa:2048"),
            os("-nodes"),
            os("-keyout"),
            ca_key.clone().into(),
            os("-out"),
            ca.clone().into(),
            os("-days"),
            os("2"),
            os("-subj"),
            os("/CN=bramble-test-ca"),
        ])?;
        run(vec![
            os("req"),
            os("-newkey"),
            os("rsa:2048"),
            os("-nodes"),
            os("-keyout"),
            key.clone().into(),
            os("-out"),
            csr.clone().into(),
            os("-subj"),
            os("/CN=etcd"),
        ])?;
        run(vec![
            os("x509"),
            os("-req"),
            os("-in"),
            csr.into(),
            os("-CA"),
            ca.clone().into(),
            os("-CAkey"),
            ca_key.into(),
            os("-CAcreateserial"),
            os("-out"),
            cert.clone().into(),
            os("-days"),
            os("2"),
            os("-extfile"),
            ext.into(),
        ])?;
        Ok(Self { ca, cert, key })
    }
}

/// One member: its spec, name, data dir and process (if running).
#[derive(Debug)]
struct Member {
    spec: MemberSpec,
    name: String,
    data_dir: PathBuf,
    child: Option<ChildGuard>,
    starts: u32,
}

/// A running etcd cluster (one or more members); stopped and removed on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    tls: Option<EtcdTls>,
    initial_cluster: String,
    token: String,
    // Declared last: members are stopped (field drop order) before their directory goes.
    dir: ScratchDir,
}

impl EtcdCluster {
    /// One member on 127.0.0.1 with free ports, healthy on return.
    pub fn single() -> Result<Self> {
        Self::loopback(1)
    }

    /// `n` members on 127.0.0.1, each with its own free ports, healthy on return.
    pub fn loopback(n: usize) -> Result<Self> {
        let specs = (0..n)
            .map(|_| MemberSpec::loopback())
            .collect::<Result<Vec<_>>>()?;
        Self::start(specs)
    }

    /// One member per `(namespace, address)` pair, ports 2379 / 2380, healthy on return.
    pub fn in_namespaces(members: &[(&Netns, IpAddr)]) -> Result<Self> {
        Self::start(
            members
                .iter()
                .map(|(ns, ip)| MemberSpec::in_netns(ns, *ip))
                .collect(),
        )
    }

    /// Start one member per spec as a new cluster and wait until every member is healthy.
    pub fn start(specs: Vec<MemberSpec>) -> Result<Self> {
        Self::start_with(specs, None)
    }

    /// One member on 127.0.0.1 serving clients over TLS only (`https://`), requiring a client
    /// certificate signed by `tls.ca`; healthy on return.
    pub fn single_tls(tls: EtcdTls) -> Result<Self> {
        Self::start_with(vec![MemberSpec::loopback()?], Some(tls))
    }

    /// [`EtcdCluster::start`], with client TLS when `tls` is given (peers stay plain).
    pub fn start_with(specs: Vec<MemberSpec>, tls: Option<EtcdTls>) -> Result<Self> {
        if specs.is_empty() {
            return Err(Error::parse("etcd cluster", "no members given"));
        }
        let token = unique_token();
        let dir = ScratchDir::new("etcd")?;
        let members: Vec<Member> = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| Member {
                spec,
                name: format!("m{i}"),
                data_dir: dir.join(&format!("m{i}.data")),
                child: None,
                starts: 0,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.spec.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self {
            members,
            tls: None,
            initial_cluster,
            token: format!("bramble-{token}"),
            dir,
        };
        cluster.tls = tls;
        for i in 0..cluster.members.len() {
            cluster.spawn(i)?;
        }
        cluster.wait_healthy()?;
        Ok(cluster)
    }

    /// Number of members (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no members (never true for a started cluster).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The scratch directory holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Member `i`'s spec. Panics when `i` is out of range (a test bug).
    pub fn spec(&self, i: usize) -> &MemberSpec {
        &self.members[i].spec
    }

    /// Member `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.members[i].data_dir
    }

    /// Every member's client URL (`http://IP:PORT`), running or not, in member order.
    pub fn client_endpoints(&self) -> Vec<String> {
        (0..self.members.len())
            .map(|i| self.client_endpoint(i))
            .collect()
    }

    /// Member `i`'s client URL (`https://…` with TLS).
    pub fn client_endpoint(&self, i: usize) -> String {
        let url = self.members[i].spec.client_url();
        match self.tls {
            Some(_) => url.replacen("http://", "https://", 1),
            None => url,
        }
    }

    /// Whether member `i`'s process runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.members[i]
            .child
            .as_mut()
            .map(ChildGuard::is_running)
            .unwrap_or(false)
    }

    /// SIGKILL member `i` (a crash); its data dir stays for [`EtcdCluster::restart`].
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            c.kill();
        }
    }

    /// Stop member `i` gracefully (SIGTERM, then SIGKILL after a grace period).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            c.stop();
        }
    }

    /// SIGSTOP member `i`: it keeps its sockets open but answers nothing (a hung server,
    /// for client timeout tests). [`EtcdCluster::resume`] undoes it.
    pub fn pause(&mut self, i: usize) {
        if let Some(c) = &self.members[i].child {
            signal(i32::try_from(c.pid()).unwrap_or(0), libc::SIGSTOP);
        }
    }

    /// SIGCONT member `i` after [`EtcdCluster::pause`].
    pub fn resume(&mut self, i: usize) {
        if let Some(c) = &self.members[i].child {
            signal(i32::try_from(c.pid()).unwrap_or(0), libc::SIGCONT);
        }
    }

    /// Start member `i` again on its data dir (after [`EtcdCluster::kill`] or
    /// [`EtcdCluster::stop`]; a running member is killed first) and wait until the whole
    /// cluster is healthy.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_member_healthy(i)
    }

    /// Wait until every running member reports healthy (`etcdctl endpoint health`).
    pub fn wait_healthy(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            if self.members[i].child.is_some() {
                self.wait_member_healthy(i)?;
            }
        }
        Ok(())
    }

    /// Wait until member `i` answers a health check (which needs a cluster quorum).
    pub fn wait_member_healthy(&mut self, i: usize) -> Result<()> {
        let what = format!("etcd member {} healthy", self.members[i].name);
        wait_until(&what, HEALTH_TIMEOUT, Duration::from_millis(200), || {
            if let Some(c) = self.members[i].child.as_mut() {
                c.check_running()?;
            }
            let out = run_unchecked(
                &mut self.etcdctl_cmd(i, &["endpoint", "health", "--command-timeout=2s"]),
            )?;
            crate::check(out.status.success(), || {
                String::from_utf8_lossy(&out.stderr).trim().to_string()
            })
        })
    }

    /// Run `etcdctl ARGS…` against member `i` only (inside its namespace); error unless it exits
    /// 0. Returns stdout.
    pub fn etcdctl_at(&self, i: usize, args: &[&str]) -> Result<String> {
        let mut cmd = self.etcdctl_cmd(i, args);
        let out = run_unchecked(&mut cmd)?;
        if !out.status.success() {
            return Err(command_error(&cmd, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run `etcdctl ARGS…` against every member's endpoint (from member 0's namespace).
    pub fn etcdctl(&self, args: &[&str]) -> Result<String> {
        let mut cmd = self.base_cmd(0, &etcdctl_bin());
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.client_endpoints().join(",")))
            .args(self.tls_args())
            .args(args);
        let out = run_unchecked(&mut cmd)?;
        if !out.status.success() {
            return Err(command_error(&cmd, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Keys under `prefix` (`etcdctl get --prefix --keys-only`), in key order.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let out = self.etcdctl(&["get", "--prefix", "--keys-only", prefix])?;
        Ok(out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect())
    }

    /// `etcd` or `etcdctl` for member `i`: inside its namespace when it has one.
    fn base_cmd(&self, i: usize, program: &str) -> Command {
        match &self.members[i].spec.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    fn etcdctl_cmd(&self, i: usize, args: &[&str]) -> Command {
        let mut cmd = self.base_cmd(i, &etcdctl_bin());
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.client_endpoint(i)))
            .args(self.tls_args())
            .args(args);
        cmd
    }

    fn tls_args(&self) -> Vec<String> {
        match &self.tls {
            Some(t) => vec![
                format!("--cacert={}", t.ca.display()),
                format!("--cert={}", t.cert.display()),
                format!("--key={}", t.key.display()),
            ],
            None => Vec::new(),
        }
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let mut cmd = self.base_cmd(i, &etcd_bin());
        let client = self.client_endpoint(i);
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&t.cert)
                .arg("--key-file")
                .arg(&t.key)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        let m = &self.members[i];
        let peer = m.spec.peer_url();
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            // Ignored by etcd once the data dir exists (a restart rejoins as before).
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-level", "warn"])
            // Test clusters only: no metrics listener, no v2 API.
            .args(["--enable-v2=false"]);
        let label = format!("{}-{}", m.name, m.starts);
        let guard = ChildGuard::spawn(cmd, &label, self.dir.path())?;
        let m = &mut self.members[i];
        m.starts += 1;
        m.child = Some(guard);
        Ok(())
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                // A paused member must run again to see SIGTERM.
                signal(i32::try_from(c.pid()).unwrap_or(0), libc::SIGCONT);
                c.stop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_bracket_ipv6() {
        let spec = MemberSpec {
            netns: None,
            ip: "::1".parse().unwrap(),
            client_port: 1,
            peer_port: 2,
        };
        assert_eq!(spec.client_url(), "http://[::1]:1");
        assert_eq!(spec.peer_url(), "http://[::1]:2");
    }
}
