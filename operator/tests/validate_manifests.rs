//! Every object the operator emits, and the CRDs, must validate against
//! the Kubernetes 1.33 schemas with `kubernetes-validate --strict`; sample
//! custom resources must validate against the generated CRD schemas.
//! The tools come from `scripts/install-test-deps`; without them the test
//! says so and passes, except under CI=true where it fails.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
mod tools;
use common::samples::{network, samples};
use tools::{check_custom_resources, monitor_validator, run_monitor_validator, tool};

use jiff::Timestamp;
use kube::CustomResourceExt;
use serde_json::{Value, json};
use sorcha_operator::controller::lease::{LeaseConfig, lease_object};
use sorcha_operator::crd::{SorchaNetwork, SorchaPeer};
use sorcha_operator::pki::{self, CaSet, PkiInput};
use sorcha_operator::resources::{self, Net};

fn to_value<T: serde::Serialize>(o: &T) -> Value {
    serde_json::to_value(o).unwrap()
}

/// Every built-in object the operator writes for `n`.
fn builtin_objects(n: &SorchaNetwork) -> Vec<Value> {
    let net = Net::new(n, "cluster.local").unwrap();
    let mut out = vec![
        to_value(&resources::statefulset(&net, "0123456789abcdef", 1)),
        to_value(&resources::headless_service(&net)),
        to_value(&resources::client_service(&net)),
        to_value(&resources::config_map(&net).unwrap()),
        to_value(&resources::peer_service_account(&net)),
        to_value(&resources::peer_role(&net)),
        to_value(&resources::peer_role_binding(&net)),
    ];
    out.extend(resources::per_pod_services(&net).iter().map(to_value));
    out.extend(resources::pod_disruption_budget(&net).iter().map(to_value));
    out.extend(resources::network_policy(&net).iter().map(to_value));
    if n.spec.tls.enabled {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let plan = pki::plan(PkiInput {
            network: "alpha",
            generated: true,
            ca: None,
            phase: None,
            peers: (0..net.replicas())
                .map(|i| (i, (net.pod_name(i), vec![net.pod_dns(i)])))
                .collect(),
            bootstrap_count: resources::bootstrap_count(&net),
            existing: Default::default(),
            reports: Default::default(),
            now,
            ca_validity: Duration::from_secs(86_400 * 365),
            cert_validity: Duration::from_secs(86_400 * 90),
            renew_before: Duration::from_secs(86_400 * 30),
        })
        .unwrap();
        let rotating = CaSet {
            next: Some(plan.ca.current.clone()),
            ..plan.ca.clone()
        };
        out.push(to_value(&resources::ca_secret(&net, &rotating)));
        out.push(to_value(&resources::trust_bundle(&net, &plan.bundle)));
        for (o, pc) in &plan.peer_certs {
            out.push(to_value(&resources::peer_tls_secret(
                &net,
                *o,
                pc,
                &plan.ca.current.cert_pem,
            )));
        }
    }
    out
}

fn write_all(dir: &Path, objs: &[Value]) -> Vec<PathBuf> {
    objs.iter()
        .enumerate()
        .map(|(i, o)| {
            let p = dir.join(format!(
                "{i:03}-{}-{}.yaml",
                o["kind"].as_str().unwrap_or("x"),
                o["metadata"]["name"].as_str().unwrap_or("x")
            ));
            // JSON (valid YAML) keeps timestamps strings; a YAML loader would
            // turn an unquoted one into a datetime.
            std::fs::write(&p, serde_json::to_string_pretty(o).unwrap()).unwrap();
            p
        })
        .collect()
}

