//! The peer's identity in the cluster: it may read its SorchaPeer and patch
//! that object's status, in its own namespace, and nothing else.
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::Net;

pub fn peer_service_account(net: &Net) -> ServiceAccount {
    ServiceAccount {
        metadata: net.meta(net.peer_account_name()),
        ..Default::default()
    }
}

pub fn peer_role(net: &Net) -> Role {
    let names: Vec<String> = (0..net.replicas())
        .map(|i| net.peer_object_name(i))
        .collect();
    Role {
        metadata: net.meta(net.peer_account_name()),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["sorcha.dev".into()]),
            resources: Some(vec!["sorchapeers/status".into()]),
            resource_names: Some(names),
            verbs: vec!["get".into(), "patch".into()],
            ..Default::default()
        }]),
    }
}

pub fn peer_role_binding(net: &Net) -> RoleBinding {
    RoleBinding {
        metadata: net.meta(net.peer_account_name()),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: net.peer_account_name(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: net.peer_account_name(),
            namespace: Some(net.namespace.clone()),
            ..Default::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::mk_network;

    #[test]
    fn peer_role_is_status_get_patch_of_own_peers_only() {
        let n = mk_network(2);
        let net = Net::new(&n, "cluster.local").unwrap();
        let rule = &peer_role(&net).rules.unwrap()[0];
        assert_eq!(rule.resources.as_deref().unwrap(), ["sorchapeers/status"]);
        assert_eq!(rule.verbs, ["get", "patch"]);
        assert_eq!(
            rule.resource_names.as_deref().unwrap(),
            ["alpha-0", "alpha-1"]
        );
        let rb = peer_role_binding(&net);
        assert_eq!(rb.subjects.unwrap()[0].name, "alpha-peer");
        assert_eq!(rb.role_ref.name, "alpha-peer");
    }
}
