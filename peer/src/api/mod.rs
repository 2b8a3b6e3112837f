//! The node's listener: gRPC and REST multiplexed on one port (HTTP/2 for
//! gRPC, HTTP/1.1 or HTTP/2 for REST), told apart by path.
pub mod admin;
pub mod bans;
pub mod grpc;
pub mod guard;
pub mod handlers;
pub mod rest;
pub mod serve;
pub mod tx_grpc;
mod tx_push;
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

/// Request size limits, per endpoint: discovery (gRPC and REST) takes at
/// most this; the REST notify fallback `tx_rest::MAX_NOTIFY_BYTES`; transactions (submit, push) at
/// most `MaxTransactionSize` plus framing (`tx::net::max_message_bytes`);
/// announcement batches the same per message. Discovery messages are
/// small, a full list of 1,000 peers is well under 1 MB.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

pub fn router(
    m: Arc<Membership>,
    d: Arc<Distributor>,
    faults: &crate::node::Faults,
    admin_auth: crate::security::AdminAuth,
    served: crate::comm::Protocol,
    guard: Arc<guard::Guard>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Router {
    use crate::comm::Protocol;
    let discovery = PeerDiscoveryServer::new(grpc::DiscoveryService {
        membership: m.clone(),
        guard: guard.clone(),
    })
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let max_message = max_message_bytes(d.cfg.max_transaction_size);
    let mut tx = TransactionDistributionServer::new(tx_grpc::TxService {
        distributor: d.clone(),
        guard: guard.clone(),
        drop_ratio: faults.drop_tx_messages,
        corrupt_streams: faults.corrupt_streams.clone(),
        shutdown,
        streams: served == Protocol::GrpcStream,
    })
    .max_decoding_message_size(max_message)
    .max_encoding_message_size(max_message);
    if d.cfg.enable_compression {
        // Negotiated: gzip is used only with peers that announce it.
        tx = tx
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip);
    }
    // A REST-only node (PreferredProtocol: Rest) serves no gRPC at all:
    // callers get 404, which gRPC clients read as UNIMPLEMENTED.
    let grpc = if served == Protocol::Rest {
        Router::new()
    } else {
        tonic::service::Routes::new(discovery)
            .add_service(tx)
            .into_axum_router()
    };
    let m2 = m.clone();
    let rest = rest::router(m).layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES));
    grpc.merge(rest)
        .merge(admin::router(m2, d.clone(), admin_auth, guard.clone()))
        .merge(tx_rest::router(d))
        .layer(axum::Extension(guard))
}
