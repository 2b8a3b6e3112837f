//! External tools the manifest tests run (kubernetes-validate, helm,
//! promtool, python3 with jsonschema), installed by
//! `scripts/install-test-deps`. Without one a test says so and passes,
//! except under CI=true where it fails.
#![allow(dead_code)]
pub mod chart;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::{Value, json};

/// Without the tool: a failure under CI=true, else a notice and a pass.
pub fn missing(what: &str) {
    let msg = format!("{what} not found; install it with scripts/install-test-deps");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("SKIPPED: {msg}");
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

/// `name` on PATH, or in the project-local `.tools/bin` where
/// install-test-deps puts what it cannot put in /usr/local/bin.
pub fn tool(name: &str) -> Option<PathBuf> {
    let local = repo_root().join(".tools/bin");
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([local])
        .map(|d| d.join(name))
        .find(|f| f.is_file());
    if found.is_none() {
        missing(name);
    }
    found
}

pub fn stdout_and_stderr(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every document of a YAML stream, empty ones dropped.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// `kubernetes-validate --strict` against Kubernetes 1.33 on `files`. Kinds
/// it has no schema for must be among `custom_kinds` (checked elsewhere).
pub fn kubernetes_validate(kv: &Path, files: &[PathBuf], custom_kinds: &[&str]) {
    let out = Command::new(kv)
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .args(files)
        .output()
        .expect("kubernetes-validate runs");
    let text = stdout_and_stderr(&out);
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    for line in text.lines().filter(|l| l.contains("Couldn't find schema")) {
        assert!(
            custom_kinds
                .iter()
                .any(|k| line.contains(&format!("kind {k} "))),
            "no schema for an object that should be a built-in kind:\n{line}"
        );
    }
}

/// Custom resources are checked against the CRD's own openAPIV3Schema by
/// Python's jsonschema (installed with kubernetes-validate), with unknown
/// fields rejected the way `kubectl --validate=strict` would.
const CHECK_CR: &str = r#"
import json, sys, jsonschema
def strict(s):
    if isinstance(s, dict):
        if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s \
           and not s.get("x-kubernetes-preserve-unknown-fields"):
            s["additionalProperties"] = False
        for v in s.values(): strict(v)
    elif isinstance(s, list):
        for v in s: strict(v)
cases = json.load(open(sys.argv[1]))
bad = 0
for c in cases:
    schema = c["schema"]; strict(schema)
    schema["properties"]["apiVersion"] = {"type": "string"}
    schema["properties"]["kind"] = {"type": "string"}
    schema["properties"]["metadata"] = {"type": "object"}
    for e in jsonschema.Draft7Validator(schema).iter_errors(c["object"]):
        bad += 1
        print(c.get("source", ""), c["object"]["kind"], list(e.absolute_path), e.message)
sys.exit(1 if bad else 0)
"#;

/// `cases`: `{"schema", "object", "source"?}`. False when the tools are
/// missing (and that was allowed).
pub fn check_custom_resources(cases: &[Value]) -> bool {
    let Some(py) = tool("python3") else {
        return false;
    };
    if Command::new(&py)
        .args(["-c", "import jsonschema"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        missing("the Python jsonschema module (installed with kubernetes-validate)");
        return false;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cases.json");
    std::fs::write(&f, serde_json::to_vec(cases).unwrap()).unwrap();
    let out = Command::new(py)
        .args(["-c", CHECK_CR])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "custom resources do not match their CRD:\n{}",
        stdout_and_stderr(&out)
    );
    true
}

/// The schema of the committed CRD for `kind` (SorchaNetwork, SorchaPeer).
pub fn crd_schema(kind: &str) -> Value {
    for (_, yaml) in sorcha_operator::crd::crd_yaml() {
        let crd = &yaml_docs(&yaml)[0];
        if crd["spec"]["names"]["kind"] == kind {
            return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        }
    }
    panic!("no CRD for {kind}")
}

/// A case for `check_custom_resources` when `obj` is one of ours.
pub fn cr_case(obj: &Value, source: &str) -> Option<Value> {
    let kind = obj["kind"].as_str()?;
    (obj["apiVersion"] == "sorcha.dev/v1alpha1")
        .then(|| json!({"schema": crd_schema(kind), "object": obj, "source": source}))
}

/// node and `operator/tests/monitoring/validate.mjs`, which checks
/// ServiceMonitor, PodMonitor and PrometheusRule objects against
/// prometheus-operator's schemas (npm package pinned there); `None` with
/// the usual notice when missing.
pub fn monitor_validator() -> Option<(PathBuf, PathBuf)> {
    let node = tool("node")?;
    let dir = repo_root().join("operator/tests/monitoring");
    if !dir
        .join("node_modules/@kubernetes-models/prometheus-operator")
        .is_dir()
    {
        missing("the prometheus-operator schemas (operator/tests/monitoring/node_modules)");
        return None;
    }
    Some((node, dir.join("validate.mjs")))
}

/// Runs the validator on JSON `files`: (all valid, its report).
pub fn run_monitor_validator(validator: &(PathBuf, PathBuf), files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(&validator.0)
        .arg(&validator.1)
        .args(files)
        .output()
        .expect("node runs");
    (out.status.success(), stdout_and_stderr(&out))
}
