//! The node's listener: gRPC and REST multiplexed on one port (HTTP/2 for
//! gRPC, HTTP/1.1 or HTTP/2 for REST), told apart by path.
pub mod admin;
pub mod grpc;
pub mod handlers;
pub mod rest;
pub mod serve;
pub mod tx_grpc;
pub mod tx_rest;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use sorcha_proto::discovery::peer_discovery_server::PeerDiscoveryServer;
use sorcha_proto::transaction::transaction_distribution_server::TransactionDistributionServer;
use tonic::codec::CompressionEncoding;

use crate::discovery::Membership;
use crate::tx::distributor::Distributor;
use crate::tx::net::max_message_bytes;

/// Largest request body a peer may send; discovery messages are small, a
/// full list of 1,000 peers is well under 1 MB.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

pub fn router(
    m: Arc<Membership>,
    d: Arc<Distributor>,
    faults: &crate::node::Faults,
    admin_auth: crate::security::AdminAuth,
    shutdown: tokio_util::sync::CancellationToken,
) -> Router {
    let discovery = PeerDiscoveryServer::new(grpc::DiscoveryService {
        membership: m.clone(),
    })
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let max_message = max_message_bytes(d.cfg.max_transaction_size);
    let mut tx = TransactionDistributionServer::new(tx_grpc::TxService {
        distributor: d.clone(),
        drop_ratio: faults.drop_tx_messages,
        corrupt_streams: faults.corrupt_streams.clone(),
        shutdown,
    })
    .max_decoding_message_size(max_message)
    .max_encoding_message_size(max_message);
    if d.cfg.enable_compression {
        // Negotiated: gzip is used only with peers that announce it.
        tx = tx
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip);
    }
    let grpc = tonic::service::Routes::new(discovery)
        .add_service(tx)
        .into_axum_router();
    let m2 = m.clone();
    let rest = rest::router(m).layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES));
    grpc.merge(rest)
        .merge(admin::router(m2, d.clone(), admin_auth))
        .merge(tx_rest::router(d))
}
