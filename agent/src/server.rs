//! The control server: accepts connections on the Unix socket, one task per connection,
//! answers each request line by asking the speaker (or, for the FIB table, the FIB
//! programmer). Shutdown drains: the listener stops
//! accepting, every handler finishes the request it is on, then [`serve`] returns
//! (mini-redis style: a broadcast to stop, an mpsc whose closing says all handlers ended).

use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bgp::speaker::{SpeakerHandle, TableKind};
use fib::FibHandle;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info, warn};

use crate::api::{Request, Response, MAX_REQUEST_LEN};
use crate::fib_sink::fib_routes;
use crate::ipam_service::IpamService;
use crate::registry::Cluster;

/// What the control server answers from: the speaker, the FIB programmer when
/// `[fib] enabled` (the speaker does not serve the FIB table), and IPAM when
/// `[[ipam.pools]]` are configured.
#[derive(Clone)]
pub struct Services {
    pub speaker: SpeakerHandle,
    pub fib: Option<FibHandle>,
    pub ipam: Option<Arc<IpamService>>,
    /// The node registry and mesh, when etcd endpoints are configured.
    pub cluster: Option<Arc<Cluster>>,
    /// Config reload (`bramble reload`); None when the agent was not started from a file.
    pub reload: Option<Arc<crate::reload::Reloader>>,
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot create {dir}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} exists and is not a socket; refusing to remove it")]
    NotASocket { path: PathBuf },
    #[error("another agent is already listening on {path}")]
    InUse { path: PathBuf },
    #[error("cannot remove the stale socket {path}")]
    Stale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {path}")]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A bound control socket. Dropping it does not remove the file; call [`ControlSocket::remove`].
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Creates the parent directory if needed, removes a stale socket left by an agent that
    /// died, binds `path` and makes it readable and writable by the owner only (0600).
    pub fn bind(path: &Path) -> Result<Self, BindError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| BindError::Dir {
                    dir: dir.to_path_buf(),
                    source,
                })?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(BindError::NotASocket { path: path.into() });
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse { path: path.into() });
            }
            std::fs::remove_file(path).map_err(|source| BindError::Stale {
                path: path.into(),
                source,
            })?;
            info!(path = %path.display(), "removed stale control socket");
        }
        let bind_err = |source| BindError::Bind {
            path: path.into(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        // Nothing is accepted before the mode is set, so no client gets in through the
        // umask-derived mode.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
        Ok(Self {
            listener,
            path: path.into(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves requests until `shutdown` completes, then waits for every open connection to
    /// finish the request it is handling.
    pub async fn serve(&self, services: Services, shutdown: impl Future<Output = ()>) {
        let (stop_tx, _) = broadcast::channel::<()>(1);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        tokio::select! {
            () = accept_loop(&self.listener, &services, &stop_tx, &done_tx) => {}
            () = shutdown => {}
        }
        // Dropping the sender tells every handler to stop; the receiver then sees the
        // channel close once the last handler has dropped its `done` sender.
        drop(stop_tx);
        drop(done_tx);
        let _ = done_rx.recv().await;
    }

    /// Removes the socket file (ignoring a file that is already gone).
    pub fn remove(self) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

async fn accept_loop(
    listener: &UnixListener,
    services: &Services,
    stop: &broadcast::Sender<()>,
    done: &mpsc::Sender<()>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let handler = Handler {
                    services: services.clone(),
                    stop: stop.subscribe(),
                    _done: done.clone(),
                };
                tokio::spawn(handler.run(stream));
            }
            Err(e) => {
                // EMFILE and the like: back off rather than spin.
                warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct Handler {
    services: Services,
    stop: broadcast::Receiver<()>,
    /// Dropped when the handler ends; see [`ControlSocket::serve`].
    _done: mpsc::Sender<()>,
}

impl Handler {
    async fn run(mut self, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        loop {
            let mut line = String::new();
            let mut limited = (&mut reader).take(MAX_REQUEST_LEN);
            let read = tokio::select! {
                r = limited.read_line(&mut line) => r,
                _ = self.stop.recv() => return,
            };
            let (response, close) = match read {
                Ok(0) => return,
                Ok(_) if !line.ends_with('\n') && line.len() as u64 >= MAX_REQUEST_LEN => {
                    // The rest of the oversized line would be read as garbage requests:
                    // answer, then close.
                    let message = format!("request longer than {MAX_REQUEST_LEN} bytes");
                    (Response::Error { message }, true)
                }
                Ok(_) => (self.handle_line(&line).await, false),
                Err(e) => {
                    debug!(error = %e, "control connection read failed");
                    return;
                }
            };
            if let Err(e) = write_response(&mut write, &response).await {
                debug!(error = %e, "control connection write failed");
                return;
            }
            if close {
                return;
            }
        }
    }

    async fn handle_line(&self, line: &str) -> Response {
        match serde_json::from_str::<Request>(line.trim_end()) {
            Ok(req) => {
                debug!(request = ?req, "control request");
                answer(&self.services, req).await
            }
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
        }
    }
}

async fn write_response(
    w: &mut (impl AsyncWriteExt + Unpin),
    response: &Response,
) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(response).map_err(io::Error::other)?;
    bytes.push(b'\n');
    w.write_all(&bytes).await?;
    w.flush().await
}

/// Runs one request against the speaker, the FIB programmer for the FIB table, or IPAM.
pub async fn answer(services: &Services, req: Request) -> Response {
    let speaker = &services.speaker;
    let result = match req {
        Request::Routes {
            table: TableKind::Fib,
            peer,
        } => return fib_table(services.fib.as_ref(), peer).await,
        Request::Status => speaker.status().await.map(|mut peers| {
            if let Some(mesh) = services.cluster.as_ref().and_then(|c| c.mesh.as_ref()) {
                mesh.mark(&mut peers);
            }
            Response::Status { peers }
        }),
        Request::Nodes => Ok(match &services.cluster {
            Some(cluster) => {
                let view = cluster.registry.view();
                Response::Nodes {
                    nodes: view.nodes.into_values().collect(),
                    connected: view.connected,
                }
            }
            None => Response::Error {
                message: "no node registry: set ipam.etcd_endpoints".into(),
            },
        }),
        Request::Routes { table, peer } => speaker.routes(table, peer).await.map(|r| match r {
            Ok(routes) => Response::Routes { routes },
            Err(message) => Response::Error { message },
        }),
        Request::Announce { routes } => speaker.announce(routes).await.map(done),
        Request::Withdraw { prefixes } => speaker.withdraw(prefixes).await.map(done),
        Request::Reload => match &services.reload {
            Some(r) => Ok(match r.reload().await {
                Ok(report) => Response::Reloaded { report },
                Err(e) => Response::Error {
                    message: format!("{e:#}"),
                },
            }),
            None => Ok(Response::Error {
                message: "this agent cannot reload its configuration".into(),
            }),
        },
        Request::IpamAllocate { .. }
        | Request::IpamRelease { .. }
        | Request::IpamGet { .. }
        | Request::IpamShow
        | Request::IpamCheck { .. }
        | Request::IpamStatus => match &services.ipam {
            Some(ipam) => Ok(ipam.answer(req).await),
            None => Ok(Response::Error {
                message: "IPAM is off: no [[ipam.pools]] configured".into(),
            }),
        },
    };
    result.unwrap_or_else(|gone| Response::Error {
        message: gone.to_string(),
    })
}

/// `routes --table fib`, from the programmer's status.
async fn fib_table(fib: Option<&FibHandle>, peer: Option<std::net::IpAddr>) -> Response {
    let message = match (fib, peer) {
        (None, _) => "the FIB is disabled ([fib] enabled = false)".to_string(),
        // The kernel's routes do not record which peer they came from.
        (Some(_), Some(_)) => "--peer does not apply to the fib table".to_string(),
        (Some(fib), None) => {
            return Response::Routes {
                routes: fib_routes(&fib.status().await),
            }
        }
    };
    Response::Error { message }
}

fn done(r: Result<usize, String>) -> Response {
    match r {
        Ok(count) => Response::Done { count },
        Err(message) => Response::Error { message },
    }
}
