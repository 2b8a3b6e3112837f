//! Reconcile tests against the in-process fake API server.
mod common;

use std::time::Duration;

use common::{GV, Harness, NS};
use serde_json::{Value, json};

fn spec(replicas: i64) -> Value {
    json!({"replicas": replicas, "image": "ghcr.io/sorcha/sorcha-peer:0.1.0"})
}

fn owner_uid(obj: &Value) -> &str {
    obj["metadata"]["ownerReferences"][0]["uid"]
        .as_str()
        .unwrap_or("<none>")
}

fn bootstrap(h: &Harness, name: &str) -> Vec<String> {
    let cm = h
        .get("v1", "configmaps", &format!("{name}-config"))
        .unwrap();
    let cfg: serde_norway::Value =
        serde_norway::from_str(cm["data"]["peer.yaml"].as_str().unwrap()).unwrap();
    cfg["PeerService"]["PeerDiscovery"]["BootstrapNodes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn create_makes_every_child_with_owner_reference() {
    let h = Harness::new();
    h.fake.serve("monitoring.coreos.com/v1", "ServiceMonitor");
    h.fake.serve("monitoring.coreos.com/v1", "PodMonitor");
    let mut s = spec(3);
    s["monitoring"] = json!({"serviceMonitor": true, "podMonitor": true});
    h.put_network("alpha", s, json!({}));
    h.reconcile("alpha").await;
    let uid = h.network("alpha").metadata.uid.unwrap();

    let children = [
        ("apps/v1", "statefulsets", "alpha"),
        ("v1", "services", "alpha"),
        ("v1", "services", "alpha-peers"),
        ("v1", "configmaps", "alpha-config"),
        ("v1", "configmaps", "alpha-trust"),
        ("v1", "secrets", "alpha-ca"),
        ("v1", "secrets", "alpha-0-tls"),
        ("v1", "secrets", "alpha-2-tls"),
        ("v1", "serviceaccounts", "alpha-peer"),
        ("rbac.authorization.k8s.io/v1", "roles", "alpha-peer"),
        ("rbac.authorization.k8s.io/v1", "rolebindings", "alpha-peer"),
        ("policy/v1", "poddisruptionbudgets", "alpha"),
        ("networking.k8s.io/v1", "networkpolicies", "alpha"),
        (GV, "sorchapeers", "alpha-0"),
        (GV, "sorchapeers", "alpha-1"),
        (GV, "sorchapeers", "alpha-2"),
        ("monitoring.coreos.com/v1", "servicemonitors", "alpha"),
        ("monitoring.coreos.com/v1", "podmonitors", "alpha"),
    ];
    for (gv, plural, name) in children {
        let obj = h
            .get(gv, plural, name)
            .unwrap_or_else(|| panic!("{plural}/{name} missing"));
        assert_eq!(owner_uid(&obj), uid, "{plural}/{name} owner");
    }
    let trust = h.get("v1", "configmaps", "alpha-trust").unwrap();
    assert_eq!(
        trust["data"]["ca.pem"]
            .as_str()
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        1
    );
    let peer_secret = h.get("v1", "secrets", "alpha-1-tls").unwrap();
    for k in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(peer_secret["data"][k].is_string(), "peer secret key {k}");
    }
    assert_eq!(bootstrap(&h, "alpha").len(), 3);
    let reasons = h.event_reasons();
    assert!(
        reasons.iter().filter(|r| *r == "Created").count() >= 10,
        "{reasons:?}"
    );
    assert!(reasons.contains(&"CaCreated".to_owned()));
    let net = h.network("alpha");
    let st = net.status.unwrap();
    assert_eq!(st.observed_generation, Some(1));
    assert!(st.ca_not_after.is_some());
    assert_eq!(h.condition("alpha", "CertificatesReady")["status"], "True");
}

