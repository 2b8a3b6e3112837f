//! The node's listener: gRPC and REST multiplexed on one port (HTTP/2 for
//! gRPC, HTTP/1.1 or HTTP/2 for REST), told apart by path.
pub mod grpc;
pub mod handlers;
pub mod rest;

use std::sync::Arc;

use axum::Router;
use sorcha_proto::discovery::peer_discovery_server::PeerDiscoveryServer;

use crate::discovery::Membership;

/// Largest request body a peer may send; discovery messages are small, a
/// full list of 1,000 peers is well under 1 MB.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

pub fn router(m: Arc<Membership>) -> Router {
    let grpc = PeerDiscoveryServer::new(grpc::DiscoveryService {
        membership: m.clone(),
    })
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let grpc = tonic::service::Routes::new(grpc).into_axum_router();
    grpc.merge(rest::router(m))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
}
