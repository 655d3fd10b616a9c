//! The CLI side of the control API: a blocking client (one request line, one response line).

use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bgp::speaker::{Announce, PeerStatus, RouteEntry, TableKind};
use bgp::wire::Prefix;

use std::collections::BTreeMap;

use crate::api::{IpamAddress, Request, Response};

/// How long to wait for the agent to answer one request.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the agent at {}", .path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("lost the connection to the agent at {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the agent closed the connection without answering")]
    Closed,
    #[error("the agent's answer was not understood: {0}")]
    Protocol(String),
    /// The agent answered with an error.
    #[error("{0}")]
    Agent(String),
}

/// A connection to the agent's control socket.
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let connect_err = |source| ClientError::Connect {
            path: path.into(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(connect_err)?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
            .map_err(connect_err)?;
        let writer = stream.try_clone().map_err(connect_err)?;
        Ok(Self {
            path: path.into(),
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends `req` and reads the answer; `Response::Error` becomes [`ClientError::Agent`].
    pub fn request(&mut self, req: &Request) -> Result<Response, ClientError> {
        let io_err = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).map_err(io_err)?;
        let mut answer = String::new();
        if self.reader.read_line(&mut answer).map_err(io_err)? == 0 {
            return Err(ClientError::Closed);
        }
        match serde_json::from_str(answer.trim_end()) {
            Ok(Response::Error { message }) => Err(ClientError::Agent(message)),
            Ok(r) => Ok(r),
            Err(e) => Err(ClientError::Protocol(e.to_string())),
        }
    }

    /// `bramble status`.
    pub fn status(&mut self) -> Result<Vec<PeerStatus>, ClientError> {
        match self.request(&Request::Status)? {
            Response::Status { peers } => Ok(peers),
            other => Err(unexpected(&other)),
        }
    }

    /// `bramble routes`.
    pub fn routes(
        &mut self,
        table: TableKind,
        peer: Option<IpAddr>,
    ) -> Result<Vec<RouteEntry>, ClientError> {
        match self.request(&Request::Routes { table, peer })? {
            Response::Routes { routes } => Ok(routes),
            other => Err(unexpected(&other)),
        }
    }

    /// `bramble routes announce`; returns how many prefixes the agent took.
    pub fn announce(&mut self, routes: Vec<Announce>) -> Result<usize, ClientError> {
        match self.request(&Request::Announce { routes })? {
            Response::Done { count } => Ok(count),
            other => Err(unexpected(&other)),
        }
    }

    /// `bramble routes withdraw`; returns how many prefixes the agent withdrew.
    pub fn withdraw(&mut self, prefixes: Vec<Prefix>) -> Result<usize, ClientError> {
        match self.request(&Request::Withdraw { prefixes })? {
            Response::Done { count } => Ok(count),
            other => Err(unexpected(&other)),
        }
    }
}

/// The answer to [`Client::ipam_check`].
#[derive(Debug, Clone, PartialEq)]
pub struct IpamCheckOutcome {
    /// An `ipam::CheckReport` as JSON.
    pub report: serde_json::Value,
    /// Nothing stale, leaked or inconsistent was found.
    pub clean: bool,
    /// How many stale entries were released (0 unless `release`).
    pub released: usize,
}

impl Client {
    /// `bramble ipam allocate`: one address for `handle` (the same one again if the handle
    /// already holds one of the family).
    pub fn ipam_allocate(
        &mut self,
        handle: &str,
        pool: Option<Prefix>,
        ip: Option<IpAddr>,
        family: Option<u8>,
        attrs: BTreeMap<String, String>,
    ) -> Result<Vec<IpamAddress>, ClientError> {
        let req = Request::IpamAllocate {
            handle: handle.to_string(),
            pool,
            ip,
            family,
            attrs,
        };
        match self.request(&req)? {
            Response::Allocated { addresses } => Ok(addresses),
            other => Err(unexpected(&other)),
        }
    }

    /// `bramble ipam release`: by handle or by address (give exactly one); returns how many
    /// addresses were freed (0 when there was nothing to free).
    pub fn ipam_release(
        &mut self,
        handle: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<usize, ClientError> {
        let req = Request::IpamRelease {
            handle: handle.map(str::to_string),
            ip,
        };
        match self.request(&req)? {
            Response::Done { count } => Ok(count),
            other => Err(unexpected(&other)),
        }
    }

    /// The addresses `handle` holds (empty when none).
    #[allow(dead_code)] // The CNI plugin's (CHECK); the CLI has no use for it.
    pub fn ipam_get(&mut self, handle: &str) -> Result<Vec<IpamAddress>, ClientError> {
        let req = Request::IpamGet {
            handle: handle.to_string(),
        };
        match self.request(&req)? {
            Response::Allocated { addresses } => Ok(addresses),
            other => Err(unexpected(&other)),
        }
    }

    /// `bramble ipam show`: `ipam::PoolUsage` values as JSON.
    pub fn ipam_show(&mut self) -> Result<serde_json::Value, ClientError> {
        match self.request(&Request::IpamShow)? {
            Response::IpamUsage { pools } => Ok(pools),
            other => Err(unexpected(&other)),
        }
    }

    /// `bramble ipam check`: `live` = the handles to keep (anything else is stale), `release`
    /// = free what is stale.
    pub fn ipam_check(
        &mut self,
        live: Option<Vec<String>>,
        release: bool,
    ) -> Result<IpamCheckOutcome, ClientError> {
        let req = Request::IpamCheck {
            live_handles: live,
            release,
        };
        match self.request(&req)? {
            Response::IpamCheck {
                report,
                clean,
                released,
            } => Ok(IpamCheckOutcome {
                report,
                clean,
                released,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Whether the agent can allocate now: `Ok(free addresses)`, or
    /// [`ClientError::Agent`] saying why not.
    #[allow(dead_code)] // The CNI plugin's (STATUS); the CLI has no use for it.
    pub fn ipam_status(&mut self) -> Result<usize, ClientError> {
        match self.request(&Request::IpamStatus)? {
            Response::Done { count } => Ok(count),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(r: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected response {r:?}"))
}
