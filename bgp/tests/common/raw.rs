//! A raw BGP peer for the speaker tests: hand-built messages over a plain TCP socket, so a
//! test can send exactly the bytes (and malformations) it wants and see exactly what the
//! speaker answers.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A BGP message of type `kind` around `body` (RFC 4271 §4.1 header, all-ones marker).
pub fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

pub struct RawPeer {
    pub s: TcpStream,
    /// The speaker's OPEN body.
    pub their_open: Vec<u8>,
}

impl RawPeer {
    /// Connects from `local` to the speaker on 127.0.0.1:`port`, sends `open` and completes
    /// the OPEN / KEEPALIVE exchange, retrying for up to 20 s while the speaker is not yet
    /// accepting.
    pub async fn up(local: &str, port: u16, open: &[u8]) -> RawPeer {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(raw) = RawPeer::try_up(local, port, open).await {
                return raw;
            }
            assert!(
                Instant::now() < deadline,
                "the speaker never took the session"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One attempt of [`RawPeer::up`].
    pub async fn try_up(local: &str, port: u16, open: &[u8]) -> Result<RawPeer, String> {
        let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        sock.set_reuseaddr(true).map_err(|e| e.to_string())?;
        sock.bind(format!("{local}:0").parse().unwrap())
            .map_err(|e| e.to_string())?;
        let s = sock
            .connect(format!("127.0.0.1:{port}").parse().unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = RawPeer {
            s,
            their_open: Vec::new(),
        };
        raw.s.write_all(open).await.map_err(|e| e.to_string())?;
        match raw.read(Duration::from_secs(3)).await {
            Some((1, body)) => raw.their_open = body,
            other => return Err(format!("expected OPEN, got {other:?}")),
        }
        match raw.read(Duration::from_secs(3)).await {
            Some((4, _)) => {}
            other => return Err(format!("expected KEEPALIVE, got {other:?}")),
        }
        raw.send(&msg(4, &[])).await;
        Ok(raw)
    }

    pub async fn send(&mut self, m: &[u8]) {
        self.s.write_all(m).await.unwrap();
    }

    /// The next message (type, body), or None on close, garbage or after `wait`.
    pub async fn read(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        let fut = async {
            let mut hdr = [0u8; 19];
            self.s.read_exact(&mut hdr).await.ok()?;
            let len = usize::from(u16::from_be_bytes([hdr[16], hdr[17]]));
            let mut body = vec![0u8; len.checked_sub(19)?];
            self.s.read_exact(&mut body).await.ok()?;
            Some((hdr[18], body))
        };
        tokio::time::timeout(wait, fut).await.ok().flatten()
    }

    /// The UPDATE bodies the speaker sends within `wait` (KEEPALIVEs skipped; any other
    /// message fails the test).
    pub async fn updates(&mut self, wait: Duration) -> Vec<Vec<u8>> {
        let until = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.read(left).await {
                Some((2, body)) => out.push(body),
                Some((4, _)) => {}
                Some(other) => panic!("unexpected message {other:?}"),
                None => return out,
            }
        }
    }

    /// A TCP-level drop: RST, no NOTIFICATION (what a crashed process leaves behind).
    pub fn crash(self) {
        let std = self.s.into_std().unwrap();
        socket2::SockRef::from(&std)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(std);
    }
}
