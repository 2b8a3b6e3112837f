//! `examples/` cannot rot: the peer config loads with the peer's own loader
//! (and so do its commented-out public entries once uncommented), the
//! custom resources deserialize into the operator's types, validate against
//! the generated CRD schemas, and the sidecar reaches the volumes the
//! operator gives the pod.
mod tools;

use std::path::PathBuf;

use serde_json::Value;
use sorcha_operator::crd::{SorchaNetwork, SorchaPeer};
use sorcha_operator::resources::{self, Net};
use tools::{check_custom_resources, cr_case, kubernetes_validate, repo_root, tool, yaml_docs};

fn example(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(example(name)).unwrap_or_else(|e| panic!("examples/{name}: {e}"))
}

/// The public entries, uncommented in place of the empty lists.
fn opted_in(text: &str) -> String {
    let opt_in_keys = ["StunServers", "HttpLookupServices", "BootstrapNodes"];
    let mut out = Vec::new();
    let mut in_commented_list = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if opt_in_keys.iter().any(|k| trimmed == format!("{k}: []")) {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('#') {
            if opt_in_keys.iter().any(|k| rest == format!("{k}:")) {
                in_commented_list = true;
                out.push(format!("{indent}{rest}"));
                continue;
            }
            if in_commented_list && rest.trim_start().starts_with("- ") {
                out.push(format!("{indent}{rest}"));
                continue;
            }
        }
        in_commented_list = false;
        out.push(line.to_owned());
    }
    out.join("\n")
}

#[test]
fn peer_config_loads_with_the_peers_loader_and_contacts_no_public_host() {
    let text = read("peer.yaml");
    let cfg = sorcha_peer::config::load_from(Some(&text), &[])
        .unwrap_or_else(|e| panic!("examples/peer.yaml: {e}"));
    assert_eq!(cfg.listen_port, 5001);
    assert!(cfg.network_address.stun_servers.is_empty());
    assert!(cfg.network_address.http_lookup_services.is_empty());
    assert!(cfg.peer_discovery.bootstrap_nodes.is_empty());

    let opted = opted_in(&text);
    let cfg = sorcha_peer::config::load_from(Some(&opted), &[])
        .unwrap_or_else(|e| panic!("examples/peer.yaml with the public entries: {e}\n{opted}"));
    assert!(
        cfg.network_address
            .stun_servers
            .contains(&"stun.l.google.com:19302".to_owned()),
        "{:?}",
        cfg.network_address.stun_servers
    );
    assert_eq!(
        cfg.network_address.http_lookup_services,
        ["https://api.ipify.org"]
    );
    assert_eq!(
        cfg.peer_discovery.bootstrap_nodes[0],
        "https://peer.sorcha.dev:5001"
    );
}

const CUSTOM: [&str; 3] = [
    "network-3-peers.yaml",
    "standalone-peer.yaml",
    "sidecar.yaml",
];

fn docs(name: &str) -> Vec<Value> {
    yaml_docs(&read(name))
}

fn network(name: &str) -> SorchaNetwork {
    let mut n: SorchaNetwork = serde_json::from_value(docs(name)[0].clone())
        .unwrap_or_else(|e| panic!("examples/{name}: {e}"));
    n.metadata.namespace = Some("default".into());
    n
}

#[test]
fn example_resources_deserialize_and_build() {
    let three = network("network-3-peers.yaml");
    assert_eq!(three.spec.replicas, 3);
    assert!(three.spec.tls.enabled);
    let net = Net::new(&three, "cluster.local").unwrap();
    resources::config_map(&net).expect("the peer configuration renders");

    let peer: SorchaPeer = serde_json::from_value(docs("standalone-peer.yaml")[0].clone()).unwrap();
    let spec = peer.spec.standalone.as_ref().expect("a standalone peer");
    assert_eq!(spec.replicas, 1);

    let shop = network("sidecar.yaml");
    let net = Net::new(&shop, "cluster.local").unwrap();
    let sts = serde_json::to_value(resources::statefulset(&net, "0", 0)).unwrap();
    let pod = &sts["spec"]["template"]["spec"];
    let app = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "app")
        .expect("the sidecar is in the pod");
    let volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    let peer_container = &pod["containers"][0];
    for m in app["volumeMounts"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        assert!(
            volumes.contains(&name),
            "the sidecar mounts {name}, which the pod lacks"
        );
        let peer_path = peer_container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|pm| pm["name"] == name)
            .map(|pm| pm["mountPath"].clone());
        assert_eq!(
            peer_path.as_ref(),
            Some(&m["mountPath"]),
            "the sidecar sees {name} where the peer does"
        );
    }
    let script = app["args"][0].as_str().unwrap();
    let headless = net.headless_name();
    assert!(
        script.contains("127.0.0.1") && app["env"].to_string().contains(&headless),
        "the sidecar talks to its own peer under the name its certificate carries ({headless})"
    );
}

#[test]
fn example_resources_validate_against_the_crds_and_kubernetes_1_33() {
    let cases: Vec<Value> = CUSTOM
        .iter()
        .flat_map(|f| docs(f).into_iter().map(move |d| (f, d)))
        .map(|(f, d)| cr_case(&d, f).unwrap_or_else(|| panic!("{f}: a sorcha.dev resource")))
        .collect();
    if !check_custom_resources(&cases) {
        return;
    }
    let Some(kv) = tool("kubernetes-validate") else {
        return;
    };
    let files: Vec<PathBuf> = CUSTOM.iter().map(|f| example(f)).collect();
    kubernetes_validate(&kv, &files, &["SorchaNetwork", "SorchaPeer"]);
}
