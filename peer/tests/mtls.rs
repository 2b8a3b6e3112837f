//! Nodes with `Security.RequireMutualTLS`: a network over mutual TLS, the
//! handshake matrix against a running node's listener, rotation and
//! revocation on disk while traffic flows, and the plaintext path with its
//! connection-rate limit. Certificates are generated here (rcgen).
mod common;
mod security_support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{mk_config, start, wait_for};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use security_support::test_pki::{Ca, Leaf};
use security_support::{Logs, NodeFiles};
use sorcha_peer::config::PeerServiceConfig;
use sorcha_peer::events::EventKind;
use sorcha_peer::node::NodeHandle;
use sorcha_peer::security::PeerCertificate;

const LIMIT: Duration = Duration::from_secs(30);

fn mtls_config(data: &Path, files: &NodeFiles, bootstrap: &[String]) -> PeerServiceConfig {
    let mut cfg = mk_config(data, bootstrap);
    let limit = cfg.security.max_connections_per_minute;
    cfg.security = files.config();
    cfg.security.max_connections_per_minute = limit;
    cfg.security.reload_interval_seconds = Duration::from_millis(50);
    // A debug build on a busy machine needs more than the 250 ms of
    // `mk_config` for a TLS handshake now and then.
    cfg.communication.connection_timeout = Duration::from_secs(3);
    cfg.peer_discovery.peer_timeout_seconds = Duration::from_secs(3);
    cfg
}

/// A REST client presenting `leaf` and trusting `cas`.
fn https(root: &Path, name: &str, leaf: &Leaf, cas: &[&Ca]) -> reqwest::Client {
    let cfg = security_support::client_config(root, name, leaf, cas);
    reqwest::Client::builder()
        .use_preconfigured_tls((*cfg).clone())
        .no_proxy()
        .build()
        .unwrap()
}

/// What kubelet and Prometheus look like: TLS, no client certificate.
fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .build()
        .unwrap()
}

fn refusals(n: &NodeHandle, reason: &str) -> u64 {
    n.membership
        .metrics
        .tls_handshake_refusals
        .with_label_values(&[reason])
        .get()
}

fn reloads(n: &NodeHandle, part: &str) -> u64 {
    n.membership
        .metrics
        .tls_reloads
        .with_label_values(&[part, "applied"])
        .get()
}

