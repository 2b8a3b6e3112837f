//! Transaction options that change observable behaviour: eager push (in
//! `GossipMode: Rounds`), compression, and dead-lettering past
//! OfflineMode.MaxRetries. The broadcast tree has `tx_tree.rs`.
mod common;

use std::time::Duration;

use common::fake::FakePeer;
use common::{free_port, mk_config, mk_network, payload, start, wait_for};
use sorcha_peer::config::{GossipMode, PeerServiceConfig};
use sorcha_peer::tx::store::hash_of;

const LIMIT: Duration = Duration::from_secs(30);

fn quiet(c: &mut PeerServiceConfig) {
    c.peer_discovery.refresh_interval_minutes = Duration::from_secs(2);
    c.peer_discovery.peer_timeout_seconds = Duration::from_millis(1900);
    c.transaction_distribution.anti_entropy_interval_seconds = Duration::from_secs(3600);
}

fn pulls_served(nodes: &[sorcha_peer::node::NodeHandle]) -> u64 {
    total(nodes, |m| m.tx_pulls_served.get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_round_pushes_whole_up_to_the_streaming_threshold() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Eager push off (the default), and one round only, so no relay's
    // announcement races the origin's pushes.
    let nodes = mk_network(&dirs, |c| {
        quiet(c);
        c.transaction_distribution.gossip_mode = GossipMode::Rounds;
        c.transaction_distribution.fanout_factor = Some(2);
        c.transaction_distribution.gossip_rounds = 1;
        c.transaction_distribution.streaming_threshold = 64 * 1024;
        assert_eq!(c.transaction_distribution.eager_push_threshold, 0);
    })
    .await;
    for (i, size) in [100, 5000, 64 * 1024].into_iter().enumerate() {
        nodes[0]
            .distributor
            .submit(payload(500 + i as u64, size))
            .await
            .unwrap();
        // One at a time, so the pushes in flight stay within bounds.
        wait_for("both peers to hold it", LIMIT, || {
            nodes[1..]
                .iter()
                .all(|n| n.distributor.store.count().unwrap() == i as u64 + 1)
        })
        .await;
    }
    assert_eq!(pulls_served(&nodes), 0, "pushed whole: nobody had to pull");
    // Above the streaming threshold it is announced and streamed.
    nodes[0]
        .distributor
        .submit(payload(600, 64 * 1024 + 1))
        .await
        .unwrap();
    wait_for("the streamed one", LIMIT, || {
        nodes[1..]
            .iter()
            .all(|n| n.distributor.store.count().unwrap() == 4)
    })
    .await;
    assert_eq!(pulls_served(&nodes), 2);
    for n in nodes {
        n.shutdown().await;
    }
}

/// Submissions at once to a node with one peer: all arrive, pushed in
/// batches while the peer accepts them. With the default
/// `MaxTransactionsPerMinute` (100) the peer refuses pushes past that
/// allowance, and they are announced instead (it pulls them). Past 64 KiB
/// queued for the peer, further ones are announced too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_submissions_is_pushed_in_batches_and_announced_when_refused_or_behind() {
    // 200 of 200 B: within the 64 KiB a peer may have queued.
    assert!(
        burst_announcements(100, 200).await > 0,
        "refused pushes are announced"
    );
    assert_eq!(
        burst_announcements(10_000, 200).await,
        0,
        "all went by push"
    );
    // 1,000 of 200 B: more than fits in the queue at once.
    assert!(
        burst_announcements(10_000, 1000).await > 0,
        "a peer behind hears hashes"
    );
}

