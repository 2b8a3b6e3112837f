//! Outgoing discovery calls to other peers over gRPC.
//!
//! Each call opens its own HTTP/2 connection and drops it afterwards:
//! discovery talks to a peer once per refresh interval, and an idle
//! connection per peer would cost more memory (1,000 peers) than the
//! reconnect costs time. Pooling, protocol negotiation and circuit breaking
//! belong to the communication manager.
use std::time::Duration;

use sorcha_proto::discovery::peer_discovery_client::PeerDiscoveryClient;
use sorcha_proto::discovery::{
    PeerListRequest, PeerListResponse, PingRequest, PingResponse, RegisterPeerRequest,
    RegisterPeerResponse,
};
use tonic::transport::{Channel, Endpoint};

use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct PeerClient {
    connect_timeout: Duration,
    request_timeout: Duration,
}

/// `http://address:port`, bracketing IPv6 literals.
pub fn peer_url(address: &str, port: u16) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("http://[{address}]:{port}")
    } else {
        format!("http://{address}:{port}")
    }
}

impl PeerClient {
    pub fn new(connect_timeout: Duration, request_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            request_timeout,
        }
    }

    async fn connect(&self, url: &str) -> Result<PeerDiscoveryClient<Channel>> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| Error::InvalidPeerAddress {
                address: url.to_owned(),
                reason: e.to_string(),
            })?
            .connect_timeout(self.connect_timeout.min(self.request_timeout))
            .timeout(self.request_timeout)
            .tcp_nodelay(true);
        let channel = tokio::time::timeout(self.request_timeout, endpoint.connect())
            .await
            .map_err(|_| unreachable(url, "connect timed out"))?
            .map_err(|e| unreachable(url, &e.to_string()))?;
        Ok(PeerDiscoveryClient::new(channel))
    }

    pub async fn ping(&self, url: &str, req: PingRequest) -> Result<PingResponse> {
        let mut c = self.connect(url).await?;
        c.ping(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| status_err(url, s))
    }

    pub async fn get_peer_list(&self, url: &str, req: PeerListRequest) -> Result<PeerListResponse> {
        let mut c = self.connect(url).await?;
        c.get_peer_list(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| status_err(url, s))
    }

    pub async fn register(
        &self,
        url: &str,
        req: RegisterPeerRequest,
    ) -> Result<RegisterPeerResponse> {
        let mut c = self.connect(url).await?;
        c.register_peer(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| status_err(url, s))
    }
}

fn unreachable(url: &str, message: &str) -> Error {
    Error::PeerUnreachable {
        peer: url.to_owned(),
        message: message.to_owned(),
    }
}

fn status_err(url: &str, s: tonic::Status) -> Error {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            unreachable(url, s.message())
        }
        _ => Error::PeerRejected {
            peer: url.to_owned(),
            message: format!("{:?}: {}", s.code(), s.message()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_bracket_ipv6() {
        assert_eq!(peer_url("127.0.0.1", 5001), "http://127.0.0.1:5001");
        assert_eq!(peer_url("::1", 5001), "http://[::1]:5001");
        assert_eq!(peer_url("peer-0.sorcha", 80), "http://peer-0.sorcha:80");
    }
}
