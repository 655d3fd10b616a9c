//! The `RouteTable` seam between the programmer's logic and the kernel, and an in-memory
//! implementation of it for unit tests.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::channel::mpsc;
use futures::stream::BoxStream;
use futures::StreamExt;
use ipnetwork::IpNetwork;

use crate::route::{Route, RouteKind};

/// `EEXIST`: the destination already has a route (with add-exclusive).
pub const EEXIST: i32 = 17;
/// `ESRCH`: no such route (delete of a route that is gone).
pub const ESRCH: i32 = 3;
/// `EHOSTUNREACH`: the IPv6 gateway is not reachable.
pub const EHOSTUNREACH: i32 = 113;
/// `ENETUNREACH`: the (IPv4) gateway is not reachable.
pub const ENETUNREACH: i32 = 101;

/// Why the kernel refused one route change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RouteError {
    /// The positive errno the kernel answered, if it answered one.
    pub errno: Option<i32>,
    /// The kernel's error text, e.g. `Network is unreachable (os error 101)`.
    pub message: String,
}

impl RouteError {
    /// An error from a positive errno, with the system's text for it.
    pub fn from_errno(errno: i32) -> Self {
        Self {
            errno: Some(errno),
            message: io::Error::from_raw_os_error(errno).to_string(),
        }
    }

    /// An error that carries no errno (transport failure, unparsable answer).
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            errno: None,
            message: message.into(),
        }
    }

    /// Whether this is `EEXIST`.
    pub fn is_exists(&self) -> bool {
        self.errno == Some(EEXIST)
    }

    /// Whether this says the route is not there (`ESRCH` or `ENOENT`).
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno, Some(ESRCH) | Some(2))
    }
}

/// A failure of the table as a whole (opening netlink, dumping).
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Opening or binding the netlink socket failed.
    #[error("netlink socket: {0}")]
    Socket(#[from] io::Error),
    /// A dump request failed.
    #[error("route dump failed: {0}")]
    Dump(String),
}

/// Something that happened to one of our routes without us asking for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteEvent {
    /// A route of our protocol in our table was deleted (by anyone, us included).
    Deleted(Route),
}

/// One write to the table, as the programmer plans it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteWrite {
    /// Install `route`; `replace` when we already own a route to its destination
    /// (see [`RouteTable::add`]).
    Add {
        /// The route as wanted.
        route: Route,
        /// Replace our route (`true`) or create exclusively (`false`).
        replace: bool,
    },
    /// Delete our route (as the kernel holds it).
    Delete(Route),
}

impl RouteWrite {
    /// The destination written.
    pub fn dst(&self) -> IpNetwork {
        match self {
            RouteWrite::Add { route, .. } | RouteWrite::Delete(route) => route.dst,
        }
    }
}

/// The answer to one [`RouteWrite`]: for an add, the route as the kernel holds it.
pub type WriteResult = Result<Option<Route>, RouteError>;

/// Requests in flight at once in the default [`RouteTable::write_batch`].
const PIPELINE_DEPTH: usize = 256;

/// A kernel routing table restricted to one protocol number: what the programmer reads
/// and writes. Every method only ever sees or touches routes of that protocol, except
/// that `add(.., replace = false)` is refused with `EEXIST` when any route (of any
/// protocol) holds the destination.
pub trait RouteTable: Send + Sync + 'static {
    /// All routes of our protocol in our table, both families.
    fn dump(&self) -> impl Future<Output = Result<Vec<Route>, TableError>> + Send;

    /// Installs `route`. `replace = false` creates it exclusively (`NLM_F_EXCL`): used
    /// when we do not own a route to that destination, so that a foreign one is never
    /// overwritten. `replace = true` swaps our existing route atomically
    /// (`NLM_F_REPLACE`). Returns the route as the kernel holds it (next hops resolved).
    fn add(
        &self,
        route: &Route,
        replace: bool,
    ) -> impl Future<Output = Result<Route, RouteError>> + Send;

    /// Deletes our route to `route.dst` (never one of another protocol).
    fn delete(&self, route: &Route) -> impl Future<Output = Result<(), RouteError>> + Send;

    /// Applies many writes and returns one answer per write, in the same order. Writes
    /// go to distinct destinations, so their order among themselves does not matter.
    /// The default calls [`RouteTable::add`] / [`RouteTable::delete`], up to 256 at
    /// once; `NetlinkTable` sends them in large netlink batches instead.
    fn write_batch(&self, writes: &[RouteWrite]) -> impl Future<Output = Vec<WriteResult>> + Send {
        futures::stream::iter(writes.iter().map(move |w| async move {
            match w {
                RouteWrite::Add { route, replace } => self.add(route, *replace).await.map(Some),
                RouteWrite::Delete(route) => self.delete(route).await.map(|()| None),
            }
        }))
        .buffered(PIPELINE_DEPTH)
        .collect()
    }

    /// A stream of events about our routes. When it ends the programmer subscribes again
    /// and runs a full resync, since events may have been lost.
    fn subscribe(&self) -> Result<BoxStream<'static, RouteEvent>, TableError>;
}

