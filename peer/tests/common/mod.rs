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
    cfg
}

pub async fn start(cfg: PeerServiceConfig) -> NodeHandle {
    node::start(cfg).await.expect("node starts")
}

/// Polls `cond` until it holds; panics with `what` after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
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
