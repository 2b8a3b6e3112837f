//! Each discovery option changes observable behaviour (scripted peers).
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::fake::{FakePeer, Gauge, fake_info};
use common::{mk_config, start, wait_for};
use sorcha_peer::discovery::state::NodeState;

const LIMIT: Duration = Duration::from_secs(20);

/// A fake bootstrap listing `n` fakes that answer after `delay`.
/// The fakes share one in-flight gauge.
async fn fake_network(n: usize, delay: Duration) -> (FakePeer, u16, Vec<FakePeer>, Arc<Gauge>) {
    let boot = FakePeer::new("fake-boot", Duration::ZERO);
    let boot_port = boot.spawn().await;
    let gauge = Arc::new(Gauge::default());
    let mut fakes = Vec::new();
    for i in 0..n {
        let f = FakePeer::sharing(&format!("fake-{i}"), delay, gauge.clone());
        let port = f.spawn().await;
        boot.0
            .peers
            .lock()
            .unwrap()
            .push(fake_info(&format!("fake-{i}"), port));
        fakes.push(f);
    }
    (boot, boot_port, fakes, gauge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_discoveries_bounds_parallel_queries() {
    let (_boot, port, fakes, gauge) = fake_network(6, Duration::from_millis(150)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = mk_config(dir.path(), &[format!("http://127.0.0.1:{port}")]);
    cfg.peer_discovery.max_concurrent_discoveries = 2;
    cfg.peer_discovery.peer_timeout_seconds = Duration::from_secs(2);
    cfg.peer_discovery.refresh_interval_minutes = Duration::from_secs(60);
    let node = start(cfg).await;
    wait_for("all fakes queried", LIMIT, || {
        fakes
            .iter()
            .all(|f| !f.0.list_requests.lock().unwrap().is_empty())
    })
    .await;
    // Every fake is slow, so the queries overlap: exactly two at a time.
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 2);
    assert_eq!(node.membership.counts().0, 7);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_peers_in_list_and_bootstrap_peer_list_size_are_honoured() {
    let (boot, port, _fakes, _) = fake_network(6, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = mk_config(dir.path(), &[format!("http://127.0.0.1:{port}")]);
    cfg.peer_discovery.max_peers_in_list = 3;
    cfg.peer_discovery.bootstrap_peer_list_size = 2;
    cfg.peer_discovery.min_healthy_peers = 1;
    let node = start(cfg).await;
    wait_for("bootstrap", LIMIT, || node.membership.is_ready()).await;
    assert_eq!(
        boot.0.list_requests.lock().unwrap()[0].max_peers,
        2,
        "BootstrapPeerListSize is what we ask for"
    );
    // Several refresh rounds later the list is still capped.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(node.membership.counts().0, 3);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_timeout_turns_slow_answers_into_failures_and_min_healthy_sets_the_state() {
    let fast = FakePeer::new("fast", Duration::ZERO);
    let slow = FakePeer::new("slow", Duration::from_millis(800));
    let (fast_port, slow_port) = (fast.spawn().await, slow.spawn().await);
    let boot = FakePeer::new("fake-boot", Duration::ZERO);
    *boot.0.peers.lock().unwrap() =
        vec![fake_info("fast", fast_port), fake_info("slow", slow_port)];
    let boot_port = boot.spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = mk_config(dir.path(), &[format!("http://127.0.0.1:{boot_port}")]);
    cfg.peer_discovery.peer_timeout_seconds = Duration::from_millis(200);
    cfg.peer_discovery.min_healthy_peers = 3;
    cfg.network_address.external_address = Some("10.9.8.7".into());
    let node = start(cfg).await;
    wait_for("the slow peer to be removed", LIMIT, || {
        node.membership.ids().len() == 2 && node.membership.get("slow").is_none()
    })
    .await;
    assert!(node.membership.get("fast").unwrap().responsive);
    // Two answer (bootstrap and fast) but three are wanted: Degraded.
    assert_eq!(node.membership.state(), NodeState::Degraded);
    // It keeps going back to the bootstrap node for more peers.
    wait_for("bootstrap re-discovery", LIMIT, || {
        boot.0.registrations.lock().unwrap().len() >= 2
    })
    .await;
    // ExternalAddress is what the node advertises.
    assert_eq!(boot.0.registrations.lock().unwrap()[0].address, "10.9.8.7");
    node.shutdown().await;
}