#[tokio::test]
async fn second_reconcile_without_change_writes_nothing() {
    let h = Harness::new();
    h.put_network("alpha", spec(3), json!({}));
    h.reconcile("alpha").await;
    h.run_statefulset("alpha");
    h.report_all_online("alpha", 3);
    h.reconcile("alpha").await;
    assert_eq!(h.condition("alpha", "Ready")["status"], "True");
    h.fake.take_writes();
    h.fake.take_events();
    h.clock.advance(Duration::from_secs(60));
    h.reconcile("alpha").await;
    assert_eq!(h.fake.take_writes(), Vec::<String>::new());
    assert_eq!(h.event_reasons(), Vec::<String>::new());
}

#[tokio::test]
async fn scaling_3_to_5_updates_statefulset_bootstrap_and_children() {
    let h = Harness::new();
    let mut s = spec(3);
    s["bootstrap"] = json!({"inNetworkCount": 5, "externalNodes": ["http://10.1.2.3:5001"]});
    h.put_network("alpha", s.clone(), json!({}));
    h.reconcile("alpha").await;
    assert_eq!(bootstrap(&h, "alpha").len(), 4);
    h.fake.take_events();

    s["replicas"] = json!(5);
    h.put_network("alpha", s, json!({}));
    h.reconcile("alpha").await;
    assert_eq!(h.sts("alpha")["spec"]["replicas"], 5);
    // New ordinals 3 and 4 start on the new template; 2 is the first to roll.
    assert_eq!(h.partition("alpha"), 2);
    let b = bootstrap(&h, "alpha");
    assert_eq!(b.len(), 6);
    assert_eq!(
        b[4],
        "https://alpha-4.alpha-peers.ledger.svc.cluster.local:5001"
    );
    assert_eq!(b[5], "http://10.1.2.3:5001");
    assert!(h.get(GV, "sorchapeers", "alpha-4").is_some());
    assert!(h.get("v1", "secrets", "alpha-4-tls").is_some());
    assert!(h.event_reasons().contains(&"Scaled".to_owned()));

    // And back down: the extra children go.
    h.put_network("alpha", spec(1), json!({}));
    h.reconcile("alpha").await;
    assert!(h.get(GV, "sorchapeers", "alpha-1").is_none());
    assert!(h.get("v1", "secrets", "alpha-1-tls").is_none());
    assert!(
        h.get("policy/v1", "poddisruptionbudgets", "alpha")
            .is_none(),
        "no PDB for one replica"
    );
}

/// Brings a network to steady state: every pod on the current revision,
/// every peer Online.
async fn steady(h: &Harness, name: &str, s: Value) {
    h.put_network(name, s, json!({}));
    h.reconcile(name).await;
    h.run_statefulset(name);
    h.report_all_online(name, 3);
    h.reconcile(name).await;
    assert_eq!(h.partition(name), 0);
}

#[tokio::test]
async fn image_change_advances_one_pod_at_a_time_gated_on_peer_status() {
    let h = Harness::new();
    steady(&h, "alpha", spec(3)).await;
    let mut s = spec(3);
    s["image"] = json!("ghcr.io/sorcha/sorcha-peer:0.2.0");
    h.put_network("alpha", s, json!({}));
    h.fake.take_events();

    h.reconcile("alpha").await;
    assert_eq!(h.partition("alpha"), 2);
    assert_eq!(
        h.condition("alpha", "Progressing")["reason"],
        "RollingUpdate"
    );
    assert!(h.event_reasons().contains(&"RolloutStarted".to_owned()));
    for ordinal in (0..3).rev() {
        let pod = format!("alpha-{ordinal}");
        h.run_statefulset("alpha");
        // The replaced pod's peer has not reported from the new pod yet:
        // the old status (other pod UID) must not advance the rollout.
        h.fake.edit(GV, "sorchapeers", NS, &pod, |p| {
            p["status"]["podUid"] = json!("old-pod")
        });
        h.reconcile("alpha").await;
        assert_eq!(
            h.partition("alpha"),
            ordinal,
            "held at {ordinal} until its peer is Online"
        );
        h.report(&pod, json!({"phase": "Online"}));
        h.reconcile("alpha").await;
        assert_eq!(h.partition("alpha"), (ordinal - 1).max(0));
    }
    let st = h.network("alpha").status.unwrap();
    assert!(st.rollout.is_none(), "rollout finished: {:?}", st.rollout);
    assert!(h.event_reasons().contains(&"RolloutComplete".to_owned()));
    assert_eq!(h.condition("alpha", "Ready")["status"], "True");
}

