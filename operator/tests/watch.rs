//! The running controller (not single reconcile calls) against the fake
//! API server with real watch streams: once a network is settled, its
//! next reconcile is 5 minutes away, so everything below happens only
//! because a watch event triggered a reconcile — a spec change on the
//! SorchaNetwork, a deleted StatefulSet it owns, a status written to a
//! SorchaPeer it owns.
mod common;

use std::time::{Duration, Instant};

use common::{GV, Harness, NS};
use serde_json::{Value, json};
use sorcha_operator::controller::{RunConfig, run};

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        // Far below the controller's 300 s idle requeue.
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ready(h: &Harness) -> bool {
    h.condition("alpha", "Ready")["status"] == "True"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_trigger_reconciles() {
    let h = Harness::new();
    let spec = json!({"replicas": 2, "image": "ghcr.io/sorcha/sorcha-peer:0.1.0",
                      "tls": {"enabled": false}});
    h.put_network("alpha", spec.clone(), json!({}));
    let operator = tokio::spawn(run(
        h.fake.client(),
        RunConfig {
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            cluster_domain: "cluster.local".into(),
            lease: None,
            namespaces: Vec::new(),
        },
    ));

    // Settle: pods run, peers report Online, the network turns Ready.
    wait_for("the StatefulSet", || {
        h.get("apps/v1", "statefulsets", "alpha").is_some()
    })
    .await;
    h.run_statefulset("alpha");
    wait_for("both SorchaPeers", || {
        h.fake.list(GV, "sorchapeers").len() == 2
    })
    .await;
    h.report_all_online("alpha", 2);
    wait_for("Ready", || ready(&h)).await;

    // 1. A spec change on the network.
    let mut bigger = spec.clone();
    bigger["replicas"] = json!(3);
    h.put_network("alpha", bigger, json!({}));
    wait_for("the StatefulSet to scale to 3", || {
        h.sts("alpha")["spec"]["replicas"] == 3
    })
    .await;
    h.run_statefulset("alpha");
    wait_for("the third SorchaPeer", || {
        h.fake.list(GV, "sorchapeers").len() == 3
    })
    .await;
    h.report_all_online("alpha", 3);
    wait_for("Ready with 3 online", || {
        ready(&h) && network_status(&h)["peersOnline"] == 3
    })
    .await;

    // 2. An owned StatefulSet deleted behind the operator's back.
    assert!(h.fake.delete("apps/v1", "statefulsets", NS, "alpha"));
    wait_for("the StatefulSet to be recreated", || {
        h.get("apps/v1", "statefulsets", "alpha").is_some()
    })
    .await;
    h.run_statefulset("alpha");
    wait_for("Ready again", || ready(&h)).await;

    // 3. A peer's own status report on an owned SorchaPeer.
    h.report("alpha-1", json!({"phase": "Offline"}));
    wait_for("the network to count the Offline peer", || {
        network_status(&h)["peersOffline"] == 1
    })
    .await;
    operator.abort();
}

fn network_status(h: &Harness) -> Value {
    h.fake.get(GV, "sorchanetworks", NS, "alpha").unwrap()["status"].clone()
}
