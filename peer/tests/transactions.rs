//! Transaction distribution on loopback: delivery, durability, the offline
//! queue, lossy links, forced bloom collisions and bad input.
mod common;

use std::time::Duration;

use common::{free_port, mk_config, mk_network, payload, start, wait_for, wait_for_or};
use sorcha_peer::node::NodeHandle;

fn counts(nodes: &[NodeHandle]) -> String {
    let c: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                "{}:{}",
                n.distributor.store.count().unwrap(),
                n.membership.state()
            )
        })
        .collect();
    format!("(stored per node: {})", c.join(" "))
}
use sorcha_peer::node::{self, Faults, StreamCorruption};
use sorcha_peer::tx::store::{hash_of, to_hex};

const LIMIT: Duration = Duration::from_secs(60);

/// Discovery timers relaxed so debug-build nodes busy hashing megabytes
/// are not declared dead; gossip is what these tests exercise.
fn steady(cfg: &mut sorcha_peer::config::PeerServiceConfig) {
    cfg.peer_discovery.refresh_interval_minutes = Duration::from_secs(2);
    cfg.peer_discovery.peer_timeout_seconds = Duration::from_millis(1900);
}

fn fast_gossip(cfg: &mut sorcha_peer::config::PeerServiceConfig) {
    steady(cfg);
    cfg.transaction_distribution.anti_entropy_interval_seconds = Duration::from_millis(300);
}

