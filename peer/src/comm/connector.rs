//! How this node opens a connection to another peer: the one place that
//! knows whether links are plaintext or mutual TLS. Discovery
//! (`client.rs`) and transaction traffic (`tx/net.rs`) both get their
//! channels here, and so does the address self-check's HTTP client.
//!
//! With mutual TLS each new connection presents this node's *current*
//! certificate and checks the server's against the *current* trust bundle
//! and revocation list (`security::PeerTls` swaps them on reload), so a
//! rotation applies to the next connection while open ones continue.
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::api::serve::{H2_CONNECTION_WINDOW, H2_MAX_FRAME, H2_STREAM_WINDOW};
use crate::security::{PeerTls, SecurityError};
use crate::{Error, Result};

#[derive(Clone)]
pub struct Connector {
    /// `None`: plaintext HTTP/2 (mutual TLS off, the devnet).
    tls: Option<Arc<PeerTls>>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl Connector {
    pub fn plaintext(connect_timeout: Duration) -> Self {
        Self {
            tls: None,
            connect_timeout,
        }
    }

    pub fn mutual_tls(tls: Arc<PeerTls>, connect_timeout: Duration) -> Self {
        Self {
            tls: Some(tls),
            connect_timeout,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// URL of a peer at `address:port`, with this node's scheme.
    pub fn url(&self, address: &str, port: u16) -> String {
        peer_url(self.is_tls(), address, port)
    }

    /// An endpoint for `url` with the connection settings every peer link
    /// shares; callers add their own timeouts.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint> {
        Ok(Endpoint::from_shared(url.to_owned())
            .map_err(|e| Error::InvalidPeerAddress {
                address: url.to_owned(),
                reason: e.to_string(),
            })?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_frame_size(H2_MAX_FRAME))
    }

    /// A channel that connects on first use (and reconnects after a
    /// failure). `peer_id`: the server must present that peer's
    /// certificate; `None` (bootstrap URLs) checks the host name instead.
    pub fn channel_lazy(&self, endpoint: &Endpoint, peer_id: Option<&str>) -> Result<Channel> {
        Ok(match self.tls_connect(peer_id)? {
            None => endpoint.connect_lazy(),
            Some(c) => endpoint.connect_with_connector_lazy(c),
        })
    }

    /// Connects now (within the endpoint's connect timeout).
    pub async fn channel(&self, endpoint: &Endpoint, peer_id: Option<&str>) -> Result<Channel> {
        let connected = match self.tls_connect(peer_id)? {
            None => endpoint.connect().await,
            Some(c) => endpoint.connect_with_connector(c).await,
        };
        connected.map_err(|e| Error::PeerUnreachable {
            peer: endpoint.uri().to_string(),
            message: transport_error(&e),
        })
    }

    /// An HTTP client (REST) with the same identity and checks.
    pub fn http_client(&self, timeout: Duration, peer_id: Option<&str>) -> Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(self.connect_timeout.min(timeout))
            // A proxy would test its own reachability, not ours.
            .no_proxy();
        if let Some(tls) = &self.tls {
            b = b.use_preconfigured_tls(client_config(tls, peer_id)?.as_ref().clone());
        }
        b.build()
            .map_err(|e| SecurityError::TlsSetup(format!("HTTP client: {e}")).into())
    }

    fn tls_connect(&self, peer_id: Option<&str>) -> Result<Option<TlsConnect>> {
        self.tls
            .as_ref()
            .map(|tls| {
                Ok(TlsConnect {
                    config: client_config(tls, peer_id)?,
                })
            })
            .transpose()
    }
}

fn client_config(tls: &PeerTls, peer_id: Option<&str>) -> Result<Arc<ClientConfig>> {
    Ok(match peer_id {
        Some(id) => tls.client_config_for_peer(id)?,
        None => tls.client_config()?,
    })
}

/// `scheme://address:port`, bracketing IPv6 literals; `https` when links
/// use mutual TLS.
pub fn peer_url(tls: bool, address: &str, port: u16) -> String {
    let scheme = if tls { "https" } else { "http" };
    if address.contains(':') && !address.starts_with('[') {
        format!("{scheme}://[{address}]:{port}")
    } else {
        format!("{scheme}://{address}:{port}")
    }
}

/// TCP, then a TLS handshake as the client; the tonic channel runs HTTP/2
/// over the result (ALPN offers h2 first).
#[derive(Clone)]
struct TlsConnect {
    config: Arc<ClientConfig>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for TlsConnect {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, std::result::Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.config.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("peer URL has no host")?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(host)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// The innermost cause: tonic's own text is only "transport error".
fn transport_error(e: &tonic::transport::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_bracket_ipv6_and_follow_the_link_mode() {
        assert_eq!(peer_url(false, "127.0.0.1", 5001), "http://127.0.0.1:5001");
        assert_eq!(peer_url(false, "::1", 5001), "http://[::1]:5001");
        assert_eq!(peer_url(true, "::1", 5001), "https://[::1]:5001");
        assert_eq!(
            peer_url(true, "peer-0.sorcha", 80),
            "https://peer-0.sorcha:80"
        );
        let c = Connector::plaintext(Duration::from_secs(1));
        assert_eq!(c.url("10.0.0.1", 1), "http://10.0.0.1:1");
    }
}
