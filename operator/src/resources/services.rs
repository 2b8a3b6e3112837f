//! Services: the headless one behind the pods' stable DNS names (used for
//! bootstrap), the client one, and optional per-pod external ones.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Net, PEER_PORT};

fn port() -> Vec<ServicePort> {
    vec![ServicePort {
        name: Some("peer".into()),
        port: PEER_PORT,
        target_port: Some(IntOrString::String("peer".into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }]
}

/// Publishes not-ready addresses: a peer must resolve the bootstrap pods
/// before they are ready, or a fresh network never forms.
pub fn headless_service(net: &Net) -> Service {
    Service {
        metadata: net.meta(net.headless_name()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(net.selector_labels()),
            ports: Some(port()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn annotated(
    net: &Net,
    name: String,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    let mut meta = net.meta(name);
    let a = &net.spec().service.annotations;
    if !a.is_empty() {
        meta.annotations = Some(a.clone());
    }
    meta
}

/// For applications talking to any ready peer.
pub fn client_service(net: &Net) -> Service {
    Service {
        metadata: annotated(net, net.name.clone()),
        spec: Some(ServiceSpec {
            type_: Some(net.spec().service.type_.as_str().into()),
            selector: Some(net.selector_labels()),
            ports: Some(port()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One Service per pod when `spec.service.perPod`, selecting the pod by the
/// label the StatefulSet controller puts on it.
pub fn per_pod_services(net: &Net) -> Vec<Service> {
    if !net.spec().service.per_pod {
        return Vec::new();
    }
    (0..net.replicas())
        .map(|i| {
            let mut selector: BTreeMap<String, String> = net.selector_labels();
            selector.insert("statefulset.kubernetes.io/pod-name".into(), net.pod_name(i));
            Service {
                metadata: annotated(net, format!("{}-external", net.pod_name(i))),
                spec: Some(ServiceSpec {
                    type_: Some(net.spec().service.type_.as_str().into()),
                    selector: Some(selector),
                    ports: Some(port()),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ServiceType;
    use crate::resources::fixtures::mk_network;

    #[test]
    fn headless_publishes_not_ready_addresses() {
        let n = mk_network(3);
        let s = headless_service(&Net::new(&n, "cluster.local").unwrap());
        let spec = s.spec.unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("alpha-peers"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.ports.unwrap()[0].port, 5001);
        assert_eq!(spec.selector.unwrap()["sorcha.dev/network"], "alpha");
    }

    #[test]
    fn client_service_type_and_annotations_follow_spec() {
        let mut n = mk_network(3);
        n.spec.service.type_ = ServiceType::LoadBalancer;
        n.spec.service.annotations.insert("a".into(), "b".into());
        let s = client_service(&Net::new(&n, "cluster.local").unwrap());
        assert_eq!(s.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(s.metadata.annotations.unwrap()["a"], "b");
    }

    #[test]
    fn per_pod_services_only_when_asked() {
        let mut n = mk_network(2);
        assert!(per_pod_services(&Net::new(&n, "cluster.local").unwrap()).is_empty());
        n.spec.service.per_pod = true;
        let v = per_pod_services(&Net::new(&n, "cluster.local").unwrap());
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].metadata.name.as_deref(), Some("alpha-1-external"));
        let sel = v[1].spec.as_ref().unwrap().selector.as_ref().unwrap();
        assert_eq!(sel["statefulset.kubernetes.io/pod-name"], "alpha-1");
    }
}
