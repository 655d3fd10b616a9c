//! One TCP connection: outgoing connect, the reader (framing + decoding, with
//! back-pressure) and the writer (control messages before bulk UPDATEs).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use super::{sockopt, Security};
use crate::fsm::ConnId;
use crate::wire::{decode_message, message_len, DecodeContext, Message, Notification, HEADER_LEN};

/// Bulk writes are cut at message boundaries into chunks of about this size, so control
/// messages (KEEPALIVE) wait at most one chunk.
const CHUNK: usize = 16 * 1024;
/// How long a closing connection may take to flush its last messages.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a reader reports to its peer task.
// Moved once per message; boxing would allocate for every UPDATE.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum ConnEvent {
    Message(ConnId, Message),
    DecodeError(ConnId, Notification),
    Closed(ConnId, Option<io::Error>),
}

/// What the writer is told, before anything bulk.
#[derive(Debug)]
pub(super) enum WriteCmd {
    Bytes(Bytes),
    /// Flush, send FIN, stop.
    Close,
}

/// Why an outgoing connection did not open.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    /// A socket option the peer's configuration needs could not be set.
    #[error("cannot set {what}: {source}")]
    Setup {
        what: &'static str,
        source: io::Error,
    },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Opens an outgoing connection, bound to `local` first when given. The TCP MD5 key and
/// GTSM options are set before the SYN goes out (RFC 2385 §2 signs every segment, the SYN
/// included; RFC 5082 §3 checks the TTL of every segment, the SYN-ACK included).
pub(super) async fn connect(
    remote: SocketAddr,
    local: Option<IpAddr>,
    security: Security,
) -> Result<TcpStream, ConnectError> {
    let sock = Socket::new(
        Domain::for_address(remote),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    sock.set_nonblocking(true)?;
    sock.set_reuse_address(true)?;
    let v6 = remote.is_ipv6();
    if let Some(key) = &security.password {
        sockopt::set_md5_key(&sock, v6, remote.ip(), Some(key)).map_err(|source| {
            ConnectError::Setup {
                what: "the TCP MD5 key (TCP_MD5SIG)",
                source,
            }
        })?;
    }
    if security.ttl_security {
        sockopt::set_gtsm(&sock, v6).map_err(|source| ConnectError::Setup {
            what: "GTSM (IP_TTL / IP_MINTTL)",
            source,
        })?;
    }
    if let Some(local) = local {
        sock.bind(&SocketAddr::new(local, 0).into())?;
    }
    let std_stream: std::net::TcpStream = sock.into();
    let stream = TcpSocket::from_std_stream(std_stream)
        .connect(remote)
        .await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads, frames and decodes until the connection ends or a message is malformed. Blocks
/// on `tx` when the peer task is not keeping up, which stops reading the socket.
pub(super) async fn reader(
    mut rd: OwnedReadHalf,
    id: ConnId,
    mut ctx_rx: watch::Receiver<Arc<DecodeContext>>,
    tx: mpsc::Sender<ConnEvent>,
) {
    let mut buf = BytesMut::with_capacity(CHUNK);
    let mut ctx = ctx_rx.borrow_and_update().clone();
    loop {
        // Decode every whole message already buffered.
        let need = loop {
            if ctx_rx.has_changed().unwrap_or(false) {
                ctx = ctx_rx.borrow_and_update().clone();
            }
            match message_len(&buf, ctx.max_message_len()) {
                Ok(Some(len)) if buf.len() >= len => {
                    let frame = buf.split_to(len);
                    let event = match decode_message(&frame, &ctx) {
                        Ok(msg) => ConnEvent::Message(id, msg),
                        Err(e) => ConnEvent::DecodeError(id, e.notification()),
                    };
                    let fatal = matches!(event, ConnEvent::DecodeError(..));
                    if tx.send(event).await.is_err() || fatal {
                        return;
                    }
                }
                Ok(Some(len)) => break len,
                Ok(None) => break HEADER_LEN,
                Err(e) => {
                    let _ = tx.send(ConnEvent::DecodeError(id, e.notification())).await;
                    return;
                }
            }
        };
        buf.reserve(need.saturating_sub(buf.len()).max(CHUNK));
        match rd.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = tx.send(ConnEvent::Closed(id, None)).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(ConnEvent::Closed(id, Some(e))).await;
                return;
            }
        }
    }
}

/// Writes control messages first; bulk bytes (whole messages from the speaker) in chunks,
/// checking for control messages between chunks.
pub(super) async fn writer(
    mut wr: OwnedWriteHalf,
    mut urgent: mpsc::Receiver<WriteCmd>,
    mut bulk: mpsc::Receiver<Bytes>,
) {
    let mut bulk_open = true;
    loop {
        tokio::select! {
            biased;
            cmd = urgent.recv() => match cmd {
                Some(WriteCmd::Bytes(b)) => {
                    if wr.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Some(WriteCmd::Close) | None => {
                    let _ = wr.shutdown().await;
                    return;
                }
            },
            b = bulk.recv(), if bulk_open => match b {
                Some(b) => {
                    if !write_bulk(&mut wr, b, &mut urgent).await {
                        return;
                    }
                }
                None => bulk_open = false,
            },
        }
    }
}

/// Returns false when the writer must stop.
async fn write_bulk(
    wr: &mut OwnedWriteHalf,
    mut bytes: Bytes,
    urgent: &mut mpsc::Receiver<WriteCmd>,
) -> bool {
    while !bytes.is_empty() {
        let cut = chunk_end(&bytes);
        let chunk = bytes.split_to(cut);
        if wr.write_all(&chunk).await.is_err() {
            return false;
        }
        // Control messages go out between chunks (RFC 4271 §4.4: keep the peer's hold
        // timer fed even under a large backlog).
        while let Ok(cmd) = urgent.try_recv() {
            match cmd {
                WriteCmd::Bytes(b) => {
                    if wr.write_all(&b).await.is_err() {
                        return false;
                    }
                }
                WriteCmd::Close => {
                    let _ = wr.shutdown().await;
                    return false;
                }
            }
        }
    }
    true
}

/// The end of the first run of whole messages reaching at least [`CHUNK`] bytes (or all
/// of `bytes`). Messages are found by their length field; a malformed length ends the
/// chunk at the end of the buffer.
fn chunk_end(bytes: &[u8]) -> usize {
    let mut at = 0;
    while at < CHUNK {
        let len = bytes
            .get(at + 16..at + 18)
            .and_then(|l| <[u8; 2]>::try_from(l).ok())
            .map(|l| usize::from(u16::from_be_bytes(l)));
        match len {
            Some(len) if len >= HEADER_LEN && at + len <= bytes.len() => at += len,
            _ => return bytes.len(),
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(len: u16) -> Vec<u8> {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&len.to_be_bytes());
        m.resize(usize::from(len), 4);
        m
    }

    #[test]
    fn chunks_end_on_message_boundaries() {
        let mut b = Vec::new();
        for _ in 0..10 {
            b.extend(msg(4000));
        }
        assert_eq!(chunk_end(&b), 5 * 4000);
        assert_eq!(chunk_end(&b[..3 * 4000]), 3 * 4000);
        assert_eq!(chunk_end(&b[..100]), 100);
        assert_eq!(chunk_end(&[]), 0);
    }
}
