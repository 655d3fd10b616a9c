//! `NetlinkTable`: the `RouteTable` over rtnetlink.
//!
//! The programmer's writes go through [`RouteTable::write_batch`]: encoded many to a
//! buffer and sent with one `send` each on a dedicated socket (see `batch.rs`), one ACK
//! per request matched back by sequence number. Single requests (`add`, `delete`, the
//! `RTM_GETROUTE` of recursive resolution) and dumps use an rtnetlink connection. Route
//! notifications come in on a third socket bound to the `RTNLGRP_IPV4_ROUTE` and
//! `RTNLGRP_IPV6_ROUTE` multicast groups.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use ipnetwork::IpNetwork;
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{AsyncSocket, SocketAddr};
use rtnetlink::{Handle, IpVersion};
use tokio::task::JoinHandle;

use crate::batch::{attach_deleted_filter, BatchSocket};
use crate::route::{NextHop, Route, RouteKind};
use crate::table::{
    RouteError, RouteEvent, RouteTable, RouteWrite, TableError, WriteResult, EHOSTUNREACH,
    ENETUNREACH,
};

/// `RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE`: the legacy bind mask of the route groups
/// (`1 << (RTNLGRP_IPV4_ROUTE - 1)` = 0x40, `1 << (RTNLGRP_IPV6_ROUTE - 1)` = 0x400).
const ROUTE_GROUPS: u32 = 0x40 | 0x400;
/// Receive buffer of the notification socket: room for a burst of route events before
/// the kernel drops them (a dropped event is caught by the periodic resync).
const MONITOR_RCVBUF: usize = 8 * 1024 * 1024;
/// `RT_TABLE_COMPAT`: the header value when the table id only fits in `RTA_TABLE`.
const RT_TABLE_COMPAT: u8 = 252;

/// Aborts a spawned task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The kernel's routing table `table`, restricted to routes of protocol `protocol`.
///
/// Must be created inside a tokio runtime: the netlink connection runs as a task on it,
/// in the network namespace of the thread that creates it.
pub struct NetlinkTable {
    table: u32,
    protocol: u8,
    handle: Handle,
    batch: Arc<BatchSocket>,
    _conn: AbortOnDrop,
}

impl NetlinkTable {
    /// Opens a netlink connection for `table` and `protocol`.
    pub fn new(table: u32, protocol: u8) -> Result<Self, TableError> {
        let (conn, handle, _unsolicited) = rtnetlink::new_connection()?;
        let batch = Arc::new(BatchSocket::new()?);
        let task = tokio::spawn(conn);
        Ok(Self {
            table,
            protocol,
            handle,
            batch,
            _conn: AbortOnDrop(task),
        })
    }

    /// The table id.
    pub fn table(&self) -> u32 {
        self.table
    }