/// Starts a node with `faults` that joins `nodes`; returns once every node
/// knows every other.
async fn join_with_faults(
    nodes: &[NodeHandle],
    cfg: sorcha_peer::config::PeerServiceConfig,
    faults: Faults,
) -> NodeHandle {
    let joined = node::start_with(cfg, faults).await.unwrap();
    let others = nodes.len();
    wait_for("the faulty peer to join", LIMIT, || {
        joined.membership.counts().1 == others
            && nodes.iter().all(|n| n.membership.counts().1 == others)
    })
    .await;
    joined
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_peers_deliver_200_transactions_of_mixed_sizes() {
    let dirs: Vec<_> = (0..10).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = mk_network(&dirs, fast_gossip).await;
    let mut hashes = Vec::new();
    for i in 0..200u64 {
        let len = match i % 20 {
            0 => 1_500_000 + (i as usize) * 7_000, // streamed (> 1 MB), up to ~2.9 MB
            1..=5 => 256,
            _ => 256 + (i as usize * 997) % 60_000,
        };
        let data = payload(i, len);
        hashes.push(hash_of(&data));
        let origin = &nodes[(i as usize * 7) % nodes.len()];
        // Under a loaded CI machine a node may briefly count itself
        // Offline and queue instead; the queue delivers those too.
        let s = origin.distributor.submit(data).await.unwrap();
        assert!(!s.already_known, "{i}: {s:?}");
    }
    wait_for_or(
        "every peer to hold all 200 transactions",
        LIMIT,
        || {
            nodes
                .iter()
                .all(|n| n.distributor.store.count().unwrap() == 200)
        },
        || counts(&nodes),
    )
    .await;
    for n in &nodes {
        for h in &hashes {
            assert!(n.distributor.store.contains(h).unwrap());
        }
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_bloom_collisions_lose_nothing() {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    // 8 bits: after a few inserts every lookup is a (false) positive.
    let nodes = mk_network(&dirs, |c| {
        // Anti-entropy confirms through the same bloom-then-store check,
        // so a false positive trusted anywhere would leave a gap forever.
        fast_gossip(c);
        c.transaction_distribution.bloom_filter_bits = 8;
    })
    .await;
    for i in 0..60u64 {
        let data = payload(1000 + i, 300);
        nodes[i as usize % 5]
            .distributor
            .submit(data)
            .await
            .unwrap();
    }
    wait_for_or(
        "all 60 everywhere despite a saturated bloom filter",
        LIMIT,
        || {
            nodes
                .iter()
                .all(|n| n.distributor.store.count().unwrap() == 60)
        },
        || counts(&nodes),
    )
    .await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_losing_half_its_messages_still_gets_everything() {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = mk_network(&dirs[..4], fast_gossip).await;
    let mut cfg = mk_config(dirs[4].path(), &[nodes[0].url()]);
    fast_gossip(&mut cfg);
    let faults = Faults {
        drop_tx_messages: 0.5,
        ..Faults::default()
    };
    let lossy = join_with_faults(&nodes, cfg, faults).await;
    for i in 0..100u64 {
        nodes[i as usize % 4]
            .distributor
            .submit(payload(2000 + i, 500 + i as usize))
            .await
            .unwrap();
    }
    wait_for("anti-entropy to fill the lossy peer's gaps", LIMIT, || {
        lossy.distributor.store.count().unwrap() == 100
    })
    .await;
    nodes.push(lossy);
    for n in nodes {
        n.shutdown().await;
    }
}

/// A streamed transaction whose chunks do not hash to what was announced
/// is rejected and fetched again from another peer that announced it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_chunk_stream_is_rejected_and_refetched_from_another_peer() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let small_streams = |cfg: &mut sorcha_peer::config::PeerServiceConfig| {
        steady(cfg);
        cfg.transaction_distribution.streaming_threshold = 64 * 1024;
    };
    let nodes = mk_network(&dirs[..2], small_streams).await;
    let (honest, receiver) = (&nodes[0], &nodes[1]);
    let fault = StreamCorruption {
        delay: Duration::from_millis(1500),
        ..StreamCorruption::default()
    };
    let mut cfg = mk_config(dirs[2].path(), &[honest.url()]);
    small_streams(&mut cfg);
    let faults = Faults {
        corrupt_streams: Some(fault.clone()),
        ..Faults::default()
    };
    let bad = join_with_faults(&nodes, cfg, faults).await;
    let data = payload(7000, 300_000);
    let hash = hash_of(&data);
    // The bad peer announces first, so both others start streaming from it.
    bad.distributor.submit(data.clone()).await.unwrap();
    wait_for("both peers to stream from the bad peer", LIMIT, || {
        fault.served.load(std::sync::atomic::Ordering::SeqCst) >= 2
    })
    .await;
    // While those streams are held back, an honest peer announces it too.
    honest.distributor.submit(data.clone()).await.unwrap();
    wait_for("the receiver to hold the transaction", LIMIT, || {
        receiver.distributor.store.contains(&hash).unwrap()
    })
    .await;
    assert_eq!(receiver.distributor.store.get(&hash).unwrap(), Some(data));
    let rejected = receiver.membership.events.recent(100).into_iter().any(|e| {
        e.peer_id.as_deref() == Some(bad.membership.id())
            && e.message.contains("does not match its hash")
    });
    assert!(rejected, "the corrupt stream was detected and reported");
    bad.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_node_queues_1000_and_delivers_them_in_order_after_reconnecting() {
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = free_port();
    let a = start(mk_config(d1.path(), &[format!("http://127.0.0.1:{port}")])).await;
    wait_for("first discovery pass", LIMIT, || a.membership.is_ready()).await;
    let mut hashes = Vec::new();
    for i in 0..1000u64 {
        let s = a.distributor.submit(payload(5000 + i, 200)).await.unwrap();
        assert!(s.queued, "Offline: submission {i} is queued");
        hashes.push(s.hash);
    }
    assert_eq!(a.distributor.queue.len(), 1000);
    let mut cfg = mk_config(d0.path(), &[]);
    cfg.listen_port = port;
    let b = start(cfg).await;
    wait_for("all 1,000 to reach the network", LIMIT, || {
        b.distributor.store.count().unwrap() == 1000
    })
    .await;
    wait_for("the queue to drain", LIMIT, || {
        a.distributor.queue.is_empty()
    })
    .await;
    // B received them in submission order.
    let received: Vec<String> = b
        .distributor
        .store
        .received_since(0)
        .unwrap()
        .iter()
        .map(|t| to_hex(&t.hash))
        .collect();
    let position: std::collections::HashMap<&str, usize> = received
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let arrival: Vec<i64> = {
        let metas = b.distributor.store.received_since(0).unwrap();
        let by_hash: std::collections::HashMap<String, i64> = metas
            .iter()
            .map(|t| (to_hex(&t.hash), t.received_at))
            .collect();
        hashes.iter().map(|h| by_hash[h]).collect()
    };
    assert_eq!(position.len(), 1000);
    assert!(
        arrival.windows(2).all(|w| w[0] <= w[1]),
        "arrivals follow submission order"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_submissions_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = mk_config(dir.path(), &[]);
    cfg.transaction_distribution.max_transaction_size = 1000;
    cfg.transaction_distribution.streaming_threshold = 500;
    cfg.transaction_distribution.eager_push_threshold = 100;
    let node = start(cfg).await;
    let base = node.url();
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        http.post(format!("{base}/api/v1/transactions"))
            .body(body)
            .send()
    };

    let r = post(vec![7; 1001]).await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("MaxTransactionSize (1000 bytes)")
    );
    let r = post(Vec::new()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("must not be empty"));
    let r = http
        .get(format!("{base}/api/v1/transactions/not-a-hash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .get(format!("{base}/api/v1/transactions/{}", to_hex(&[1; 32])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let mut c = sorcha_proto::transaction::transaction_distribution_client::TransactionDistributionClient::connect(base.clone()).await.unwrap();
    let err = c
        .submit_transaction(sorcha_proto::transaction::SubmitTransactionRequest {
            transaction_data: vec![1; 1001].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(err.message().contains("1000 bytes"), "{}", err.message());
    let err = c
        .notify_transactions(sorcha_proto::transaction::NotificationBatch {
            sender_peer_id: "x".into(),
            notifications: vec![sorcha_proto::transaction::CompactNotification {
                hash: vec![1, 2],
                size: 5,
                round: 1,
                compressible: false,
                lazy: false,
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("notifications[0].hash"),
        "{}",
        err.message()
    );
    let err = c
        .fetch_transactions(sorcha_proto::transaction::FetchRequest {
            requesting_peer_id: "x".into(),
            hashes: vec![vec![0; 32], vec![9; 31]],
            graft: false,
            prune: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("hashes[1]"), "{}", err.message());
    let push = |data: Vec<u8>| sorcha_proto::transaction::TransactionPush {
        sender_peer_id: String::new(),
        transaction_data: data.into(),
        round: 2,
        compressible: false,
        ..Default::default()
    };
    let batch = |pushes| sorcha_proto::transaction::PushBatch {
        sender_peer_id: "x".into(),
        pushes,
    };
    let err = c
        .push_transactions(batch(vec![push(vec![1; 10]), push(vec![2; 1001])]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(
        err.message().contains("pushes[1]") && err.message().contains("1000 bytes"),
        "{}",
        err.message()
    );
    let err = c
        .push_transactions(batch(vec![push(Vec::new())]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("pushes[0]"), "{}", err.message());
    assert_eq!(
        node.distributor.store.count().unwrap(),
        0,
        "nothing was stored, not even the batch's valid first push"
    );
    // A good batch: each push answered in order, a repeat as already known.
    let ack = c
        .push_transactions(batch(vec![
            push(vec![1; 10]),
            push(vec![1; 10]),
            push(vec![3; 9]),
        ]))
        .await
        .unwrap()
        .into_inner();
    let mut known = ack.already_known;
    known.sort();
    assert_eq!(
        known,
        [false, false, true],
        "one of the two copies was a repeat"
    );
    assert_eq!(node.distributor.store.count().unwrap(), 2);

    // A good one round-trips through REST and gRPC.
    let r = post(b"hello".to_vec()).await.unwrap();
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    let hash = to_hex(&hash_of(b"hello"));
    assert_eq!(body["transaction_hash"], hash.as_str());
    let got = http
        .get(format!("{base}/api/v1/transactions/{hash}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], b"hello");
    let r = c
        .get_transaction(sorcha_proto::transaction::TransactionRequest {
            transaction_hash: hash.clone(),
            requesting_peer_id: String::new(),
            graft: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.found && r.transaction_data == b"hello"[..]);
    // Several at once: in request order, the unknown one marked not found.
    let mut answers = c
        .fetch_transactions(sorcha_proto::transaction::FetchRequest {
            requesting_peer_id: String::new(),
            hashes: vec![vec![7; 32], hash_of(b"hello").to_vec()],
            graft: false,
            prune: false,
        })
        .await
        .unwrap()
        .into_inner();
    let unknown = answers.message().await.unwrap().unwrap();
    assert!(!unknown.found && unknown.transaction_hash == "07".repeat(32));
    let known = answers.message().await.unwrap().unwrap();
    assert!(known.found && known.transaction_data == b"hello"[..]);
    assert!(answers.message().await.unwrap().is_none());
    node.shutdown().await;

    // With the default MaxTransactionSize a request of 4,097 hashes fits
    // in a message; the count limit refuses it.
    let roomy_dir = tempfile::tempdir().unwrap();
    let roomy = start(mk_config(roomy_dir.path(), &[])).await;
    let mut c = sorcha_proto::transaction::transaction_distribution_client::TransactionDistributionClient::connect(roomy.url()).await.unwrap();
    let err = c
        .fetch_transactions(sorcha_proto::transaction::FetchRequest {
            requesting_peer_id: "x".into(),
            hashes: vec![vec![0; 32]; 4097],
            graft: false,
            prune: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("at most 4096"), "{}", err.message());
    roomy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_stream_answers_only_repeats_and_a_bad_batch_ends_it_changing_nothing() {
    use sorcha_proto::transaction::{PushBatch, TransactionPush};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = mk_config(dir.path(), &[]);
    cfg.transaction_distribution.max_transaction_size = 1000;
    let node = start(cfg).await;
    let mut c = sorcha_proto::transaction::transaction_distribution_client::TransactionDistributionClient::connect(node.url()).await.unwrap();
    let push = |data: Vec<u8>| TransactionPush {
        sender_peer_id: String::new(),
        transaction_data: data.into(),
        round: 2,
        compressible: false,
        ..Default::default()
    };
    let batch = |sender: &str, pushes| PushBatch {
        sender_peer_id: sender.into(),
        pushes,
    };

    // A stream's first batch names its sender.
    let err = c
        .push_stream(tokio_stream::iter(vec![batch("", vec![push(vec![1; 10])])]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("sender_peer_id"),
        "{}",
        err.message()
    );
    assert_eq!(node.distributor.store.count().unwrap(), 0);

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = c
        .push_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(batch("x", vec![push(vec![1; 10]), push(vec![3; 9])]))
        .await
        .unwrap();
    wait_for("the streamed pushes stored", LIMIT, || {
        node.distributor.store.count().unwrap() == 2
    })
    .await;
    // New transactions get no answer; a repeat does (the sender prunes).
    tx.send(batch("", vec![push(vec![1; 10])])).await.unwrap();
    let ack = answers.message().await.unwrap().unwrap();
    assert_eq!(
        ack.already_known,
        [true],
        "the first answer is the repeat's"
    );
    let streamed = node
        .membership
        .metrics
        .tx_pushes_received
        .with_label_values(&["stream"])
        .get();
    assert_eq!(streamed, 3);

    // A bad batch ends the stream with its reason; none of it is taken.
    tx.send(batch("", vec![push(vec![5; 10]), push(vec![2; 1001])]))
        .await
        .unwrap();
    let err = answers.message().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(
        err.message().contains("pushes[1]") && err.message().contains("1000 bytes"),
        "{}",
        err.message()
    );
    assert_eq!(node.distributor.store.count().unwrap(), 2);
    assert!(!node.distributor.store.contains(&hash_of(&[5; 10])).unwrap());
    node.shutdown().await;
}
