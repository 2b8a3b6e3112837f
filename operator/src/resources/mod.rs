//! Pure builders: a `SorchaNetwork` spec in, the desired Kubernetes objects
//! out. Nothing here talks to the API server, so every object is unit
//! tested field by field.
mod config;
mod monitoring;
mod policy;
mod rbac;
mod services;
mod statefulset;
mod tls;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::crd::{SorchaNetwork, SorchaPeer, SorchaPeerSpec};
use crate::{Error, Result};

pub use config::{bootstrap_count, bootstrap_nodes, config_map, peer_config_yaml};
pub use monitoring::{monitor_resource, pod_monitor, service_monitor};
pub use policy::{network_policy, pod_disruption_budget};
pub use rbac::{peer_role, peer_role_binding, peer_service_account};
pub use services::{client_service, headless_service, per_pod_services};
pub use statefulset::{TEMPLATE_HASH_ANNOTATION, pod_template, statefulset, template_hash};
pub use tls::{ISSUER_ANNOTATION, ca_secret, peer_tls_secret, trust_bundle};

/// The one port the peer serves gRPC, REST (health, admin) and metrics on.
pub const PEER_PORT: i32 = 5001;
pub const CONFIG_KEY: &str = "peer.yaml";
pub const CONFIG_DIR: &str = "/etc/sorcha/config";
pub const DATA_DIR: &str = "/var/lib/sorcha";
pub const TLS_DIR: &str = "/etc/sorcha/tls";
pub const TRUST_DIR: &str = "/etc/sorcha/trust";
pub const TRUST_KEY: &str = "ca.pem";

/// A network plus what the builders need besides its spec.
#[derive(Clone, Debug)]
pub struct Net<'a> {
    pub obj: &'a SorchaNetwork,
    pub name: String,
    pub namespace: String,
    /// Cluster DNS suffix, `cluster.local` unless the operator is told otherwise.
    pub cluster_domain: String,
    /// Set when this network runs a standalone SorchaPeer (it is that
    /// peer's controller-owned network): the peer's name.
    pub standalone_peer: Option<String>,
}

impl<'a> Net<'a> {
    pub fn new(obj: &'a SorchaNetwork, cluster_domain: &str) -> Result<Self> {
        Ok(Self {
            obj,
            name: obj
                .metadata
                .name
                .clone()
                .ok_or(Error::MissingMetadata("metadata.name"))?,
            namespace: obj
                .metadata
                .namespace
                .clone()
                .ok_or(Error::MissingMetadata("metadata.namespace"))?,
            cluster_domain: cluster_domain.to_owned(),
            standalone_peer: obj
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| {
                    o.controller == Some(true)
                        && o.kind == "SorchaPeer"
                        && o.api_version == SorchaPeer::api_version(&())
                })
                .map(|o| o.name.clone()),
        })
    }

    /// Name of the SorchaPeer the pod at `ordinal` writes its status to.
    pub fn peer_object_name(&self, ordinal: i32) -> String {
        self.standalone_peer
            .clone()
            .unwrap_or_else(|| self.pod_name(ordinal))
    }

    pub fn spec(&self) -> &crate::crd::SorchaNetworkSpec {
        &self.obj.spec
    }

    pub fn replicas(&self) -> i32 {
        self.obj.spec.replicas.max(1)
    }

    /// One peer and no external bootstrap node: it has nobody to reach, and
    /// the peer's state machine calls that Offline (design: no peers =
    /// Offline). Health then means reporting, not being Online.
    pub fn lone_peer(&self) -> bool {
        self.replicas() == 1 && self.obj.spec.bootstrap.external_nodes.is_empty()
    }

    pub fn headless_name(&self) -> String {
        format!("{}-peers", self.name)
    }
    pub fn config_name(&self) -> String {
        format!("{}-config", self.name)
    }
    pub fn trust_name(&self) -> String {
        format!("{}-trust", self.name)
    }
    pub fn ca_secret_name(&self) -> String {
        self.obj
            .spec
            .tls
            .ca_secret_name
            .clone()
            .unwrap_or_else(|| format!("{}-ca", self.name))
    }
    pub fn peer_account_name(&self) -> String {
        format!("{}-peer", self.name)
    }
    /// Pod name of `ordinal`, which is also its peer id (`NodeId`).
    pub fn pod_name(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.name)
    }
    pub fn peer_tls_secret_name(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}-tls", self.name)
    }
    /// Stable DNS name of a pod through the headless Service.
    pub fn pod_dns(&self, ordinal: i32) -> String {
        format!(
            "{}.{}.{}.svc.{}",
            self.pod_name(ordinal),
            self.headless_name(),
            self.namespace,
            self.cluster_domain
        )
    }

    /// Labels that select this network's pods (stable: part of the
    /// StatefulSet's immutable selector).
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), "sorcha-peer".into()),
            ("sorcha.dev/network".into(), self.name.clone()),
        ])
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.selector_labels();
        l.insert("app.kubernetes.io/instance".into(), self.name.clone());
        l.insert(
            "app.kubernetes.io/managed-by".into(),
            crate::FIELD_MANAGER.into(),
        );
        l
    }

    pub fn owner_ref(&self) -> OwnerReference {
        owner_ref(self.obj)
    }

    /// Metadata of a child object: namespace, labels, owner reference.
    pub fn meta(&self, name: impl Into<String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.owner_ref()]),
            ..Default::default()
        }
    }
}

