//! Admin calls change a node: served to loopback callers when no token is
//! configured, and only with the bearer token when one is. (A non-loopback
//! caller without a token is refused by `security::admin`, unit-tested
//! there: tests talk only to loopback.)
mod common;

use std::time::Duration;

use common::{mk_config, mk_network, start};

const BIN: &str = env!("CARGO_BIN_EXE_sorcha-peer");

async fn call(method: reqwest::Method, url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_loopback_callers_may_remove_a_peer() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = mk_network(&dirs, |_| {}).await;
    let other = nodes[1].membership.id().to_owned();
    let base = nodes[0].url();
    let (status, body) = call(
        reqwest::Method::DELETE,
        &format!("{base}/api/v1/admin/peers/{other}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(nodes[0].membership.get(&other).is_none(), "removed");
    let (status, body) = call(
        reqwest::Method::DELETE,
        &format!("{base}/api/v1/admin/peers/nobody"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.contains("peer_id"), "{body}");
    let (status, body) = call(
        reqwest::Method::POST,
        &format!(
            "{base}/api/v1/admin/dead-letters/{}/requeue",
            "ab".repeat(32)
        ),
        None,
    )
    .await;
    assert_eq!(status, 404, "no such dead letter: {body}");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_file_only_the_token_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, "s3cret-admin-token-0123\n").unwrap();
    let mut cfg = mk_config(&dir.path().join("data"), &[]);
    cfg.security.admin_token_file = Some(token_file.clone());
    let node = start(cfg).await;
    let url = format!("{}/api/v1/admin/peers/nobody", node.url());
    let del = reqwest::Method::DELETE;
    let (status, body) = call(del.clone(), &url, None).await;
    assert_eq!(status, 401);
    assert!(body.contains("Bearer"), "{body}");
    assert_eq!(
        call(del.clone(), &url, Some("wrong-token-wrong-token"))
            .await
            .0,
        401
    );
    // Admitted: the answer is about the peer, not the caller.
    assert_eq!(
        call(del, &url, Some("s3cret-admin-token-0123")).await.0,
        404
    );
    let metrics = reqwest::get(format!("{}/metrics", node.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for reason in ["missing_token", "wrong_token"] {
        let line = format!("sorcha_admin_refusals_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    let refused = node
        .membership
        .events
        .recent(50)
        .iter()
        .filter(|e| e.message.contains("admin call DELETE"))
        .count();
    assert_eq!(refused, 2, "each refusal is an event");

    // The CLI sends the token from a file.
    let base = node.url();
    let token_arg = token_file.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(["admin", "--peer", &base, "--token-file", &token_arg])
            .args(["remove-peer", "nobody"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("404") && stderr.contains("nobody"),
        "{stderr}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_bad_token_file_stops_the_node_at_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("short");
    std::fs::write(&token_file, "short").unwrap();
    let mut cfg = mk_config(&dir.path().join("data"), &[]);
    cfg.security.admin_token_file = Some(token_file);
    let err = match tokio::time::timeout(Duration::from_secs(10), sorcha_peer::node::start(cfg))
        .await
        .unwrap()
    {
        Ok(_) => panic!("a 5-character token must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("AdminTokenFile") && err.contains("16"),
        "{err}"
    );
}
