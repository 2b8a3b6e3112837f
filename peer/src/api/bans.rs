//! Bans through REST: list, ban and unban are admin calls (served behind
//! `admin::guard`); a peer's reputation is public, read-only.
//!
//! `PUT /api/v1/admin/bans/{peer_id}` takes an optional JSON body
//! `{"minutes": N, "reason": "..."}`; without `minutes` the ban lasts until
//! unbanned. Any well-formed id may be banned, known to this node or not
//! (a ban can precede the peer), and `ip:<address>` names an anonymous
//! caller, as automatic bans of callers without a peer id are listed.
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::Admin;
use super::guard::Gate;
use super::rest::ApiError;
use crate::security::peer_cert::is_valid_peer_id;
use crate::security::reputation::{BanInfo, PeerStanding};

/// Longest manual ban with a duration: a year.
pub const MAX_BAN_MINUTES: u64 = 525_600;

/// Checks a peer id from a path: a peer id, or `ip:<address>`.
pub fn check_peer_id(id: &str) -> Result<(), ApiError> {
    let ok = match id.strip_prefix("ip:") {
        Some(addr) => addr.parse::<std::net::IpAddr>().is_ok(),
        None => is_valid_peer_id(id),
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "peer_id: expected 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-' \
                 (or ip:<address> for a caller without a peer id), got {id:?}"
            ),
        ))
    }
}

fn ban_json(b: &BanInfo) -> Value {
    json!({
        "remaining_seconds": b.remaining.map(|d| d.as_secs()),
        "reason": b.reason,
        "automatic": b.automatic,
    })
}

fn standing_json(s: &PeerStanding) -> Value {
    json!({
        "peer_id": s.peer_id,
        "score": s.score,
        "successes": s.successes,
        "failures": s.failures,
        "invalid_messages": s.invalid_messages,
        "limit_violations": s.limit_violations,
        "ban": s.ban.as_ref().map(ban_json),
    })
}

pub(super) async fn list(State(a): State<Admin>) -> Json<Value> {
    a.guard.refresh_gauges();
    let bans: Vec<Value> = a
        .guard
        .policy
        .reputation
        .list()
        .iter()
        .filter(|s| s.ban.is_some())
        .map(standing_json)
        .collect();
    Json(json!({ "bans": bans }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BanRequest {
    minutes: Option<u64>,
    reason: Option<String>,
}

pub(super) async fn ban(
    State(a): State<Admin>,
    Path(peer_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_peer_id(&peer_id)?;
    let req: BanRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BanRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid JSON body: {e}; expected {{\"minutes\": 1 to {MAX_BAN_MINUTES} \
                     (optional), \"reason\": text (optional)}}"
                ),
            )
        })?
    };
    let duration = match req.minutes {
        None => None,
        Some(m @ 1..=MAX_BAN_MINUTES) => Some(Duration::from_secs(m * 60)),
        Some(m) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "minutes: expected 1 to {MAX_BAN_MINUTES}, or no minutes for a ban until \
                     unbanned; got {m}"
                ),
            ));
        }
    };
    let reason = req
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "banned by an admin call".into());
    let info = a.guard.policy.reputation.ban(&peer_id, duration, &reason);
    a.guard.banned(&peer_id, &info);
    Ok(Json(json!({ "banned": peer_id, "ban": ban_json(&info) })))
}

pub(super) async fn unban(
    State(a): State<Admin>,
    Path(peer_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_peer_id(&peer_id)?;
    if !a.guard.policy.reputation.unban(&peer_id) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("peer_id: {peer_id:?} is not banned"),
        ));
    }
    a.guard.unbanned(&peer_id);
    Ok(Json(json!({ "unbanned": peer_id })))
}

/// `GET /api/v1/peers/{peer_id}/reputation`: score, counters and ban of
/// one peer (a peer never seen has the initial score).
pub(super) async fn reputation(
    gate: Gate,
    Path(peer_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_peer_id(&peer_id)?;
    let rep = &gate.guard.policy.reputation;
    let standing = rep.standing(&peer_id).unwrap_or(PeerStanding {
        score: rep.score(&peer_id),
        peer_id: peer_id.clone(),
        successes: 0,
        failures: 0,
        invalid_messages: 0,
        limit_violations: 0,
        ban: None,
    });
    Ok(Json(standing_json(&standing)))
}
