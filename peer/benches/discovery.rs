//! Discovery benchmarks; prints a Markdown table.
//!
//!   cargo bench -p sorcha-peer --bench discovery [-- --runs N --peers N --held N]
//!
//! 1. Convergence: N peers (default 100) in this process on 127.0.0.1, one
//!    bootstrap, all started at once; time until every peer lists every
//!    other one. Refresh is set far out, so this measures the bootstrap and
//!    list-building phases, not the refresh timer.
//! 2. Memory: one `sorcha-peer run` process holding M peers (default 1,000)
//!    that answer its pings (fake responders in this process); its RSS after
//!    two full refresh rounds over all of them, and its idle RSS for scale.

#[path = "../tests/common/fake.rs"]
mod fake;
mod support;
use fake::{FakePeer, fake_info};
use std::time::{Duration, Instant};

use sorcha_peer::config::{PeerServiceConfig, to_yaml};
use sorcha_peer::node::{self, NodeHandle};
use sorcha_proto::discovery::RegisterPeerRequest;
use sorcha_proto::discovery::peer_discovery_client::PeerDiscoveryClient;

struct Args {
    runs: usize,
    peers: usize,
    held: usize,
}

fn args() -> Args {
    let mut a = Args {
        runs: 5,
        peers: 100,
        held: 1000,
    };
    let v: Vec<String> = std::env::args().collect();
    let num = |flag: &str, default: usize| {
        v.iter()
            .position(|x| x == flag)
            .and_then(|i| v.get(i + 1))
            .map_or(default, |s| {
                s.parse()
                    .unwrap_or_else(|_| panic!("{flag} needs a number"))
            })
    };
    a.runs = num("--runs", a.runs);
    a.peers = num("--peers", a.peers);
    a.held = num("--held", a.held);
    a
}

fn bench_config(data: &std::path::Path) -> PeerServiceConfig {
    let mut cfg = PeerServiceConfig::loopback(data.to_path_buf(), 0);
    cfg.peer_discovery.refresh_interval_minutes = Duration::from_secs(600);
    cfg
}

async fn converge_once(n: usize) -> Duration {
    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let boot = node::start(bench_config(&root.path().join("0")))
        .await
        .unwrap();
    let url = boot.url();
    let mut nodes: Vec<NodeHandle> = vec![boot];
    for i in 1..n {
        let mut cfg = bench_config(&root.path().join(i.to_string()));
        cfg.peer_discovery.bootstrap_nodes = vec![url.clone()];
        nodes.push(node::start(cfg).await.unwrap());
    }
    eprintln!(
        "  all {n} started after {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let want = n - 1;
    loop {
        if nodes.iter().all(|x| x.membership.counts().0 == want) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no convergence within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    for x in nodes {
        x.shutdown().await;
    }
    took
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn status_of(http: &reqwest::Client, base: &str) -> serde_json::Value {
    http.get(format!("{base}/api/v1/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// (idle RSS, RSS holding `held` peers, peak RSS) in KiB.
async fn memory(held: usize) -> (u64, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = bench_config(dir.path());
    cfg.listen_port = port;
    cfg.peer_discovery.refresh_interval_minutes = Duration::from_secs(2);
    cfg.peer_discovery.peer_timeout_seconds = Duration::from_secs(1);
    cfg.peer_discovery.max_peers_in_list = held.max(1000);
    let cfg_path = dir.path().join("peer.yaml");
    std::fs::write(&cfg_path, to_yaml(&cfg)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sorcha-peer"))
        .args(["run", "--config"])
        .arg(&cfg_path)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "node did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle, _) = rss_kib(child.id());

    let fakes: Vec<FakePeer> = (0..held)
        .map(|i| FakePeer::new(&format!("fake-{i}"), Duration::ZERO))
        .collect();
    let ports: Vec<u16> = futures::future::join_all(fakes.iter().map(FakePeer::spawn)).await;
    let mut client = PeerDiscoveryClient::connect(base.clone()).await.unwrap();
    for (i, port) in ports.iter().enumerate() {
        let info = fake_info(&format!("fake-{i}"), *port);
        let req = RegisterPeerRequest {
            peer_info: Some(info),
        };
        client.register_peer(req).await.unwrap();
    }
    drop(client);
    // Two refresh rounds that reach all of them.
    let rounds = |s: &serde_json::Value| {
        s["known_peers"].as_u64() == Some(held as u64)
            && s["active_peers"].as_u64() == Some(held as u64)
    };
    let mut seen = 0;
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen < 2 {
        let s = status_of(&http, &base).await;
        let t = s["last_successful_discovery"].as_i64().unwrap_or(0);
        if rounds(&s) && t != last && t != 0 {
            seen += 1;
            last = t;
        }
        assert!(
            Instant::now() < deadline,
            "node did not hold {held} peers: {s}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss, hwm) = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    (idle, rss, hwm)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let a = args();
    let rt = support::runtime();
    let mut times = Vec::new();
    for run in 0..a.runs {
        let t = rt.block_on(converge_once(a.peers));
        eprintln!(
            "run {run}: {} peers converged in {:.3} s",
            a.peers,
            t.as_secs_f64()
        );
        times.push(t.as_secs_f64());
    }
    let (idle, rss, hwm) = rt.block_on(memory(a.held));
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    println!();
    println!("| benchmark | result | goal (design) |");
    println!("|---|---|---|");
    println!(
        "| all {} peers know every other peer (1 process, loopback, 1 bootstrap) | median {:.3} s (min {:.3}, max {:.3}, {} runs) | < 2 s (< 30 s) |",
        a.peers,
        median(times),
        min,
        max,
        a.runs
    );
    println!(
        "| RSS of one node holding {} answering peers, after 2 refresh rounds | {:.1} MB (peak {:.1} MB; idle {:.1} MB) | < 32 MB (< 500 MB) |",
        a.held,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        idle as f64 / 1024.0
    );
}
