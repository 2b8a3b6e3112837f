//! The status the peer writes (sorcha-peer's `k8s::status`) is what the
//! operator reads: it deserializes into `SorchaPeerStatus` without losing
//! a field, fits the generated CRD schema, and carries serials and CA
//! fingerprints in the operator's own spelling, computed here from
//! certificates the operator's PKI issued.
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};
use sorcha_operator::crd::{PeerPhase, SorchaPeer, SorchaPeerStatus};
use sorcha_operator::pki;
use sorcha_peer::config::SecurityConfig;
use sorcha_peer::discovery::state::NodeState;
use sorcha_peer::k8s::{certs, reporter, status};

/// A peer's TLS files as the operator would mount them: its certificate
/// from the current CA, and a trust bundle holding the current and the
/// next CA (the middle of a rotation). Returns the files' directory and
/// the operator's view of the certificates (peer, current CA, next CA).
fn operator_issued_files() -> (tempfile::TempDir, [pki::CertInfo; 3]) {
    let now = Timestamp::now();
    let year = Duration::from_secs(86_400 * 365);
    let ca = pki::generate_ca("alpha-ca", now, year).unwrap();
    let next = pki::generate_ca("alpha-ca-next", now, year).unwrap();
    let dns = vec!["alpha-0.alpha-peers.ledger.svc.cluster.local".to_owned()];
    let peer =
        pki::issue_peer_cert(&ca, "alpha-0", pki::PeerRole::Full, &dns, now, year / 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &peer.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &peer.key_pem).unwrap();
    let bundle = pki::bundle([ca.cert_pem.as_str(), next.cert_pem.as_str()]);
    std::fs::write(dir.path().join("ca.pem"), bundle).unwrap();
    let infos = [&peer, &ca, &next].map(|k| pki::inspect(&k.cert_pem).unwrap());
    (dir, infos)
}

fn peer_status_json(dir: &std::path::Path) -> Value {
    let security = SecurityConfig {
        certificate_path: Some(dir.join("tls.crt")),
        trusted_cas: Some(dir.join("ca.pem")),
        ..SecurityConfig::default()
    };
    let snapshot = status::Snapshot {
        peer_id: "alpha-0".into(),
        pod_uid: Some("0f3c6a2e-uid".into()),
        state: NodeState::Online,
        discovery_started: true,
        known_peers: 4,
        active_peers: 3,
        min_healthy_peers: 2,
        external_address: "alpha-0.alpha-peers.ledger.svc.cluster.local".into(),
        queue_size: 7,
        transactions_seen: Some(1234),
        last_discovery_ms: 1_800_000_000_250,
        version: "0.1.0".into(),
        certificate: certs::served_certificate(&security),
        trusted_cas: certs::trusted_ca_fingerprints(&security),
    };
    let s = status::build(&snapshot, None, SystemTime::now());
    serde_json::to_value(&s).unwrap()
}

#[test]
fn peer_status_deserializes_into_the_operators_type_without_loss() {
    let (dir, [peer, ca, next]) = operator_issued_files();
    let v = peer_status_json(dir.path());
    let s: SorchaPeerStatus = serde_json::from_value(v.clone()).unwrap();

    assert_eq!(s.phase, Some(PeerPhase::Online));
    assert_eq!(s.peer_id.as_deref(), Some("alpha-0"));
    assert_eq!(s.pod_uid.as_deref(), Some("0f3c6a2e-uid"));
    assert_eq!((s.known_peers, s.active_peers), (Some(4), Some(3)));
    assert_eq!((s.queue_size, s.transactions_seen), (Some(7), Some(1234)));
    // What the CA rotation compares: the peer's fingerprints of the bundle
    // are the operator's fingerprints of the CAs it put there.
    assert_eq!(
        s.trusted_ca_fingerprints,
        [ca.fingerprint.clone(), next.fingerprint.clone()]
    );
    assert_eq!(
        pki::normalize_serial(s.certificate_serial.as_deref().unwrap()),
        pki::normalize_serial(&peer.serial)
    );
    let not_after: Timestamp = s.certificate_not_after.as_deref().unwrap().parse().unwrap();
    assert_eq!(not_after.as_second(), peer.not_after.as_second());
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Online")
    );
    let certs_ready = s
        .conditions
        .iter()
        .find(|c| c.type_ == "CertificatesReady")
        .unwrap();
    assert_eq!(certs_ready.status, "True", "{}", certs_ready.message);

    // Nothing the peer writes is unknown to the operator: a field the type
    // does not have would be dropped here.
    let back = serde_json::to_value(&s).unwrap();
    assert_eq!(strip_times(back), strip_times(v.clone()));
    // And the times are the same instants.
    for (a, b) in v["conditions"].as_array().unwrap().iter().zip(
        serde_json::to_value(&s).unwrap()["conditions"]
            .as_array()
            .unwrap(),
    ) {
        let t =
            |c: &Value| -> Timestamp { c["lastTransitionTime"].as_str().unwrap().parse().unwrap() };
        assert_eq!(t(a), t(b));
    }
}

