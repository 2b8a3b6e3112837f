//! An acknowledged transaction survives `kill -9` before it was distributed.
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::fake::FakePeer;
use common::{free_port, mk_config, payload, start, wait_for};
use sorcha_peer::config::to_yaml;
use sorcha_peer::tx::store::hash_of;

const BIN: &str = env!("CARGO_BIN_EXE_sorcha-peer");

fn spawn_node(dir: &std::path::Path, port: u16, bootstrap: &str) -> std::process::Child {
    let mut cfg = mk_config(&dir.join("data"), &[bootstrap.to_owned()]);
    cfg.listen_port = port;
    cfg.peer_discovery.refresh_interval_minutes = Duration::from_secs(60);
    cfg.peer_discovery.peer_timeout_seconds = Duration::from_secs(2);
    cfg.transaction_distribution.anti_entropy_interval_seconds = Duration::from_millis(500);
    let path = dir.join("peer.yaml");
    std::fs::write(&path, to_yaml(&cfg)).unwrap();
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_online(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/api/v1/status")).send().await
            && let Ok(s) = r.json::<serde_json::Value>().await
            && s["state"] != "Offline"
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} never came online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_transaction_survives_kill_9_and_reaches_the_network() {
    // A peer that answers discovery but refuses every transaction call, so
    // the node is Online yet cannot distribute anything.
    let deaf = FakePeer::new("deaf", Duration::ZERO);
    let deaf_url = format!("http://127.0.0.1:{}", deaf.spawn().await);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_node(dir.path(), port, &deaf_url);
    wait_online(&base).await;

    let data = payload(42, 4000);
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/transactions"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "acknowledged");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["queued"], false, "stored for gossip, not queued");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let peer_dir = tempfile::tempdir().unwrap();
    let peer = start(mk_config(peer_dir.path(), &[])).await;
    let mut child = spawn_node(dir.path(), port, &peer.url());
    let hash = hash_of(&data);
    wait_for(
        "the transaction to reach the network after restart",
        Duration::from_secs(60),
        || peer.distributor.store.contains(&hash).unwrap(),
    )
    .await;
    assert_eq!(peer.distributor.get(&hash).unwrap().unwrap(), data);
    child.kill().unwrap();
    child.wait().unwrap();
    peer.shutdown().await;
}
