//! gRPC `PeerDiscovery` service.
use std::sync::Arc;

use sorcha_proto::discovery::peer_discovery_server::PeerDiscovery;
use sorcha_proto::discovery::{
    PeerListRequest, PeerListResponse, PingRequest, PingResponse, RegisterPeerRequest,
    RegisterPeerResponse,
};
use tonic::{Request, Response, Status};

use super::handlers;
use crate::discovery::Membership;

pub struct DiscoveryService {
    pub membership: Arc<Membership>,
}

#[tonic::async_trait]
impl PeerDiscovery for DiscoveryService {
    async fn get_peer_list(
        &self,
        req: Request<PeerListRequest>,
    ) -> Result<Response<PeerListResponse>, Status> {
        self.membership
            .metrics
            .requests
            .with_label_values(&["peer_list", "grpc"])
            .inc();
        handlers::peer_list(&self.membership, req.into_inner())
            .map(Response::new)
            .map_err(to_status)
    }

    async fn register_peer(
        &self,
        req: Request<RegisterPeerRequest>,
    ) -> Result<Response<RegisterPeerResponse>, Status> {
        self.membership
            .metrics
            .requests
            .with_label_values(&["register", "grpc"])
            .inc();
        handlers::register(&self.membership, req.into_inner())
            .map(Response::new)
            .map_err(to_status)
    }

    async fn ping(&self, req: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        self.membership
            .metrics
            .requests
            .with_label_values(&["ping", "grpc"])
            .inc();
        handlers::ping(&self.membership, req.into_inner())
            .map(Response::new)
            .map_err(to_status)
    }
}

fn to_status(e: handlers::RequestError) -> Status {
    match e {
        handlers::RequestError::Invalid(m) => Status::invalid_argument(m),
        handlers::RequestError::Internal(m) => Status::internal(m),
    }
}
