//! Switching optional parts on and off creates and removes their objects.
mod common;

use common::{GV, Harness};
use serde_json::{Value, json};

fn spec(extra: Value) -> Value {
    let mut s = json!({"replicas": 2, "image": "ghcr.io/sorcha/sorcha-peer:0.1.0"});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

#[tokio::test]
async fn optional_objects_follow_their_toggles() {
    let h = Harness::new();
    h.put_network(
        "alpha",
        spec(json!({"service": {"perPod": true, "type": "NodePort"}})),
        json!({}),
    );
    h.reconcile("alpha").await;
    for name in ["alpha-0-external", "alpha-1-external"] {
        let svc = h
            .get("v1", "services", name)
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(svc["spec"]["type"], "NodePort");
    }
    assert!(
        h.get("networking.k8s.io/v1", "networkpolicies", "alpha")
            .is_some()
    );
    assert!(
        h.get("policy/v1", "poddisruptionbudgets", "alpha")
            .is_some()
    );

    h.put_network(
        "alpha",
        spec(
            json!({"networkPolicy": {"enabled": false}, "podDisruptionBudget": {"enabled": false}}),
        ),
        json!({}),
    );
    h.reconcile("alpha").await;
    assert!(h.get("v1", "services", "alpha-0-external").is_none());
    assert!(
        h.get("networking.k8s.io/v1", "networkpolicies", "alpha")
            .is_none()
    );
    assert!(
        h.get("policy/v1", "poddisruptionbudgets", "alpha")
            .is_none()
    );
    assert!(
        h.get("v1", "services", "alpha").is_some(),
        "the client Service stays"
    );
}

#[tokio::test]
async fn tls_off_removes_peer_secrets_and_trust_bundle() {
    let h = Harness::new();
    h.put_network("alpha", spec(json!({})), json!({}));
    h.reconcile("alpha").await;
    assert!(h.get("v1", "secrets", "alpha-0-tls").is_some());

    h.put_network("alpha", spec(json!({"tls": {"enabled": false}})), json!({}));
    h.reconcile("alpha").await;
    assert!(h.get("v1", "secrets", "alpha-0-tls").is_none());
    assert!(h.get("v1", "configmaps", "alpha-trust").is_none());
    let cfg = h.get("v1", "configmaps", "alpha-config").unwrap();
    assert!(
        !cfg["data"]["peer.yaml"]
            .as_str()
            .unwrap()
            .contains("RequireMutualTLS")
    );
    assert_eq!(
        h.condition("alpha", "CertificatesReady")["reason"],
        "TlsDisabled"
    );
}

#[tokio::test]
async fn monitoring_without_its_crd_is_an_event_not_a_failure() {
    let h = Harness::new();
    h.put_network(
        "alpha",
        spec(json!({"monitoring": {"serviceMonitor": true}})),
        json!({}),
    );
    h.reconcile("alpha").await;
    assert!(h.get("apps/v1", "statefulsets", "alpha").is_some());
    let events = h.fake.take_events();
    let warn = events
        .iter()
        .find(|e| e["reason"] == "MonitoringUnavailable")
        .expect("a warning event");
    assert!(warn["note"].as_str().unwrap().contains("ServiceMonitor"));

    // Once the CRD is there, the monitor appears; switched off, it goes.
    h.fake.serve("monitoring.coreos.com/v1", "ServiceMonitor");
    h.reconcile("alpha").await;
    assert!(
        h.get("monitoring.coreos.com/v1", "servicemonitors", "alpha")
            .is_some()
    );
    h.put_network("alpha", spec(json!({})), json!({}));
    h.reconcile("alpha").await;
    assert!(
        h.get("monitoring.coreos.com/v1", "servicemonitors", "alpha")
            .is_none()
    );
    assert!(h.get(GV, "sorchapeers", "alpha-1").is_some());
}

#[tokio::test]
async fn certificate_expiry_is_exported_as_a_metric() {
    let h = Harness::new();
    h.put_network("alpha", spec(json!({})), json!({}));
    h.reconcile("alpha").await;
    let text = h.ctx.metrics.render();
    for cert in ["ca", "alpha-0", "alpha-1"] {
        let needle = format!("certificate=\"{cert}\",namespace=\"ledger\",network=\"alpha\"");
        assert!(text.contains(&needle), "{needle} missing in\n{text}");
    }
    assert!(text.contains("sorcha_operator_reconciles_total 1"));
}
