//! The communication manager on loopback: protocol fallback (a REST-only
//! peer, a peer without streams) and the circuit breaker against a peer
//! that dies and comes back.
mod common;

use std::time::Duration;

use common::{mk_config, payload, start, wait_for, wait_for_or};
use sorcha_peer::comm::Protocol;
use sorcha_peer::comm::breaker::BreakerState;
use sorcha_peer::config::{CommunicationProtocol, PeerServiceConfig};
use sorcha_peer::node::NodeHandle;
use sorcha_peer::tx::store::hash_of;

const LIMIT: Duration = Duration::from_secs(60);

fn steady(cfg: &mut PeerServiceConfig) {
    cfg.peer_discovery.refresh_interval_minutes = Duration::from_millis(500);
    cfg.peer_discovery.peer_timeout_seconds = Duration::from_millis(1500);
    cfg.transaction_distribution.anti_entropy_interval_seconds = Duration::from_secs(30);
}

fn with(protocol: CommunicationProtocol) -> impl Fn(&mut PeerServiceConfig) {
    move |cfg| {
        steady(cfg);
        cfg.communication.preferred_protocol = protocol;
    }
}

async fn join(
    dir: &tempfile::TempDir,
    bootstrap: &str,
    tweak: impl Fn(&mut PeerServiceConfig),
) -> NodeHandle {
    let mut cfg = mk_config(dir.path(), &[bootstrap.to_owned()]);
    tweak(&mut cfg);
    start(cfg).await
}

