//! The Helm chart `charts/sorcha-operator`: lint, render with defaults and
//! with every toggle, validate what it renders (built-ins with
//! kubernetes-validate against Kubernetes 1.33, custom resources against the
//! CRDs), reject value typos, and check that its RBAC covers what the
//! controller touches. Monitoring parts: `helm_monitoring.rs`.
mod tools;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use tools::chart::{ALL_ON, chart, find, one, render, render_docs, with_values};
use tools::{
    check_custom_resources, cr_case, kubernetes_validate, repo_root, stdout_and_stderr, tool,
    yaml_docs,
};

fn operator_args(docs: &[Value]) -> Vec<String> {
    one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn chart_and_app_versions_follow_the_operator_crate() {
    let text = std::fs::read_to_string(chart().join("Chart.yaml")).unwrap();
    let chart = &yaml_docs(&text)[0];
    let crate_version = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["version"], crate_version, "Chart.yaml version");
    assert_eq!(chart["appVersion"], crate_version, "Chart.yaml appVersion");
}

#[test]
fn helm_lint_is_clean_with_defaults_and_every_toggle() {
    let Some(helm) = tool("helm") else { return };
    let (_d, all_on) = with_values(ALL_ON);
    for extra in [vec![], vec!["-f", all_on.as_str()]] {
        let out = Command::new(&helm)
            .args(["lint", "--strict"])
            .arg(chart())
            .args(&extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm lint {extra:?}:\n{}",
            stdout_and_stderr(&out)
        );
    }
}

#[test]
fn rendered_manifests_validate_against_kubernetes_1_33_and_the_crds() {
    let Some(helm) = tool("helm") else { return };
    let Some(kv) = tool("kubernetes-validate") else {
        return;
    };
    let (_d, all_on) = with_values(ALL_ON);
    let dir = tempfile::tempdir().unwrap();
    let variants: [(&str, Vec<&str>); 3] = [
        ("defaults", vec![]),
        ("all-on", vec!["-f", &all_on]),
        (
            "namespaced",
            vec![
                "-f",
                &all_on,
                "--set",
                "rbac.scope=namespaced",
                "--set",
                "rbac.watchNamespaces={ledger,payments}",
            ],
        ),
    ];
    let mut cases = Vec::new();
    for (name, args) in &variants {
        let text = render(&helm, args).unwrap_or_else(|e| panic!("{name}: {e}"));
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, &text).unwrap();
        // ServiceMonitor, PodMonitor and PrometheusRule belong to
        // prometheus-operator, whose CRDs are not ours to ship; their
        // content is checked by the tests below.
        kubernetes_validate(
            &kv,
            &[file],
            &[
                "SorchaNetwork",
                "ServiceMonitor",
                "PodMonitor",
                "PrometheusRule",
            ],
        );
        let docs = yaml_docs(&text);
        assert_eq!(
            find(&docs, "CustomResourceDefinition").len(),
            2,
            "{name}: the CRDs are rendered and validated"
        );
        cases.extend(docs.iter().filter_map(|d| cr_case(d, name)));
    }
    assert!(!cases.is_empty(), "the helm test network is rendered");
    check_custom_resources(&cases);
}

#[test]
fn a_value_typo_is_rejected_naming_it() {
    let Some(helm) = tool("helm") else { return };
    render(&helm, &["--set", "replicaCount=2"]).expect("the right spelling renders");
    for (typo, name) in [
        ("replicaCuont=2", "replicaCuont"),
        ("monitoring.serviceMonitor.enabeld=true", "enabeld"),
        ("rbac.scope=namespace", "/rbac/scope"),
    ] {
        let err = render(&helm, &["--set", typo]).expect_err(typo);
        assert!(
            err.contains(name),
            "--set {typo}: the error names {name}:\n{err}"
        );
    }
    let err = render(&helm, &["--set", "rbac.scope=namespaced"]).expect_err("no namespaces");
    assert!(err.contains("watchNamespaces"), "{err}");
}

