//! Connections of the listener, wrapped to count every byte that crosses
//! them (see `api::serve`). Each TCP
//! connection between peers has exactly one accepting end, so the sum of
//! all nodes' counters is the network's true wire traffic (HTTP/2 and gRPC
//! framing, headers and TCP payload), which is what the gossip benchmark
//! reports per transaction.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub struct CountingStream {
    inner: TcpStream,
    received: IntCounter,
    sent: IntCounter,
}

impl CountingStream {
    /// Counts what crosses `inner` from here on: on a TLS listener that is
    /// the encrypted bytes, handshake included.
    pub fn new(inner: TcpStream, received: IntCounter, sent: IntCounter) -> Self {
        Self {
            inner,
            received,
            sent,
        }
    }
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.received.inc_by((buf.filled().len() - before) as u64);
        r
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &r {
            self.sent.inc_by(*n as u64);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &r {
            self.sent.inc_by(*n as u64);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Who is calling, as `ConnectInfo` (axum offers it for its own listeners
/// only). Every handler that decides by caller reads this one type: admin
/// access without a token (loopback), capabilities, limits and bans.
#[derive(Debug, Clone)]
pub struct Caller {
    pub remote: std::net::SocketAddr,
    /// The client certificate verified in the TLS handshake (`api::serve`
    /// fills it in). `None` on a plaintext listener, where a peer id is only
    /// ever claimed, and for an anonymous TLS client, which the listener
    /// lets reach only `/healthz`, `/readyz` and `/metrics`.
    pub certificate: Option<std::sync::Arc<crate::security::PeerCertificate>>,
}

impl Caller {
    /// The peer id proven by the client certificate (mTLS only).
    pub fn authenticated_peer_id(&self) -> Option<&str> {
        self.certificate.as_ref()?.peer_id.as_deref()
    }
}