#[tokio::test]
async fn rollout_stalls_with_degraded_condition_and_event() {
    let h = Harness::new();
    steady(&h, "alpha", spec(3)).await;
    let mut s = spec(3);
    s["image"] = json!("ghcr.io/sorcha/sorcha-peer:broken");
    s["rollout"] = json!({"stallTimeout": "5m"});
    h.put_network("alpha", s, json!({}));
    h.reconcile("alpha").await;
    h.run_statefulset("alpha");
    h.report("alpha-2", json!({"phase": "Offline"}));
    h.fake.take_events();
    h.clock.advance(Duration::from_secs(301));
    h.reconcile("alpha").await;
    assert_eq!(h.partition("alpha"), 2);
    let d = h.condition("alpha", "Degraded");
    assert_eq!(
        (d["status"].as_str(), d["reason"].as_str()),
        (Some("True"), Some("RolloutStalled"))
    );
    assert!(d["message"].as_str().unwrap().contains("ordinal 2"));
    let events = h.fake.take_events();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "RolloutStalled" && e["type"] == "Warning")
    );
}

fn ca_count(h: &Harness) -> usize {
    let trust = h.get("v1", "configmaps", "alpha-trust").unwrap();
    trust["data"]["ca.pem"]
        .as_str()
        .unwrap()
        .matches("BEGIN CERTIFICATE")
        .count()
}

fn phase(h: &Harness) -> Option<String> {
    h.network("alpha").status.unwrap().rotation.map(|r| r.phase)
}

fn peer_cert_serial(h: &Harness, ordinal: i64) -> String {
    use base64::Engine;
    let s = h
        .get("v1", "secrets", &format!("alpha-{ordinal}-tls"))
        .unwrap();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(s["data"]["tls.crt"].as_str().unwrap())
        .unwrap();
    sorcha_operator::pki::inspect(std::str::from_utf8(&pem).unwrap())
        .unwrap()
        .serial
}

#[tokio::test]
async fn ca_renewal_goes_through_its_phases() {
    let h = Harness::new();
    let mut s = spec(3);
    s["tls"] = json!({"caValidity": "100h", "certValidity": "50h", "renewBefore": "10h"});
    steady(&h, "alpha", s).await;
    let old_ca = h.get("v1", "secrets", "alpha-ca").unwrap()["data"]["tls.crt"].clone();
    h.clock.advance(Duration::from_secs(91 * 3600));

    h.reconcile("alpha").await;
    assert_eq!(phase(&h).as_deref(), Some("AddNewCaToBundle"));
    assert_eq!(ca_count(&h), 2);
    let new_fp = h
        .network("alpha")
        .status
        .unwrap()
        .rotation
        .unwrap()
        .new_ca_fingerprint;

    h.reconcile("alpha").await;
    assert_eq!(phase(&h).as_deref(), Some("WaitAllPeersTrust"));
    h.reconcile("alpha").await;
    assert_eq!(
        phase(&h).as_deref(),
        Some("WaitAllPeersTrust"),
        "no peer trusts the new CA yet"
    );

    for i in 0..3 {
        h.report(
            &format!("alpha-{i}"),
            json!({"phase": "Online", "trustedCaFingerprints": [new_fp]}),
        );
    }
    h.reconcile("alpha").await;
    assert_eq!(phase(&h).as_deref(), Some("ReissuePeerCerts"));
    let s0 = h.get("v1", "secrets", "alpha-0-tls").unwrap();
    assert_eq!(
        s0["metadata"]["annotations"]["sorcha.dev/issuer-fingerprint"],
        json!(new_fp)
    );
    assert_eq!(
        ca_count(&h),
        2,
        "old CA stays until peers serve new certificates"
    );

    for i in 0..3 {
        let serial = peer_cert_serial(&h, i);
        h.report(&format!("alpha-{i}"), json!({"phase": "Online", "trustedCaFingerprints": [new_fp], "certificateSerial": serial}));
    }
    h.reconcile("alpha").await;
    assert_eq!(phase(&h).as_deref(), Some("DropOldCa"));
    assert_eq!(ca_count(&h), 1);
    let ca = h.get("v1", "secrets", "alpha-ca").unwrap();
    assert_ne!(ca["data"]["tls.crt"], old_ca);
    assert!(ca["data"]["next.crt"].is_null());

    h.reconcile("alpha").await;
    assert_eq!(phase(&h), None);
    assert_eq!(h.condition("alpha", "CertificatesReady")["status"], "True");
}

