//! REST fallback (the design's `/api/v1/peers/*`), status, events, health
//! and metrics. Bodies are the discovery proto messages as JSON with proto
//! field names; malformed input gets a 400 naming the field.
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sorcha_proto::discovery::{PeerListRequest, PingRequest, RegisterPeerRequest};

use super::handlers::{self, RequestError};
use crate::discovery::Membership;

pub fn router(m: Arc<Membership>) -> Router {
    Router::new()
        .route("/api/v1/peers/register", post(register))
        .route("/api/v1/peers/list", get(list))
        .route("/api/v1/peers/ping", get(ping))
        .route("/api/v1/status", get(status))
        .route("/api/v1/events", get(events))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(m)
}

pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            RequestError::Internal(m) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError(e.status(), format!("invalid JSON body: {}", e.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid query string: {}", e.body_text()),
        )
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn register(
    State(m): State<Arc<Membership>>,
    body: Result<Json<RegisterPeerRequest>, JsonRejection>,
) -> ApiResult<sorcha_proto::discovery::RegisterPeerResponse> {
    m.metrics
        .requests
        .with_label_values(&["register", "rest"])
        .inc();
    let Json(req) = body?;
    Ok(Json(handlers::register(&m, req)?))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    requesting_peer_id: String,
    #[serde(default)]
    max_peers: i32,
}

async fn list(
    State(m): State<Arc<Membership>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<sorcha_proto::discovery::PeerListResponse> {
    m.metrics
        .requests
        .with_label_values(&["peer_list", "rest"])
        .inc();
    let Query(q) = q?;
    let req = PeerListRequest {
        requesting_peer_id: q.requesting_peer_id,
        max_peers: q.max_peers,
        requester: None,
    };
    Ok(Json(handlers::peer_list(&m, req)?))
}

#[derive(Deserialize)]
struct PingQuery {
    #[serde(default)]
    peer_id: String,
}

async fn ping(
    State(m): State<Arc<Membership>>,
    q: Result<Query<PingQuery>, QueryRejection>,
) -> ApiResult<sorcha_proto::discovery::PingResponse> {
    m.metrics
        .requests
        .with_label_values(&["ping", "rest"])
        .inc();
    let Query(q) = q?;
    Ok(Json(handlers::ping(
        &m,
        PingRequest {
            peer_id: q.peer_id,
            sender: None,
        },
    )?))
}

async fn status(State(m): State<Arc<Membership>>) -> Json<crate::discovery::NodeStatus> {
    Json(m.status())
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn events(
    State(m): State<Arc<Membership>>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult<Vec<crate::events::Event>> {
    let Query(q) = q?;
    Ok(Json(m.events.recent(q.limit.unwrap_or(100))))
}

async fn ready(State(m): State<Arc<Membership>>) -> (StatusCode, &'static str) {
    if m.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "first discovery pass not finished\n",
        )
    }
}

async fn metrics(State(m): State<Arc<Membership>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.metrics.render(),
    )
}
