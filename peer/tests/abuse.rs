//! Abuse limits, reputation bans and capabilities on plaintext loopback
//! nodes (peer ids are claimed; the certificate-backed identity is tested
//! at the policy level, `security::policy` and `api::guard`).
mod common;

use std::time::Duration;

use common::{mk_config, mk_network, payload, start, wait_for, wait_for_or};
use sorcha_peer::config::{PeerRole, PeerServiceConfig};
use sorcha_peer::node::NodeHandle;
use sorcha_peer::tx::store::{hash_of, to_hex};
use sorcha_proto::discovery::peer_discovery_client::PeerDiscoveryClient;
use sorcha_proto::discovery::{PingRequest, RegisterPeerRequest};
use sorcha_proto::transaction::transaction_distribution_client::TransactionDistributionClient;
use sorcha_proto::transaction::{
    CompactNotification, NotificationBatch, SubmitTransactionRequest, TransactionPush,
    TransactionRequest,
};
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(60);

/// Quiet discovery, so honest traffic stays far below the small limits.
fn quiet(cfg: &mut PeerServiceConfig) {
    cfg.peer_discovery.refresh_interval_minutes = Duration::from_secs(5);
    cfg.peer_discovery.peer_timeout_seconds = Duration::from_secs(2);
}

fn refusals(n: &NodeHandle, reason: &str) -> u64 {
    n.membership
        .metrics
        .peer_refusals
        .with_label_values(&[reason])
        .get()
}

async fn tx_client(n: &NodeHandle) -> TransactionDistributionClient<tonic::transport::Channel> {
    TransactionDistributionClient::connect(n.url())
        .await
        .unwrap()
}