#[tokio::test]
async fn paused_network_is_left_alone() {
    let h = Harness::new();
    h.put_network("alpha", spec(3), json!({"sorcha.dev/paused": "true"}));
    h.reconcile("alpha").await;
    assert!(h.get("apps/v1", "statefulsets", "alpha").is_none());
    assert_eq!(h.condition("alpha", "Paused")["status"], "True");
    let writes = h.fake.take_writes();
    assert!(writes.iter().all(|w| w.ends_with("/status")), "{writes:?}");
    h.reconcile("alpha").await;
    assert_eq!(h.fake.take_writes(), Vec::<String>::new());

    // Unpausing reconciles and clears the condition.
    h.put_network("alpha", spec(3), json!({"sorcha.dev/paused": "false"}));
    h.reconcile("alpha").await;
    assert!(h.get("apps/v1", "statefulsets", "alpha").is_some());
    assert!(h.condition("alpha", "Paused").is_null());
}

#[tokio::test]
async fn paused_existing_network_keeps_children_untouched() {
    let h = Harness::new();
    h.put_network("alpha", spec(3), json!({}));
    h.reconcile("alpha").await;
    let mut s = spec(5);
    s["image"] = json!("other:1");
    h.put_network("alpha", s, json!({"sorcha.dev/paused": "true"}));
    h.fake.take_writes();
    h.reconcile("alpha").await;
    assert_eq!(h.sts("alpha")["spec"]["replicas"], 3);
    let writes = h.fake.take_writes();
    assert!(writes.iter().all(|w| w.ends_with("/status")), "{writes:?}");
}

#[tokio::test]
async fn missing_ca_secret_is_degraded_with_field_and_event() {
    let h = Harness::new();
    let mut s = spec(3);
    s["tls"] = json!({"caSecretName": "my-ca"});
    h.put_network("alpha", s, json!({}));
    h.reconcile("alpha").await;
    assert_eq!(h.condition("alpha", "Degraded")["status"], "True");
    h.assert_degraded_naming("alpha", "spec.tls.caSecretName");
    assert_eq!(h.condition("alpha", "CertificatesReady")["status"], "False");
    let events = h.fake.take_events();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "Warning" && e["note"].as_str().unwrap().contains("my-ca"))
    );
    assert!(
        h.get("apps/v1", "statefulsets", "alpha").is_none(),
        "nothing runs without its CA"
    );
}