fn strip_times(mut v: Value) -> Value {
    for c in v["conditions"].as_array_mut().unwrap() {
        c["lastTransitionTime"] = json!("");
    }
    v
}

fn status_schema() -> Value {
    let crd = SorchaPeer::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

/// Structural check of `v` against an OpenAPI v3 (Kubernetes structural)
/// schema: types, known properties only (the API server prunes unknown
/// fields silently, so one here would be lost data), required fields,
/// enums and date-time strings.
fn check(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if v.is_null() && schema["nullable"] == json!(true) {
        return;
    }
    let ty = schema["type"].as_str().unwrap_or_default();
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    };
    if !ok {
        errors.push(format!("{at}: expected {ty}, got {v}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        errors.push(format!("{at}: {v} not one of {allowed:?}"));
    }
    if schema["format"] == "date-time"
        && v.as_str().is_some_and(|s| s.parse::<Timestamp>().is_err())
    {
        errors.push(format!("{at}: {v} is not an RFC 3339 date-time"));
    }
    if let Some(items) = schema.get("items")
        && let Some(arr) = v.as_array()
    {
        for (i, item) in arr.iter().enumerate() {
            check(items, item, &format!("{at}[{i}]"), errors);
        }
    }
    let Some(obj) = v.as_object() else { return };
    for r in schema["required"].as_array().into_iter().flatten() {
        if !obj.contains_key(r.as_str().unwrap()) {
            errors.push(format!("{at}: required field {r} missing"));
        }
    }
    let props = schema["properties"].as_object();
    for (k, child) in obj {
        match props.and_then(|p| p.get(k)) {
            Some(s) => check(s, child, &format!("{at}.{k}"), errors),
            None if schema["x-kubernetes-preserve-unknown-fields"] == json!(true) => {}
            None => match schema.get("additionalProperties") {
                Some(s) if s.is_object() => check(s, child, &format!("{at}.{k}"), errors),
                _ => errors.push(format!("{at}.{k}: not in the CRD schema (would be pruned)")),
            },
        }
    }
}

#[test]
fn peer_status_fits_the_generated_crd() {
    let (dir, _) = operator_issued_files();
    let status = peer_status_json(dir.path());
    let schema = status_schema();
    let mut errors = Vec::new();
    check(
        &schema["properties"]["status"],
        &status,
        ".status",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:#?}");

    // The checker itself notices a stray field and a wrong type.
    let mut bad = status.clone();
    bad["knownPeer"] = json!(1);
    bad["queueSize"] = json!("7");
    let mut errors = Vec::new();
    check(
        &schema["properties"]["status"],
        &bad,
        ".status",
        &mut errors,
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");

    // The whole object as the apply sends it (identity + status) passes
    // the CRD's CEL rules too, once merged with the operator's spec.
    let mut obj = reporter::apply_body("alpha-0", &serde_json::from_value(status).unwrap());
    obj["spec"] =
        json!({"network": "alpha", "ordinal": 0, "peerId": "alpha-0", "podName": "alpha-0"});
    Validator::new()
        .validate(&schema, &obj, None)
        .unwrap_or_else(|e| panic!("{e:?}"));
}
