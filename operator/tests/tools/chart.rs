//! Rendering the Helm chart `charts/sorcha-operator` for the chart tests.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{repo_root, stdout_and_stderr, yaml_docs};

pub fn chart() -> PathBuf {
    repo_root().join("charts/sorcha-operator")
}

/// Values with every optional part switched on.
pub const ALL_ON: &str = r#"
replicaCount: 2
podDisruptionBudget: {enabled: true}
networkPolicy:
  enabled: true
  metricsNamespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
monitoring:
  serviceMonitor: {enabled: true, labels: {release: prom}}
  podMonitor: {enabled: true}
  prometheusRule: {enabled: true}
  grafanaDashboard: {enabled: true}
podAnnotations: {example.com/a: "1"}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: sorcha, effect: NoSchedule}]
imagePullSecrets: [{name: regcred}]
priorityClassName: system-cluster-critical
"#;

/// `helm template` output, or the failure text.
pub fn render(helm: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(helm)
        .args(["template", "rel", "--namespace", "sorcha-system"])
        .arg(chart())
        .args(args)
        .output()
        .expect("helm runs");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(stdout_and_stderr(&out))
    }
}

pub fn render_docs(helm: &Path, args: &[&str]) -> Vec<Value> {
    yaml_docs(&render(helm, args).unwrap_or_else(|e| panic!("helm template {args:?}: {e}")))
}

pub fn with_values(yaml: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("values.yaml");
    std::fs::write(&f, yaml).unwrap();
    let path = f.to_str().unwrap().to_owned();
    (dir, path)
}

pub fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

pub fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = find(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}");
    found[0]
}
