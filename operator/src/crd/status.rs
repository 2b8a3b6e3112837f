//! Status types. `SorchaNetworkStatus` is written by the operator;
//! `SorchaPeerStatus` by the peer itself (field manager `sorcha-peer`).
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SorchaNetworkStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub peers_online: i32,
    #[serde(default)]
    pub peers_degraded: i32,
    #[serde(default)]
    pub peers_offline: i32,
    /// Expiry (RFC 3339) of the CA that signs the peers' certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_not_after: Option<String>,
    /// Every CA in the trust bundle and every peer certificate, with expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// Keyed by `type`, so server-side apply merges conditions by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateInfo {
    /// `ca`, `ca-next` or a peer id.
    pub name: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    pub not_after: String,
}

/// CA renewal in progress (see `pki::rotation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    pub phase: String,
    /// Fingerprint of the CA being introduced.
    pub new_ca_fingerprint: String,
    pub started_at: String,
}

/// Health-gated rolling update in progress (see `rollout`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Hash of the pod template being rolled out.
    pub revision: String,
    /// Pods with ordinal >= partition run `revision`.
    pub partition: i32,
    /// When the pod at `partition` was released; the stall clock.
    pub step_started_at: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum PeerPhase {
    Online,
    Degraded,
    Offline,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SorchaPeerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PeerPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    /// UID of the pod that wrote this status (env `POD_UID`), so the
    /// operator never mistakes a status left by a replaced pod for news.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_peers: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_peers: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_discovery: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions_seen: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<String>,
    /// SHA-256 fingerprints (lowercase hex of the DER) of the CAs the peer
    /// has loaded from its trust bundle; the CA rotation waits on this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_ca_fingerprints: Vec<String>,
    /// Keyed by `type`, so server-side apply merges conditions by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
