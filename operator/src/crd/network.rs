//! `SorchaNetwork`: a whole peer network, reconciled into a StatefulSet and
//! everything around it.
// Each printcolumn(...) repeats `type_ =`; clippy reads them as duplicated
// attributes of one item.
#![allow(clippy::duplicated_attributes)]
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Container, ResourceRequirements, Toleration};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::settings::PeerSettings;
use super::status::SorchaNetworkStatus;

#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "sorcha.dev",
    version = "v1alpha1",
    kind = "SorchaNetwork",
    namespaced,
    status = "SorchaNetworkStatus",
    derive = "PartialEq",
    shortname = "sn",
    category = "sorcha",
    doc = "A Sorcha peer network: a StatefulSet of peers with bootstrap config, mTLS PKI and aggregated health.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Online", type_ = "integer", json_path = ".status.peersOnline"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "CA-Expiry", type_ = "date", json_path = ".status.caNotAfter"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SorchaNetworkSpec {
    /// Number of peers (StatefulSet replicas).
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 1").message("replicas must be at least 1"))]
    pub replicas: i32,
    /// Container image of the peer.
    #[x_kube(validation = Rule::new("self != ''").message("image must not be empty"))]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Settings rendered into the peer's `PeerService:` configuration.
    #[serde(default)]
    pub peer: PeerSettings,
    #[serde(default)]
    pub bootstrap: BootstrapSpec,
    #[serde(default)]
    pub tls: TlsSpec,
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storage is immutable: a StatefulSet's volume claim template cannot change"))]
    pub storage: StorageSpec,
    #[serde(default)]
    pub service: ServiceSpec,
    /// Resources of the peer container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub pod_template: PodTemplateSpec,
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    #[serde(default)]
    pub pod_disruption_budget: PdbSpec,
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
    #[serde(default)]
    pub rollout: RolloutSpec,
}

fn default_replicas() -> i32 {
    3
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSpec {
    /// How many of the first pods (ordinals 0..K) every peer bootstraps from.
    #[serde(default = "default_in_network")]
    #[x_kube(validation = Rule::new("self >= 0").message("inNetworkCount must not be negative"))]
    pub in_network_count: i32,
    /// Bootstrap nodes outside the network, `http(s)://host:port`.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self.all(u, u.startsWith('http://') || u.startsWith('https://'))").message("externalNodes must be http:// or https:// URLs"))]
    pub external_nodes: Vec<String>,
}

fn default_in_network() -> i32 {
    3
}

impl Default for BootstrapSpec {
    fn default() -> Self {
        Self {
            in_network_count: default_in_network(),
            external_nodes: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("duration(self.renewBefore) < duration(self.certValidity)").message("tls.renewBefore must be shorter than tls.certValidity"))]
#[x_kube(validation = Rule::new("duration(self.certValidity) <= duration(self.caValidity)").message("tls.certValidity must not exceed tls.caValidity"))]
pub struct TlsSpec {
    /// Mutual TLS between peers.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Bring your own CA: a Secret in the same namespace with `tls.crt` and
    /// `tls.key`. Unset: the operator generates and rotates one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_name: Option<String>,
    /// Lifetime of a generated CA (Go duration, e.g. `8760h`).
    #[serde(default = "default_ca_validity")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1h')").message("tls.caValidity must be at least 1h"))]
    pub ca_validity: String,
    /// Lifetime of a peer certificate.
    #[serde(default = "default_cert_validity")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1h')").message("tls.certValidity must be at least 1h"))]
    pub cert_validity: String,
    /// Renew a certificate (and a generated CA) this long before it expires.
    #[serde(default = "default_renew_before")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m')").message("tls.renewBefore must be at least 1m"))]
    pub renew_before: String,
}

fn yes() -> bool {
    true
}
fn default_ca_validity() -> String {
    "8760h".into()
}
fn default_cert_validity() -> String {
    "2160h".into()
}
fn default_renew_before() -> String {
    "720h".into()
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            ca_secret_name: None,
            ca_validity: default_ca_validity(),
            cert_validity: default_cert_validity(),
            renew_before: default_renew_before(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each peer's data volume (SQLite databases).
    #[serde(default = "default_storage_size")]
    pub size: String,
    /// Unset: the cluster's default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

fn default_storage_size() -> String {
    "1Gi".into()
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Type of the client Service (and of per-pod Services).
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// One extra Service per pod, so each peer is reachable from outside.
    #[serde(default)]
    pub per_pod: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Pass-through into the pod template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    /// Containers beside the peer (the sidecar case: an application that
    /// submits transactions to the peer on localhost).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Create a prometheus-operator ServiceMonitor (when its CRD exists).
    #[serde(default)]
    pub service_monitor: bool,
    /// Create a prometheus-operator PodMonitor (when its CRD exists).
    #[serde(default)]
    pub pod_monitor: bool,
    /// Scrape interval, e.g. `30s`.
    #[serde(default = "default_scrape_interval")]
    pub interval: String,
}

fn default_scrape_interval() -> String {
    "30s".into()
}

impl Default for MonitoringSpec {
    fn default() -> Self {
        Self {
            service_monitor: false,
            pod_monitor: false,
            interval: default_scrape_interval(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PdbSpec {
    /// A PodDisruptionBudget is created only when this is on and replicas > 1.
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1").message("podDisruptionBudget.maxUnavailable must be at least 1"))]
    pub max_unavailable: i32,
}

fn one() -> i32 {
    1
}

impl Default for PdbSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_unavailable: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Admit traffic to the peer port only from this network's pods and
    /// the sources below.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Extra admitted sources: metrics scrapers and client applications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<NetworkPolicyPeer>,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_from: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// How long an updated pod may take to report Online before the rollout
    /// stalls with a Degraded condition.
    #[serde(default = "default_stall")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10s')").message("rollout.stallTimeout must be at least 10s"))]
    pub stall_timeout: String,
}

fn default_stall() -> String {
    "10m".into()
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self {
            stall_timeout: default_stall(),
        }
    }
}
