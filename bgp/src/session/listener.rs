//! Accepts BGP connections and hands each to the peer registered for its source address.
//!
//! Trust settings of the registered peers are applied to the listening socket:
//! - TCP MD5 (RFC 2385): one key per peer address (`TCP_MD5SIG`); the kernel checks it on
//!   the SYN and copies it to the accepted connection.
//! - GTSM (RFC 5082): `IP_MINTTL` is per socket, so on a listener it covers every peer's
//!   handshake. It is set on the listener only while *every* registered peer uses GTSM.
//!   Otherwise the listener saves each SYN (`TCP_SAVE_SYN`) and a GTSM peer's connection is
//!   closed at once when its SYN arrived with a TTL below [`GTSM_MIN_TTL`]. Either way the
//!   accepted socket gets TTL 255 and `IP_MINTTL` before anything is read from it. The
//!   listener sends with TTL 255 while any peer uses GTSM, so SYN-ACKs pass the peer's check.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::sockopt::{self, GTSM_MIN_TTL, GTSM_TTL};
use super::PeerHandle;

type Registry = Arc<Mutex<HashMap<IpAddr, PeerHandle>>>;

/// Linux's default TTL, restored on the listener when no peer uses GTSM any more.
const DEFAULT_TTL: u8 = 64;

/// A bound BGP listening socket. Connections from unregistered addresses are closed at
/// once. Dropping the listener stops accepting.
#[derive(Debug)]
pub struct Listener {
    local: SocketAddr,
    peers: Registry,
    /// The listening socket (a duplicate descriptor), for per-peer socket options.
    sock: Socket,
    task: JoinHandle<()>,
}

impl Listener {
    /// Binds `addr` (IPv4 or IPv6, SO_REUSEADDR) and starts accepting.
    pub async fn bind(addr: SocketAddr) -> io::Result<Listener> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        sock.listen(128)?;
        let dup = sock.try_clone()?;
        let listener = TcpListener::from_std(sock.into())?;
        let local = listener.local_addr()?;
        let peers: Registry = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn(accept_loop(listener, peers.clone(), local.is_ipv6()));
        info!(%local, "listening for BGP connections");
        Ok(Listener {
            local,
            peers,
            sock: dup,
            task,
        })
    }

    /// Routes connections from `remote` to `peer` (replacing an earlier registration), and
    /// installs the peer's TCP MD5 key and GTSM setting on the listening socket. A failure
    /// is logged; it fails closed (the kernel then drops the peer's signed SYNs).
    pub fn register(&self, remote: IpAddr, peer: &PeerHandle) {
        if let Err(e) = self.try_register(remote, peer) {
            error!(peer = %remote, "cannot apply the peer's TCP MD5 / GTSM settings to the listener: {e}");
        }
    }

    /// Like [`Listener::register`], returning the socket option error. The peer is
    /// registered even when setting an option fails.
    pub fn try_register(&self, remote: IpAddr, peer: &PeerHandle) -> io::Result<()> {
        let remote = remote.to_canonical();
        let old = lock(&self.peers).insert(remote, peer.clone());
        let had_key = old.is_some_and(|o| o.security().password.is_some());
        let key = peer.security().password.as_ref();
        let res = if key.is_some() || had_key {
            sockopt::set_md5_key(&self.sock, self.local.is_ipv6(), remote, key)
        } else {
            Ok(())
        };
        res.and(self.apply_gtsm())
    }

    /// Stops routing connections from `remote` (and drops the handle the listener held and
    /// its MD5 key).
    pub fn unregister(&self, remote: IpAddr) {
        let remote = remote.to_canonical();
        let old = lock(&self.peers).remove(&remote);
        if old.is_some_and(|o| o.security().password.is_some()) {
            if let Err(e) = sockopt::set_md5_key(&self.sock, self.local.is_ipv6(), remote, None) {
                warn!(peer = %remote, "cannot remove the TCP MD5 key: {e}");
            }
        }
        if let Err(e) = self.apply_gtsm() {
            warn!("cannot update GTSM on the listener: {e}");
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Listener-level GTSM options from the registered peers (see the module comment).
    fn apply_gtsm(&self) -> io::Result<()> {
        let (any, all) = {
            let peers = lock(&self.peers);
            let gtsm = |p: &PeerHandle| p.security().ttl_security;
            (
                peers.values().any(gtsm),
                !peers.is_empty() && peers.values().all(gtsm),
            )
        };
        let v6 = self.local.is_ipv6();
        sockopt::set_ttl(&self.sock, v6, if any { GTSM_TTL } else { DEFAULT_TTL })?;
        sockopt::set_save_syn(&self.sock, any && !all)?;
        sockopt::set_min_ttl(&self.sock, v6, if all { GTSM_MIN_TTL } else { 0 })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(r: &Registry) -> std::sync::MutexGuard<'_, HashMap<IpAddr, PeerHandle>> {
    r.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(listener: TcpListener, peers: Registry, v6: bool) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                // An IPv4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d.
                let ip = from.ip().to_canonical();
                let peer = lock(&peers).get(&ip).cloned();
                match peer {
                    Some(peer) => {
                        if admit(&stream, &peer, from, v6) {
                            peer.accept(stream);
                        }
                    }
                    None => debug!(%from, "connection from an unconfigured address refused"),
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// RFC 5082 §3 for an accepted connection of a GTSM peer: its SYN must have arrived with
/// TTL 255, and every later segment must too (`IP_MINTTL`, set before anything is read).
/// False = the connection is closed (dropped) here.
fn admit(stream: &TcpStream, peer: &PeerHandle, from: SocketAddr, v6: bool) -> bool {
    if !peer.security().ttl_security {
        return true;
    }
    match sockopt::saved_syn_ttl(stream) {
        Ok(Some(ttl)) if ttl < GTSM_MIN_TTL => {
            warn!(%from, ttl, min = GTSM_MIN_TTL,
                "GTSM: connection refused, the SYN arrived with too low a TTL (RFC 5082)");
            return false;
        }
        Ok(_) => {}
        // No saved SYN (the listener-level IP_MINTTL already checked it).
        Err(e) => debug!(%from, "no saved SYN: {e}"),
    }
    if let Err(e) = sockopt::set_gtsm(stream, v6) {
        warn!(%from, "GTSM: cannot set TTL options on the accepted connection, refusing it: {e}");
        return false;
    }
    true
}