/// Controller owner reference, so deleting the owner garbage-collects.
pub fn owner_ref<K: Resource<DynamicType = ()>>(obj: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: obj.name_any(),
        uid: obj.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The `SorchaPeer` child for `ordinal`; the peer fills in its status.
pub fn sorcha_peer(net: &Net, ordinal: i32) -> SorchaPeer {
    let pod = net.pod_name(ordinal);
    let mut p = SorchaPeer::new(
        &pod,
        SorchaPeerSpec {
            network: Some(net.name.clone()),
            ordinal: Some(ordinal),
            peer_id: Some(pod.clone()),
            pod_name: Some(pod.clone()),
            standalone: None,
        },
    );
    p.metadata = net.meta(pod);
    p
}

/// Short content hash, for change-detection annotations.
pub fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::crd::{SorchaNetwork, SorchaNetworkSpec};

    /// A network as the API server would return it (name, namespace, uid).
    pub fn mk_network(replicas: i32) -> SorchaNetwork {
        let spec: SorchaNetworkSpec = serde_json::from_value(serde_json::json!({
            "replicas": replicas,
            "image": "ghcr.io/sorcha/sorcha-peer:0.1.0",
        }))
        .unwrap();
        let mut n = SorchaNetwork::new("alpha", spec);
        n.metadata.namespace = Some("ledger".into());
        n.metadata.uid = Some("uid-alpha".into());
        n.metadata.generation = Some(1);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::mk_network;
    use super::*;

    #[test]
    fn names_and_dns() {
        let n = mk_network(3);
        let net = Net::new(&n, "cluster.local").unwrap();
        assert_eq!(
            net.pod_dns(2),
            "alpha-2.alpha-peers.ledger.svc.cluster.local"
        );
        assert_eq!(net.ca_secret_name(), "alpha-ca");
    }

    #[test]
    fn sorcha_peer_child_is_owned_and_named_after_its_pod() {
        let n = mk_network(3);
        let net = Net::new(&n, "cluster.local").unwrap();
        let p = sorcha_peer(&net, 1);
        assert_eq!(p.metadata.name.as_deref(), Some("alpha-1"));
        assert_eq!(p.spec.peer_id.as_deref(), Some("alpha-1"));
        assert_eq!(p.spec.network.as_deref(), Some("alpha"));
        let owner = &p.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("SorchaNetwork", "uid-alpha")
        );
        assert_eq!(owner.controller, Some(true));
    }
}