/// Every object level of values.schema.json is closed, so a misspelt key
/// anywhere fails at install; maps of free keys say what their values are.
#[test]
fn values_schema_is_closed_at_every_object_level() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap())
            .unwrap();
    // Kubernetes types passed through to the Deployment as they are.
    let passthrough = [
        "/properties/global",
        "/properties/affinity/properties/nodeAffinity",
        "/properties/affinity/properties/podAffinity",
        "/properties/affinity/properties/podAntiAffinity",
        "/properties/networkPolicy/properties/metricsNamespaceSelector/properties/matchExpressions/items",
    ];
    fn walk(s: &Value, at: String, passthrough: &[&str], open: &mut Vec<String>) {
        let Some(o) = s.as_object() else { return };
        let is_object = o.get("type").is_some_and(|t| t == "object");
        if is_object && !passthrough.contains(&at.as_str()) {
            match o.get("additionalProperties") {
                Some(Value::Bool(false)) => {}
                Some(Value::Object(_)) if !o.contains_key("properties") => {}
                _ => open.push(at.clone()),
            }
        }
        for (k, v) in o {
            match v {
                Value::Object(_) => walk(v, format!("{at}/{k}"), passthrough, open),
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        walk(v, format!("{at}/{k}/{i}"), passthrough, open);
                    }
                }
                _ => {}
            }
        }
    }
    let mut open = Vec::new();
    walk(&schema, String::new(), &passthrough, &mut open);
    assert!(
        open.is_empty(),
        "object levels without additionalProperties: false: {open:?}"
    );
    // And every key of values.yaml is declared.
    let values = &yaml_docs(&std::fs::read_to_string(chart().join("values.yaml")).unwrap())[0];
    fn declared(v: &Value, s: &Value, at: &str) {
        if let (Some(vo), Some(props)) = (v.as_object(), s["properties"].as_object()) {
            for (k, vv) in vo {
                let sub = props
                    .get(k)
                    .unwrap_or_else(|| panic!("values.yaml {at}{k} is not in values.schema.json"));
                declared(vv, sub, &format!("{at}{k}."));
            }
        }
    }
    declared(values, &schema, "");
}

fn numbers_as_f64(v: &Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(numbers_as_f64).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), numbers_as_f64(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn crds_are_rendered_from_crds_dir_kept_on_uninstall_and_optional() {
    let Some(helm) = tool("helm") else { return };
    let docs = render_docs(&helm, &[]);
    let rendered = find(&docs, "CustomResourceDefinition");
    for (_, yaml) in sorcha_operator::crd::crd_yaml() {
        let generated = &yaml_docs(&yaml)[0];
        let name = &generated["metadata"]["name"];
        let crd = rendered
            .iter()
            .find(|c| &c["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} rendered"));
        // Helm's YAML round trip writes `minimum: 0.0` as `0`: compare values.
        assert_eq!(
            numbers_as_f64(&crd["spec"]),
            numbers_as_f64(&generated["spec"]),
            "{name}: the chart renders crds/ as is"
        );
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name} survives helm uninstall"
        );
    }
    let without = render_docs(&helm, &["--set", "crds.install=false"]);
    assert!(find(&without, "CustomResourceDefinition").is_empty());
}

