//! prometheus-operator ServiceMonitor / PodMonitor. Built as DynamicObject
//! so the operator needs neither the CRD's Rust types nor the CRD itself to
//! run; the controller creates them only when the CRD is installed.
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::Net;

pub fn monitor_resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("monitoring.coreos.com", "v1", kind))
}

fn monitor(net: &Net, kind: &str, endpoints_key: &str) -> DynamicObject {
    let scheme = if net.spec().tls.enabled {
        "https"
    } else {
        "http"
    };
    let mut obj = DynamicObject::new(&net.name, &monitor_resource(kind));
    obj.metadata = net.meta(net.name.clone());
    obj.data = json!({
        "spec": {
            "selector": {"matchLabels": net.selector_labels()},
            endpoints_key: [{
                "port": "peer",
                "path": "/metrics",
                "scheme": scheme,
                "interval": net.spec().monitoring.interval,
            }],
        }
    });
    obj
}

/// Selects the client Service, whose port is named `peer`.
pub fn service_monitor(net: &Net) -> Option<DynamicObject> {
    net.spec()
        .monitoring
        .service_monitor
        .then(|| monitor(net, "ServiceMonitor", "endpoints"))
}

pub fn pod_monitor(net: &Net) -> Option<DynamicObject> {
    net.spec()
        .monitoring
        .pod_monitor
        .then(|| monitor(net, "PodMonitor", "podMetricsEndpoints"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::mk_network;

    #[test]
    fn monitors_follow_toggles() {
        let mut n = mk_network(3);
        assert!(service_monitor(&Net::new(&n, "cluster.local").unwrap()).is_none());
        n.spec.monitoring.pod_monitor = true;
        n.spec.monitoring.service_monitor = true;
        let net = Net::new(&n, "cluster.local").unwrap();
        let pm = pod_monitor(&net).unwrap();
        assert_eq!(pm.types.as_ref().unwrap().kind, "PodMonitor");
        assert_eq!(pm.data["spec"]["podMetricsEndpoints"][0]["port"], "peer");
        let sm = service_monitor(&net).unwrap();
        assert_eq!(
            sm.types.as_ref().unwrap().api_version,
            "monitoring.coreos.com/v1"
        );
        assert_eq!(sm.data["spec"]["endpoints"][0]["interval"], "30s");
        assert_eq!(
            sm.metadata.owner_references.unwrap()[0].kind,
            "SorchaNetwork"
        );
    }
}
