//! Ports for servers a test starts on the loopback address.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// A port free on 127.0.0.1 now, for a server the test starts next. Picked at random outside
/// the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), so that no outgoing
/// connection of a parallel test can take it before the server binds it (a port from
/// binding port 0 can be: etcd then fails with "address already in use"), and never twice in
/// one process.
pub fn free_port() -> Result<u16> {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let (from, to) = non_ephemeral_range();
    let span = u64::from(to - from) + 1;
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 32)
        | 1;
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..10_000 {
        // xorshift64: enough to spread parallel test processes apart.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let Ok(port) = u16::try_from(u64::from(from) + x % span) else {
            continue;
        };
        if !given.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
    Err(Error::parse(
        "free port",
        format!("no free port on 127.0.0.1 in {from}-{to}"),
    ))
}

/// Ports below (or, failing that, above) the ephemeral range; at least 10000.
fn non_ephemeral_range() -> (u16, u16) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(str::parse::<u16>);
            Some((it.next()?.ok()?, it.next()?.ok()?))
        });
    match range {
        Some((lo, _)) if lo > 11_000 => (10_000, lo - 1),
        Some((_, hi)) if hi < 64_535 => (hi + 1, u16::MAX),
        _ => (10_000, u16::MAX),
    }
}
