//! Batched route writes: many `RTM_NEWROUTE` / `RTM_DELROUTE` requests encoded into one
//! buffer and sent with a single `send` on a plain netlink socket. Only the last request of
//! a chunk asks for an ACK; the kernel answers failed requests anyway, and answers in order,
//! so the chunk is done when the last answer arrives and every request without an error
//! answer has succeeded. Answers are matched back to their request by sequence number.
//!
//! The kernel handles a route request in the sender's context: when `send` returns, every
//! request of the buffer has been applied and its ACK (`NLMSG_ERROR`, code 0 or `-errno`)
//! queued on our socket. The receive buffer is enlarged (`SO_RCVBUFFORCE`) and a chunk is
//! never larger than what its ACKs need, so no ACK is dropped; if one ever is
//! (`ENOBUFS`) or never comes (receive time-out), the requests without an answer are
//! reported as failed, and the programmer's retry and resync sort them out.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use netlink_packet_core::NetlinkMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::table::RouteError;

/// `NLMSG_ERROR`: the type of an ACK or error answer.
const NLMSG_ERROR: u16 = 2;
/// Length of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// Largest buffer given to one `send` (the kernel refuses more than `SO_SNDBUF` - 32).
const MAX_SEND_BYTES: usize = 128 * 1024;
/// Receive buffer asked for; the kernel doubles it for bookkeeping.
const RCVBUF: usize = 8 * 1024 * 1024;
/// Receive-buffer bytes counted per ACK: an ACK is its own socket buffer, whose
/// `truesize` (what the receive buffer is charged) is under 1 KiB; twice that for margin.
const RCVBUF_PER_ACK: usize = 2048;
/// Fewest requests per chunk, whatever the receive buffer.
const MIN_CHUNK: usize = 16;
/// How long to wait for an ACK that should already be queued.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Size of the buffer one `recv` reads into (one ACK per datagram; errors echo little).
const RECV_BUF: usize = 64 * 1024;

struct Inner {
    socket: Socket,
    seq: u32,
    /// Most requests in one chunk, from the receive buffer we got.
    max_chunk: usize,
}

/// A netlink socket for batched route writes. Created in the namespace whose routes it
/// writes; usable from any thread afterwards.
pub(crate) struct BatchSocket {
    inner: Mutex<Inner>,
}