    /// The protocol number of our routes.
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    fn header(&self, dst: &IpNetwork, kind: RouteType) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(dst);
        msg.header.destination_prefix_length = dst.prefix();
        msg.header.table = u8::try_from(self.table).unwrap_or(RT_TABLE_COMPAT);
        msg.header.protocol = RouteProtocol::from(self.protocol);
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = kind;
        msg.attributes.push(RouteAttribute::Table(self.table));
        msg.attributes
            .push(RouteAttribute::Destination(address(dst.network())));
        msg
    }

    /// The `RTM_NEWROUTE` body for `route`.
    fn new_route_message(&self, route: &Route) -> RouteMessage {
        match &route.kind {
            RouteKind::Blackhole => self.header(&route.dst, RouteType::BlackHole),
            RouteKind::Unicast(hops) => {
                let mut msg = self.header(&route.dst, RouteType::Unicast);
                match hops.as_slice() {
                    [hop] => {
                        msg.attributes
                            .push(RouteAttribute::Gateway(address(hop.gateway)));
                        if let Some(ifindex) = hop.ifindex {
                            msg.attributes.push(RouteAttribute::Oif(ifindex));
                        }
                    }
                    hops => {
                        // RTA_MULTIPATH: one rtnexthop per path, each with its RTA_GATEWAY.
                        let paths = hops
                            .iter()
                            .map(|hop| {
                                let mut nh = RouteNextHop::default();
                                nh.interface_index = hop.ifindex.unwrap_or(0);
                                nh.attributes = vec![RouteAttribute::Gateway(address(hop.gateway))];
                                nh
                            })
                            .collect();
                        msg.attributes.push(RouteAttribute::MultiPath(paths));
                    }
                }
                msg
            }
        }
    }

    async fn send(&self, payload: RouteNetlinkMessage, flags: u16) -> Result<(), RouteError> {
        let mut req = NetlinkMessage::from(payload);
        req.header.flags = flags;
        let mut handle = self.handle.clone();
        let mut responses = handle
            .request(req)
            .map_err(|e| RouteError::other(e.to_string()))?;
        while let Some(msg) = responses.next().await {
            if let NetlinkPayload::Error(err) = msg.payload {
                if let Some(code) = err.code {
                    return Err(RouteError::from_errno(code.get().saturating_abs()));
                }
            }
        }
        Ok(())
    }

    /// Resolves a gateway that is not directly connected by asking the kernel for its
    /// route (`RTM_GETROUTE` of the gateway address): the next hop becomes that route's
    /// gateway (or the gateway itself when the route is connected) and its `RTA_OIF`.
    async fn resolve(&self, gateway: IpAddr) -> Result<NextHop, RouteError> {
        let mut msg = RouteMessage::default();
        let host = match gateway {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        msg.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.destination_prefix_length = host;
        msg.attributes
            .push(RouteAttribute::Destination(address(gateway)));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetRoute(msg));
        req.header.flags = NLM_F_REQUEST;
        let mut handle = self.handle.clone();
        let mut responses = handle
            .request(req)
            .map_err(|e| RouteError::other(e.to_string()))?;
        while let Some(msg) = responses.next().await {
            match msg.payload {
                NetlinkPayload::Error(err) => {
                    if let Some(code) = err.code {
                        return Err(RouteError::from_errno(code.get().saturating_abs()));
                    }
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(found)) => {
                    let via = found.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => ip_of(g),
                        _ => None,
                    });
                    let oif = found.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Oif(i) => Some(*i),
                        _ => None,
                    });
                    return Ok(NextHop {
                        gateway: via.unwrap_or(gateway),
                        ifindex: oif,
                    });
                }
                _ => {}
            }
        }
        Err(RouteError::from_errno(ENETUNREACH))
    }

    /// The request (and its flags, without `NLM_F_ACK`) that carries out `write`.
    fn request(&self, write: &RouteWrite) -> (RouteNetlinkMessage, u16) {
        match write {
            RouteWrite::Add { route, replace } => {
                let mode = if *replace { NLM_F_REPLACE } else { NLM_F_EXCL };
                (
                    RouteNetlinkMessage::NewRoute(self.new_route_message(route)),
                    NLM_F_REQUEST | NLM_F_CREATE | mode,
                )
            }
            RouteWrite::Delete(route) => {
                // Protocol, table and type in the request: the kernel only deletes a
                // route that matches them (fib_table_delete / ip6_route_del), never a
                // foreign one.
                let kind = match route.kind {
                    RouteKind::Blackhole => RouteType::BlackHole,
                    RouteKind::Unicast(_) => RouteType::Unicast,
                };
                (
                    RouteNetlinkMessage::DelRoute(self.header(&route.dst, kind)),
                    NLM_F_REQUEST,
                )
            }
        }
    }

    async fn add_once(&self, route: &Route, replace: bool) -> Result<(), RouteError> {
        let (msg, flags) = self.request(&RouteWrite::Add {
            route: route.clone(),
            replace,
        });
        self.send(msg, flags | NLM_F_ACK).await
    }

    /// After `err` for `route`: if it says the gateway is not on-link, resolves the
    /// next hops through the kernel's routes to them and installs the result, once.
    async fn add_resolved(
        &self,
        route: &Route,
        replace: bool,
        err: RouteError,
    ) -> Result<Route, RouteError> {
        let RouteKind::Unicast(hops) = &route.kind else {
            return Err(err);
        };
        if !matches!(err.errno, Some(ENETUNREACH) | Some(EHOSTUNREACH))
            || hops.iter().all(|h| h.ifindex.is_some())
        {
            return Err(err);
        }
        let mut resolved = Vec::with_capacity(hops.len());
        for hop in hops {
            if hop.ifindex.is_some() {
                resolved.push(*hop);
            } else {
                match self.resolve(hop.gateway).await {
                    Ok(nh) if nh.ifindex.is_some() => resolved.push(nh),
                    _ => return Err(err),
                }
            }
        }
        let resolved = Route::unicast(route.dst, resolved);
        tracing::debug!(route = %route, resolved = %resolved, "recursive next hop resolved");
        self.add_once(&resolved, replace).await?;
        Ok(resolved)
    }

    /// Turns a dumped or notified message into one of our routes, or `None` when it is
    /// not ours (other protocol, other table, a type we do not install).
    pub(crate) fn parse(&self, msg: &RouteMessage) -> Option<Route> {
        parse_route(msg, self.table, self.protocol)
    }
}

impl RouteTable for NetlinkTable {
    async fn dump(&self) -> Result<Vec<Route>, TableError> {
        let mut routes = Vec::new();
        for version in [IpVersion::V4, IpVersion::V6] {
            let mut stream = self.handle.route().get(version).execute();
            while let Some(msg) = stream
                .try_next()
                .await
                .map_err(|e| TableError::Dump(e.to_string()))?
            {
                if let Some(route) = self.parse(&msg) {
                    routes.push(route);
                }
            }
        }
        Ok(routes)
    }

