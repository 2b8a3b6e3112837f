//! The Helm chart's monitoring parts: alert rules and the dashboard use
//! metrics the binaries export (and the rules pass promtool), and the
//! Service/Pod monitors select the metrics endpoints.
mod tools;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use tools::chart::{ALL_ON, find, one, render_docs, with_values};
use tools::{monitor_validator, repo_root, run_monitor_validator, stdout_and_stderr, tool};

fn exported_metrics() -> String {
    let root = repo_root();
    ["peer/src/metrics.rs", "operator/src/metrics.rs"]
        .iter()
        .map(|p| std::fs::read_to_string(root.join(p)).unwrap())
        .collect()
}

/// `sorcha_*` metric names in `text`, without histogram suffixes.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("sorcha_") {
        if i > 0 && text.as_bytes()[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        out.insert(base.to_owned());
    }
    out
}

#[test]
fn alerts_and_dashboard_use_exported_metrics_and_rules_pass_promtool() {
    let Some(helm) = tool("helm") else { return };
    let (_d, all_on) = with_values(ALL_ON);
    let docs = render_docs(&helm, &["-f", &all_on]);
    let rule = one(&docs, "PrometheusRule");
    let alerts: BTreeSet<_> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap().to_owned())
        .collect();
    for a in [
        "SorchaNetworkNotReady",
        "SorchaPeersOffline",
        "SorchaCertificateExpiringSoon",
        "SorchaTransactionQueueGrowing",
    ] {
        assert!(alerts.contains(a), "alert {a} missing: {alerts:?}");
    }
    let dashboard = one(&docs, "ConfigMap");
    let json_text = dashboard["data"]["sorcha.json"].as_str().unwrap();
    let _: Value = serde_json::from_str(json_text).expect("the dashboard is JSON");

    let exported = exported_metrics();
    let rules_text = serde_json::to_string(&rule["spec"]).unwrap();
    for name in metric_names(&rules_text).union(&metric_names(json_text)) {
        assert!(
            exported.contains(&format!("\"{name}\"")),
            "{name} is used by an alert or the dashboard but exported by neither the peer nor the operator"
        );
    }
    assert!(
        rules_text.contains(&(7 * 86_400).to_string()),
        "7-day expiry window"
    );

    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rules.yaml");
    std::fs::write(&f, serde_json::to_string(&rule["spec"]).unwrap()).unwrap();
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool:\n{}",
        stdout_and_stderr(&out)
    );
}

#[test]
fn monitors_select_the_metrics_service_and_honor_the_network_label() {
    let Some(helm) = tool("helm") else { return };
    let (_d, all_on) = with_values(ALL_ON);
    let docs = render_docs(&helm, &["-f", &all_on]);
    let svc = one(&docs, "Service");
    let sm = one(&docs, "ServiceMonitor");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor selects the Service"
        );
    }
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    let pm = one(&docs, "PodMonitor");
    assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["honorLabels"], true);
    // And all three prometheus-operator objects against its schemas.
    if let Some(validator) = monitor_validator() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = ["ServiceMonitor", "PodMonitor", "PrometheusRule"]
            .iter()
            .map(|kind| {
                let f = dir.path().join(format!("{kind}.json"));
                std::fs::write(&f, one(&docs, kind).to_string()).unwrap();
                f
            })
            .collect();
        let (ok, text) = run_monitor_validator(&validator, &files);
        assert!(ok, "prometheus-operator schema validation failed:\n{text}");
    }
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let np = one(&docs, "NetworkPolicy");
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], "metrics");
    let defaults = render_docs(&helm, &[]);
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
    ] {
        assert!(find(&defaults, kind).is_empty(), "{kind} is off by default");
    }
}
