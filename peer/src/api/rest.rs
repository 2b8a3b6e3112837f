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

use super::guard::{Gate, PeerError};
use super::handlers::{self, RequestError};
use crate::discovery::Membership;
use crate::security::{Action, RequestCost};

pub fn router(m: Arc<Membership>) -> Router {
    Router::new()
        .route("/api/v1/peers/register", post(register))
        .route("/api/v1/peers/list", get(list))
        .route("/api/v1/peers/ping", get(ping))
        .route(
            "/api/v1/peers/{peer_id}/reputation",
            get(super::bans::reputation),
        )
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

/// A peer-facing REST answer: served, or refused by the caller policy.
type PeerResult<T> = Result<Json<T>, PeerError>;

fn discover_cost(bytes: usize) -> RequestCost {
    RequestCost {
        bytes: bytes as u64,
        transactions: 0,
    }
}

/// Runs a handler for an admitted caller and scores the outcome.
fn served<T>(gate: &Gate, a: &super::guard::Admitted, r: Result<T, ApiError>) -> PeerResult<T> {
    gate.guard.finish_rest(a, &r);
    Ok(Json(r?))
}

async fn register(
    State(m): State<Arc<Membership>>,
    gate: Gate,
    body: Result<Json<RegisterPeerRequest>, JsonRejection>,
) -> PeerResult<sorcha_proto::discovery::RegisterPeerResponse> {
    m.metrics
        .requests
        .with_label_values(&["register", "rest"])
        .inc();
    let Json(req) = body.map_err(ApiError::from)?;
    let claimed = req.peer_info.as_ref().map(|p| p.peer_id.clone());
    let size = prost::Message::encoded_len(&req);
    let a = gate.admit(claimed.as_deref(), Action::Register, discover_cost(size))?;
    let r = handlers::register(&m, req).map_err(ApiError::from);
    served(&gate, &a, r)
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
    gate: Gate,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> PeerResult<sorcha_proto::discovery::PeerListResponse> {
    m.metrics
        .requests
        .with_label_values(&["peer_list", "rest"])
        .inc();
    let Query(q) = q.map_err(ApiError::from)?;
    let a = gate.admit(
        Some(&q.requesting_peer_id),
        Action::Discover,
        discover_cost(0),
    )?;
    let req = PeerListRequest {
        requesting_peer_id: q.requesting_peer_id,
        max_peers: q.max_peers,
        requester: None,
    };
    let r = handlers::peer_list(&m, req).map_err(ApiError::from);
    served(&gate, &a, r)
}

#[derive(Deserialize)]
struct PingQuery {
    #[serde(default)]
    peer_id: String,
}

async fn ping(
    State(m): State<Arc<Membership>>,
    gate: Gate,
    q: Result<Query<PingQuery>, QueryRejection>,
) -> PeerResult<sorcha_proto::discovery::PingResponse> {
    m.metrics
        .requests
        .with_label_values(&["ping", "rest"])
        .inc();
    let Query(q) = q.map_err(ApiError::from)?;
    let a = gate.admit(Some(&q.peer_id), Action::Discover, discover_cost(0))?;
    let r = handlers::ping(
        &m,
        PingRequest {
            peer_id: q.peer_id,
            sender: None,
        },
    )
    .map_err(ApiError::from);
    served(&gate, &a, r)
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

async fn metrics(State(m): State<Arc<Membership>>, gate: Gate) -> impl IntoResponse {
    gate.guard.refresh_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.metrics.render(),
    )
}
