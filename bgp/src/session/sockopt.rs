//! Socket options behind the trust features: TCP MD5 signatures (RFC 2385) and the
//! Generalized TTL Security Mechanism (GTSM, RFC 5082). Linux only, through `libc`.

use std::fmt;
use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use socket2::SockAddr;

/// Longest key the kernel takes (`TCP_MD5SIG_MAXKEYLEN` in linux/tcp.h).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// TTL (IPv4) / hop limit (IPv6) a GTSM speaker sends with (RFC 5082 §3 (1)).
pub const GTSM_TTL: u8 = 255;

/// Lowest TTL / hop limit accepted from a GTSM peer. RFC 5082 §3 (2): a directly connected
/// peer's packets arrive with 255; one forwarding hop makes it 254 and must be refused.
/// BIRD (`ttl security on`) and FRR (`ttl-security hops 1`) use the same value.
pub const GTSM_MIN_TTL: u8 = 255;

/// A TCP MD5 key (RFC 2385): 1 to 80 octets. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Md5Key(Vec<u8>);

/// Why a string cannot be a TCP MD5 key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Md5KeyError {
    #[error("the TCP MD5 password is empty")]
    Empty,
    #[error("the TCP MD5 password is {0} bytes long; the kernel takes at most 80")]
    TooLong(usize),
}

impl Md5Key {
    /// Checks the length (1..=80 octets).
    pub fn new(key: impl Into<Vec<u8>>) -> Result<Md5Key, Md5KeyError> {
        let key = key.into();
        match key.len() {
            0 => Err(Md5KeyError::Empty),
            n if n > MD5_MAX_KEY_LEN => Err(Md5KeyError::TooLong(n)),
            _ => Ok(Md5Key(key)),
        }
    }

    /// The key's octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Md5Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Md5Key(<redacted>)")
    }
}

/// `struct tcp_md5sig` from linux/tcp.h (the `TCP_MD5SIG` option's argument).
#[repr(C)]
struct TcpMd5Sig {
    tcpm_addr: libc::sockaddr_storage,
    tcpm_flags: u8,
    tcpm_prefixlen: u8,
    tcpm_keylen: u16,
    tcpm_ifindex: u32,
    tcpm_key: [u8; MD5_MAX_KEY_LEN],
}

/// Installs (`Some`) or removes (`None`) the MD5 key for connections with `peer` on `sock`.
/// On a listening socket the kernel keeps one key per peer address and copies it to each
/// accepted connection; on a connecting socket it must be set before `connect`.
pub(crate) fn set_md5_key(
    sock: &impl AsRawFd,
    socket_v6: bool,
    peer: IpAddr,
    key: Option<&Md5Key>,
) -> io::Result<()> {
    let addr = sockaddr_for(socket_v6, peer)?;
    let bytes = key.map_or(&[][..], Md5Key::as_bytes);
    // SAFETY: all-zero bytes are a valid value of this plain C struct.
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    sig.tcpm_addr = addr.as_storage();
    // An empty key deletes the entry (linux/net/ipv4/tcp_ipv4.c, tcp_v4_parse_md5_keys).
    sig.tcpm_keylen = u16::try_from(bytes.len()).map_err(|_| invalid("key too long"))?;
    sig.tcpm_key
        .get_mut(..bytes.len())
        .ok_or_else(|| invalid("key too long"))?
        .copy_from_slice(bytes);
    setsockopt(sock.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// The peer's address as the socket's family sees it: an IPv4 peer of an IPv6 (dual-stack)
/// socket is `::ffff:a.b.c.d`.
fn sockaddr_for(socket_v6: bool, peer: IpAddr) -> io::Result<SockAddr> {
    let sa = match (socket_v6, peer.to_canonical()) {
        (true, IpAddr::V4(v4)) => SocketAddr::V6(SocketAddrV6::new(v4.to_ipv6_mapped(), 0, 0, 0)),
        (false, IpAddr::V6(_)) => {
            return Err(invalid("an IPv6 peer on an IPv4 socket"));
        }
        (_, ip) => SocketAddr::new(ip, 0),
    };
    Ok(SockAddr::from(sa))
}

/// Sets the TTL / hop limit of everything `sock` sends. On an IPv6 socket both the IPv6
/// and the IPv4 option are set (IPv4 peers of a dual-stack socket use the latter).
pub(crate) fn set_ttl(sock: &impl AsRawFd, socket_v6: bool, ttl: u8) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    let ttl = libc::c_int::from(ttl);
    if socket_v6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)?;
    }
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, &ttl)
}

/// Makes the kernel drop, before TCP sees them, segments arriving with a TTL / hop limit
/// below `min` (0 = off). On a listening socket this applies to SYNs, so to every peer.
pub(crate) fn set_min_ttl(sock: &impl AsRawFd, socket_v6: bool, min: u8) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    let min = libc::c_int::from(min);
    if socket_v6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &min)?;
    }
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &min)
}

