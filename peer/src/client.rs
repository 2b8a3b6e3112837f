//! Outgoing discovery calls to other peers, through the communication
//! manager: gRPC (on the peer's pooled connection if gossip holds one), or
//! the REST fallback, as negotiated per peer.
use std::sync::Arc;
use std::time::Duration;

use sorcha_proto::discovery::peer_discovery_client::PeerDiscoveryClient;
use sorcha_proto::discovery::{
    PeerListRequest, PeerListResponse, PingRequest, PingResponse, RegisterPeerRequest,
    RegisterPeerResponse,
};

use crate::comm::{Comm, Op, Protocol};
use crate::{Error, Result};

#[derive(Clone)]
pub struct PeerClient {
    comm: Arc<Comm>,
    request_timeout: Duration,
}

impl PeerClient {
    pub fn new(comm: Arc<Comm>, request_timeout: Duration) -> Self {
        Self {
            comm,
            request_timeout,
        }
    }

    pub fn comm(&self) -> &Arc<Comm> {
        &self.comm
    }

    /// URL of a peer at `address:port` (scheme by link mode).
    pub fn url(&self, address: &str, port: u16) -> String {
        self.comm.connector().url(address, port)
    }

    /// The peer's pooled connection when gossip keeps one open; otherwise
    /// a connection for this call only. Discovery talks to each peer once
    /// per refresh interval, and pooling every peer it ever asked would
    /// hold a connection (and a socket on both sides) to all of them.
    /// `peer_id`: whom the server must prove to be (mutual TLS); `None`
    /// for bootstrap URLs, checked by host name.
    fn grpc(
        &self,
        url: &str,
        peer_id: Option<&str>,
    ) -> Result<PeerDiscoveryClient<tonic::transport::Channel>> {
        let channel = match self.comm.pool.existing(url) {
            Some(ch) => ch,
            None => self.comm.pool.one_shot(url, peer_id)?,
        };
        Ok(PeerDiscoveryClient::new(channel))
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.request_timeout);
        req
    }

    pub async fn ping(
        &self,
        url: &str,
        peer_id: Option<&str>,
        req: PingRequest,
    ) -> Result<PingResponse> {
        let t = self.request_timeout;
        self.comm
            .call(url, Op::Ping, |p| {
                let req = req.clone();
                async move {
                    match p {
                        Protocol::Rest => self.comm.rest.ping(url, peer_id, &req, t).await,
                        _ => {
                            let mut c = self.grpc(url, peer_id)?;
                            within(t, url, c.ping(self.request(req))).await
                        }
                    }
                }
            })
            .await
    }

    pub async fn get_peer_list(
        &self,
        url: &str,
        peer_id: Option<&str>,
        req: PeerListRequest,
    ) -> Result<PeerListResponse> {
        let t = self.request_timeout;
        self.comm
            .call(url, Op::PeerList, |p| {
                let req = req.clone();
                async move {
                    match p {
                        Protocol::Rest => self.comm.rest.peer_list(url, peer_id, &req, t).await,
                        _ => {
                            let mut c = self.grpc(url, peer_id)?;
                            within(t, url, c.get_peer_list(self.request(req))).await
                        }
                    }
                }
            })
            .await
    }

    pub async fn register(
        &self,
        url: &str,
        peer_id: Option<&str>,
        req: RegisterPeerRequest,
    ) -> Result<RegisterPeerResponse> {
        let t = self.request_timeout;
        self.comm
            .call(url, Op::Register, |p| {
                let req = req.clone();
                async move {
                    match p {
                        Protocol::Rest => self.comm.rest.register(url, peer_id, &req, t).await,
                        _ => {
                            let mut c = self.grpc(url, peer_id)?;
                            within(t, url, c.register_peer(self.request(req))).await
                        }
                    }
                }
            })
            .await
    }
}

/// A gRPC call bounded by `t`, connection included.
async fn within<T>(
    t: Duration,
    url: &str,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(t, call).await {
        Err(_) => Err(unreachable(url, "no answer in time")),
        Ok(r) => r.map(|r| r.into_inner()).map_err(|s| status_err(url, s)),
    }
}

fn unreachable(url: &str, message: &str) -> Error {
    Error::PeerUnreachable {
        peer: url.to_owned(),
        message: message.to_owned(),
    }
}

/// A failed gRPC call, as a crate error: connection trouble is
/// `PeerUnreachable` (counts against the circuit breaker, may be retried),
/// an unserved method `ProtocolUnsupported` (negotiation steps down), any
/// other answer `PeerRejected`.
pub fn status_err(url: &str, s: tonic::Status) -> Error {
    match s.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::Unknown => unreachable(url, s.message()),
        tonic::Code::Unimplemented => Error::ProtocolUnsupported {
            peer: url.to_owned(),
            protocol: "this gRPC method",
        },
        _ => Error::PeerRejected {
            peer: url.to_owned(),
            message: format!("{:?}: {}", s.code(), s.message()),
        },
    }
}