#[tokio::test]
async fn supplied_ca_signs_peer_certificates() {
    let h = Harness::new();
    let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let ca =
        sorcha_operator::pki::generate_ca("byo", now, Duration::from_secs(86_400 * 365)).unwrap();
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    h.fake.put(
        "v1",
        "secrets",
        Some(NS),
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "my-ca", "namespace": NS},
            "data": {"tls.crt": b64(&ca.cert_pem), "tls.key": b64(&ca.key_pem)},
        }),
    );
    let mut s = spec(2);
    s["tls"] = json!({"caSecretName": "my-ca"});
    h.put_network("alpha", s, json!({}));
    h.reconcile("alpha").await;
    let fp = sorcha_operator::pki::inspect(&ca.cert_pem)
        .unwrap()
        .fingerprint;
    let s0 = h.get("v1", "secrets", "alpha-0-tls").unwrap();
    assert_eq!(
        s0["metadata"]["annotations"]["sorcha.dev/issuer-fingerprint"],
        json!(fp)
    );
    // The user's Secret is not the operator's to rewrite.
    assert!(h.get("v1", "secrets", "my-ca").unwrap()["metadata"]["ownerReferences"].is_null());
}

#[tokio::test]
async fn unknown_storage_class_is_degraded_naming_the_field() {
    let h = Harness::new();
    let mut s = spec(3);
    s["storage"] = json!({"size": "2Gi", "storageClassName": "fast-ssd"});
    h.put_network("alpha", s, json!({}));
    h.reconcile("alpha").await;
    h.assert_degraded_naming("alpha", "spec.storage.storageClassName");
    assert_eq!(h.condition("alpha", "Ready")["reason"], "InvalidSpec");
}

#[tokio::test]
async fn run_refuses_to_start_without_crds() {
    let h = Harness::new();
    h.fake
        .0
        .lock()
        .unwrap()
        .missing
        .insert(format!("{GV}/sorchanetworks"));
    let err = sorcha_operator::controller::check_crds(&h.ctx.client, None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("sorchanetworks.sorcha.dev"),
        "{err}"
    );
    assert!(err.to_string().contains("kubectl apply -f crds/"), "{err}");
}

#[tokio::test]
async fn image_pull_failure_is_degraded_naming_spec_image() {
    let h = Harness::new();
    steady(&h, "alpha", spec(3)).await;
    h.fake.edit("v1", "pods", NS, "alpha-2", |p| {
        p["status"]["containerStatuses"] = json!([{
            "name": "peer", "image": "ghcr.io/sorcha/sorcha-peer:0.1.0", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}}
        }]);
    });
    h.fake.take_events();
    h.reconcile("alpha").await;
    let d = h.condition("alpha", "Degraded");
    assert_eq!(d["status"], "True");
    assert!(
        d["message"].as_str().unwrap().starts_with("spec.image: "),
        "{d}"
    );
    let events = h.fake.take_events();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "ImagePullFailed" && e["type"] == "Warning")
    );
}

#[tokio::test]
async fn spec_error_mid_rotation_keeps_the_rotation_state() {
    let h = Harness::new();
    let mut s = spec(3);
    s["tls"] = json!({"caValidity": "100h", "certValidity": "50h", "renewBefore": "10h"});
    steady(&h, "alpha", s.clone()).await;
    h.clock.advance(Duration::from_secs(91 * 3600));
    h.reconcile("alpha").await;
    assert_eq!(phase(&h).as_deref(), Some("AddNewCaToBundle"));

    let mut bad = s.clone();
    bad["peer"] = json!({"gossip": {"antiEntropyInterval": "often"}});
    h.put_network("alpha", bad, json!({}));
    h.reconcile("alpha").await;
    h.assert_degraded_naming("alpha", "spec.peer.gossip.antiEntropyInterval");
    assert_eq!(
        phase(&h).as_deref(),
        Some("AddNewCaToBundle"),
        "rotation state survives"
    );
    assert_eq!(ca_count(&h), 2, "both CAs stay trusted");

    h.put_network("alpha", s, json!({}));
    h.reconcile("alpha").await;
    assert_eq!(phase(&h).as_deref(), Some("WaitAllPeersTrust"));
    assert_eq!(h.condition("alpha", "Degraded")["status"], "False");
}
