//! `GossipMode: Tree` (the default): transactions settle onto a broadcast
//! tree, and a node cut from it grafts itself back through lazy
//! announcements. Anti-entropy is off throughout, so nothing else repairs.
mod common;

use std::time::Duration;

use common::{mk_network, payload, wait_for_or};
use sorcha_peer::config::{GossipMode, PeerServiceConfig};
use sorcha_peer::node::NodeHandle;

const LIMIT: Duration = Duration::from_secs(30);

fn tree(c: &mut PeerServiceConfig) {
    assert_eq!(c.transaction_distribution.gossip_mode, GossipMode::Tree);
    c.peer_discovery.refresh_interval_minutes = Duration::from_secs(2);
    c.peer_discovery.peer_timeout_seconds = Duration::from_millis(1900);
    c.transaction_distribution.anti_entropy_interval_seconds = Duration::from_secs(3600);
    c.communication.circuit_breaker_threshold = 2;
}

fn sum(nodes: &[NodeHandle], f: impl Fn(&sorcha_peer::metrics::Metrics) -> i64) -> i64 {
    nodes.iter().map(|n| f(&n.membership.metrics)).sum()
}

/// Submits one transaction at `origin` and waits until every node in
/// `nodes` holds `count` transactions.
async fn spread_one(nodes: &[NodeHandle], origin: usize, seed: u64, count: u64) {
    spread_sized(nodes, origin, seed, 700, count).await
}

/// `spread_one` with a transaction of `size` bytes.
async fn spread_sized(nodes: &[NodeHandle], origin: usize, seed: u64, size: usize, count: u64) {
    nodes[origin]
        .distributor
        .submit(payload(seed, size))
        .await
        .unwrap();
    let counts = || {
        nodes
            .iter()
            .map(|n| n.distributor.store.count().unwrap())
            .collect::<Vec<_>>()
    };
    wait_for_or(
        "every node to hold it",
        LIMIT,
        || counts().iter().all(|&c| c == count),
        || {
            let links: Vec<(String, Vec<String>)> = nodes
                .iter()
                .map(|n| (n.membership.id().to_owned(), n.distributor.tree_links()))
                .collect();
            format!(
                "(transactions held per node: {:?}; tree links: {links:?})",
                counts()
            )
        },
    )
    .await;
}

