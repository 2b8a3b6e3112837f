//! The `SorchaPeer` status this peer reports, built from a [`Snapshot`] of
//! the node without any IO, so every field and condition rule is tested
//! here without a cluster.
//!
//! The JSON field names are the operator's `SorchaPeerStatus`
//! (`operator/src/crd/status.rs`); `operator/tests/peer_status.rs` checks
//! that what we build deserializes into it and fits the generated CRD.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::discovery::state::NodeState;

pub const READY: &str = "Ready";
pub const CERTIFICATES_READY: &str = "CertificatesReady";

/// The served certificate, as far as the status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Normalized hex (see `security::peer_cert::normalize_serial`).
    pub serial: String,
    pub not_after: SystemTime,
}

/// Everything the status is built from, captured at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub peer_id: String,
    /// `POD_UID` of this pod; the operator ignores statuses of other pods.
    pub pod_uid: Option<String>,
    pub state: NodeState,
    /// The first discovery pass has finished (see `Membership::is_ready`).
    pub discovery_started: bool,
    pub known_peers: usize,
    pub active_peers: usize,
    pub min_healthy_peers: usize,
    /// The address this node advertises to its peers.
    pub external_address: String,
    pub queue_size: usize,
    /// `None` when the transaction store could not be read this round.
    pub transactions_seen: Option<u64>,
    /// Unix milliseconds of the last successful discovery round; 0 = never.
    pub last_discovery_ms: i64,
    pub version: String,
    /// `None`: no `Security.CertificatePath` configured. `Err`: why the
    /// configured file could not be used.
    pub certificate: Option<Result<CertificateFacts, String>>,
    /// `None`: no `Security.TrustedCAs` configured. `Ok`: SHA-256 of each
    /// CA's DER, lowercase hex, in file order.
    pub trusted_cas: Option<Result<Vec<String>, String>>,
}

/// A condition per the Kubernetes API conventions. Times are RFC 3339
/// strings (seconds precision, what `metav1.Time` accepts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

/// What the peer writes under `.status` of its `SorchaPeer`. Absent
/// optional fields are left out of the apply, which (server-side apply)
/// removes a value this field manager wrote earlier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    /// `Online`, `Degraded` or `Offline`: the node's state machine.
    pub phase: String,
    pub peer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    pub known_peers: i64,
    pub active_peers: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_address: Option<String>,
    pub queue_size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_discovery: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions_seen: Option<i64>,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_ca_fingerprints: Vec<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// RFC 3339 in UTC with seconds precision, e.g. `2026-01-01T00:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The status for `s` at `now`. `prev` is the status built last time: it
/// keeps conditions' `lastTransitionTime` while their status holds, and
/// the transaction count when the store could not be read this round
/// (dropping the field would make it vanish from the object).
pub fn build(s: &Snapshot, prev: Option<&PeerStatus>, now: SystemTime) -> PeerStatus {
    let cert = s.certificate.as_ref().and_then(|c| c.as_ref().ok());
    let trusted = match &s.trusted_cas {
        Some(Ok(fps)) => fps.clone(),
        _ => Vec::new(),
    };
    let transactions_seen = match s.transactions_seen {
        Some(n) => Some(i64::try_from(n).unwrap_or(i64::MAX)),
        None => prev.and_then(|p| p.transactions_seen),
    };
    let mut conditions = vec![ready_condition(s)];
    conditions.extend(certificates_condition(s, now));
    let prev_conditions = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let conditions = conditions
        .into_iter()
        .map(|c| stamp(c, prev_conditions, now))
        .collect();
    PeerStatus {
        phase: s.state.as_str().to_owned(),
        peer_id: s.peer_id.clone(),
        pod_uid: s.pod_uid.clone(),
        known_peers: count(s.known_peers),
        active_peers: count(s.active_peers),
        external_address: Some(s.external_address.clone()).filter(|a| !a.is_empty()),
        queue_size: count(s.queue_size),
        last_discovery: (s.last_discovery_ms > 0)
            .then(|| rfc3339(UNIX_EPOCH + Duration::from_millis(s.last_discovery_ms as u64))),
        transactions_seen,
        version: s.version.clone(),
        certificate_serial: cert.map(|c| c.serial.clone()),
        certificate_not_after: cert.map(|c| rfc3339(c.not_after)),
        trusted_ca_fingerprints: trusted,
        conditions,
    }
}

