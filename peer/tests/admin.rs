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

fn cli(args: Vec<String>) -> tokio::task::JoinHandle<std::process::Output> {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN).args(args).output().unwrap()
    })
}

async fn ban_call(url: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut req = reqwest::Client::new().put(url).body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_through_rest_and_cli_need_the_token_and_refuse_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    const TOKEN: &str = "s3cret-admin-token-0123";
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut cfg = mk_config(&dir.path().join("data"), &[]);
    cfg.security.admin_token_file = Some(token_file.clone());
    let node = start(cfg).await;
    let base = node.url();
    let bans = format!("{base}/api/v1/admin/bans");

    // Without the token: nothing.
    assert_eq!(call(reqwest::Method::GET, &bans, None).await.0, 401);
    assert_eq!(ban_call(&format!("{bans}/mallory"), None, "").await.0, 401);
    assert_eq!(
        call(reqwest::Method::DELETE, &format!("{bans}/mallory"), None)
            .await
            .0,
        401
    );

    // Bad input names the field.
    let (status, body) = ban_call(&format!("{bans}/bad%20id"), Some(TOKEN), "").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("peer_id") && body.contains("bad id"),
        "{body}"
    );
    let (status, body) =
        ban_call(&format!("{bans}/mallory"), Some(TOKEN), r#"{"minutes":0}"#).await;
    assert_eq!(status, 400);
    assert!(body.contains("minutes"), "{body}");
    let (status, body) = ban_call(&format!("{bans}/mallory"), Some(TOKEN), r#"{"hours":1}"#).await;
    assert_eq!(status, 400);
    assert!(body.contains("hours"), "{body}");

    // An unknown peer may be banned; the ban refuses it at once.
    let (status, body) = ban_call(
        &format!("{bans}/mallory"),
        Some(TOKEN),
        r#"{"minutes":5,"reason":"spam"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(reqwest::Method::GET, &bans, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["bans"][0]["peer_id"], "mallory");
    assert_eq!(v["bans"][0]["ban"]["reason"], "spam");
    assert_eq!(v["bans"][0]["ban"]["automatic"], false);
    assert!(v["bans"][0]["ban"]["remaining_seconds"].as_u64().unwrap() <= 300);
    let ping = format!("{base}/api/v1/peers/ping?peer_id=mallory");
    let r = reqwest::get(&ping).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("spam"));
    assert_eq!(node.membership.metrics.active_bans.get(), 1);

    // Unban; a second unban finds nothing.
    let del = format!("{bans}/mallory");
    assert_eq!(
        call(reqwest::Method::DELETE, &del, Some(TOKEN)).await.0,
        200
    );
    assert_eq!(reqwest::get(&ping).await.unwrap().status(), 200);
    let (status, body) = call(reqwest::Method::DELETE, &del, Some(TOKEN)).await;
    assert_eq!(status, 404);
    assert!(body.contains("not banned"), "{body}");
    let kinds: Vec<_> = node
        .membership
        .events
        .recent(100)
        .into_iter()
        .filter(|e| e.peer_id.as_deref() == Some("mallory"))
        .map(|e| e.kind)
        .collect();
    use sorcha_peer::events::EventKind::*;
    assert!(
        kinds.contains(&PeerBanned) && kinds.contains(&PeerUnbanned),
        "{kinds:?}"
    );

    // The CLI: refused without the token, works with it.
    let args = |extra: &[&str], token: bool| {
        let mut a = vec!["admin".to_string(), "--peer".into(), base.clone()];
        if token {
            a.extend(["--token-file".into(), token_file.display().to_string()]);
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let out = cli(args(&["ban", "trudy"], false)).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = cli(args(
        &["ban", "trudy", "--minutes", "2", "--reason", "probing"],
        true,
    ))
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(args(&["bans"], true)).await.unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("trudy") && listed.contains("probing"),
        "{listed}"
    );
    let out = cli(args(&["unban", "trudy"], true)).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(args(&["bans"], true)).await.unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("trudy"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_loopback_callers_may_ban_and_unban() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(mk_config(dir.path(), &[])).await;
    let bans = format!("{}/api/v1/admin/bans", node.url());
    // No minutes: until unbanned.
    let (status, body) = ban_call(&format!("{bans}/eve"), None, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"remaining_seconds\":null"), "{body}");
    let rep: serde_json::Value =
        reqwest::get(format!("{}/api/v1/peers/eve/reputation", node.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(rep["ban"]["automatic"], false, "{rep}");
    let r = reqwest::get(format!("{}/api/v1/peers/bad%20id/reputation", node.url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        call(reqwest::Method::DELETE, &format!("{bans}/eve"), None)
            .await
            .0,
        200
    );
    node.shutdown().await;
}