/// Serial of the certificate a fresh handshake is served.
async fn served_serial(addr: SocketAddr, cfg: Arc<ClientConfig>) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap();
    let served = &tls.get_ref().1.peer_certificates().unwrap()[0];
    PeerCertificate::from_der(served).unwrap().serial
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_mtls_nodes_discover_each_other_and_gossip() {
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("network");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let files: Vec<_> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|id| NodeFiles::new(root.path(), id, &ca.leaf(id).issue(), &[&ca], ""))
        .collect();
    let boot = start(mtls_config(dirs[0].path(), &files[0], &[])).await;
    assert_eq!(
        boot.node_id(),
        "node-a",
        "the id comes from the certificate"
    );
    let url = boot.url();
    assert!(url.starts_with("https://"), "{url}");
    let mut nodes = vec![boot];
    for i in 1..3 {
        let cfg = mtls_config(dirs[i].path(), &files[i], std::slice::from_ref(&url));
        nodes.push(start(cfg).await);
    }
    wait_for("the mTLS network to converge", LIMIT, || {
        nodes.iter().all(|n| n.membership.counts() == (2, 2))
    })
    .await;
    let s = nodes[1]
        .distributor
        .submit(common::payload(7, 2048))
        .await
        .unwrap();
    assert!(!s.queued, "{s:?}");
    wait_for("every node to hold the transaction", LIMIT, || {
        nodes
            .iter()
            .all(|n| n.distributor.store.count().unwrap() == 1)
    })
    .await;
    for n in &nodes {
        assert_eq!(refusals(n, "no_client_certificate"), 0);
        assert_eq!(refusals(n, "unknown_ca"), 0);
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn handshake_matrix_against_a_running_node() {
    let (logs, _guard) = Logs::capture();
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let ca = Ca::new("network");
    let stranger_ca = Ca::new("stranger");
    let banned_by_serial = ca.leaf("good-name").serial(0xdead01).issue();
    let revoked = format!(
        "peer banned # leaked\nserial {}\n",
        banned_by_serial.serial_hex
    );
    let files = NodeFiles::new(
        root.path(),
        "a",
        &ca.leaf("node-a").issue(),
        &[&ca],
        &revoked,
    );
    let node = start(mtls_config(data.path(), &files, &[])).await;
    let base = node.url();
    let status = format!("{base}/api/v1/status");

    // A client that connects and never says a word holds only its own
    // handshake: everyone else is served meanwhile.
    let stalled = tokio::net::TcpStream::connect(node.local_addr)
        .await
        .unwrap();
    let valid = https(root.path(), "friend", &ca.leaf("friend").issue(), &[&ca]);
    let r = valid.get(&status).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["node_id"], "node-a");
    drop(stalled);

    // A valid certificate for "friend" claiming to be someone else.
    let r = valid
        .get(format!("{base}/api/v1/peers/ping?peer_id=impostor"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("peer_id_mismatch") && text.contains("impostor") && text.contains("friend"),
        "{text}"
    );
    let metrics = node.membership.metrics.render();
    assert!(
        metrics.contains("sorcha_peer_refusals_total{reason=\"peer_id_mismatch\"} 1"),
        "{metrics}"
    );
    let events = node.membership.events.recent(100);
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("peer_id_mismatch")),
        "the refusal is logged as an event: {events:?}"
    );
    let r = valid
        .get(format!("{base}/api/v1/peers/ping?peer_id=friend"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "its own id is fine");

    // No client certificate: the handshake completes, but only health and
    // metrics are served.
    let anon = anonymous();
    for path in ["/healthz", "/metrics"] {
        let r = anon.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = anon.get(&status).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("no_client_certificate"));
    let r = anon
        .post(format!("{base}/sorcha.peer.discovery.PeerDiscovery/Ping"))
        .header("content-type", "application/grpc")
        .body(vec![0u8; 5])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers().get("grpc-status").map(|v| v.to_str().unwrap()),
        Some("16"),
        "gRPC callers get UNAUTHENTICATED"
    );
    assert_eq!(refusals(&node, "no_client_certificate"), 2);

    // Refused in the handshake.
    let cases: [(&str, reqwest::Client); 5] = [
        (
            "unknown_ca",
            https(
                root.path(),
                "stranger",
                &stranger_ca.leaf("x").issue(),
                &[&ca],
            ),
        ),
        (
            "expired",
            https(
                root.path(),
                "old",
                &ca.leaf("old").expired().issue(),
                &[&ca],
            ),
        ),
        (
            "revoked",
            https(root.path(), "banned", &ca.leaf("banned").issue(), &[&ca]),
        ),
        (
            "revoked",
            https(root.path(), "by-serial", &banned_by_serial, &[&ca]),
        ),
        (
            "no_peer_id",
            https(
                root.path(),
                "nameless",
                &ca.leaf("n").no_peer_id().issue(),
                &[&ca],
            ),
        ),
    ];
    for (reason, client) in cases {
        let before = refusals(&node, reason);
        let r = client.get(&status).send().await;
        assert!(r.is_err(), "{reason}: {r:?}");
        wait_for(reason, LIMIT, || refusals(&node, reason) == before + 1).await;
    }

    // Plaintext HTTP to the TLS port.
    let plain = format!("http://{}/api/v1/status", node.local_addr);
    let r = reqwest::Client::new().get(&plain).send().await;
    assert!(r.is_err() || !r.unwrap().status().is_success());
    wait_for("not_tls", LIMIT, || refusals(&node, "not_tls") == 1).await;

    let text = logs.text();
    for reason in [
        "no_client_certificate",
        "unknown_ca",
        "expired",
        "revoked",
        "no_peer_id",
        "not_tls",
    ] {
        assert!(
            text.contains(&format!("reason=\"{reason}\"")),
            "{reason}:\n{text}"
        );
    }
    assert!(text.contains("leaked"), "the revocation reason is logged");
    let metrics = anon.get(format!("{base}/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("sorcha_tls_handshake_refusals_total{reason=\"revoked\"} 2"),
        "{metrics}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_on_disk_during_traffic_breaks_nothing() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old");
    let new_ca = Ca::new("new");
    let first = old_ca.leaf("node-a").issue();
    let files = NodeFiles::new(root.path(), "a", &first, &[&old_ca], "");
    let node = start(mtls_config(data.path(), &files, &[])).await;
    let status = format!("{}/api/v1/status", node.url());
    let both = [&old_ca, &new_ca];
    let friend = old_ca.leaf("friend").issue();
    let probe_cfg = security_support::client_config(root.path(), "probe", &friend, &both);
    assert_eq!(
        served_serial(node.local_addr, probe_cfg.clone()).await,
        first.serial_hex
    );

    // Continuous traffic: one pooled connection that lives through the
    // rotation, and a fresh connection every few requests.
    let pooled = https(root.path(), "pooled", &friend, &both);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let traffic = tokio::spawn({
        let (stop, done, status) = (stop.clone(), done.clone(), status.clone());
        let fresh_cfg = (*probe_cfg).clone();
        async move {
            let mut failures = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let client = if i % 4 == 3 {
                    reqwest::Client::builder()
                        .use_preconfigured_tls(fresh_cfg.clone())
                        .no_proxy()
                        .build()
                        .unwrap()
                } else {
                    pooled.clone()
                };
                match client.get(&status).send().await {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failures.push(format!("request {i}: {}", r.status())),
                    Err(e) => failures.push(format!("request {i}: {e}")),
                }
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }
    });
    let at_least = |n: usize| {
        let done = done.clone();
        move || done.load(Ordering::Relaxed) >= n
    };
    wait_for("traffic before rotation", LIMIT, at_least(20)).await;

    // Step 1 of a CA rotation: trust old and new.
    files.set_trust(&both);
    wait_for("the trust bundle reload", LIMIT, || {
        reloads(&node, "trust_bundle") == 1
    })
    .await;
    let newcomer = https(
        root.path(),
        "newcomer",
        &new_ca.leaf("new-peer").issue(),
        &both,
    );
    assert_eq!(newcomer.get(&status).send().await.unwrap().status(), 200);

    // Step 2: a certificate from the new CA.
    let second = new_ca.leaf("node-a").issue();
    files.set_identity(&second);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while served_serial(node.local_addr, probe_cfg.clone()).await != second.serial_hex {
        assert!(
            tokio::time::Instant::now() < deadline,
            "new certificate not served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = done.load(Ordering::Relaxed);
    wait_for("traffic after rotation", LIMIT, at_least(seen + 20)).await;
    stop.store(true, Ordering::Relaxed);
    let failures = traffic.await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let events = node.membership.events.recent(1000);
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::TlsReloaded && e.message.contains("certificate")),
        "{events:?}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_peer_revoked_at_runtime_is_refused_on_its_next_handshake() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let ca = Ca::new("network");
    let files = NodeFiles::new(root.path(), "a", &ca.leaf("node-a").issue(), &[&ca], "");
    let node = start(mtls_config(data.path(), &files, &[])).await;
    let status = format!("{}/api/v1/status", node.url());
    let friend = ca.leaf("friend").issue();
    let pooled = https(root.path(), "pooled", &friend, &[&ca]);
    assert_eq!(pooled.get(&status).send().await.unwrap().status(), 200);

    std::fs::write(files.dir.join("revoked.txt"), "peer friend # misbehaved\n").unwrap();
    wait_for("the revocation list reload", LIMIT, || {
        reloads(&node, "revocation_list") == 1
    })
    .await;
    let fresh = https(root.path(), "fresh", &friend, &[&ca]);
    assert!(fresh.get(&status).send().await.is_err());
    wait_for("the refused handshake", LIMIT, || {
        refusals(&node, "revoked") == 1
    })
    .await;
    // Its established connection stays open but serves it nothing more.
    let r = pooled.get(&status).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("misbehaved"));
    assert_eq!(refusals(&node, "revoked"), 2);
    node.shutdown().await;
}

