//! gRPC `PeerDiscovery` service.
use std::sync::Arc;

use sorcha_proto::discovery::peer_discovery_server::PeerDiscovery;
use sorcha_proto::discovery::{
    PeerListRequest, PeerListResponse, PingRequest, PingResponse, RegisterPeerRequest,
    RegisterPeerResponse,
};
use tonic::{Request, Response, Status};

use super::guard::Guard;
use super::handlers;
use crate::discovery::Membership;
use crate::security::{Action, RequestCost};

pub struct DiscoveryService {
    pub membership: Arc<Membership>,
    pub guard: Arc<Guard>,
}

fn cost(msg: &impl prost::Message) -> RequestCost {
    RequestCost {
        bytes: msg.encoded_len() as u64,
        transactions: 0,
    }
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
        let claimed = req.get_ref().requesting_peer_id.clone();
        let a =
            self.guard
                .admit_grpc(&req, Some(&claimed), Action::Discover, cost(req.get_ref()))?;
        let r = handlers::peer_list(&self.membership, req.into_inner())
            .map(Response::new)
            .map_err(to_status);
        self.guard.finish(&a, &r);
        r
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
        let claimed = req
            .get_ref()
            .peer_info
            .as_ref()
            .map(|p| p.peer_id.clone())
            .unwrap_or_default();
        let a =
            self.guard
                .admit_grpc(&req, Some(&claimed), Action::Register, cost(req.get_ref()))?;
        let r = handlers::register(&self.membership, req.into_inner())
            .map(Response::new)
            .map_err(to_status);
        self.guard.finish(&a, &r);
        r
    }

    async fn ping(&self, req: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        self.membership
            .metrics
            .requests
            .with_label_values(&["ping", "grpc"])
            .inc();
        let claimed = req.get_ref().peer_id.clone();
        let a =
            self.guard
                .admit_grpc(&req, Some(&claimed), Action::Discover, cost(req.get_ref()))?;
        let r = handlers::ping(&self.membership, req.into_inner())
            .map(Response::new)
            .map_err(to_status);
        self.guard.finish(&a, &r);
        r
    }
}

fn to_status(e: handlers::RequestError) -> Status {
    match e {
        handlers::RequestError::Invalid(m) => Status::invalid_argument(m),
        handlers::RequestError::Internal(m) => Status::internal(m),
    }
}
