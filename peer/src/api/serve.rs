//! The accept loop of the node's one port: connection-rate limit per
//! source, byte counting, the TLS handshake when mutual TLS is on, and
//! HTTP/1.1 + HTTP/2 with explicit flow-control windows.
//!
//! Why not `axum::serve`: it runs `Listener::accept` on its accept loop (a
//! TLS handshake there would let one stalled client block every other) and
//! offers no HTTP/2 settings. Here each connection gets its own task from
//! the moment TCP accepts it, handshake included.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{self, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use prometheus::{IntCounter, IntCounterVec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::wire::{Caller, CountingStream};
use crate::security::{ConnectionRateLimiter, PeerTls, RefusalReason};

/// HTTP/2 flow-control windows, the same on the server and the client side
/// (`comm::connector`). A window bounds the data a sender may have in
/// flight that the receiver has not consumed yet. The stream window holds
/// one transaction of the default `StreamingThreshold` (1 MiB) plus its
/// framing, so a pull of one crosses in a single flight; the connection
/// window lets two such transfers share a connection. With 128 KiB per
/// stream a 1 MiB copy took 8 window updates, each waiting until the
/// receiving task ran again: on the gossip benchmark (100 nodes on 2
/// cores) the 1 MiB row took 18.3 s to reach every peer against 11.5 s
/// with windows that fit the transaction. hyper's defaults (server 1 MiB
/// per stream and connection, client 2 MiB and 5 MiB) are of the same
/// order; the bound is on unread data a stalled receiver can be made to
/// hold (2.25 MiB per connection), not memory reserved per connection.
pub const H2_STREAM_WINDOW: u32 = 1024 * 1024 + 64 * 1024;
pub const H2_CONNECTION_WINDOW: u32 = 2 * H2_STREAM_WINDOW;
/// Largest HTTP/2 frame a peer may send us, server and client alike (the
/// default is 16 KiB). A 1 MiB copy went as 64 DATA frames, each handled
/// on its own at both ends: on the gossip benchmark's 40 × 1 MiB row,
/// alternating A/B, CPU per transaction (all peers) 317–338 ms → 234–253
/// ms, p99 to every peer 576 → 192–242 ms. 1 MiB frames measured the same
/// as 256 KiB; smaller frames keep one large copy from holding the
/// connection's other streams back for long.
pub const H2_MAX_FRAME: u32 = 256 * 1024;

/// Paths a client without a certificate may reach on a TLS listener:
/// kubelet probes and Prometheus scrapes, which have no peer identity.
pub const ANONYMOUS_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The metrics the listener updates (prometheus handles share their value).
#[derive(Clone)]
pub struct ListenerMetrics {
    pub received: IntCounter,
    pub sent: IntCounter,
    pub refusals: IntCounterVec,
    pub connections_refused: IntCounterVec,
}

impl ListenerMetrics {
    pub fn of(m: &crate::metrics::Metrics) -> Self {
        Self {
            received: m.listener_received.clone(),
            sent: m.listener_sent.clone(),
            refusals: m.tls_handshake_refusals.clone(),
            connections_refused: m.connections_refused.clone(),
        }
    }
}

pub struct Listener {
    pub tcp: TcpListener,
    /// `None`: plaintext (mutual TLS off).
    pub tls: Option<Arc<PeerTls>>,
    pub handshake_timeout: Duration,
    pub connection_limit: Arc<ConnectionRateLimiter>,
    pub metrics: ListenerMetrics,
}

