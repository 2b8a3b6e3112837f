//! REST routes for transactions: submit raw bytes, fetch by hash, the
//! design's notify fallback, and the offline queue's dead letters.
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sorcha_proto::transaction::{CompactNotification, NotificationAck, TransactionNotification};

use super::guard::{Gate, PeerError};
use super::rest::ApiError;
use crate::Error;
use crate::security::{Action, RequestCost};
use crate::tx::distributor::Distributor;
use crate::tx::store::parse_hex;

/// Largest REST notification body: one hash, a peer id and two numbers.
pub const MAX_NOTIFY_BYTES: usize = 64 * 1024;

pub fn router(d: Arc<Distributor>) -> Router {
    // One byte over the limit is enough to know a body is too large.
    let limit = usize::try_from(d.cfg.max_transaction_size)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    Router::new()
        .route(
            "/api/v1/transactions",
            post(submit).layer(DefaultBodyLimit::max(limit)),
        )
        .route(
            "/api/v1/transactions/notify",
            post(notify).layer(DefaultBodyLimit::max(MAX_NOTIFY_BYTES)),
        )
        .route("/api/v1/transactions/sync", post(sync))
        .route("/api/v1/transactions/dead-letters", get(dead_letters))
        .route("/api/v1/transactions/{hash}", get(fetch))
        .with_state(d)
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::InvalidTransaction(_) | Error::InvalidTxHash { .. } => StatusCode::BAD_REQUEST,
            Error::TransactionTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::QueueFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

async fn submit(
    State(d): State<Arc<Distributor>>,
    gate: Gate,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, PeerError> {
    let size = body.as_ref().map(|b| b.len() as u64).unwrap_or(0);
    let a = gate.admit(
        None,
        Action::Submit,
        RequestCost {
            bytes: size,
            transactions: 1,
        },
    )?;
    let r = submit_body(&d, body).await;
    gate.guard.finish_rest(&a, &r);
    Ok(r?)
}

async fn submit_body(
    d: &Arc<Distributor>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "transaction exceeds MaxTransactionSize ({} bytes)",
                    d.cfg.max_transaction_size
                ),
            )
        } else {
            ApiError(
                e.status(),
                format!("cannot read the request body: {}", e.body_text()),
            )
        }
    })?;
    let s = d.submit(body).await?;
    let status = if s.already_known {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body =
        json!({"transaction_hash": s.hash, "queued": s.queued, "already_known": s.already_known});
    Ok((status, Json(body)).into_response())
}

async fn fetch(
    State(d): State<Arc<Distributor>>,
    gate: Gate,
    Path(hash): Path<String>,
) -> Result<Response, PeerError> {
    let a = gate.admit(None, Action::Fetch, RequestCost::default())?;
    let r = fetch_hash(&d, &hash);
    gate.guard.finish_rest(&a, &r);
    Ok(r?)
}

fn fetch_hash(d: &Distributor, hash: &str) -> Result<Response, ApiError> {
    let h = parse_hex(hash).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("hash: expected 64 hex digits (SHA-256), got {hash:?}"),
        )
    })?;
    match d.get(&h)? {
        Some(data) => {
            Ok(([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response())
        }
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("transaction {hash} not held here"),
        )),
    }
}

async fn notify(
    State(d): State<Arc<Distributor>>,
    gate: Gate,
    body: Result<Json<TransactionNotification>, JsonRejection>,
) -> Result<Json<NotificationAck>, PeerError> {
    let Json(n) = body.map_err(ApiError::from)?;
    let cost = RequestCost {
        bytes: prost::Message::encoded_len(&n) as u64,
        transactions: 0,
    };
    let a = gate.admit(Some(&n.sender_peer_id), Action::Distribute, cost)?;
    let r = notify_one(&d, n);
    gate.guard.finish_rest(&a, &r);
    Ok(r?)
}

fn notify_one(
    d: &Arc<Distributor>,
    n: TransactionNotification,
) -> Result<Json<NotificationAck>, ApiError> {
    let hash = parse_hex(&n.transaction_hash).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "transaction_hash: expected 64 hex digits, got {:?}",
                n.transaction_hash
            ),
        )
    })?;
    let note = CompactNotification {
        hash: hash.to_vec(),
        size: n.transaction_size,
        round: n.round.max(1),
        compressible: false,
        lazy: false,
    };
    let wanted = d.on_notifications(&n.sender_peer_id, vec![note])?;
    let will_request = !wanted.is_empty();
    let already_known = !will_request && d.holds(&hash)?;
    Ok(Json(NotificationAck {
        already_known,
        will_request,
    }))
}

/// Anti-entropy over REST: the SyncRequest protobuf in, SyncResponse out
/// (hash lists are bytes, which JSON would bloat).
async fn sync(
    State(d): State<Arc<Distributor>>,
    gate: Gate,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, PeerError> {
    let protobuf = crate::comm::rest::PROTOBUF;
    if headers
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes() != protobuf.as_bytes())
    {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type: expected {protobuf} (a SyncRequest message)"),
        )
        .into());
    }
    let cost = RequestCost {
        bytes: body.len() as u64,
        transactions: 0,
    };
    let req =
        <sorcha_proto::transaction::SyncRequest as prost::Message>::decode(body).map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("body: not a SyncRequest ({e})"),
            )
        })?;
    // The same policy as the gRPC SyncTransactions: a read, by the claimed peer.
    let a = gate.admit(Some(&req.requesting_peer_id), Action::Fetch, cost)?;
    let r = d.on_sync(&req).map_err(ApiError::from).map(|resp| {
        (
            [(header::CONTENT_TYPE, protobuf)],
            prost::Message::encode_to_vec(&resp),
        )
            .into_response()
    });
    gate.guard.finish_rest(&a, &r);
    Ok(r?)
}

async fn dead_letters(
    State(d): State<Arc<Distributor>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = d.queue.dead_letters(10_000)?;
    let items: Vec<_> = list
        .iter()
        .map(|l| {
            json!({
                "transaction_hash": l.hash,
                "size": l.size,
                "queued_at": l.queued_at,
                "failed_at": l.failed_at,
                "retry_count": l.retry_count,
                "last_error": l.last_error,
            })
        })
        .collect();
    Ok(Json(
        json!({ "dead_letters": items, "queue_size": d.queue.len() }),
    ))
}
