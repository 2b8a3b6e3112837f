//! The `sorcha-operator` binary end to end against the fake API server on
//! loopback: it checks the CRDs, takes the Lease, reconciles an existing
//! network, serves metrics, and stops cleanly on SIGTERM.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{FakeApi, GV, NS};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
         clusters: [{{name: fake, cluster: {{server: \"{server}\"}}}}]\n\
         users: [{{name: fake, user: {{}}}}]\n\
         contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: {NS}}}}}]\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_binary_reconciles_and_shuts_down_on_sigterm() {
    let fake = FakeApi::default();
    fake.put(
        GV,
        "sorchanetworks",
        Some(NS),
        json!({"apiVersion": GV, "kind": "SorchaNetwork",
               "metadata": {"name": "alpha", "namespace": NS},
               "spec": {"replicas": 2, "image": "ghcr.io/sorcha/sorcha-peer:0.1.0"}}),
    );
    let server = fake.serve_http().await;
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_sorcha-operator"))
        .args([
            "--metrics-addr",
            &metrics_addr,
            "--lease-namespace",
            "sorcha-system",
            "--identity",
            "op-0",
        ])
        .env("KUBECONFIG", kubeconfig(dir.path(), &server))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    wait_for("the StatefulSet", || {
        fake.get("apps/v1", "statefulsets", NS, "alpha").is_some()
    })
    .await;
    wait_for("the network's status", || {
        fake.get(GV, "sorchanetworks", NS, "alpha")
            .is_some_and(|n| n["status"]["observedGeneration"] == 1)
    })
    .await;
    let lease = fake
        .get(
            "coordination.k8s.io/v1",
            "leases",
            "sorcha-system",
            "sorcha-operator",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "op-0");
    let metrics = http_get(&metrics_addr, "/metrics")
        .await
        .expect("metrics served");
    assert!(
        metrics.contains("sorcha_operator_reconciles_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sorcha_operator_certificate_not_after_timestamp_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sorcha_operator_network_ready{namespace=\"ledger\",network=\"alpha\"}"),
        "{metrics}"
    );

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "operator did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_scoped_operator_reconciles_only_listed_namespaces() {
    let fake = FakeApi::default();
    for ns in [NS, "elsewhere"] {
        fake.put(
            GV,
            "sorchanetworks",
            Some(ns),
            json!({"apiVersion": GV, "kind": "SorchaNetwork",
                   "metadata": {"name": "alpha", "namespace": ns},
                   "spec": {"replicas": 1, "image": "ghcr.io/sorcha/sorcha-peer:0.1.0"}}),
        );
    }
    let server = fake.serve_http().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sorcha-operator"))
        .args(["--metrics-addr", "127.0.0.1:0", "--lease-name", ""])
        .args(["--namespaces", &format!("{NS},spare")])
        .env("KUBECONFIG", kubeconfig(dir.path(), &server))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_for("the listed namespace's status", || {
        fake.get(GV, "sorchanetworks", NS, "alpha")
            .is_some_and(|n| n["status"]["observedGeneration"] == 1)
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let writes = fake.take_writes();
    assert!(
        writes
            .iter()
            .any(|w| w.contains(&format!("/namespaces/{NS}/"))),
        "{writes:?}"
    );
    assert!(
        !writes.iter().any(|w| w.contains("/namespaces/elsewhere/")),
        "an unlisted namespace was written to: {writes:?}"
    );
    assert!(
        fake.get("apps/v1", "statefulsets", "elsewhere", "alpha")
            .is_none()
    );
}

#[test]
fn a_malformed_namespace_list_is_rejected_naming_the_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_sorcha-operator"))
        .args(["--namespaces", "ledger,Bad_Name"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--namespaces") && err.contains("Bad_Name"),
        "{err}"
    );
}