impl Listener {
    /// Serves `app` until `shutdown`; then stops accepting, lets open
    /// connections finish their requests, and returns when all are closed.
    pub async fn serve(self, app: Router, shutdown: CancellationToken) -> crate::Result<()> {
        let acceptor = match &self.tls {
            Some(tls) => Some(TlsAcceptor::from(tls.server_config_allowing_anonymous()?)),
            None => None,
        };
        let (open_tx, open_rx) = watch::channel(());
        let (mut last_logged, mut unlogged) = (None, 0u64);
        loop {
            let accepted = tokio::select! {
                r = self.tcp.accept() => r,
                _ = shutdown.cancelled() => break,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, mostly: back off briefly
                    // instead of spinning on the error.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if let Err(e) = self.connection_limit.allow(remote.ip()) {
                self.metrics
                    .connections_refused
                    .with_label_values(&["rate_limit"])
                    .inc();
                // A flood must not become a flood of log lines: one line
                // per second at most, with how many were not logged.
                if last_logged.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(
                        %remote,
                        reason = "rate_limit",
                        unlogged_since_last = unlogged,
                        "refused connection: {e}"
                    );
                    last_logged = Some(Instant::now());
                    unlogged = 0;
                } else {
                    unlogged += 1;
                }
                continue;
            }
            // Small gossip messages must not wait for Nagle's algorithm.
            let _ = tcp.set_nodelay(true);
            let io = CountingStream::new(
                tcp,
                self.metrics.received.clone(),
                self.metrics.sent.clone(),
            );
            let conn = Connection {
                app: app.clone(),
                remote,
                metrics: self.metrics.clone(),
                tls: self.tls.clone(),
                shutdown: shutdown.clone(),
                _open: open_rx.clone(),
            };
            let acceptor = acceptor.clone();
            let timeout = self.handshake_timeout;
            tokio::spawn(async move {
                match acceptor {
                    None => conn.serve(io, None).await,
                    Some(acceptor) => {
                        let handshake =
                            crate::security::accept_optional(&acceptor, io, remote, timeout);
                        // Shutdown does not wait for handshakes in progress.
                        let outcome = tokio::select! {
                            r = handshake => r,
                            _ = conn.shutdown.cancelled() => return,
                        };
                        match outcome {
                            Ok((stream, cert)) => conn.serve(stream, cert.map(Arc::new)).await,
                            Err(refusal) => conn.refused(refusal.reason),
                        }
                    }
                }
            });
        }
        drop(open_rx);
        // Every connection task holds a receiver; all gone = all closed.
        open_tx.closed().await;
        Ok(())
    }
}

struct Connection {
    app: Router,
    remote: SocketAddr,
    metrics: ListenerMetrics,
    tls: Option<Arc<PeerTls>>,
    shutdown: CancellationToken,
    /// Dropped when the connection ends (see `Listener::serve`).
    _open: watch::Receiver<()>,
}

impl Connection {
    fn refused(&self, reason: RefusalReason) {
        self.metrics
            .refusals
            .with_label_values(&[reason.label()])
            .inc();
    }

    async fn serve<IO>(self, io: IO, certificate: Option<Arc<crate::security::PeerCertificate>>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let caller = Caller {
            remote: self.remote,
            certificate,
        };
        let gate = Gate {
            tls: self.tls.clone(),
            metrics: self.metrics.clone(),
        };
        let app = self.app.clone();
        let service = tower::service_fn(move |req: Request<Incoming>| {
            let mut req = req.map(Body::new);
            let refusal = gate.check(&caller, &req);
            req.extensions_mut().insert(ConnectInfo(caller.clone()));
            let app = app.clone();
            async move {
                match refusal {
                    Some(r) => Ok::<_, Infallible>(r),
                    None => app.oneshot(req).await,
                }
            }
        });
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http2()
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_frame_size(H2_MAX_FRAME);
        let hyper_service = hyper_util::service::TowerToHyperService::new(service);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), hyper_service);
        tokio::pin!(conn);
        let mut stopping = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(remote = %self.remote, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = self.shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Per-request admission on a TLS listener, before any handler runs.
#[derive(Clone)]
struct Gate {
    tls: Option<Arc<PeerTls>>,
    metrics: ListenerMetrics,
}

impl Gate {
    fn check(&self, caller: &Caller, req: &Request<Body>) -> Option<Response> {
        let tls = self.tls.as_ref()?;
        let path = req.uri().path();
        let (reason, status, detail) = match &caller.certificate {
            None if ANONYMOUS_PATHS.contains(&path) => return None,
            None => (
                RefusalReason::NoClientCertificate,
                StatusCode::UNAUTHORIZED,
                "this node requires mutual TLS: present a peer certificate".to_string(),
            ),
            // A peer revoked after it connected keeps its TLS session (no
            // established connection is cut), but not its access.
            Some(cert) => match tls.revoked(cert) {
                None => return None,
                Some(r) => (RefusalReason::Revoked, StatusCode::FORBIDDEN, r.to_string()),
            },
        };
        self.metrics
            .refusals
            .with_label_values(&[reason.label()])
            .inc();
        tracing::warn!(
            remote = %caller.remote,
            peer_id = caller.authenticated_peer_id().unwrap_or("-"),
            reason = reason.label(),
            path,
            "refused request: {detail}"
        );
        Some(refuse(req, status, reason, &detail))
    }
}

/// gRPC callers get a gRPC status (their clients ignore HTTP status
/// codes), everyone else the HTTP one.
fn refuse(
    req: &Request<Body>,
    status: StatusCode,
    reason: RefusalReason,
    detail: &str,
) -> Response {
    let message = format!("{}: {detail}", reason.label());
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        let s = if status == StatusCode::UNAUTHORIZED {
            tonic::Status::unauthenticated(message)
        } else {
            tonic::Status::permission_denied(message)
        };
        return s.into_http::<Body>().into_response();
    }
    (status, format!("{message}\n")).into_response()
}
