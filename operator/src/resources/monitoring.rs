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
    let tls = net.spec().tls.enabled;
    let mut endpoint = json!({
        "port": "peer",
        "path": "/metrics",
        "scheme": if tls { "https" } else { "http" },
        "interval": net.spec().monitoring.interval,
    });
    if tls {
        // A scrape presents no client certificate; the peer serves such
        // TLS clients /metrics, /healthz and /readyz only (and refuses
        // everything else). Its certificate names the pod by DNS name and
        // peer id, which a scrape of the pod IP cannot match, so the name
        // is not verified, as kubelet does for the HTTPS probes; who may
        // scrape at all is `spec.networkPolicy.allowFrom`.
        endpoint["tlsConfig"] = json!({"insecureSkipVerify": true});
    }
    let mut obj = DynamicObject::new(&net.name, &monitor_resource(kind));
    obj.metadata = net.meta(net.name.clone());
    obj.data = json!({
        "spec": {
            "selector": {"matchLabels": net.selector_labels()},
            endpoints_key: [endpoint],
        }
    });
    obj
}

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
        // TLS on (the fixture): an anonymous HTTPS scrape.
        let ep = &sm.data["spec"]["endpoints"][0];
        assert_eq!(ep["scheme"], "https");
        assert_eq!(ep["tlsConfig"]["insecureSkipVerify"], true);
        n.spec.tls.enabled = false;
        let plain = pod_monitor(&Net::new(&n, "cluster.local").unwrap()).unwrap();
        let ep = &plain.data["spec"]["podMetricsEndpoints"][0];
        assert_eq!(ep["scheme"], "http");
        assert!(ep.get("tlsConfig").is_none());
        assert_eq!(
            sm.metadata.owner_references.unwrap()[0].kind,
            "SorchaNetwork"
        );
    }
}
