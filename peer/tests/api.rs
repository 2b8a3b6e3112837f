//! The listener: design-generated gRPC client, REST fallback, malformed
//! input, health and metrics, all on one port.
mod common;

use std::time::Duration;

use common::{mk_config, start, wait_for};
use sorcha_proto::design::discovery as design;

fn design_peer(id: &str, port: i32) -> design::PeerInfo {
    design::PeerInfo {
        peer_id: id.into(),
        address: "127.0.0.2".into(),
        port,
        supported_protocols: vec!["grpc".into()],
        last_seen: 0,
        capabilities: Some(design::PeerCapabilities {
            supports_streaming: false,
            supports_transaction_distribution: true,
            max_transaction_size: 1024,
        }),
    }
}

#[tokio::test]
async fn a_client_generated_from_the_design_proto_text_talks_to_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(mk_config(dir.path(), &[])).await;
    let mut c = design::peer_discovery_client::PeerDiscoveryClient::connect(node.url())
        .await
        .unwrap();

    let pong = c
        .ping(design::PingRequest {
            peer_id: "outsider".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pong.peer_id, node.node_id());
    assert!(pong.timestamp > 0);
    assert_eq!(pong.status, design::PeerStatus::Offline as i32);

    let reg = c
        .register_peer(design::RegisterPeerRequest {
            peer_info: Some(design_peer("outsider", 9000)),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reg.success, "{}", reg.message);

    let list = c
        .get_peer_list(design::PeerListRequest {
            requesting_peer_id: "someone-else".into(),
            max_peers: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.total_peers, 1);
    assert_eq!(list.peers[0].peer_id, "outsider");
    assert_eq!(list.peers[0].port, 9000);
    assert!(
        list.peers[0]
            .capabilities
            .unwrap()
            .supports_transaction_distribution
    );

    // The registration made the node Online (MinHealthyPeers = 1).
    let pong = c
        .ping(design::PingRequest {
            peer_id: "outsider".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pong.status, design::PeerStatus::Online as i32);

    // Malformed requests get a status naming the field, not a crash.
    let err = c
        .register_peer(design::RegisterPeerRequest {
            peer_info: Some(design_peer("bad", 70000)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("peer_info.port"),
        "{}",
        err.message()
    );
    let err = c
        .register_peer(design::RegisterPeerRequest { peer_info: None })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = c
        .get_peer_list(design::PeerListRequest {
            requesting_peer_id: String::new(),
            max_peers: -1,
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("max_peers"), "{}", err.message());
    node.shutdown().await;
}

async fn json_of(req: reqwest::RequestBuilder) -> serde_json::Value {
    req.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn rest_fallback_serves_the_same_operations_on_the_same_port() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(mk_config(dir.path(), &[])).await;
    let base = node.url();
    let http = reqwest::Client::new();

    let body = serde_json::json!({"peer_info": {"peer_id": "rest-peer", "address": "127.0.0.3", "port": 9100}});
    let r = json_of(
        http.post(format!("{base}/api/v1/peers/register"))
            .json(&body),
    )
    .await;
    assert_eq!(r["success"], true, "{r}");

    let list = json_of(http.get(format!("{base}/api/v1/peers/list?max_peers=5"))).await;
    assert_eq!(list["total_peers"], 1);
    assert_eq!(list["peers"][0]["peer_id"], "rest-peer");

    let pong = json_of(http.get(format!("{base}/api/v1/peers/ping?peer_id=rest-peer"))).await;
    assert_eq!(pong["peer_id"], node.node_id());

    let status = json_of(http.get(format!("{base}/api/v1/status"))).await;
    assert_eq!(status["state"], "Online");
    assert_eq!(status["known_peers"], 1);

    // Malformed input: 4xx with a message naming the problem.
    for (req, needle) in [
        (
            http.post(format!("{base}/api/v1/peers/register"))
                .body("{not json")
                .header("content-type", "application/json"),
            "invalid JSON",
        ),
        (
            http.post(format!("{base}/api/v1/peers/register")).json(
                &serde_json::json!({"peer_info": {"peer_id": "x", "address": "a", "port": 0}}),
            ),
            "peer_info.port",
        ),
        (
            http.post(format!("{base}/api/v1/peers/register"))
                .json(&serde_json::json!({"peer_info": {"peer_id": 5}})),
            "peer_id",
        ),
        (
            http.get(format!("{base}/api/v1/peers/list?max_peers=lots")),
            "max_peers",
        ),
    ] {
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
        let text = resp.text().await.unwrap();
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    node.shutdown().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(mk_config(dir.path(), &[])).await;
    let base = node.url();
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    wait_for("readiness", Duration::from_secs(10), || {
        node.membership.is_ready()
    })
    .await;
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "sorcha_peers_known 0",
        "sorcha_peers_active 0",
        "sorcha_peer_service_status{state=\"Offline\"} 1",
        "sorcha_last_successful_discovery_timestamp_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    promtool_check(&text);
    node.shutdown().await;
}

/// `promtool check metrics` must find nothing to complain about. promtool is
/// installed by scripts/install-test-deps; under CI it must be there.
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool missing under CI=true: run scripts/install-test-deps"
        );
        eprintln!(
            "promtool not installed; run scripts/install-test-deps to check the exposition format"
        );
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}