/// Spreads transactions from rotating origins until the links form a tree
/// (each link counted at both ends: 2 × (nodes − 1)); returns how many
/// were spread. Ranked pruning drops a cycle's link only when a copy meets
/// on its highest-ranked one, so how many it takes varies.
async fn settle(nodes: &[NodeHandle], seed: u64) -> u64 {
    let tree_links = 2 * (nodes.len() as i64 - 1);
    for i in 0..60u64 {
        spread_one(nodes, (i as usize * 3) % nodes.len(), seed + i, i + 1).await;
        if i >= 4 && sum(nodes, |m| m.tree_eager_links.get()) == tree_links {
            return i + 1;
        }
    }
    let links: Vec<Vec<String>> = nodes.iter().map(|n| n.distributor.tree_links()).collect();
    panic!("the links never settled into a tree: {links:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_settle_onto_a_tree_that_brings_each_transaction_once() {
    let dirs: Vec<_> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = mk_network(&dirs, |c| {
        tree(c);
        c.transaction_distribution.lazy_pull_delay_seconds = Duration::from_millis(100);
    })
    .await;
    let spread = settle(&nodes, 100).await;
    // Links start as a random graph with cycles; each cycle met a
    // duplicate push and was pruned at both ends.
    assert!(sum(&nodes, |m| m.tree_prunes.get() as i64) > 0);
    let wasted = sum(&nodes, |m| m.tx_push_duplicates.get() as i64);
    for i in spread..spread + 10 {
        spread_one(&nodes, (i as usize * 5) % 8, 100 + i, i + 1).await;
    }
    // Settled: each transaction crosses each link once. (Announcing in
    // rounds instead, fanout 3, pushes every one of them to 3 peers, and
    // relays announce it some 20 times more.) A link briefly open at one
    // end only may still cost the odd copy.
    let wasted = sum(&nodes, |m| m.tx_push_duplicates.get() as i64) - wasted;
    assert!(
        wasted <= 5,
        "{wasted} pushed copies wasted in 10 transactions"
    );
    // Origins push by call (the answer proves delivery); relays ride the
    // peers' push streams, whose answers did the senders' pruning above.
    let via = |how: &'static str| {
        move |m: &sorcha_peer::metrics::Metrics| {
            m.tx_pushes_received.with_label_values(&[how]).get() as i64
        }
    };
    assert!(sum(&nodes, via("call")) > 0, "origins' pushes");
    assert!(sum(&nodes, via("stream")) > 0, "relays");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_cut_off_by_a_dead_tree_node_graft_back_through_lazy_announcements() {
    let dirs: Vec<_> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = mk_network(&dirs, |c| {
        tree(c);
        // Every holder tells every other neighbour: with nothing else
        // repairing, no cut-off node may go without a notice.
        c.transaction_distribution.lazy_announce_peers = 7;
        c.transaction_distribution.lazy_pull_delay_seconds = Duration::from_millis(100);
    })
    .await;
    let spread = settle(&nodes, 200).await;
    // The busiest inner node of the tree leaves: the peers beneath it
    // hear of new transactions only from lazy announcements.
    let hub = (0..nodes.len())
        .max_by_key(|&i| nodes[i].membership.metrics.tree_eager_links.get())
        .unwrap();
    assert!(nodes[hub].membership.metrics.tree_eager_links.get() >= 2);
    nodes.remove(hub).shutdown().await;
    let grafts = sum(&nodes, |m| m.tree_grafts.get() as i64);
    for i in spread..spread + 10 {
        spread_one(&nodes, i as usize % nodes.len(), 200 + i, i + 1).await;
    }
    assert!(
        sum(&nodes, |m| m.tree_grafts.get() as i64) > grafts,
        "the tree was repaired by grafting"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_notices_wait_half_the_lazy_pull_delay_while_the_tree_delivers() {
    let dirs: Vec<_> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = mk_network(&dirs, |c| {
        tree(c);
        c.transaction_distribution.lazy_announce_peers = 5;
        c.transaction_distribution.lazy_pull_delay_seconds = Duration::from_secs(6);
    })
    .await;
    let announced = |nodes: &[NodeHandle]| sum(nodes, |m| m.announcements_sent.get() as i64);
    spread_one(&nodes, 0, 300, 1).await;
    // Delivered by pushes; the lazy notices are still gathering (3 s).
    assert_eq!(announced(&nodes), 0, "no lazy notice sent yet");
    wait_for_or(
        "the lazy notices to go out",
        LIMIT,
        || announced(&nodes) > 0,
        String::new,
    )
    .await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_keep_pushing_on_streams_well_past_the_push_backlog_limit() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = mk_network(&dirs, |c| {
        tree(c);
        // No lazy notice goes out while a transaction crosses the tree.
        c.transaction_distribution.lazy_pull_delay_seconds = Duration::from_secs(4);
    })
    .await;
    // 40 x 4 KiB crosses each link far more than the 64 KiB a peer may
    // have queued: a streamed batch must leave the backlog once taken, or
    // relays would fall back to announcements (and the peers pull).
    for i in 0..40u64 {
        spread_sized(&nodes, i as usize % 4, 400 + i, 4096, i + 1).await;
    }
    let streamed = sum(&nodes, |m| {
        m.tx_pushes_received.with_label_values(&["stream"]).get() as i64
    });
    assert!(streamed >= 40, "{streamed} relayed pushes on streams");
    assert_eq!(
        sum(&nodes, |m| m.tx_pulls_served.get() as i64),
        0,
        "nobody pulled"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_above_the_tree_push_limit_cross_each_link_once_by_pull() {
    let dirs: Vec<_> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = mk_network(&dirs, |c| {
        tree(c);
        c.transaction_distribution.lazy_pull_delay_seconds = Duration::from_secs(4);
    })
    .await;
    let pushes = || {
        sum(&nodes, |m| {
            (m.tx_pushes_received.with_label_values(&["call"]).get()
                + m.tx_pushes_received.with_label_values(&["stream"]).get()) as i64
        })
    };
    // Every link is still eager: pushed whole, this copy would reach most
    // nodes several times over.
    let large = sorcha_peer::tx::TREE_PUSH_MAX as usize + 1;
    spread_sized(&nodes, 0, 500, large, 1).await;
    assert_eq!(pushes(), 0, "nothing above the limit is pushed");
    assert_eq!(
        sum(&nodes, |m| m.tx_pulls_served.get() as i64),
        5,
        "one pull per node that lacked it"
    );
    spread_sized(&nodes, 1, 501, 1024, 2).await;
    assert!(pushes() > 0, "smaller ones are");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_request_drops_the_link_a_graft_opened() {
    use sorcha_proto::transaction::FetchRequest;
    use sorcha_proto::transaction::transaction_distribution_client::TransactionDistributionClient;
    let dirs: Vec<_> = (0..1).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = mk_network(&dirs, tree).await;
    let mut c = TransactionDistributionClient::connect(nodes[0].url())
        .await
        .unwrap();
    let ask = |graft: bool| FetchRequest {
        requesting_peer_id: "peer-x".into(),
        hashes: Vec::new(),
        graft,
        prune: !graft,
    };
    let links = || nodes[0].distributor.tree_links();
    c.fetch_transactions(ask(true)).await.unwrap();
    assert!(
        links().contains(&"peer-x".to_owned()),
        "grafted: {:?}",
        links()
    );
    c.fetch_transactions(ask(false)).await.unwrap();
    assert!(
        !links().contains(&"peer-x".to_owned()),
        "pruned: {:?}",
        links()
    );
    assert_eq!(nodes[0].membership.metrics.tree_prunes.get(), 1);
    for n in nodes {
        n.shutdown().await;
    }
}
