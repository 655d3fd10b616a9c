//! Accepts BGP connections and hands each to the peer registered for its source address.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::PeerHandle;

type Registry = Arc<Mutex<HashMap<IpAddr, PeerHandle>>>;

/// A bound BGP listening socket. Connections from unregistered addresses are closed at
/// once. Dropping the listener stops accepting.
#[derive(Debug)]
pub struct Listener {
    local: SocketAddr,
    peers: Registry,
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
        let listener = TcpListener::from_std(sock.into())?;
        let local = listener.local_addr()?;
        let peers: Registry = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn(accept_loop(listener, peers.clone()));
        info!(%local, "listening for BGP connections");
        Ok(Listener { local, peers, task })
    }

    /// Routes connections from `remote` to `peer` (replacing an earlier registration).
    pub fn register(&self, remote: IpAddr, peer: &PeerHandle) {
        lock(&self.peers).insert(remote.to_canonical(), peer.clone());
    }

    /// Stops routing connections from `remote` (and drops the handle the listener held).
    pub fn unregister(&self, remote: IpAddr) {
        lock(&self.peers).remove(&remote.to_canonical());
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
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

async fn accept_loop(listener: TcpListener, peers: Registry) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                // An IPv4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d.
                let ip = from.ip().to_canonical();
                let peer = lock(&peers).get(&ip).cloned();
                match peer {
                    Some(peer) => peer.accept(stream),
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