/// A condition before its transition time is known.
struct Cond {
    type_: &'static str,
    ok: bool,
    reason: &'static str,
    message: String,
}

/// `lastTransitionTime` moves only when the condition's status does, so a
/// changed message or reason alone is not reported as a transition.
fn stamp(c: Cond, prev: &[Condition], now: SystemTime) -> Condition {
    let status = if c.ok { "True" } else { "False" };
    let last_transition_time = prev
        .iter()
        .find(|p| p.type_ == c.type_ && p.status == status)
        .map_or_else(|| rfc3339(now), |p| p.last_transition_time.clone());
    Condition {
        type_: c.type_.to_owned(),
        status: status.to_owned(),
        reason: c.reason.to_owned(),
        message: c.message,
        last_transition_time,
    }
}

/// `Ready` is the phase: `kubectl wait --for=condition=Ready sp/NAME`
/// waits for the same `Online` the operator's rollout gate waits for.
fn ready_condition(s: &Snapshot) -> Cond {
    let peers = format!(
        "{} of {} known peers respond; MinHealthyPeers is {}",
        s.active_peers, s.known_peers, s.min_healthy_peers
    );
    let (ok, reason, message) = match s.state {
        NodeState::Online => (true, "Online", peers),
        NodeState::Degraded => (false, "TooFewPeers", peers),
        NodeState::Offline if !s.discovery_started => (
            false,
            "DiscoveryPending",
            "the first discovery pass has not finished".to_owned(),
        ),
        NodeState::Offline => (false, "NoActivePeers", peers),
    };
    Cond {
        type_: READY,
        ok,
        reason,
        message,
    }
}

/// Only when TLS material is configured: a peer without it has nothing to
/// report, and a permanent `False` would only be noise.
fn certificates_condition(s: &Snapshot, now: SystemTime) -> Option<Cond> {
    if s.certificate.is_none() && s.trusted_cas.is_none() {
        return None;
    }
    let fail = |reason, message| {
        Some(Cond {
            type_: CERTIFICATES_READY,
            ok: false,
            reason,
            message,
        })
    };
    if let Some(Err(e)) = &s.certificate {
        return fail("CertificateUnreadable", e.clone());
    }
    if let Some(Err(e)) = &s.trusted_cas {
        return fail("TrustBundleUnreadable", e.clone());
    }
    let mut parts = Vec::new();
    if let Some(Ok(c)) = &s.certificate {
        if c.not_after <= now {
            return fail(
                "CertificateExpired",
                format!(
                    "the served certificate (serial {}) expired at {}; the operator renews it \
                     before expiry, so check its CA rotation status",
                    c.serial,
                    rfc3339(c.not_after)
                ),
            );
        }
        parts.push(format!(
            "certificate serial {} valid until {}",
            c.serial,
            rfc3339(c.not_after)
        ));
    }
    if let Some(Ok(fps)) = &s.trusted_cas {
        parts.push(format!("{} trusted CA(s)", fps.len()));
    }
    Some(Cond {
        type_: CERTIFICATES_READY,
        ok: true,
        reason: "Loaded",
        message: parts.join("; "),
    })
}

/// Equal apart from conditions' `lastTransitionTime`: a status that
/// differs only there carries no news and is not re-sent. Every other
/// field, `lastDiscovery` included, is a fact about the node (discovery
/// rounds are minutes apart by default), so a change there is written.
pub fn same_ignoring_timestamps(a: &PeerStatus, b: &PeerStatus) -> bool {
    let blank = |s: &PeerStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time.clear();
        }
        s
    };
    blank(a) == blank(b)
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
