//! Admin operations: calls that change the node. They are served only to
//! callers `AdminAuth` admits — the bearer token from
//! `Security.AdminTokenFile`, or, without one, loopback callers — never to
//! other peers as such, whatever their capabilities.
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{StatusCode, header::AUTHORIZATION};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

use super::guard::Guard as CallerGuard;
use super::rest::ApiError;
use super::wire::Caller;
use crate::discovery::Membership;
use crate::events::EventKind;
use crate::security::{AdminAuth, AdminRefusal};
use crate::tx::distributor::Distributor;

#[derive(Clone)]
pub(super) struct Admin {
    m: Arc<Membership>,
    d: Arc<Distributor>,
    auth: Arc<AdminAuth>,
    pub(super) guard: Arc<CallerGuard>,
}

pub fn router(
    m: Arc<Membership>,
    d: Arc<Distributor>,
    auth: AdminAuth,
    caller_guard: Arc<CallerGuard>,
) -> Router {
    let admin = Admin {
        m,
        d,
        auth: Arc::new(auth),
        guard: caller_guard,
    };
    Router::new()
        .route("/api/v1/admin/bans", get(super::bans::list))
        .route(
            "/api/v1/admin/bans/{peer_id}",
            axum::routing::put(super::bans::ban).delete(super::bans::unban),
        )
        .route("/api/v1/admin/peers/{peer_id}", delete(remove_peer))
        .route(
            "/api/v1/admin/dead-letters/{hash}/requeue",
            post(requeue_dead_letter),
        )
        .route_layer(middleware::from_fn_with_state(admin.clone(), guard))
        .with_state(admin)
}

/// Refuses every admin call `AdminAuth` does not admit, counting and
/// logging it with the reason.
async fn guard(
    State(a): State<Admin>,
    ConnectInfo(caller): ConnectInfo<Caller>,
    req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match a.auth.authorize(caller.remote.ip(), header) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            a.m.metrics
                .admin_refusals
                .with_label_values(&[refusal.label()])
                .inc();
            a.m.events.record(
                EventKind::Error,
                None,
                format!(
                    "admin call {} {} from {} refused: {refusal}",
                    req.method(),
                    req.uri().path(),
                    caller.remote
                ),
            );
            let status = match refusal {
                AdminRefusal::NotLoopback => StatusCode::FORBIDDEN,
                AdminRefusal::MissingToken | AdminRefusal::WrongToken => StatusCode::UNAUTHORIZED,
            };
            ApiError(status, refusal.to_string()).into_response()
        }
    }
}

/// Removes a peer from the list (tombstoned, so a neighbour's stale list
/// does not bring it straight back).
async fn remove_peer(
    State(a): State<Admin>,
    Path(peer_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !a.m.remove(&peer_id)? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("peer_id: no peer {peer_id:?} in the list"),
        ));
    }
    a.m.events.record(
        EventKind::PeerRemoved,
        Some(&peer_id),
        "removed by an admin call",
    );
    Ok(Json(json!({ "removed": peer_id })))
}

/// Moves a dead letter back to the tail of the offline queue; the next
/// flush sends it.
async fn requeue_dead_letter(
    State(a): State<Admin>,
    Path(hash): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !a.d.queue.requeue_dead_letter(&hash)? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("hash: no dead letter {hash:?}"),
        ));
    }
    Ok(Json(
        json!({ "requeued": hash, "queue_size": a.d.queue.len() }),
    ))
}