/// GTSM on one connection: send with TTL 255, accept only [`GTSM_MIN_TTL`] and above.
pub(crate) fn set_gtsm(sock: &impl AsRawFd, socket_v6: bool) -> io::Result<()> {
    set_ttl(sock, socket_v6, GTSM_TTL)?;
    set_min_ttl(sock, socket_v6, GTSM_MIN_TTL)
}

/// On a listening socket: keep each connection's SYN headers so [`saved_syn_ttl`] can
/// read the TTL the peer's SYN arrived with (Linux 4.2+).
pub(crate) fn set_save_syn(sock: &impl AsRawFd, on: bool) -> io::Result<()> {
    let on = libc::c_int::from(on);
    setsockopt(sock.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_SAVE_SYN, &on)
}

/// The TTL / hop limit of the SYN that opened this accepted connection, when the listener
/// saved it. The kernel hands the saved headers out once.
pub(crate) fn saved_syn_ttl(sock: &impl AsRawFd) -> io::Result<Option<u8>> {
    let mut buf = [0u8; 512];
    let mut len = libc::socklen_t::try_from(buf.len()).map_err(|_| invalid("buffer"))?;
    // SAFETY: buf is writable for len bytes; the kernel writes at most len and updates it.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SAVED_SYN,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = usize::try_from(len).unwrap_or(0).min(buf.len());
    Ok(buf.get(..len).and_then(header_ttl))
}

/// TTL (IPv4, octet 8) or hop limit (IPv6, octet 7) of a raw IP header.
fn header_ttl(hdr: &[u8]) -> Option<u8> {
    match hdr.first()? >> 4 {
        4 => hdr.get(8).copied(),
        6 => hdr.get(7).copied(),
        _ => None,
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(mem::size_of::<T>()).map_err(|_| invalid("option"))?;
    // SAFETY: val points to a live T of exactly len bytes for the duration of the call.
    let rc = unsafe { libc::setsockopt(fd, level, name, (val as *const T).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_md5sig_matches_linux_tcp_h() {
        assert_eq!(mem::size_of::<TcpMd5Sig>(), 216);
        assert_eq!(mem::offset_of!(TcpMd5Sig, tcpm_flags), 128);
        assert_eq!(mem::offset_of!(TcpMd5Sig, tcpm_keylen), 130);
        assert_eq!(mem::offset_of!(TcpMd5Sig, tcpm_ifindex), 132);
        assert_eq!(mem::offset_of!(TcpMd5Sig, tcpm_key), 136);
    }

    #[test]
    fn keys_are_checked_and_never_printed() {
        assert_eq!(Md5Key::new(""), Err(Md5KeyError::Empty));
        assert_eq!(Md5Key::new(vec![b'x'; 81]), Err(Md5KeyError::TooLong(81)));
        let k = Md5Key::new(vec![b'x'; 80]).unwrap();
        assert_eq!(k.as_bytes().len(), 80);
        assert_eq!(
            format!("{:?}", Md5Key::new("secret").unwrap()),
            "Md5Key(<redacted>)"
        );
    }

    #[test]
    fn peer_addresses_follow_the_socket_family() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped = sockaddr_for(true, v4).unwrap();
        assert_eq!(
            mapped.as_socket(),
            Some("[::ffff:192.0.2.1]:0".parse().unwrap())
        );
        assert!(sockaddr_for(false, "2001:db8::1".parse().unwrap()).is_err());
        let back = sockaddr_for(false, "::ffff:192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(back.as_socket(), Some("192.0.2.1:0".parse().unwrap()));
    }

    #[test]
    fn ttl_is_read_from_ipv4_and_ipv6_headers() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[8] = 254;
        assert_eq!(header_ttl(&v4), Some(254));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[7] = 255;
        assert_eq!(header_ttl(&v6), Some(255));
        assert_eq!(header_ttl(&[]), None);
        assert_eq!(header_ttl(&[0x45, 0, 0]), None);
    }

    #[test]
    fn options_apply_to_real_sockets() {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let key = Md5Key::new("secret").unwrap();
        set_md5_key(&s, false, "127.0.0.2".parse().unwrap(), Some(&key)).unwrap();
        set_md5_key(&s, false, "127.0.0.2".parse().unwrap(), None).unwrap();
        set_gtsm(&s, false).unwrap();
        assert_eq!(s.ttl().unwrap(), 255);
        set_save_syn(&s, true).unwrap();
        let s6 = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
        set_md5_key(&s6, true, "127.0.0.2".parse().unwrap(), Some(&key)).unwrap();
        set_gtsm(&s6, true).unwrap();
        assert_eq!(s6.unicast_hops_v6().unwrap(), 255);
    }
}
