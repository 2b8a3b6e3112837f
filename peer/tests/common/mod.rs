//! Fixtures for multi-node tests: real listeners on 127.0.0.1, real SQLite
//! files in temporary directories.
#![allow(dead_code)]

pub mod fake;

use std::path::Path;
use std::time::{Duration, Instant};

use sorcha_peer::config::PeerServiceConfig;
use sorcha_peer::node::{self, NodeHandle};

/// A node config on an ephemeral loopback port with fast discovery timers.
pub fn mk_config(data: &Path, bootstrap: &[String]) -> PeerServiceConfig {
    let mut cfg = PeerServiceConfig::loopback(data.to_path_buf(), 0);
    let d = &mut cfg.peer_discovery;
    d.bootstrap_nodes = bootstrap.to_vec();
    d.refresh_interval_minutes = Duration::from_millis(300);
    d.peer_timeout_seconds = Duration::from_millis(250);
    d.bootstrap_retry_minutes = Duration::from_millis(200);
    d.min_healthy_peers = 1;
    cfg.communication.connection_timeout = Duration::from_millis(250);
    cfg.communication.retry_delay_seconds = Duration::from_millis(20);
    // As fast as the bootstrap retry, so a peer that comes up is noticed.
    cfg.communication.circuit_breaker_reset_minutes = Duration::from_millis(200);
    cfg
}

pub async fn start(cfg: PeerServiceConfig) -> NodeHandle {
    node::start(cfg).await.expect("node starts")
}

/// Polls `cond` until it holds; panics with `what` after `limit`.
pub async fn wait_for(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    wait_for_or(what, limit, cond, String::new).await
}

/// `wait_for`, with `state()` describing the situation if it times out.
pub async fn wait_for_or(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
    state: impl Fn() -> String,
) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what} {}",
            state()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn known_ids(n: &NodeHandle) -> std::collections::BTreeSet<String> {
    n.membership.ids().into_iter().collect()
}

/// Starts `n` nodes (the first is the bootstrap of the others) built from
/// `tweak(mk_config(..))`, and waits until each lists all the others.
pub async fn mk_network(
    dirs: &[tempfile::TempDir],
    tweak: impl Fn(&mut PeerServiceConfig),
) -> Vec<NodeHandle> {
    let mut cfg = mk_config(dirs[0].path(), &[]);
    tweak(&mut cfg);
    let boot = start(cfg).await;
    let url = boot.url();
    let mut nodes = vec![boot];
    for d in &dirs[1..] {
        let mut cfg = mk_config(d.path(), std::slice::from_ref(&url));
        tweak(&mut cfg);
        nodes.push(start(cfg).await);
    }
    let want = dirs.len() - 1;
    wait_for("the network to converge", Duration::from_secs(30), || {
        nodes.iter().all(|n| n.membership.counts() == (want, want))
    })
    .await;
    nodes
}

/// Deterministic pseudo-random bytes (tests need distinct, reproducible data).
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut out = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut out);
    out
}