fn metric(n: &NodeHandle, prefix: &str) -> f64 {
    n.membership
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn held(nodes: &[NodeHandle]) -> String {
    let c: Vec<String> = nodes
        .iter()
        .map(|n| n.distributor.store.count().unwrap().to_string())
        .collect();
    format!("(stored per node: {})", c.join(" "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_only_and_unary_only_peers_receive_every_gossiped_transaction() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut cfg = mk_config(dirs[0].path(), &[]);
    steady(&mut cfg);
    let a = start(cfg).await;
    let url = a.url();
    let b = join(&dirs[1], &url, steady).await;
    let rest = join(&dirs[2], &url, with(CommunicationProtocol::Rest)).await;
    let unary = join(&dirs[3], &url, with(CommunicationProtocol::Grpc)).await;
    let nodes = [a, b, rest, unary];
    wait_for("the network to converge", LIMIT, || {
        nodes.iter().all(|n| n.membership.counts() == (3, 3))
    })
    .await;
    // Each advertises what it serves.
    let desc = |n: &NodeHandle, of: &NodeHandle| n.membership.get(of.node_id()).unwrap();
    assert_eq!(desc(&nodes[0], &nodes[2]).supported_protocols, ["rest"]);
    assert_eq!(
        desc(&nodes[0], &nodes[3]).supported_protocols,
        ["grpc", "rest"]
    );

    // From every kind of node, small ones and one streamed above 1 MB.
    let mut hashes = Vec::new();
    for i in 0..24u64 {
        let len = if i == 5 {
            1_300_000
        } else {
            200 + (i as usize) * 301
        };
        let data = payload(1000 + i, len);
        hashes.push(hash_of(&data));
        nodes[i as usize % 4]
            .distributor
            .submit(data)
            .await
            .unwrap();
    }
    wait_for_or(
        "every peer to hold all 24 transactions",
        LIMIT,
        || {
            nodes
                .iter()
                .all(|n| n.distributor.store.count().unwrap() == 24)
        },
        || held(&nodes),
    )
    .await;
    for n in &nodes {
        for h in &hashes {
            assert!(n.distributor.store.contains(h).unwrap());
        }
    }
    // The full nodes talk REST to the REST-only peer and unary gRPC (no
    // announcement stream) to the other.
    let url_of = |n: &NodeHandle| n.url();
    for full in &nodes[..2] {
        assert_eq!(full.comm.protocol(&url_of(&nodes[2])), Protocol::Rest);
        assert_eq!(full.comm.protocol(&url_of(&nodes[3])), Protocol::Grpc);
    }
    // The REST-only node served no gRPC: all it got came over REST.
    assert!(
        metric(
            &nodes[2],
            "sorcha_requests_total{operation=\"ping\",protocol=\"grpc\""
        ) == 0.0
    );
    // And the unary-only node refuses the announcement and push streams
    // outright.
    let mut c = sorcha_proto::transaction::transaction_distribution_client::TransactionDistributionClient::connect(
        url_of(&nodes[3]),
    )
    .await
    .unwrap();
    let status = c
        .announce_stream(tokio_stream::iter(Vec::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status}");
    let status = c
        .push_stream(tokio_stream::iter(Vec::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status}");
    assert!(status.message().contains("PushTransactions"), "{status}");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_node_bootstrapping_from_a_rest_only_peer_negotiates_down_to_rest() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut cfg = mk_config(dirs[0].path(), &[]);
    with(CommunicationProtocol::Rest)(&mut cfg);
    let rest = start(cfg).await;
    // Nothing is known about the bootstrap URL but the URL: the first
    // calls try gRPC stream, then unary, then REST.
    let grpc = join(&dirs[1], &rest.url(), steady).await;
    wait_for("the two to know each other", LIMIT, || {
        grpc.membership.counts() == (1, 1) && rest.membership.counts() == (1, 1)
    })
    .await;
    assert_eq!(grpc.comm.protocol(&rest.url()), Protocol::Rest);
    let changes = |from: &str, to: &str| {
        metric(
            &grpc,
            &format!("sorcha_protocol_changes_total{{from=\"{from}\",to=\"{to}\"}}"),
        )
    };
    assert!(changes("grpc-stream", "grpc") >= 1.0);
    assert!(changes("grpc", "rest") >= 1.0);
    let events = grpc.membership.events.recent(200);
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("does not serve grpc")),
        "{events:?}"
    );
    // Gossip works both ways over REST.
    let one = payload(7, 5000);
    let two = payload(8, 5000);
    grpc.distributor.submit(one.clone()).await.unwrap();
    rest.distributor.submit(two.clone()).await.unwrap();
    wait_for("both transactions on both nodes", LIMIT, || {
        [&grpc, &rest].iter().all(|n| {
            n.distributor.store.contains(&hash_of(&one)).unwrap()
                && n.distributor.store.contains(&hash_of(&two)).unwrap()
        })
    })
    .await;
    // Anti-entropy over REST: a SyncRequest protobuf in, a SyncResponse out;
    // anything else is refused naming what was expected.
    let http = reqwest::Client::new();
    let sync = format!("{}/api/v1/transactions/sync", rest.url());
    let r = http.post(&sync).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("application/x-protobuf"));
    let req = sorcha_proto::transaction::SyncRequest {
        requesting_peer_id: "probe".into(),
        bucket_digests: vec![],
    };
    let r = http
        .post(&sync)
        .header("content-type", "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&req))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    <sorcha_proto::transaction::SyncResponse as prost::Message>::decode(body).unwrap();
    grpc.shutdown().await;
    rest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_against_a_dead_peer_and_closes_after_it_returns() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let tweak = |cfg: &mut PeerServiceConfig| {
        cfg.peer_discovery.refresh_interval_minutes = Duration::from_millis(200);
        // Discovery must keep the dead peer listed (and pinging it).
        cfg.peer_discovery.failure_threshold = 10_000;
        cfg.communication.circuit_breaker_threshold = 3;
        cfg.communication.circuit_breaker_reset_minutes = Duration::from_millis(600);
    };
    let nodes = common::mk_network(&dirs, tweak).await;
    let mut nodes = nodes.into_iter();
    let (a, b) = (nodes.next().unwrap(), nodes.next().unwrap());
    let b_url = b.url();
    let b_port = b.local_addr.port();
    b.shutdown().await;
    wait_for("the circuit to open", LIMIT, || {
        a.comm.breaker_state(&b_url) == BreakerState::Open
    })
    .await;
    let refused_before = metric(&a, "sorcha_circuit_breaker_refusals_total");
    wait_for("calls to fail fast", LIMIT, || {
        metric(&a, "sorcha_circuit_breaker_refusals_total") > refused_before
    })
    .await;

    // B comes back on the same address.
    let mut cfg = mk_config(dirs[1].path(), &[a.url()]);
    tweak(&mut cfg);
    cfg.listen_port = b_port;
    let b = start(cfg).await;
    wait_for("the circuit to close", LIMIT, || {
        a.comm.breaker_state(&b_url) == BreakerState::Closed
    })
    .await;
    let events: Vec<String> = a
        .membership
        .events
        .recent(500)
        .into_iter()
        .map(|e| e.message)
        .collect();
    for word in ["opened", "half-open", "closed"] {
        assert!(
            events
                .iter()
                .any(|m| m.contains("circuit") && m.contains(word)),
            "no {word} event: {events:?}"
        );
    }
    assert!(
        metric(
            &a,
            "sorcha_circuit_breaker_transitions_total{state=\"open\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &a,
            "sorcha_circuit_breaker_transitions_total{state=\"closed\"}"
        ) >= 1.0
    );
    a.shutdown().await;
    b.shutdown().await;
}