#[tokio::test]
async fn plaintext_node_serves_http_and_limits_connections_per_source() {
    let (logs, _guard) = Logs::capture();
    let data = tempfile::tempdir().unwrap();
    let mut cfg = mk_config(data.path(), &[]);
    cfg.security.max_connections_per_minute = 3;
    let node = start(cfg).await;
    let url = format!("{}/healthz", node.url());
    assert!(url.starts_with("http://"), "{url}");
    for i in 0..3 {
        // A new client per request: a new connection each time.
        let r = reqwest::Client::new().get(&url).send().await;
        assert_eq!(r.unwrap().status(), 200, "connection {i}");
    }
    assert!(reqwest::Client::new().get(&url).send().await.is_err());
    let refused = node
        .membership
        .metrics
        .connections_refused
        .with_label_values(&["rate_limit"])
        .get();
    assert_eq!(refused, 1);
    assert!(
        logs.text().contains("reason=\"rate_limit\""),
        "{}",
        logs.text()
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reaches_an_mtls_node_with_cert_key_and_ca() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let ca = Ca::new("network");
    let files = NodeFiles::new(root.path(), "a", &ca.leaf("node-a").issue(), &[&ca], "");
    let node = start(mtls_config(data.path(), &files, &[])).await;
    let operator = NodeFiles::new(root.path(), "cli", &ca.leaf("operator").issue(), &[&ca], "");
    let tx = root.path().join("tx.bin");
    std::fs::write(&tx, b"submitted over mutual TLS").unwrap();
    let sorcha = |args: Vec<String>| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_sorcha-peer"))
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .await
            .unwrap()
    };
    let path = |p: &str| operator.dir.join(p).display().to_string();
    let url = node.url();
    let submit = |extra: &[String]| {
        let mut a: Vec<String> = ["tx", "submit", "--peer", &url].map(String::from).to_vec();
        a.extend_from_slice(extra);
        a.push(tx.display().to_string());
        a
    };

    // Without options the CLI cannot even trust the node's certificate;
    // with a CA but no certificate it is told what is missing.
    let without = sorcha(submit(&[])).await;
    assert!(!without.status.success());
    let err = String::from_utf8_lossy(&without.stderr);
    assert!(err.contains("certificate"), "{err}");
    let ca_only = sorcha(submit(&["--ca".into(), path("ca.pem")])).await;
    let err = String::from_utf8_lossy(&ca_only.stderr);
    assert!(err.contains("--ca needs --cert"), "{err}");

    let with = sorcha(submit(&[
        "--cert".into(),
        path("tls.crt"),
        "--ca".into(),
        path("ca.pem"),
    ]))
    .await;
    let out = String::from_utf8_lossy(&with.stdout);
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    // A lone node counts itself offline and queues the transaction.
    let hash = out.split_whitespace().next().unwrap_or_default();
    assert_eq!(hash.len(), 64, "a SHA-256 hash: {out}");

    // Admin through the same options (the key given explicitly this time).
    let admin = sorcha(vec![
        "admin".into(),
        "--peer".into(),
        url.clone(),
        "--cert".into(),
        path("tls.crt"),
        "--key".into(),
        path("tls.key"),
        "--ca".into(),
        path("ca.pem"),
        "remove-peer".into(),
        "nobody".into(),
    ])
    .await;
    let err = String::from_utf8_lossy(&admin.stderr);
    assert!(
        !err.contains("401"),
        "TLS accepted, the admin API answered: {err}"
    );
    assert!(admin.status.success() || err.contains("404"), "{err}");
    node.shutdown().await;
}

#[tokio::test]
async fn node_id_must_be_the_certificates_peer_id() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let ca = Ca::new("network");
    let files = NodeFiles::new(root.path(), "a", &ca.leaf("node-a").issue(), &[&ca], "");
    let mut cfg = mtls_config(data.path(), &files, &[]);
    cfg.node_id = Some("someone-else".into());
    let err = sorcha_peer::node::start(cfg).await.err().expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("PeerService.NodeId") && text.contains("node-a"),
        "{text}"
    );
    let nameless = NodeFiles::new(
        root.path(),
        "b",
        &ca.leaf("x").no_peer_id().issue(),
        &[&ca],
        "",
    );
    let data = tempfile::tempdir().unwrap();
    let err = sorcha_peer::node::start(mtls_config(data.path(), &nameless, &[]))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("CertificatePath"), "{err}");
}
