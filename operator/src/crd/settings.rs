//! The part of the peer's own configuration (`PeerService:` in
//! `peer/src/config/schema.rs`) a network owner may set. Every field is
//! optional: an unset field is left out of the rendered YAML so the peer's
//! own default applies, which keeps one source of truth for defaults.
//! Durations are humantime strings (`"30s"`, `"15m"`), which the peer reads
//! as written whatever unit its key names.
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerSettings {
    /// `PeerService.PeerDiscovery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoverySettings>,
    /// `PeerService.TransactionDistribution` (gossip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gossip: Option<GossipSettings>,
    /// `PeerService.OfflineMode` (the offline queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueSettings>,
    /// `PeerService.Communication`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication: Option<CommunicationSettings>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverySettings {
    /// `RefreshIntervalMinutes`, e.g. `"15m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = "self >= 1")]
    pub max_peers_in_list: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_healthy_peers: Option<u32>,
    /// `PeerTimeoutSeconds`, e.g. `"30s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = "self >= 1")]
    pub max_concurrent_discoveries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = "self >= 1")]
    pub failure_threshold: Option<u32>,
    /// `BootstrapRetryMinutes`, e.g. `"5m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_retry: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GossipSettings {
    /// How transactions spread: `Tree` (the peer's default: a broadcast
    /// tree with lazy announcements as backup) or `Rounds` (the design's
    /// announce-and-pull rounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<GossipMode>,
    /// `Tree` mode: peers off the tree told each new transaction's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy_announce_peers: Option<u32>,
    /// `Tree` mode: how long a lazily announced transaction is waited for
    /// before it is pulled (`"250ms"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy_pull_delay: Option<String>,
    /// Unset: ceil(sqrt(active peers)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = "self >= 1")]
    pub fanout_factor: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = "self >= 1")]
    pub gossip_rounds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_cache_ttl: Option<String>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = "self >= 1")]
    pub max_transaction_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_compression: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_entropy_interval: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = "self >= 1")]
    pub max_queue_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum GossipMode {
    Tree,
    Rounds,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum CommunicationProtocol {
    GrpcStream,
    Grpc,
    Rest,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommunicationSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_protocol: Option<CommunicationProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = "self >= 1")]
    pub circuit_breaker_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker_reset: Option<String>,
}