#[test]
fn every_builtin_manifest_and_crd_validates_against_kubernetes_1_33() {
    let Some(kv) = tool("kubernetes-validate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut objs: Vec<Value> = samples()
        .into_iter()
        .flat_map(|s| builtin_objects(&network(s)))
        .collect();
    let lease_cfg = LeaseConfig {
        name: "sorcha-operator".into(),
        namespace: "sorcha-system".into(),
        identity: "sorcha-operator-0".into(),
        duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(5),
    };
    objs.push(to_value(&lease_object(
        &lease_cfg,
        None,
        Timestamp::from_second(1_800_000_000).unwrap(),
        true,
    )));
    let kinds: std::collections::BTreeSet<_> = objs
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect();
    for k in [
        "StatefulSet",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Lease",
    ] {
        assert!(kinds.contains(k), "no {k} among the validated objects");
    }
    let mut files = write_all(dir.path(), &objs);
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    for (f, _) in sorcha_operator::crd::crd_yaml() {
        files.push(crds.join(f));
    }
    let out = Command::new(kv)
        .args(["--strict", "--kubernetes-version", "1.33.0", "--quiet"])
        .args(&files)
        .output()
        .expect("kubernetes-validate runs");
    assert!(
        out.status.success(),
        "kubernetes-validate failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sample_custom_resources_validate_against_generated_crds() {
    let schema_of = |crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
        to_value(&crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema)
    };
    let net_schema = schema_of(SorchaNetwork::crd());
    let peer_schema = schema_of(SorchaPeer::crd());
    let mut cases = Vec::new();
    for s in samples() {
        let n = network(s);
        cases.push(json!({"schema": net_schema, "object": to_value(&n)}));
        let net = Net::new(&n, "cluster.local").unwrap();
        let mut p = to_value(&resources::sorcha_peer(&net, 0));
        p["status"] = json!({
            "phase": "Online", "peerId": "alpha-0", "podUid": "u", "knownPeers": 3, "activePeers": 2,
            "externalAddress": "alpha-0.alpha-peers.ledger.svc.cluster.local", "queueSize": 0,
            "lastDiscovery": "2026-01-01T00:00:00Z", "transactionsSeen": 10, "version": "0.1.0",
            "certificateSerial": "0a1b", "certificateNotAfter": "2027-01-01T00:00:00Z",
            "trustedCaFingerprints": ["ab"],
            "conditions": [{"type": "Ready", "status": "True", "reason": "Online", "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        });
        cases.push(json!({"schema": peer_schema, "object": p}));
        // The same spec as a standalone peer.
        let mut standalone = to_value(&n);
        standalone["kind"] = json!("SorchaPeer");
        standalone["spec"] = json!({"standalone": to_value(&n.spec)});
        standalone["spec"]["standalone"]["replicas"] = json!(1);
        cases.push(json!({"schema": peer_schema, "object": standalone}));
    }
    check_custom_resources(&cases);
}

#[test]
fn service_and_pod_monitors_validate_against_prometheus_operator_schemas() {
    let Some(validator) = monitor_validator() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut objs = Vec::new();
    for tls in [true, false] {
        let mut spec = samples()
            .into_iter()
            .find(|s| s["monitoring"]["serviceMonitor"] == json!(true))
            .expect("a sample with monitoring on");
        spec["tls"] = json!({"enabled": tls});
        let n = network(spec);
        let net = Net::new(&n, "cluster.local").unwrap();
        objs.extend(resources::service_monitor(&net).iter().map(to_value));
        objs.extend(resources::pod_monitor(&net).iter().map(to_value));
    }
    assert_eq!(
        objs.len(),
        4,
        "a ServiceMonitor and a PodMonitor, TLS on and off"
    );
    let files = write_all(dir.path(), &objs);
    let (ok, text) = run_monitor_validator(&validator, &files);
    assert!(ok, "prometheus-operator schema validation failed:\n{text}");

    // The validator itself rejects a broken monitor (it is not a no-op).
    let mut broken = objs[0].clone();
    broken["spec"]["endpoints"][0]["interval"] = json!("every 15 seconds");
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, broken.to_string()).unwrap();
    let (ok, text) = run_monitor_validator(&validator, &[bad]);
    assert!(!ok && text.contains("interval"), "{text}");
}
