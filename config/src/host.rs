//! Facts about this host that fill in `node.name` and `node.router_id` when they are absent.

use std::net::Ipv4Addr;

/// The host facts defaults are taken from. [`HostFacts::detect`] reads the real host; tests
/// build one by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `gethostname(2)`.
    pub hostname: Option<String>,
    /// The first global IPv4 address of the host, see [`first_global_ipv4`].
    pub router_id: Option<Ipv4Addr>,
}

impl HostFacts {
    /// Reads the host name and addresses of this machine.
    pub fn detect() -> Self {
        Self {
            hostname: hostname(),
            router_id: first_global_ipv4(),
        }
    }
}

/// The host name from `gethostname(2)`, if it is valid UTF-8 and not empty.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `len` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(buf.get(..end)?).ok()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// The first IPv4 address, in `getifaddrs(3)` order (interface order, then address order —
/// what `ip addr` shows), of an interface that is up, whose address is global: not loopback
/// (127/8), not link-local (169.254/16), not unspecified, multicast or broadcast. Private
/// ranges (10/8, 172.16/12, 192.168/16) count as global, as they do for the kernel's
/// `scope global`.
pub fn first_global_ipv4() -> Option<Ipv4Addr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list and stores its head in `head`; freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned and has not been freed.
        let ifa = unsafe { &*cur };
        let up = ifa.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
        if up && !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr is non-null and points to a sockaddr of at least the family
            // field; for AF_INET it is a sockaddr_in.
            let family = unsafe { (*ifa.ifa_addr).sa_family };
            if libc::c_int::from(family) == libc::AF_INET {
                let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if is_global(ip) {
                    found = Some(ip);
                    break;
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    found
}

fn is_global(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_means_usable_as_router_id() {
        assert!(is_global("192.0.2.1".parse().unwrap()));
        assert!(is_global("10.0.0.1".parse().unwrap()));
        assert!(!is_global("127.0.0.1".parse().unwrap()));
        assert!(!is_global("169.254.1.1".parse().unwrap()));
        assert!(!is_global("0.0.0.0".parse().unwrap()));
        assert!(!is_global("224.0.0.5".parse().unwrap()));
    }

    #[test]
    fn detect_does_not_fail() {
        let facts = HostFacts::detect();
        // Every Linux host has a name; an address may be missing in a bare namespace.
        assert!(facts.hostname.is_some());
        if let Some(ip) = facts.router_id {
            assert!(is_global(ip));
        }
    }
}
