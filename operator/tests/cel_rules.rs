//! The CRDs' CEL rules (x-kubernetes-validations), evaluated client-side by
//! kube's CEL validator over the generated schema: each rule compiles and
//! admits or rejects what it should.
use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};
use sorcha_operator::crd::{SorchaNetwork, SorchaPeer};

fn schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// A network as stored after defaulting (the rules see defaulted objects).
fn network(spec: Value) -> Value {
    let mut full = json!({
        "replicas": 3, "image": "peer:1",
        "bootstrap": {"inNetworkCount": 3, "externalNodes": []},
        "tls": {"enabled": true, "caValidity": "8760h", "certValidity": "2160h", "renewBefore": "720h"},
        "storage": {"size": "1Gi"},
        "rollout": {"stallTimeout": "10m"},
        "podDisruptionBudget": {"enabled": true, "maxUnavailable": 1},
    });
    merge(&mut full, spec);
    json!({"apiVersion": "sorcha.dev/v1alpha1", "kind": "SorchaNetwork", "metadata": {"name": "a"}, "spec": full})
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn check(obj: &Value, old: Option<&Value>) -> Result<(), String> {
    Validator::new()
        .validate(&schema::<SorchaNetwork>(), obj, old)
        .map_err(|e| format!("{e:?}"))
}

#[test]
fn defaults_pass_every_rule() {
    check(&network(json!({})), None).unwrap();
    check(&network(json!({})), Some(&network(json!({})))).unwrap();
}

#[test]
fn replicas_must_be_positive() {
    let e = check(&network(json!({"replicas": 0})), None).unwrap_err();
    assert!(e.contains("replicas must be at least 1"), "{e}");
}

#[test]
fn tls_durations_must_be_consistent() {
    let e = check(&network(json!({"tls": {"renewBefore": "3000h"}})), None).unwrap_err();
    assert!(e.contains("renewBefore must be shorter"), "{e}");
    let e = check(&network(json!({"tls": {"certValidity": "9000h"}})), None).unwrap_err();
    assert!(e.contains("certValidity must not exceed"), "{e}");
}

#[test]
fn storage_is_immutable() {
    let old = network(json!({}));
    let e = check(&network(json!({"storage": {"size": "2Gi"}})), Some(&old)).unwrap_err();
    assert!(e.contains("storage is immutable"), "{e}");
    check(&network(json!({"replicas": 5})), Some(&old)).unwrap();
}

#[test]
fn external_bootstrap_nodes_must_be_urls() {
    let e = check(
        &network(json!({"bootstrap": {"externalNodes": ["10.0.0.1:5001"]}})),
        None,
    )
    .unwrap_err();
    assert!(e.contains("externalNodes must be http"), "{e}");
}

#[test]
fn peer_is_either_a_network_member_or_standalone() {
    let peer = |spec: Value| json!({"apiVersion": "sorcha.dev/v1alpha1", "kind": "SorchaPeer", "metadata": {"name": "p"}, "spec": spec});
    let v = |o: &Value| {
        Validator::new()
            .validate(&schema::<SorchaPeer>(), o, None)
            .map_err(|e| format!("{e:?}"))
    };
    v(&peer(
        json!({"network": "a", "ordinal": 0, "peerId": "a-0", "podName": "a-0"}),
    ))
    .unwrap();
    let standalone = network(json!({"replicas": 1}))["spec"].clone();
    v(&peer(json!({"standalone": standalone}))).unwrap();
    let e = v(&peer(json!({}))).unwrap_err();
    assert!(e.contains("set either network"), "{e}");
    let e = v(&peer(
        json!({"standalone": network(json!({}))["spec"].clone()}),
    ))
    .unwrap_err();
    assert!(e.contains("standalone.replicas must be 1"), "{e}");
}
