//! Outgoing discovery calls to other peers over gRPC, on connections from
//! the node's [`Connector`].
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
use tonic::transport::Channel;

use crate::comm::Connector;

use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct PeerClient {
    connector: Connector,
    request_timeout: Duration,
}

impl PeerClient {
    pub fn new(connector: Connector, request_timeout: Duration) -> Self {
        Self {
            connector,
            request_timeout,
        }
    }

    /// URL of a peer at `address:port` (scheme by link mode).
    pub fn url(&self, address: &str, port: u16) -> String {
        self.connector.url(address, port)
    }

    /// `peer_id`: whom the server must prove to be (mutual TLS); `None`
    /// for bootstrap URLs, checked by host name.
    async fn connect(
        &self,
        url: &str,
        peer_id: Option<&str>,
    ) -> Result<PeerDiscoveryClient<Channel>> {
        let endpoint = self.connector.endpoint(url)?.timeout(self.request_timeout);
        let channel = tokio::time::timeout(
            self.request_timeout,
            self.connector.channel(&endpoint, peer_id),
        )
        .await
        .map_err(|_| unreachable(url, "connect timed out"))??;
        Ok(PeerDiscoveryClient::new(channel))
    }

    pub async fn ping(
        &self,
        url: &str,
        peer_id: Option<&str>,
        req: PingRequest,
    ) -> Result<PingResponse> {
        let mut c = self.connect(url, peer_id).await?;
        c.ping(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| status_err(url, s))
    }

    pub async fn get_peer_list(
        &self,
        url: &str,
        peer_id: Option<&str>,
        req: PeerListRequest,
    ) -> Result<PeerListResponse> {
        let mut c = self.connect(url, peer_id).await?;
        c.get_peer_list(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| status_err(url, s))
    }

    pub async fn register(
        &self,
        url: &str,
        peer_id: Option<&str>,
        req: RegisterPeerRequest,
    ) -> Result<RegisterPeerResponse> {
        let mut c = self.connect(url, peer_id).await?;
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