#[test]
fn leader_election_is_on_exactly_when_more_than_one_replica() {
    let Some(helm) = tool("helm") else { return };
    let single = render_docs(&helm, &[]);
    assert!(operator_args(&single).contains(&"--lease-name=".to_owned()));
    assert_eq!(
        one(&single, "Deployment")["spec"]["strategy"]["type"],
        "Recreate",
        "one unelected operator never overlaps its replacement"
    );
    assert!(!find(&single, "Role").iter().any(|r| {
        r["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("leader-election")
    }));

    let two = render_docs(&helm, &["--set", "replicaCount=2"]);
    assert_eq!(one(&two, "Deployment")["spec"]["replicas"], 2);
    assert!(operator_args(&two).contains(&"--lease-name=sorcha-operator".to_owned()));
    let lease_role = find(&two, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "rel-sorcha-operator-leader-election")
        .expect("a Role for the Lease");
    assert_eq!(lease_role["metadata"]["namespace"], "sorcha-system");
    assert_eq!(lease_role["rules"][0]["resources"][0], "leases");
}

#[test]
fn namespaced_mode_grants_roles_only_in_listed_namespaces() {
    let Some(helm) = tool("helm") else { return };
    let docs = render_docs(
        &helm,
        &[
            "--set",
            "rbac.scope=namespaced",
            "--set",
            "rbac.watchNamespaces={ledger,payments}",
        ],
    );
    assert!(operator_args(&docs).contains(&"--namespaces=ledger,payments".to_owned()));
    let roles: BTreeSet<_> = find(&docs, "Role")
        .iter()
        .filter(|r| r["metadata"]["annotations"]["helm.sh/hook"].is_null())
        .map(|r| r["metadata"]["namespace"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(roles, BTreeSet::from(["ledger".into(), "payments".into()]));
    let bindings = find(&docs, "RoleBinding");
    assert_eq!(
        bindings
            .iter()
            .filter(|r| r["metadata"]["annotations"]["helm.sh/hook"].is_null())
            .count(),
        2
    );
    // The one cluster-wide grant: reading StorageClasses.
    for cr in find(&docs, "ClusterRole") {
        assert_eq!(cr["rules"].as_array().unwrap().len(), 1);
        assert_eq!(cr["rules"][0]["resources"][0], "storageclasses");
        assert_eq!(cr["rules"][0]["verbs"][0], "get");
    }
    let cluster = render_docs(&helm, &[]);
    assert!(
        !operator_args(&cluster)
            .iter()
            .any(|a| a.starts_with("--namespaces"))
    );
}

/// `(api group, resource)` of each kind the controller touches. A new kind in
/// the controller fails here until the chart grants it.
fn resource_of(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "SorchaNetwork" => ("sorcha.dev", "sorchanetworks"),
        "SorchaPeer" => ("sorcha.dev", "sorchapeers"),
        "StatefulSet" => ("apps", "statefulsets"),
        "Pod" => ("", "pods"),
        "Secret" => ("", "secrets"),
        "ConfigMap" => ("", "configmaps"),
        "Service" => ("", "services"),
        "ServiceAccount" => ("", "serviceaccounts"),
        "Role" => ("rbac.authorization.k8s.io", "roles"),
        "RoleBinding" => ("rbac.authorization.k8s.io", "rolebindings"),
        "PodDisruptionBudget" => ("policy", "poddisruptionbudgets"),
        "NetworkPolicy" => ("networking.k8s.io", "networkpolicies"),
        "StorageClass" => ("storage.k8s.io", "storageclasses"),
        "ServiceMonitor" => ("monitoring.coreos.com", "servicemonitors"),
        "PodMonitor" => ("monitoring.coreos.com", "podmonitors"),
        "Lease" => ("coordination.k8s.io", "leases"),
        _ => return None,
    })
}

fn grants(rules: &[&Value], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        let has = |field: &str, want: &str| {
            r[field]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == want || x == "*"))
        };
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

