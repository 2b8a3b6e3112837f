//! The status reporter against a minimal in-process Kubernetes API server
//! (axum on 127.0.0.1) that records every request: the first status is
//! written (after one refused attempt, retried), an unchanged node writes
//! nothing more, and a peer joining is written again.
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sorcha_peer::config::SecurityConfig;
use sorcha_peer::k8s::{NodeView, Progress, Reporter, ReporterConfig};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use common::{mk_config, start, wait_for};

/// One request as the fake API server saw it.
#[derive(Debug)]
struct Recorded {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    content_type: String,
    body: Value,
}

#[derive(Clone)]
struct Fake {
    seen: mpsc::UnboundedSender<Recorded>,
    /// Requests still to refuse with a 500 before accepting.
    refuse: Arc<AtomicUsize>,
}

async fn handle(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut reply = body.clone();
    let _ = fake.seen.send(Recorded {
        method,
        path: uri.path().to_owned(),
        query,
        content_type,
        body,
    });
    let refused = fake
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refused {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "etcd is having a bad day",
            "reason": "InternalError", "code": 500});
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(status)).into_response();
    }
    // What a server returns after an apply: the object, server fields added.
    if let Some(meta) = reply.get_mut("metadata") {
        meta["namespace"] = json!("ledger");
        meta["uid"] = json!("sp-uid");
        meta["resourceVersion"] = json!("1");
    }
    (StatusCode::OK, axum::Json(reply)).into_response()
}

/// Serves the fake on an ephemeral loopback port; returns its URL and the
/// stream of recorded requests.
async fn fake_api(refuse_first: usize) -> (String, mpsc::UnboundedReceiver<Recorded>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let fake = Fake {
        seen: tx,
        refuse: Arc::new(AtomicUsize::new(refuse_first)),
    };
    let app = axum::Router::new().fallback(handle).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Recorded>, what: &str) -> Recorded {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("fake API server running")
}

async fn wait_progress(
    rx: &mut watch::Receiver<Progress>,
    what: &str,
    cond: impl Fn(&Progress) -> bool,
) -> Progress {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        rx.wait_for(|p| cond(p))
            .await
            .expect("reporter running")
            .clone()
    })
    .await;
    waited.unwrap_or_else(|_| panic!("timed out waiting for {what}; progress {:?}", *rx.borrow()))
}