impl BatchSocket {
    /// Opens, binds and connects a `NETLINK_ROUTE` socket to the kernel.
    pub(crate) fn new() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Errors echo only the request's header, not the whole request.
        if let Err(e) = socket.set_cap_ack(true) {
            tracing::debug!(error = %e, "NETLINK_CAP_ACK not available");
        }
        let fd = socket.as_raw_fd();
        if setsockopt_int(fd, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
            // Without CAP_NET_ADMIN: as much as rmem_max allows; chunks shrink to fit.
            let _ = setsockopt_int(fd, libc::SO_RCVBUF, RCVBUF);
        }
        let tv = libc::timeval {
            tv_sec: ACK_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: a valid socket fd and a `timeval` that lives across the call.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::addr_of!(tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let rcvbuf = socket.get_rx_buf_sz().unwrap_or(0);
        let max_chunk = (rcvbuf / RCVBUF_PER_ACK).max(MIN_CHUNK);
        tracing::debug!(rcvbuf, max_chunk, "netlink batch socket open");
        Ok(Self {
            inner: Mutex::new(Inner {
                socket,
                seq: 1,
                max_chunk,
            }),
        })
    }

    /// The socket's netlink port id: route notifications caused by our own batches
    /// carry it as their `nlmsg_pid`.
    pub(crate) fn port_id(&self) -> u32 {
        let mut addr = SocketAddr::new(0, 0);
        match self.lock().socket.get_address(&mut addr) {
            Ok(()) => addr.port_number(),
            Err(_) => 0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends every request (with its flags; `NLM_F_ACK` is added to the last of each
    /// chunk) and returns the kernel's answer to each, in order. Blocks the calling
    /// thread: run it off the async runtime.
    pub(crate) fn execute(
        &self,
        requests: Vec<(RouteNetlinkMessage, u16)>,
    ) -> Vec<Result<(), RouteError>> {
        let mut inner = self.lock();
        let mut results: Vec<Option<Result<(), RouteError>>> = vec![None; requests.len()];
        let mut buf: Vec<u8> = Vec::with_capacity(MAX_SEND_BYTES);
        let mut recv_buf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        let mut first = 0usize;
        let mut requests = requests.into_iter();
        // A message encoded for a chunk it did not fit in: the next chunk starts with it.
        let mut carry: Option<NetlinkMessage<RouteNetlinkMessage>> = None;
        loop {
            // Encode one chunk: contiguous sequence numbers base, base + 1, ...
            buf.clear();
            let base = inner.seq;
            let mut count = 0usize;
            let mut last = 0usize;
            while count < inner.max_chunk {
                let mut msg = match carry.take() {
                    Some(msg) => msg,
                    None => {
                        let Some((payload, flags)) = requests.next() else {
                            break;
                        };
                        let mut msg = NetlinkMessage::from(payload);
                        // Only the chunk's last request asks for an ACK (set below): the
                        // kernel answers a failed request whatever its flags, and in order,
                        // so once the last answer is in, every request without an error
                        // answer has succeeded. One `recv` per chunk, not one per route.
                        msg.header.flags = flags;
                        msg
                    }
                };
                msg.header.sequence_number = base.wrapping_add(count as u32);
                msg.finalize();
                let len = msg.buffer_len();
                if count > 0 && buf.len() + len > MAX_SEND_BYTES {
                    carry = Some(msg);
                    break;
                }
                let start = buf.len();
                buf.resize(start + len, 0);
                if let Some(slot) = buf.get_mut(start..) {
                    msg.serialize(slot);
                }
                last = start;
                count += 1;
            }
            if count == 0 {
                break;
            }
            // nlmsg_flags: the u16 at offset 6 of the header.
            if let Some(f) = buf
                .get_mut(last + 6..last + 8)
                .and_then(|f| <&mut [u8; 2]>::try_from(f).ok())
            {
                *f = (u16::from_ne_bytes(*f) | netlink_packet_core::NLM_F_ACK).to_ne_bytes();
            }
            inner.seq = base.wrapping_add(count as u32);
            let chunk = results.get_mut(first..first + count).unwrap_or_default();
            run_chunk(&inner.socket, &buf, base, chunk, &mut recv_buf);
            first += count;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(RouteError::other("no answer from the kernel"))))
            .collect()
    }
}

/// Sends one encoded chunk whose requests carry sequence numbers `base..base+n` and fills
/// `results[i]` with the answer to request `base + i`.
fn run_chunk(
    socket: &Socket,
    buf: &[u8],
    base: u32,
    results: &mut [Option<Result<(), RouteError>>],
    recv_buf: &mut Vec<u8>,
) {
    if let Err(e) = socket.send(buf, 0) {
        let err = RouteError {
            errno: e.raw_os_error(),
            message: format!("netlink send: {e}"),
        };
        for slot in results.iter_mut() {
            *slot = Some(Err(err.clone()));
        }
        return;
    }
    // Only the last request asked for an ACK; earlier ones answer only when they fail.
    let Some(last) = results.len().checked_sub(1) else {
        return;
    };
    // After an overrun, only what is already queued can still come: stop waiting.
    let mut flags = 0;
    while results.get(last).is_some_and(Option::is_none) {
        recv_buf.clear();
        let got = match socket.recv(recv_buf, flags) {
            Ok(n) => n.min(recv_buf.len()),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                tracing::warn!("netlink ACKs dropped (receive buffer overrun)");
                flags = libc::MSG_DONTWAIT;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "netlink ACK missing");
                // Unknown outcomes: reported as failed, retried, resynced.
                return;
            }
        };
        let data = recv_buf.get(..got).unwrap_or_default();
        for_each_answer(data, |seq, code| {
            let idx = seq.wrapping_sub(base) as usize;
            if let Some(slot @ None) = results.get_mut(idx) {
                *slot = Some(if code == 0 {
                    Ok(())
                } else {
                    Err(RouteError::from_errno(code.saturating_abs()))
                });
            }
        });
    }
    // The last answer came after every error answer: the rest succeeded.
    for slot in results.iter_mut().filter(|r| r.is_none()) {
        *slot = Some(Ok(()));
    }
}

/// Calls `f(seq, code)` for every `NLMSG_ERROR` message (ACK when `code` is 0) in
/// `data`, a datagram of netlink messages. Malformed trailing bytes are ignored.
fn for_each_answer(mut data: &[u8], mut f: impl FnMut(u32, i32)) {
    while data.len() >= NLMSG_HDRLEN {
        let u32_at = |d: &[u8], at: usize| -> Option<u32> {
            d.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let Some(len) = u32_at(data, 0).map(|l| l as usize) else {
            return;
        };
        if len < NLMSG_HDRLEN || len > data.len() {
            return;
        }
        let kind = data
            .get(4..6)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_ne_bytes);
        let seq = u32_at(data, 8);
        if let (Some(NLMSG_ERROR), Some(seq), Some(code)) = (kind, seq, u32_at(data, NLMSG_HDRLEN))
        {
            f(seq, code as i32);
        }
        // NLMSG_ALIGN: messages start on 4-byte boundaries.
        let next = (len + 3) & !3;
        data = data.get(next..).unwrap_or_default();
    }
}

/// `RTM_DELROUTE`.
const RTM_DELROUTE: u16 = 25;
/// Offset of `rtm_protocol` in a route message (after the 16-byte `nlmsghdr`).
const RTM_PROTOCOL_OFFSET: u32 = 16 + 5;

/// Attaches a classic BPF filter to the route-notification socket `fd` so that the
/// kernel queues only what the programmer acts on: `RTM_DELROUTE` of protocol `protocol`
/// not caused by our own batch socket (`nlmsg_pid != own_port`). Without it every route
/// we add or delete comes back as a notification to read and parse: 100,000 of them for
/// 100,000 writes.
pub(crate) fn attach_deleted_filter(fd: i32, protocol: u8, own_port: u32) -> io::Result<()> {
    // BPF_ABS loads read network byte order; netlink headers are host order.
    let del = u32::from(u16::from_be_bytes(RTM_DELROUTE.to_ne_bytes()));
    let pid = u32::from_be_bytes(own_port.to_ne_bytes());
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    const LD_H_ABS: u16 = 0x28;
    const LD_B_ABS: u16 = 0x30;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let mut program = [
        op(LD_H_ABS, 0, 0, 4),                   // 0: nlmsg_type
        op(JEQ_K, 0, 5, del),                    // 1: not RTM_DELROUTE -> 7
        op(LD_B_ABS, 0, 0, RTM_PROTOCOL_OFFSET), // 2: rtm_protocol
        op(JEQ_K, 0, 3, u32::from(protocol)),    // 3: not ours -> 7
        op(LD_W_ABS, 0, 0, 12),                  // 4: nlmsg_pid
        op(JEQ_K, 1, 0, pid),                    // 5: our own delete -> 7
        op(RET_K, 0, 0, u32::MAX),               // 6: keep
        op(RET_K, 0, 0, 0),                      // 7: drop
    ];
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: a valid socket fd; `prog` points at `program`, which outlives the call
    // (the kernel copies the program).
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::addr_of!(prog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn setsockopt_int(fd: i32, opt: libc::c_int, value: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket fd and an int that lives across the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32, kind: u16, seq: u32, code: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&code.to_ne_bytes());
        m.resize(len as usize, 0);
        m
    }

    #[test]
    fn answers_are_matched_by_sequence_and_garbage_is_ignored() {
        let mut data = message(36, NLMSG_ERROR, 7, 0);
        data.extend(message(36, NLMSG_ERROR, 8, -17));
        data.extend(message(20, 3, 9, 0)); // NLMSG_DONE: not an answer
        data.extend([1, 2, 3]); // truncated trailer
        let mut seen = Vec::new();
        for_each_answer(&data, |seq, code| seen.push((seq, code)));
        assert_eq!(seen, vec![(7, 0), (8, -17)]);

        // A length field pointing past the end stops the walk without panicking.
        let bad = message(36, NLMSG_ERROR, 1, 0);
        let mut seen = Vec::new();
        for_each_answer(bad.get(..30).unwrap(), |seq, code| seen.push((seq, code)));
        assert!(seen.is_empty());
    }
}