/// Counters of the operations a [`MemoryTable`] was asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryOps {
    /// Exclusive adds.
    pub adds: u64,
    /// Replaces.
    pub replaces: u64,
    /// Deletes.
    pub deletes: u64,
    /// Dumps.
    pub dumps: u64,
}

#[derive(Default)]
struct MemoryInner {
    // dst -> (route, protocol)
    routes: HashMap<IpNetwork, (Route, u8)>,
    unreachable: HashSet<IpAddr>,
    ops: MemoryOps,
    log: Vec<String>,
    subscribers: Vec<mpsc::UnboundedSender<RouteEvent>>,
}

/// An in-memory routing table behaving like the kernel's for the programmer's purposes:
/// `EEXIST` on exclusive add over any route, `ENETUNREACH` for gateways marked
/// unreachable, `ESRCH` on deleting a missing route. Cloning shares the table.
#[derive(Clone)]
pub struct MemoryTable {
    protocol: u8,
    inner: Arc<Mutex<MemoryInner>>,
}

impl MemoryTable {
    /// An empty table whose own routes carry `protocol`.
    pub fn new(protocol: u8) -> Self {
        Self {
            protocol,
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemoryInner> {
        // A poisoned lock only means a test thread panicked; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a route of protocol `protocol` into the table directly (as another daemon or
    /// an earlier run would).
    pub fn insert_raw(&self, route: Route, protocol: u8) {
        self.lock().routes.insert(route.dst, (route, protocol));
    }

    /// Deletes a route directly, as an operator would, and tells subscribers if it was
    /// one of ours.
    pub fn delete_raw(&self, dst: IpNetwork) {
        let mut inner = self.lock();
        if let Some((route, proto)) = inner.routes.remove(&dst) {
            if proto == self.protocol {
                inner.subscribers.retain(|tx| {
                    tx.unbounded_send(RouteEvent::Deleted(route.clone()))
                        .is_ok()
                });
            }
        }
    }

    /// Marks a gateway as unreachable: adds using it fail with `ENETUNREACH`.
    pub fn set_unreachable(&self, gateway: IpAddr, unreachable: bool) {
        let mut inner = self.lock();
        if unreachable {
            inner.unreachable.insert(gateway);
        } else {
            inner.unreachable.remove(&gateway);
        }
    }

    /// The route to `dst` and its protocol.
    pub fn get(&self, dst: &IpNetwork) -> Option<(Route, u8)> {
        self.lock().routes.get(dst).cloned()
    }

    /// Number of routes of any protocol.
    pub fn len(&self) -> usize {
        self.lock().routes.len()
    }

    /// Whether the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.lock().routes.is_empty()
    }

    /// Operation counters so far.
    pub fn ops(&self) -> MemoryOps {
        self.lock().ops
    }

    /// Every write so far, as `add DST`, `replace DST` or `delete DST`.
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }
}

impl RouteTable for MemoryTable {
    fn dump(&self) -> impl Future<Output = Result<Vec<Route>, TableError>> + Send {
        let mut inner = self.lock();
        inner.ops.dumps += 1;
        let routes = inner
            .routes
            .values()
            .filter(|(_, p)| *p == self.protocol)
            .map(|(r, _)| r.clone())
            .collect();
        std::future::ready(Ok(routes))
    }

    fn add(
        &self,
        route: &Route,
        replace: bool,
    ) -> impl Future<Output = Result<Route, RouteError>> + Send {
        let mut inner = self.lock();
        let result = (|| {
            if let RouteKind::Unicast(hops) = &route.kind {
                if hops.is_empty() {
                    return Err(RouteError::from_errno(22));
                }
                if hops.iter().any(|h| inner.unreachable.contains(&h.gateway)) {
                    return Err(RouteError::from_errno(ENETUNREACH));
                }
            }
            if replace {
                inner.ops.replaces += 1;
                inner.log.push(format!("replace {}", route.dst));
            } else {
                if inner.routes.contains_key(&route.dst) {
                    return Err(RouteError::from_errno(EEXIST));
                }
                inner.ops.adds += 1;
                inner.log.push(format!("add {}", route.dst));
            }
            inner
                .routes
                .insert(route.dst, (route.clone(), self.protocol));
            Ok(route.clone())
        })();
        std::future::ready(result)
    }

    fn delete(&self, route: &Route) -> impl Future<Output = Result<(), RouteError>> + Send {
        let mut inner = self.lock();
        let result = match inner.routes.get(&route.dst) {
            Some((_, p)) if *p == self.protocol => {
                inner.routes.remove(&route.dst);
                inner.ops.deletes += 1;
                inner.log.push(format!("delete {}", route.dst));
                Ok(())
            }
            _ => Err(RouteError::from_errno(ESRCH)),
        };
        std::future::ready(result)
    }

    fn subscribe(&self) -> Result<BoxStream<'static, RouteEvent>, TableError> {
        let (tx, rx) = mpsc::unbounded();
        self.lock().subscribers.push(tx);
        Ok(rx.boxed())
    }
}