async fn burst_announcements(max_transactions_per_minute: u64, burst: u64) -> u64 {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = mk_network(&dirs, |c| {
        quiet(c);
        c.security.max_transactions_per_minute = max_transactions_per_minute;
    })
    .await;
    let origin = nodes[0].distributor.clone();
    let submits: Vec<_> = (0..burst)
        .map(|i| {
            let d = origin.clone();
            tokio::spawn(async move { d.submit(payload(900 + i, 200)).await.unwrap() })
        })
        .collect();
    for s in submits {
        s.await.unwrap();
    }
    wait_for("the whole burst at the peer", LIMIT, || {
        nodes[1].distributor.store.count().unwrap() == burst
    })
    .await;
    let announced = nodes[0].membership.metrics.announcements_sent.get();
    assert!(announced < burst, "pushes went out: {announced}");
    for n in nodes {
        n.shutdown().await;
    }
    announced
}

fn total(
    nodes: &[sorcha_peer::node::NodeHandle],
    f: impl Fn(&sorcha_peer::metrics::Metrics) -> u64,
) -> u64 {
    nodes.iter().map(|n| f(&n.membership.metrics)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_push_decides_how_later_rounds_send() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Round 1: the origin pushes to both peers. Round 2: each passes it to
    // the other, whole up to EagerPushThreshold, else as an announcement
    // (which the other, already holding it, ignores).
    let nodes = mk_network(&dirs, |c| {
        quiet(c);
        c.transaction_distribution.gossip_mode = GossipMode::Rounds;
        c.transaction_distribution.fanout_factor = Some(2);
        c.transaction_distribution.gossip_rounds = 2;
        c.transaction_distribution.eager_push_threshold = 4096;
        c.transaction_distribution.eager_push_peers = 2;
    })
    .await;
    // One at a time: a burst would exceed the pushes allowed in flight
    // and be partly announced (see the burst test).
    for i in 0..10u64 {
        nodes[0]
            .distributor
            .submit(payload(300 + i, 1000))
            .await
            .unwrap();
        // Whichever of the two peers gets a transaction second has it
        // pushed again: a duplicate per transaction once round 2 is through.
        wait_for("round 2", LIMIT, || {
            total(&nodes, |m| m.tx_duplicates.get()) > i
        })
        .await;
    }
    // Without eager push each of the 10 would be announced once or twice
    // in round 2; a push still in flight may turn the odd one into an
    // announcement (see `spread`).
    let announced_small = total(&nodes, |m| m.announcements_sent.get());
    assert!(announced_small < 5, "pushed: {announced_small} announced");
    assert!(pulls_served(&nodes) <= announced_small);
    // Above the threshold round 2 announces (and whichever peer still
    // lacked it then pulls).
    nodes[0]
        .distributor
        .submit(payload(400, 5000))
        .await
        .unwrap();
    wait_for("a round-2 announcement", LIMIT, || {
        total(&nodes, |m| m.announcements_sent.get()) > announced_small
    })
    .await;
    for n in nodes {
        n.shutdown().await;
    }
}

/// Wire bytes for one compressible 300 KB transaction between two nodes.
async fn wire_bytes(compression: bool) -> u64 {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = mk_network(&dirs, |c| {
        quiet(c);
        c.transaction_distribution.enable_compression = compression;
    })
    .await;
    let before: u64 = nodes
        .iter()
        .map(|n| {
            n.membership.metrics.listener_received.get() + n.membership.metrics.listener_sent.get()
        })
        .sum();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
    nodes[0].distributor.submit(data.clone()).await.unwrap();
    wait_for("delivery", LIMIT, || {
        nodes[1]
            .distributor
            .store
            .contains(&hash_of(&data))
            .unwrap()
    })
    .await;
    assert_eq!(
        nodes[1].distributor.get(&hash_of(&data)).unwrap().unwrap(),
        data
    );
    let after: u64 = nodes
        .iter()
        .map(|n| {
            n.membership.metrics.listener_received.get() + n.membership.metrics.listener_sent.get()
        })
        .sum();
    for n in nodes {
        n.shutdown().await;
    }
    after - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_shrinks_what_crosses_the_wire() {
    let plain = wire_bytes(false).await;
    let gzip = wire_bytes(true).await;
    assert!(
        plain > 300_000,
        "uncompressed carries the whole payload: {plain}"
    );
    assert!(gzip * 10 < plain, "gzip: {gzip} bytes vs {plain} plain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_transactions_past_max_retries_become_visible_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cfg = mk_config(dir.path(), &[format!("http://127.0.0.1:{port}")]);
    // One attempt: the deaf peer fails every transaction call, the link
    // steps down to REST, which it does not speak either, and the failed
    // calls make it inactive: the node is Offline again, with no peer for a
    // second attempt. (Counting attempts up to MaxRetries is unit-tested
    // in `queue_tests`.)
    cfg.offline_mode.max_retries = 1;
    cfg.transaction_distribution.anti_entropy_interval_seconds = Duration::from_millis(200);
    let node = start(cfg).await;
    wait_for("first discovery pass", LIMIT, || node.membership.is_ready()).await;
    for i in 0..3u64 {
        assert!(
            node.distributor
                .submit(payload(700 + i, 100))
                .await
                .unwrap()
                .queued
        );
    }
    // A peer appears that answers discovery but refuses every transaction.
    let deaf = FakePeer::new("deaf", Duration::ZERO);
    let deaf_port = deaf.spawn().await;
    let info = common::fake::fake_info("deaf", deaf_port);
    let mut c =
        sorcha_proto::discovery::peer_discovery_client::PeerDiscoveryClient::connect(node.url())
            .await
            .unwrap();
    c.register_peer(sorcha_proto::discovery::RegisterPeerRequest {
        peer_info: Some(info),
    })
    .await
    .unwrap();
    wait_for("all three dead-lettered", LIMIT, || {
        node.distributor.queue.is_empty()
            && node.distributor.queue.dead_letters(10).unwrap().len() == 3
    })
    .await;
    let body: serde_json::Value =
        reqwest::get(format!("{}/api/v1/transactions/dead-letters", node.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let letters = body["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 3);
    assert_eq!(letters[0]["retry_count"], 1);
    // The peer serves no transaction gRPC, so negotiation fell back to
    // REST, which it does not speak either: the error names that peer; or,
    // once its circuit breaker opened, there was no live peer left.
    let last_error = letters[0]["last_error"].as_str().unwrap();
    assert!(
        last_error.contains(&format!("127.0.0.1:{deaf_port}"))
            || last_error.contains("no live peer"),
        "{body}"
    );
    // Kept, not discarded: the node still serves them.
    assert!(
        node.distributor
            .get(&hash_of(&payload(700, 100)))
            .unwrap()
            .is_some()
    );
    // An admin (loopback, no token configured) requeues one.
    let hash = letters[0]["transaction_hash"].as_str().unwrap();
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/admin/dead-letters/{hash}/requeue",
            node.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["requeued"], hash);
    assert!(
        node.distributor.queue.contains(hash).unwrap()
            || node.distributor.queue.dead_letters(10).unwrap().len() == 3,
        "back in the queue (or failed again after a flush attempt)"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_entropy_leaves_transactions_younger_than_an_interval_to_gossip() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = mk_network(&dirs, |c| {
        quiet(c);
        c.transaction_distribution.anti_entropy_interval_seconds = Duration::from_millis(200);
    })
    .await;
    // Stored at one node only, bypassing gossip: one received long ago,
    // one that stays younger than an interval throughout (received "in a
    // minute").
    let now = sorcha_peer::clock::now_ms();
    let (old, young) = (payload(900, 300), payload(901, 300));
    let store = &nodes[0].distributor.store;
    store
        .insert_relayed(hash_of(&old), old.clone(), now - 10_000)
        .await
        .unwrap();
    store
        .insert_relayed(hash_of(&young), young.clone(), now + 60_000)
        .await
        .unwrap();
    wait_for("anti-entropy to repair the old one", LIMIT, || {
        nodes[1].distributor.store.contains(&hash_of(&old)).unwrap()
    })
    .await;
    // Several more rounds either way.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !nodes[1]
            .distributor
            .store
            .contains(&hash_of(&young))
            .unwrap(),
        "the young one is left to gossip"
    );
    for n in nodes {
        n.shutdown().await;
    }
}
