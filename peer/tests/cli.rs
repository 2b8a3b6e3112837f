//! The `sorcha-peer` binary as a user runs it.
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, mk_config, start, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_sorcha-peer");

fn sorcha(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("binary runs")
}

#[test]
fn run_rejects_an_invalid_config_naming_each_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.yaml");
    std::fs::write(
        &path,
        "PeerService:\n  ListenPort: 0\n  PeerDiscovery:\n    MaxConcurrentDiscoveries: 0\n    BootstrapNodes: [\"ftp://x\"]\n",
    )
    .unwrap();
    let out = sorcha(&["run", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for field in [
        "PeerService.ListenPort",
        "PeerService.PeerDiscovery.MaxConcurrentDiscoveries",
        "PeerService.PeerDiscovery.BootstrapNodes[0]",
    ] {
        assert!(err.contains(field), "{field} not named in:\n{err}");
    }
    assert!(
        !err.contains("stack backtrace"),
        "a user error is not a crash:\n{err}"
    );
}

#[test]
fn run_serves_until_sigterm_and_honours_env_overrides_and_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = dir.path().join("peer.yaml");
    std::fs::write(
        &path,
        format!(
            "PeerService:\n  ListenAddress: 127.0.0.1\n  DataDirectory: {}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config", path.to_str().unwrap()])
        .env("SORCHA__LISTENPORT", port.to_string())
        .env("SORCHA__NODEID", "node-from-env")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = sorcha_until_up(port);
    assert!(status.contains("node-from-env"), "{status}");
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let code = child.wait().unwrap();
    assert!(code.success(), "clean exit on SIGTERM: {code:?}");

    let out = Command::new(BIN)
        .args(["run", "--config", path.to_str().unwrap()])
        .env("SORCHA__ENABLED", "false")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Enabled is false"));
}

/// Polls `status --peer` until the node answers; returns its output.
fn sorcha_until_up(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        let out = sorcha(&["status", "--peer", &url]);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("node on {url} never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_peers_list_talk_to_a_running_node() {
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let boot = start(mk_config(d0.path(), &[])).await;
    let other = start(mk_config(d1.path(), &[boot.url()])).await;
    wait_for(
        "the bootstrap to know the other node",
        Duration::from_secs(10),
        || boot.membership.counts().0 == 1,
    )
    .await;
    let url = boot.url();
    let (status, list, json) = tokio::task::spawn_blocking(move || {
        (
            sorcha(&["status", "--peer", &url]),
            sorcha(&["peers", "list", "--peer", &url]),
            sorcha(&["status", "--peer", &url, "--json"]),
        )
    })
    .await
    .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains(boot.node_id()) && status.contains("Online"),
        "{status}"
    );
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains(other.node_id()) && list.contains("1 of 1 peers"),
        "{list}"
    );
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["known_peers"], 1);

    let out = sorcha(&[
        "status",
        "--peer",
        &format!("http://127.0.0.1:{}", free_port()),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
    other.shutdown().await;
    boot.shutdown().await;
}

/// Three consecutive free ports.
fn free_port_base() -> u16 {
    loop {
        let base = free_port();
        if base < 65000
            && (1..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
}

#[test]
fn devnet_starts_peers_prints_them_and_stops_cleanly() {
    let base = free_port_base();
    let out = sorcha(&[
        "devnet",
        "--peers",
        "3",
        "--port-base",
        &base.to_string(),
        "--duration",
        "3",
        "--refresh-seconds",
        "1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..3 {
        assert!(
            text.contains(&format!("http://127.0.0.1:{}", base + i)),
            "peer {i} line missing:\n{text}"
        );
    }
    assert!(text.contains("(bootstrap)"));
    let last_table: Vec<&str> = text.lines().rev().skip(1).take(3).collect();
    assert!(
        last_table
            .iter()
            .all(|l| l.contains("Online") && l.contains(" 2 ")),
        "final table:\n{text}"
    );
    assert!(text.contains("stopping 3 peers"));
    // Ports are free again.
    assert!(std::net::TcpListener::bind(("127.0.0.1", base)).is_ok());
}