fn empty_batch(sender: &str) -> NotificationBatch {
    NotificationBatch {
        sender_peer_id: sender.into(),
        notifications: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_throttled_then_banned_while_honest_peers_keep_gossiping() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = mk_network(&dirs, |c| {
        quiet(c);
        c.security.max_requests_per_minute = 60;
        c.security.ban_duration_minutes = Duration::from_secs(3);
    })
    .await;
    let target = &nodes[0];
    // The flood: as fast as the node answers, far over ten times the
    // allowance of one request per second, until the node bans the flooder.
    let mut c = tx_client(target).await;
    let flood = tokio::spawn(async move {
        let (mut ok, mut throttled, mut retry_after) = (0, 0, None);
        for _ in 0..100_000 {
            match c.notify_transactions(empty_batch("flooder")).await {
                Ok(_) => ok += 1,
                Err(s) if s.code() == Code::ResourceExhausted => {
                    throttled += 1;
                    retry_after = retry_after.or(s.metadata().get("retry-after").cloned());
                }
                Err(s) => return (ok, throttled, retry_after, s),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never banned");
    });
    // Meanwhile an honest submission reaches every node, the flooded one too.
    let data = payload(7, 3000);
    let hash = hash_of(&data);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/transactions", nodes[1].url()))
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    wait_for("honest gossip during the flood", LIMIT, || {
        nodes
            .iter()
            .all(|n| n.distributor.store.contains(&hash).unwrap())
    })
    .await;

    let (ok, throttled, retry_after, ended) = flood.await.unwrap();
    // The burst allowance, then about one a second as the bucket refills.
    assert!((60..200).contains(&ok), "{ok} served");
    assert!(throttled > 0);
    let secs: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "retry-after {secs}");
    assert_eq!(ended.code(), Code::PermissionDenied, "{ended:?}");
    assert!(
        ended
            .message()
            .starts_with("banned: peer flooder is banned"),
        "{}",
        ended.message()
    );
    assert!(refusals(target, "requests") >= throttled);
    assert!(refusals(target, "banned") >= 1);
    let metrics = &target.membership.metrics;
    assert_eq!(metrics.peer_bans.get(), 1);

    // Visible to the operator: admin bans, the reputation, metrics, events.
    let base = target.url();
    let bans: serde_json::Value = reqwest::get(format!("{base}/api/v1/admin/bans"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = &bans["bans"][0];
    assert_eq!(listed["peer_id"], "flooder", "{bans}");
    assert_eq!(listed["ban"]["automatic"], true);
    assert!(listed["limit_violations"].as_u64().unwrap() > 0);
    let rep: serde_json::Value = reqwest::get(format!("{base}/api/v1/peers/flooder/reputation"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(rep["score"].as_f64().unwrap() < 10.0, "{rep}");
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sorcha_peer_refusals_total{reason=\"banned\"}",
        "sorcha_peer_refusals_total{reason=\"requests\"}",
        "sorcha_peer_bans_total 1",
        "sorcha_peer_active_bans 1",
    ] {
        assert!(text.contains(line), "{line} in /metrics");
    }
    let events = target.membership.events.recent(1000);
    let kinds = |k: sorcha_peer::events::EventKind| {
        events
            .iter()
            .filter(|e| e.kind == k && e.peer_id.as_deref() == Some("flooder"))
            .count()
    };
    assert_eq!(kinds(sorcha_peer::events::EventKind::PeerBanned), 1);
    let refused = kinds(sorcha_peer::events::EventKind::PeerRefused) as u64;
    assert!(
        refused >= 1 && refused < refusals(target, "requests"),
        "refusal events are rate-limited: {refused}"
    );

    // Other peers are served; the ban expires (BanDurationMinutes = 3s).
    let mut c = tx_client(target).await;
    c.notify_transactions(empty_batch(nodes[1].node_id()))
        .await
        .unwrap();
    let mut back = false;
    let started = std::time::Instant::now();
    while !back {
        assert!(started.elapsed() < LIMIT, "the ban never expired");
        tokio::time::sleep(Duration::from_millis(250)).await;
        back = c.notify_transactions(empty_batch("flooder")).await.is_ok();
    }
    target.membership.metrics.active_bans.set(-1);
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("sorcha_peer_active_bans 0"),
        "refreshed on scrape"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_callers_over_their_limit_get_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = mk_config(dir.path(), &[]);
    quiet(&mut cfg);
    cfg.security.max_requests_per_minute = 5;
    let node = start(cfg).await;
    let url = format!("{}/api/v1/peers/list?requesting_peer_id=greedy", node.url());
    for _ in 0..5 {
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    }
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry), "{retry}");
    let body = r.text().await.unwrap();
    assert!(body.contains("requests limit of 5/min"), "{body}");
    // Request sizes are capped per endpoint: a notification is tiny.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/transactions/notify", node.url()))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"sender_peer_id\": \"{}\"}}",
            "x".repeat(100_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // The local application (anonymous, loopback) is not a peer: no limit.
    for i in 0..10 {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/transactions", node.url()))
            .body(payload(100 + i, 100))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    node.shutdown().await;
}

/// A full bootstrap, a full peer and a read-only peer.
async fn network_with_a_read_only_peer(dirs: &[tempfile::TempDir]) -> Vec<NodeHandle> {
    let mut cfg = mk_config(dirs[0].path(), &[]);
    quiet(&mut cfg);
    cfg.role = PeerRole::Bootstrap;
    let boot = start(cfg).await;
    let url = boot.url();
    let mut nodes = vec![boot];
    for (i, role) in [(1, PeerRole::Full), (2, PeerRole::ReadOnly)] {
        let mut cfg = mk_config(dirs[i].path(), std::slice::from_ref(&url));
        quiet(&mut cfg);
        cfg.role = role;
        nodes.push(start(cfg).await);
    }
    let ro = nodes[2].node_id().to_owned();
    wait_for_or(
        "the network to converge and learn the read-only peer",
        LIMIT,
        || {
            nodes.iter().all(|n| n.membership.counts() == (2, 2))
                && nodes[..2].iter().all(|n| {
                    n.membership
                        .get(&ro)
                        .is_some_and(|p| !p.capabilities.supports_transaction_distribution)
                })
        },
        || {
            format!(
                "{:?}",
                nodes
                    .iter()
                    .map(|n| n.membership.counts())
                    .collect::<Vec<_>>()
            )
        },
    )
    .await;
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_peer_cannot_inject_transactions_but_can_fetch() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = network_with_a_read_only_peer(&dirs).await;
    let (full, ro) = (&nodes[0], &nodes[2]);
    let ro_id = ro.node_id().to_owned();
    let http = reqwest::Client::new();

    // The read-only node refuses local submissions, over REST and gRPC.
    let injected = payload(1, 500);
    let injected_hash = hash_of(&injected);
    let r = http
        .post(format!("{}/api/v1/transactions", ro.url()))
        .body(injected.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("read_only"));
    let e = tx_client(ro)
        .await
        .submit_transaction(SubmitTransactionRequest {
            transaction_data: injected.clone().into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // Its pushes and announcements to full peers are refused.
    let mut c = tx_client(full).await;
    let e = c
        .push_transaction(TransactionPush {
            sender_peer_id: ro_id.clone(),
            transaction_data: injected.clone().into(),
            round: 1,
            compressible: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().starts_with("read_only:"), "{}", e.message());
    let note = CompactNotification {
        hash: injected_hash.to_vec(),
        size: injected.len() as i64,
        round: 1,
        compressible: false,
        lazy: false,
    };
    let e = c
        .notify_transactions(NotificationBatch {
            sender_peer_id: ro_id.clone(),
            notifications: vec![note],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let r = http
        .post(format!("{}/api/v1/transactions/notify", full.url()))
        .json(&serde_json::json!({
            "transaction_hash": to_hex(&injected_hash),
            "sender_peer_id": ro_id,
            "transaction_size": injected.len(),
            "round": 1,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(refusals(full, "read_only") >= 3);

    // Honest traffic still reaches everyone, the read-only peer included,
    // which does not pass it on.
    let honest = payload(2, 800);
    let honest_hash = hash_of(&honest);
    let r = http
        .post(format!("{}/api/v1/transactions", nodes[1].url()))
        .body(honest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    wait_for("the honest transaction everywhere", LIMIT, || {
        nodes
            .iter()
            .all(|n| n.distributor.store.contains(&honest_hash).unwrap())
    })
    .await;
    for n in &nodes {
        assert!(
            !n.distributor.store.contains(&injected_hash).unwrap(),
            "the injected transaction did not spread"
        );
    }
    assert_eq!(ro.membership.metrics.announcements_sent.get(), 0);
    assert_eq!(ro.membership.metrics.gossip_rounds.get(), 0);

    // It may still fetch.
    let got = c
        .get_transaction(TransactionRequest {
            transaction_hash: to_hex(&honest_hash),
            requesting_peer_id: ro_id.clone(),
            graft: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.found);
    assert_eq!(got.transaction_data, honest);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bootstrap_nodes_accept_registrations() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = network_with_a_read_only_peer(&dirs).await;
    let register = |id: &str| RegisterPeerRequest {
        peer_info: Some(sorcha_proto::discovery::PeerInfo {
            peer_id: id.into(),
            address: "127.0.0.1".into(),
            port: 1,
            ..Default::default()
        }),
    };
    let mut boot = PeerDiscoveryClient::connect(nodes[0].url()).await.unwrap();
    let ok = boot.register_peer(register("newcomer")).await.unwrap();
    assert!(ok.into_inner().success);
    let mut full = PeerDiscoveryClient::connect(nodes[1].url()).await.unwrap();
    let e = full.register_peer(register("newcomer")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().starts_with("not_bootstrap:"), "{}", e.message());
    assert!(nodes[1].membership.get("newcomer").is_none());
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/peers/register", nodes[2].url()))
        .json(&serde_json::json!({"peer_info": {"peer_id": "newcomer", "address": "127.0.0.1", "port": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(refusals(&nodes[1], "not_bootstrap"), 1);
    // Pings are for everyone.
    full.ping(PingRequest {
        peer_id: "newcomer".into(),
        sender: None,
    })
    .await
    .unwrap();
    for n in nodes {
        n.shutdown().await;
    }
}

/// A peer that serves transactions not matching their hash loses
/// reputation at the receiver (an invalid message each time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_corrupt_transactions_is_scored_as_sending_invalid_messages() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let streams = |cfg: &mut PeerServiceConfig| {
        quiet(cfg);
        cfg.transaction_distribution.streaming_threshold = 64 * 1024;
    };
    let mut cfg = mk_config(dirs[0].path(), &[]);
    streams(&mut cfg);
    let receiver = start(cfg).await;
    let fault = sorcha_peer::node::StreamCorruption::default();
    let mut cfg = mk_config(dirs[1].path(), &[receiver.url()]);
    streams(&mut cfg);
    let faults = sorcha_peer::node::Faults {
        corrupt_streams: Some(fault.clone()),
        ..Default::default()
    };
    let bad = sorcha_peer::node::start_with(cfg, faults).await.unwrap();
    wait_for("the two peers to know each other", LIMIT, || {
        receiver.membership.counts().1 == 1 && bad.membership.counts().1 == 1
    })
    .await;
    bad.distributor
        .submit(payload(9000, 200_000))
        .await
        .unwrap();
    let url = format!(
        "{}/api/v1/peers/{}/reputation",
        receiver.url(),
        bad.node_id()
    );
    let mut invalid = 0;
    let started = std::time::Instant::now();
    while invalid == 0 {
        assert!(started.elapsed() < LIMIT, "no invalid message recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rep: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        invalid = rep["invalid_messages"].as_u64().unwrap();
    }
    assert!(fault.served.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    bad.shutdown().await;
    receiver.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transaction_limit_counts_what_a_peer_injects_not_what_it_relays() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = mk_config(dir.path(), &[]);
    quiet(&mut cfg);
    cfg.security.max_transactions_per_minute = 2;
    let node = start(cfg).await;
    let mut c = tx_client(&node).await;
    let push = |sender: &str, seed: u64, round: i32| TransactionPush {
        sender_peer_id: sender.into(),
        transaction_data: payload(seed, 300).into(),
        round,
        compressible: false,
        ..Default::default()
    };
    // Relayed transactions (round 2 and later) are not charged.
    for i in 0..5 {
        c.push_transaction(push("relay", 500 + i, 2)).await.unwrap();
    }
    // A peer's own (round 1): two a minute.
    for i in 0..2 {
        c.push_transaction(push("origin", 600 + i, 1))
            .await
            .unwrap();
    }
    let e = c
        .push_transaction(push("origin", 700, 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().starts_with("transactions:"), "{}", e.message());
    assert_eq!(refusals(&node, "transactions"), 1);
    node.shutdown().await;
}