#[test]
fn rbac_covers_every_kind_the_controller_touches() {
    let Some(helm) = tool("helm") else { return };
    let src_dir = repo_root().join("operator/src/controller");
    let mut kinds = BTreeSet::new();
    for entry in std::fs::read_dir(&src_dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for pat in ["Api<", "Api::<", "put!("] {
            for part in text.split(pat).skip(1) {
                let kind: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
                if !kind.is_empty() && kind != "DynamicObject" && kind != "K" {
                    kinds.insert(kind);
                }
            }
        }
    }
    // Dynamic objects: the prometheus-operator monitors.
    kinds.extend(["ServiceMonitor".to_owned(), "PodMonitor".to_owned()]);
    assert!(
        kinds.contains("StatefulSet") && kinds.contains("Secret"),
        "{kinds:?}"
    );

    let docs = render_docs(&helm, &["--set", "replicaCount=2"]);
    let mut rules: Vec<&Value> = Vec::new();
    for kind in ["ClusterRole", "Role"] {
        for r in find(&docs, kind) {
            if !r["metadata"]["name"].as_str().unwrap().ends_with("-test") {
                rules.extend(r["rules"].as_array().unwrap());
            }
        }
    }
    for kind in &kinds {
        let (group, resource) = resource_of(kind).unwrap_or_else(|| {
            panic!("the controller uses {kind}: grant it in the chart's RBAC and map it here")
        });
        assert!(
            grants(&rules, group, resource, "get"),
            "the chart does not grant get on {group}/{resource} ({kind})"
        );
    }
    for (res, verbs) in [
        ("sorchanetworks", &["list", "watch", "patch"][..]),
        (
            "sorchapeers",
            &["list", "watch", "create", "patch", "delete"],
        ),
        ("sorchanetworks/status", &["patch"]),
    ] {
        for v in verbs {
            assert!(grants(&rules, "sorcha.dev", res, v), "{v} {res}");
        }
    }
    for (group, res) in [("apps", "statefulsets"), ("", "pods")] {
        assert!(grants(&rules, group, res, "watch"), "watch {res}");
    }
    for (group, res) in [("", "secrets"), ("", "configmaps"), ("", "services")] {
        for v in ["create", "patch", "delete", "list"] {
            assert!(grants(&rules, group, res, v), "{v} {res}");
        }
    }
    assert!(grants(&rules, "events.k8s.io", "events", "create"));
    assert!(grants(&rules, "coordination.k8s.io", "leases", "update"));
    // Kubernetes lets the operator grant the peers' Role only what it holds.
    let mut net = sorcha_operator::crd::SorchaNetwork::new(
        "alpha",
        serde_json::from_value(serde_json::json!({"image": "x"})).unwrap(),
    );
    net.metadata.namespace = Some("ledger".into());
    let net = sorcha_operator::resources::Net::new(&net, "cluster.local").unwrap();
    let peer_rule = &sorcha_operator::resources::peer_role(&net).rules.unwrap()[0];
    for res in peer_rule.resources.as_deref().unwrap() {
        for v in &peer_rule.verbs {
            assert!(
                grants(&rules, "sorcha.dev", res, v),
                "the operator cannot grant the peers {v} on {res}"
            );
        }
    }
    // And nothing cluster-wide beyond that: no wildcard anywhere.
    for r in &rules {
        for f in ["apiGroups", "resources", "verbs"] {
            assert!(!r[f].as_array().unwrap().iter().any(|x| x == "*"), "{r}");
        }
    }
}

#[test]
fn helm_test_hook_waits_for_a_small_tls_network_to_be_ready() {
    let Some(helm) = tool("helm") else { return };
    let docs = render_docs(&helm, &["--set", "test.image.tag=v1.33.0"]);
    let net = one(&docs, "SorchaNetwork");
    let pod = one(&docs, "Pod");
    for o in [net, pod] {
        assert_eq!(o["metadata"]["annotations"]["helm.sh/hook"], "test");
    }
    assert_eq!(net["spec"]["replicas"], 1);
    assert!(
        net["spec"].get("tls").is_none(),
        "TLS stays at the operator's default (on)"
    );
    assert_eq!(net["spec"]["image"], "ghcr.io/sorcha/sorcha-peer:0.1.0");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.k8s.io/kubectl:v1.33.0");
    let args: Vec<_> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--for=condition=Ready"), "{args:?}");
    let target = format!(
        "sorchanetwork/{}",
        net["metadata"]["name"].as_str().unwrap()
    );
    assert!(args.contains(&target.as_str()), "{args:?}");
}
