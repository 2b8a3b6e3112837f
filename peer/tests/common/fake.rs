//! A scripted peer: answers discovery calls after an optional delay with a
//! fixed peer list, and records what it was asked. Shared by tests and the
//! discovery benchmark (`#[path]`-included there).
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sorcha_proto::discovery::peer_discovery_server::{PeerDiscovery, PeerDiscoveryServer};
use sorcha_proto::discovery::{
    PeerInfo, PeerListRequest, PeerListResponse, PingRequest, PingResponse, RegisterPeerRequest,
    RegisterPeerResponse,
};
use tonic::{Request, Response, Status};

/// Calls in flight now and at most, possibly shared by several fakes.
#[derive(Default)]
pub struct Gauge {
    pub now: AtomicUsize,
    pub peak: AtomicUsize,
}

#[derive(Default)]
pub struct FakeState {
    pub id: String,
    pub delay: Duration,
    /// What GetPeerList answers.
    pub peers: Mutex<Vec<PeerInfo>>,
    pub in_flight: Arc<Gauge>,
    pub pings: AtomicUsize,
    pub list_requests: Mutex<Vec<PeerListRequest>>,
    pub registrations: Mutex<Vec<PeerInfo>>,
}

#[derive(Clone)]
pub struct FakePeer(pub Arc<FakeState>);

impl FakePeer {
    pub fn new(id: &str, delay: Duration) -> Self {
        Self::sharing(id, delay, Arc::default())
    }

    /// A fake counting its calls in flight on `gauge`.
    pub fn sharing(id: &str, delay: Duration, gauge: Arc<Gauge>) -> Self {
        FakePeer(Arc::new(FakeState {
            id: id.into(),
            delay,
            in_flight: gauge,
            ..Default::default()
        }))
    }

    /// Serves on an ephemeral loopback port; returns the port.
    pub async fn spawn(&self) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app =
            tonic::service::Routes::new(PeerDiscoveryServer::new(self.clone())).into_axum_router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    }

    async fn call<T>(&self, answer: T) -> Result<Response<T>, Status> {
        let s = &self.0;
        let now = s.in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        s.in_flight.peak.fetch_max(now, Ordering::SeqCst);
        if !s.delay.is_zero() {
            tokio::time::sleep(s.delay).await;
        }
        s.in_flight.now.fetch_sub(1, Ordering::SeqCst);
        Ok(Response::new(answer))
    }
}

/// How a fake on `port` describes itself.
pub fn fake_info(id: &str, port: u16) -> PeerInfo {
    PeerInfo {
        peer_id: id.into(),
        address: "127.0.0.1".into(),
        port: i32::from(port),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl PeerDiscovery for FakePeer {
    async fn get_peer_list(
        &self,
        req: Request<PeerListRequest>,
    ) -> Result<Response<PeerListResponse>, Status> {
        self.0.list_requests.lock().unwrap().push(req.into_inner());
        let peers = self.0.peers.lock().unwrap().clone();
        let total_peers = peers.len() as i32;
        self.call(PeerListResponse {
            peers,
            total_peers,
            responder: None,
        })
        .await
    }

    async fn register_peer(
        &self,
        req: Request<RegisterPeerRequest>,
    ) -> Result<Response<RegisterPeerResponse>, Status> {
        if let Some(info) = req.into_inner().peer_info {
            self.0.registrations.lock().unwrap().push(info);
        }
        self.call(RegisterPeerResponse {
            success: true,
            message: String::new(),
        })
        .await
    }

    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        self.0.pings.fetch_add(1, Ordering::SeqCst);
        self.call(PingResponse {
            peer_id: self.0.id.clone(),
            status: 1,
            ..Default::default()
        })
        .await
    }
}