#[tokio::test]
async fn reporter_writes_on_change_only() {
    let (url, mut requests) = fake_api(1).await;
    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();

    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = start(mk_config(dirs[0].path(), &[])).await;
    // The first discovery pass changes the Ready reason; let it finish so
    // the quiet phase below is really quiet.
    wait_for(
        "node A's first discovery pass",
        Duration::from_secs(10),
        || a.membership.is_ready(),
    )
    .await;

    let cfg = ReporterConfig {
        namespace: "ledger".into(),
        name: "alpha-0".into(),
        pod_uid: Some("pod-uid-a".into()),
        min_interval: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        resync: Duration::from_secs(3600),
    };
    let node = NodeView {
        membership: a.membership.clone(),
        distributor: a.distributor.clone(),
        security: SecurityConfig::default(),
    };
    let reporter = Reporter::new(client, cfg, node);
    let mut progress = reporter.subscribe();
    let stop = CancellationToken::new();
    let task = tokio::spawn(reporter.run(stop.clone()));

    // Refused once (HTTP 500), then retried with the same content.
    let refused = next(&mut requests, "the first status write").await;
    let first = next(&mut requests, "the retried status write").await;
    assert_eq!(refused.body, first.body);
    assert_eq!(first.method, Method::PATCH);
    assert_eq!(
        first.path,
        "/apis/sorcha.dev/v1alpha1/namespaces/ledger/sorchapeers/alpha-0/status"
    );
    assert!(
        first
            .query
            .contains(&("fieldManager".into(), "sorcha-peer".into())),
        "{:?}",
        first.query
    );
    assert!(first.query.contains(&("force".into(), "true".into())));
    assert_eq!(first.content_type, "application/apply-patch+yaml");
    assert_eq!(first.body["apiVersion"], "sorcha.dev/v1alpha1");
    assert_eq!(first.body["kind"], "SorchaPeer");
    assert_eq!(first.body["metadata"], json!({"name": "alpha-0"}));
    let s = &first.body["status"];
    assert_eq!(s["phase"], "Offline");
    assert_eq!(s["peerId"], a.node_id());
    assert_eq!(s["podUid"], "pod-uid-a");
    assert_eq!(
        (s["knownPeers"].as_i64(), s["activePeers"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(s["queueSize"], 0);
    assert_eq!(s["transactionsSeen"], 0);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["externalAddress"], "127.0.0.1");
    assert_eq!(s["conditions"][0]["type"], "Ready");
    assert_eq!(s["conditions"][0]["status"], "False");
    assert_eq!(s["conditions"][0]["reason"], "NoActivePeers");
    let p = wait_progress(&mut progress, "the accepted write", |p| p.writes == 1).await;
    assert_eq!(p.errors, 1);

    // Nothing changes: several more rounds, no request.
    let rounds = p.rounds;
    wait_progress(&mut progress, "five quiet rounds", |p| {
        p.rounds >= rounds + 5
    })
    .await;
    assert!(
        requests.try_recv().is_err(),
        "an unchanged status must not be written again"
    );
    assert_eq!(progress.borrow().writes, 1);

    // A peer joins (B bootstraps from A): the new counts are written.
    let b = start(mk_config(dirs[1].path(), &[a.url()])).await;
    let joined = loop {
        let r = next(&mut requests, "a status with the new peer").await;
        if r.body["status"]["knownPeers"] == 1 {
            break r;
        }
    };
    let s = &joined.body["status"];
    assert_eq!(s["activePeers"], 1);
    assert_eq!(s["phase"], "Online", "MinHealthyPeers is 1 in these tests");
    assert_eq!(s["conditions"][0]["status"], "True");
    assert_eq!(s["conditions"][0]["reason"], "Online");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the reporter stops with its cancellation token")
        .unwrap();
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test]
async fn reporter_stops_on_shutdown_while_the_api_is_down() {
    // Nothing listens here: every write fails and is retried with backoff.
    let port = common::free_port();
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = start(mk_config(dir.path(), &[])).await;
    let cfg = ReporterConfig {
        namespace: "ledger".into(),
        name: "alpha-0".into(),
        pod_uid: None,
        min_interval: Duration::from_millis(20),
        max_backoff: Duration::from_millis(80),
        resync: Duration::from_secs(3600),
    };
    let node = NodeView {
        membership: a.membership.clone(),
        distributor: a.distributor.clone(),
        security: SecurityConfig::default(),
    };
    let reporter = Reporter::new(client, cfg, node);
    let mut progress = reporter.subscribe();
    let stop = CancellationToken::new();
    let task = tokio::spawn(reporter.run(stop.clone()));
    let p = wait_progress(&mut progress, "three failed writes", |p| p.errors >= 3).await;
    assert_eq!(p.writes, 0);
    assert!(!task.is_finished(), "errors never end the reporter");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the reporter stops with its cancellation token")
        .unwrap();
    a.shutdown().await;
}

/// The real binary in a "pod": downward-API variables set, the API server
/// found through KUBECONFIG (the in-cluster config's fallback order is the
/// same `Client::try_default`). It reports on its own and exits cleanly on
/// SIGTERM.
#[tokio::test]
async fn node_in_a_pod_reports_its_status() {
    let (url, mut requests) = fake_api(0).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: \"{url}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: ledger}}}}]\n"
        ),
    )
    .unwrap();
    let config = dir.path().join("peer.yaml");
    std::fs::write(
        &config,
        format!(
            "PeerService:\n  ListenAddress: 127.0.0.1\n  DataDirectory: {}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sorcha-peer"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("SORCHA__LISTENPORT", common::free_port().to_string())
        .env("SORCHA__NODEID", "alpha-0")
        .env("POD_NAME", "alpha-0")
        .env("POD_NAMESPACE", "ledger")
        .env("POD_UID", "pod-uid-bin")
        .env("SORCHA_PEER_NAME", "alpha-0")
        .env("SORCHA_STATUS_INTERVAL", "100ms")
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let r = next(&mut requests, "the node's first status write").await;
    assert_eq!(r.method, Method::PATCH);
    assert_eq!(
        r.path,
        "/apis/sorcha.dev/v1alpha1/namespaces/ledger/sorchapeers/alpha-0/status"
    );
    assert!(
        r.query
            .contains(&("fieldManager".into(), "sorcha-peer".into()))
    );
    assert_eq!(r.body["status"]["peerId"], "alpha-0");
    assert_eq!(r.body["status"]["podUid"], "pod-uid-bin");

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let code = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the node exits after SIGTERM")
        .unwrap();
    assert!(code.success(), "clean exit on SIGTERM: {code:?}");
}
