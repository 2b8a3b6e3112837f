//! PodDisruptionBudget and NetworkPolicy.
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Net, PEER_PORT};

/// Only for more than one replica: a budget over a single pod would block
/// node drains forever.
pub fn pod_disruption_budget(net: &Net) -> Option<PodDisruptionBudget> {
    let pdb = &net.spec().pod_disruption_budget;
    (pdb.enabled && net.replicas() > 1).then(|| PodDisruptionBudget {
        metadata: net.meta(net.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(
                pdb.max_unavailable.min(net.replicas() - 1),
            )),
            selector: Some(LabelSelector {
                match_labels: Some(net.selector_labels()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Admits the peer port from this network's own pods (gossip, discovery)
/// and from `spec.networkPolicy.allowFrom` (scrapers, clients). The peer
/// serves metrics on the same port, so a scraper must be listed there.
/// With TLS on, a client without a peer certificate (a scraper) gets
/// `/metrics`, `/healthz` and `/readyz` only; kubelet probes come from the
/// node, which NetworkPolicy does not filter.
pub fn network_policy(net: &Net) -> Option<NetworkPolicy> {
    let np = &net.spec().network_policy;
    if !np.enabled {
        return None;
    }
    let own = LabelSelector {
        match_labels: Some(net.selector_labels()),
        ..Default::default()
    };
    let mut from = vec![NetworkPolicyPeer {
        pod_selector: Some(own.clone()),
        ..Default::default()
    }];
    from.extend(np.allow_from.iter().cloned());
    Some(NetworkPolicy {
        metadata: net.meta(net.name.clone()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(own),
            policy_types: Some(vec!["Ingress".into()]),
            egress: None,
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(from),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(PEER_PORT)),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
            }]),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::mk_network;

    #[test]
    fn pdb_only_for_more_than_one_replica() {
        let n = mk_network(1);
        assert!(pod_disruption_budget(&Net::new(&n, "cluster.local").unwrap()).is_none());
        let n = mk_network(3);
        let pdb = pod_disruption_budget(&Net::new(&n, "cluster.local").unwrap()).unwrap();
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            spec.selector.unwrap().match_labels.unwrap()["sorcha.dev/network"],
            "alpha"
        );
    }

    #[test]
    fn pdb_toggle_off() {
        let mut n = mk_network(3);
        n.spec.pod_disruption_budget.enabled = false;
        assert!(pod_disruption_budget(&Net::new(&n, "cluster.local").unwrap()).is_none());
    }

    #[test]
    fn network_policy_admits_own_pods_and_extra_sources() {
        let mut n = mk_network(3);
        n.spec.network_policy.allow_from = vec![
            serde_json::from_value(serde_json::json!({
                "namespaceSelector": {"matchLabels": {"name": "monitoring"}}
            }))
            .unwrap(),
        ];
        let np = network_policy(&Net::new(&n, "cluster.local").unwrap()).unwrap();
        let rule = &np.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0];
        let from = rule.from.as_ref().unwrap();
        assert_eq!(from.len(), 2);
        let own = from[0]
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(own["sorcha.dev/network"], "alpha");
        assert!(from[1].namespace_selector.is_some());
        assert_eq!(
            rule.ports.as_ref().unwrap()[0].port,
            Some(IntOrString::Int(5001))
        );
        n.spec.network_policy.enabled = false;
        assert!(network_policy(&Net::new(&n, "cluster.local").unwrap()).is_none());
    }
}