    async fn add(&self, route: &Route, replace: bool) -> Result<Route, RouteError> {
        match self.add_once(route, replace).await {
            Ok(()) => Ok(route.clone()),
            Err(err) => self.add_resolved(route, replace, err).await,
        }
    }

    async fn delete(&self, route: &Route) -> Result<(), RouteError> {
        let (msg, flags) = self.request(&RouteWrite::Delete(route.clone()));
        self.send(msg, flags | NLM_F_ACK).await
    }

    async fn write_batch(&self, writes: &[RouteWrite]) -> Vec<WriteResult> {
        let requests: Vec<_> = writes.iter().map(|w| self.request(w)).collect();
        let batch = Arc::clone(&self.batch);
        // The socket calls block (briefly: the kernel answers while we send); keep them
        // off the async threads.
        let answers = tokio::task::spawn_blocking(move || batch.execute(requests))
            .await
            .unwrap_or_else(|e| {
                let err = RouteError::other(format!("netlink batch task failed: {e}"));
                vec![Err(err); writes.len()]
            });
        let mut out = Vec::with_capacity(writes.len());
        for (write, answer) in writes.iter().zip(answers) {
            out.push(match (write, answer) {
                (RouteWrite::Add { route, .. }, Ok(())) => Ok(Some(route.clone())),
                (RouteWrite::Add { route, replace }, Err(err)) => {
                    self.add_resolved(route, *replace, err).await.map(Some)
                }
                (RouteWrite::Delete(_), answer) => answer.map(|()| None),
            });
        }
        out
    }

    fn subscribe(&self) -> Result<BoxStream<'static, RouteEvent>, TableError> {
        let (mut conn, _handle, messages) = rtnetlink::new_connection()?;
        let socket = conn.socket_mut().socket_mut();
        socket.bind(&SocketAddr::new(0, ROUTE_GROUPS))?;
        if let Err(e) = socket.set_rx_buf_sz(MONITOR_RCVBUF) {
            tracing::debug!(error = %e, "cannot enlarge the route monitor's receive buffer");
        }
        // Only deletions of our routes by others reach us (the parse below still checks).
        if let Err(e) =
            attach_deleted_filter(socket.as_raw_fd(), self.protocol, self.batch.port_id())
        {
            tracing::debug!(error = %e, "cannot filter route notifications; reading them all");
        }
        let guard = AbortOnDrop(tokio::spawn(conn));
        let (table, protocol) = (self.table, self.protocol);
        let stream = messages.filter_map(move |(msg, _)| {
            let _keep_connection = &guard;
            let event = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(m)) => {
                    parse_route(&m, table, protocol).map(RouteEvent::Deleted)
                }
                _ => None,
            };
            std::future::ready(event)
        });
        Ok(stream.boxed())
    }
}

fn family(dst: &IpNetwork) -> AddressFamily {
    match dst {
        IpNetwork::V4(_) => AddressFamily::Inet,
        IpNetwork::V6(_) => AddressFamily::Inet6,
    }
}

fn address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn ip_of(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn gateway_of(attrs: &[RouteAttribute]) -> Option<IpAddr> {
    attrs.iter().find_map(|a| match a {
        RouteAttribute::Gateway(g) => ip_of(g),
        _ => None,
    })
}

/// Our route in `msg`, if `msg` is of `protocol` in `table` and of a type we install.
pub(crate) fn parse_route(msg: &RouteMessage, table: u32, protocol: u8) -> Option<Route> {
    let h: &RouteHeader = &msg.header;
    if u8::from(h.protocol) != protocol {
        return None;
    }
    let msg_table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(h.table));
    if msg_table != table {
        return None;
    }
    let dst_ip = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(d) => ip_of(d),
            _ => None,
        })
        .or(match h.address_family {
            AddressFamily::Inet => Some(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            AddressFamily::Inet6 => Some(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
            _ => None,
        })?;
    let dst = IpNetwork::new(dst_ip, h.destination_prefix_length).ok()?;
    match h.kind {
        RouteType::BlackHole => Some(Route::blackhole(dst)),
        RouteType::Unicast => {
            let multipath = msg.attributes.iter().find_map(|a| match a {
                RouteAttribute::MultiPath(paths) => Some(paths),
                _ => None,
            });
            let hops = match multipath {
                Some(paths) => paths
                    .iter()
                    .filter_map(|p| {
                        gateway_of(&p.attributes).map(|gateway| NextHop {
                            gateway,
                            ifindex: (p.interface_index != 0).then_some(p.interface_index),
                        })
                    })
                    .collect(),
                None => {
                    let gateway = gateway_of(&msg.attributes)?;
                    let ifindex = msg.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Oif(i) => Some(*i),
                        _ => None,
                    });
                    vec![NextHop { gateway, ifindex }]
                }
            };
            Some(Route::unicast(dst, hops))
        }
        _ => None,
    }
}
