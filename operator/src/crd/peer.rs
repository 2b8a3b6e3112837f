//! `SorchaPeer`: one peer. The operator creates one per StatefulSet ordinal
//! of a network; the peer in that pod writes its status.
// Each printcolumn(...) repeats `type_ =`; clippy reads them as duplicated
// attributes of one item.
#![allow(clippy::duplicated_attributes)]
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::network::SorchaNetworkSpec;
use super::status::SorchaPeerStatus;

#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "sorcha.dev",
    version = "v1alpha1",
    kind = "SorchaPeer",
    namespaced,
    status = "SorchaPeerStatus",
    derive = "PartialEq",
    shortname = "sp",
    category = "sorcha",
    doc = "One Sorcha peer. Its status is written by the peer itself.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Network", type_ = "string", json_path = ".spec.network"),
    printcolumn(name = "Active", type_ = "integer", json_path = ".status.activePeers"),
    printcolumn(name = "Queue", type_ = "integer", json_path = ".status.queueSize"),
    printcolumn(
        name = "Cert-Expiry",
        type_ = "date",
        json_path = ".status.certificateNotAfter"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.network) != has(self.standalone)").message("set either network (a peer of a SorchaNetwork, written by the operator) or standalone (a peer the operator runs on its own)"))]
#[x_kube(validation = Rule::new("!has(self.standalone) || self.standalone.replicas == 1").message("standalone.replicas must be 1: a standalone peer is one pod; use a SorchaNetwork for more"))]
pub struct SorchaPeerSpec {
    /// The SorchaNetwork this peer belongs to (set by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("network is immutable"))]
    pub network: Option<String>,
    /// StatefulSet ordinal of the peer's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("ordinal must not be negative"))]
    pub ordinal: Option<i32>,
    /// The id the peer runs with (`NodeId`) and carries in its certificate
    /// as `urn:sorcha:peer:<peerId>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    /// Name of the pod running this peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// A peer of its own: the operator runs it as a one-replica network
    /// (a SorchaNetwork of the same name, owned by this SorchaPeer) whose
    /// pod writes this object's status. `replicas` must be 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standalone: Option<SorchaNetworkSpec>,
}
