//! A standalone SorchaPeer runs as a one-replica network that it owns, and
//! its pod reports to the SorchaPeer itself.
mod common;

use std::sync::Arc;

use common::{GV, Harness, NS};
use serde_json::{Value, json};
use sorcha_operator::controller::reconcile_peer;
use sorcha_operator::crd::SorchaPeer;

fn put_peer(h: &Harness, name: &str, spec: Value) {
    h.fake.put(
        GV,
        "sorchapeers",
        Some(NS),
        json!({
            "apiVersion": GV, "kind": "SorchaPeer",
            "metadata": {"name": name, "namespace": NS}, "spec": spec,
        }),
    );
}

fn peer(h: &Harness, name: &str) -> Arc<SorchaPeer> {
    Arc::new(serde_json::from_value(h.get(GV, "sorchapeers", name).unwrap()).unwrap())
}

fn standalone_spec() -> Value {
    json!({"standalone": {"replicas": 1, "image": "ghcr.io/sorcha/sorcha-peer:0.1.0",
                          "bootstrap": {"externalNodes": ["http://10.0.0.1:5001"]}}})
}

#[tokio::test]
async fn standalone_peer_runs_as_its_own_one_replica_network() {
    let h = Harness::new();
    put_peer(&h, "solo", standalone_spec());
    reconcile_peer(peer(&h, "solo"), h.ctx.clone())
        .await
        .unwrap();
    let net = h
        .get(GV, "sorchanetworks", "solo")
        .expect("network created");
    let peer_uid = h.get(GV, "sorchapeers", "solo").unwrap()["metadata"]["uid"].clone();
    assert_eq!(net["metadata"]["ownerReferences"][0]["uid"], peer_uid);
    assert_eq!(net["metadata"]["ownerReferences"][0]["kind"], "SorchaPeer");

    h.reconcile("solo").await;
    let sts = h.sts("solo");
    assert_eq!(sts["spec"]["replicas"], 1);
    let env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let peer_name = env
        .iter()
        .find(|e| e["name"] == "SORCHA_PEER_NAME")
        .unwrap();
    assert_eq!(peer_name["value"], "solo");
    assert!(
        h.get(GV, "sorchapeers", "solo-0").is_none(),
        "no child SorchaPeer for a standalone peer"
    );
    let role = h
        .get("rbac.authorization.k8s.io/v1", "roles", "solo-peer")
        .unwrap();
    assert_eq!(role["rules"][0]["resourceNames"], json!(["solo"]));

    h.run_statefulset("solo");
    h.report("solo", json!({"phase": "Online"}));
    h.reconcile("solo").await;
    assert_eq!(h.condition("solo", "Ready")["status"], "True");
    assert_eq!(h.network("solo").status.unwrap().peers_online, 1);

    // Steady: the peer reconcile writes nothing more.
    h.fake.take_writes();
    reconcile_peer(peer(&h, "solo"), h.ctx.clone())
        .await
        .unwrap();
    assert_eq!(h.fake.take_writes(), Vec::<String>::new());
}

#[tokio::test]
async fn standalone_name_taken_by_another_network_is_reported() {
    let h = Harness::new();
    h.put_network("solo", json!({"replicas": 2, "image": "x:1"}), json!({}));
    put_peer(&h, "solo", standalone_spec());
    h.fake.take_writes();
    let err = reconcile_peer(peer(&h, "solo"), h.ctx.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(
        h.fake.take_writes(),
        Vec::<String>::new(),
        "the other network is untouched"
    );
    assert!(h.event_reasons().contains(&"NameConflict".to_owned()));
}

#[tokio::test]
async fn network_children_need_no_peer_reconcile() {
    let h = Harness::new();
    h.put_network("alpha", json!({"replicas": 1, "image": "x:1"}), json!({}));
    h.reconcile("alpha").await;
    h.fake.take_writes();
    reconcile_peer(peer(&h, "alpha-0"), h.ctx.clone())
        .await
        .unwrap();
    assert_eq!(h.fake.take_writes(), Vec::<String>::new());
}
