//! Transaction distribution benchmark; prints Markdown tables.
//!
//!   cargo bench -p sorcha-peer --bench gossip [-- --peers 100 --tx 200
//!       --sizes 256,1024,10240,102400,1048576 --loads light,heavy
//!       --fanout N --rounds N --eager-threshold BYTES --tls off,on --warmup N
//!       --anti-entropy-ms MS (default 2000) --warmup-every-ms MS (default: the load's)
//!       --skip-gossip
//!       --skip-flush --skip-ingest]
//!
//! Same shape as the libp2p-gossipsub anchor in the issue: N peers in one
//! process on 127.0.0.1 (real gRPC), transactions from random publishers,
//! light load (one per 200 ms) and heavy load (one per 20 ms). Per size it
//! reports time from submission to 90 % and 100 % of peers holding the
//! transaction, wire bytes per peer per transaction (every byte through
//! every node's listener: TCP payload with HTTP/2 + gRPC framing), duplicate
//! deliveries and bytes per announcement. `--tls off,on` runs every case
//! with plaintext links and again with mutual TLS (a CA and one
//! certificate per peer generated at start; default: off only). Then the
//! offline queue's flush
//! rate (100,000 queued) and durable ingest on one node.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use sorcha_peer::config::{GossipMode, PeerServiceConfig};
use sorcha_peer::node::{self, NodeHandle};
use sorcha_peer::tx::store::{TxHash, hash_of};
use tokio::sync::mpsc;

#[path = "support/pki.rs"]
mod pki;
mod support;
#[path = "support/tree_shape.rs"]
mod tree_shape;

struct Args {
    peers: usize,
    tx: usize,
    sizes: Vec<usize>,
    loads: Vec<(&'static str, Duration)>,
    /// Link modes to run each case in: false plaintext, true mutual TLS.
    tls: Vec<bool>,
    fanout: Option<usize>,
    rounds: Option<u32>,
    eager_threshold: Option<u64>,
    mode: GossipMode,
    lazy_peers: Option<usize>,
    lazy_delay: Option<Duration>,
    anti_entropy: Duration,
    /// Transactions sent (and delivered) before measuring, so every case
    /// starts with its connections open: steady state, not first contact.
    warmup: usize,
    /// Pace of the warm-up transactions (default: the case's own).
    warmup_every: Option<Duration>,
    gossip: bool,
    flush: bool,
    ingest: bool,
}

fn args() -> Args {
    let v: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        v.iter()
            .position(|x| x == flag)
            .and_then(|i| v.get(i + 1))
            .cloned()
    };
    let loads = get("--loads").unwrap_or_else(|| "light,heavy".into());
    Args {
        peers: get("--peers").map_or(100, |s| s.parse().unwrap()),
        tx: get("--tx").map_or(200, |s| s.parse().unwrap()),
        sizes: get("--sizes")
            .unwrap_or_else(|| "256,1024,10240,102400,1048576".into())
            .split(',')
            .map(|s| s.parse().unwrap())
            .collect(),
        loads: loads
            .split(',')
            .map(|l| match l {
                "light" => ("light (1 per 200 ms)", Duration::from_millis(200)),
                "heavy" => ("heavy (1 per 20 ms)", Duration::from_millis(20)),
                other => panic!("unknown load {other}"),
            })
            .collect(),
        tls: get("--tls")
            .unwrap_or_else(|| "off".into())
            .split(',')
            .map(|m| match m {
                "off" => false,
                "on" => true,
                other => panic!("--tls takes off and/or on, not {other}"),
            })
            .collect(),
        fanout: get("--fanout").map(|s| s.parse().unwrap()),
        rounds: get("--rounds").map(|s| s.parse().unwrap()),
        eager_threshold: get("--eager-threshold").map(|s| s.parse().unwrap()),
        mode: match get("--mode").as_deref() {
            None | Some("tree") => GossipMode::Tree,
            Some("rounds") => GossipMode::Rounds,
            Some(other) => panic!("--mode takes tree or rounds, not {other}"),
        },
        lazy_peers: get("--lazy-peers").map(|s| s.parse().unwrap()),
        lazy_delay: get("--lazy-delay-ms").map(|s| Duration::from_millis(s.parse().unwrap())),
        anti_entropy: Duration::from_millis(
            get("--anti-entropy-ms").map_or(2000, |s| s.parse().unwrap()),
        ),
        warmup: get("--warmup").map_or(0, |s| s.parse().unwrap()),
        warmup_every: get("--warmup-every-ms").map(|s| Duration::from_millis(s.parse().unwrap())),
        gossip: !v.iter().any(|x| x == "--skip-gossip"),
        flush: !v.iter().any(|x| x == "--skip-flush"),
        ingest: !v.iter().any(|x| x == "--skip-ingest"),
    }
}

fn bench_config(a: &Args, data: &std::path::Path) -> PeerServiceConfig {
    let mut cfg = PeerServiceConfig::loopback(data.to_path_buf(), 0);
    cfg.peer_discovery.refresh_interval_minutes = Duration::from_secs(600);
    cfg.peer_discovery.min_healthy_peers = 1;
    let t = &mut cfg.transaction_distribution;
    t.fanout_factor = a.fanout;
    if let Some(r) = a.rounds {
        t.gossip_rounds = r;
    }
    if let Some(e) = a.eager_threshold {
        t.eager_push_threshold = e;
    }
    t.gossip_mode = a.mode;
    if let Some(l) = a.lazy_peers {
        t.lazy_announce_peers = l;
    }
    if let Some(d) = a.lazy_delay {
        t.lazy_pull_delay_seconds = d;
    }
    t.anti_entropy_interval_seconds = a.anti_entropy;
    cfg
}

async fn network(a: &Args, root: &std::path::Path, tls: bool) -> Vec<NodeHandle> {
    let pki = tls.then(|| pki::BenchPki::new(root));
    let config = |i: usize| {
        let mut cfg = bench_config(a, &root.join(i.to_string()));
        if let Some(pki) = &pki {
            pki.enable(i, &mut cfg.security);
        }
        cfg
    };
    let boot = node::start(config(0)).await.unwrap();
    let url = boot.url();
    let mut nodes = vec![boot];
    for i in 1..a.peers {
        let mut cfg = config(i);
        cfg.peer_discovery.bootstrap_nodes = vec![url.clone()];
        nodes.push(node::start(cfg).await.unwrap());
    }
    let want = a.peers - 1;
    let t = Instant::now();
    while !nodes.iter().all(|n| n.membership.counts() == (want, want)) {
        assert!(t.elapsed() < Duration::from_secs(120), "no convergence");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    nodes
}

/// Unique bytes: a counter, then filler that gzip cannot shrink to nothing.
fn payload(id: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out[..8.min(size)].copy_from_slice(&id.to_le_bytes()[..8.min(size)]);
    out
}

/// Which arrivals the spread curve reports (1 = the first peer to store
/// the transaction, usually its publisher).
const CURVE: [usize; 6] = [1, 2, 11, 50, 90, 100];

struct Case {
    tls: bool,
    load: &'static str,
    size: usize,
    t90: Vec<f64>,
    t100: Vec<f64>,
    /// Per transaction, the time until the k-th peer stored it, for each
    /// k in `CURVE` (the shape of the spread: hop by hop).
    curve: Vec<Vec<f64>>,
    delivered: f64,
    wire_per_peer_tx: f64,
    dups_per_tx: f64,
    bytes_per_announcement: f64,
    /// Process CPU per transaction, all nodes together, beyond what the
    /// idle network uses (heartbeats, anti-entropy) in the same time.
    cpu_ms_per_tx: f64,
}

fn totals(nodes: &[NodeHandle]) -> (u64, u64, u64, u64) {
    nodes.iter().fold((0, 0, 0, 0), |acc, n| {
        let m = &n.membership.metrics;
        (
            acc.0 + m.listener_received.get() + m.listener_sent.get(),
            acc.1 + m.tx_duplicates.get(),
            acc.2 + m.announcements_sent.get(),
            acc.3 + m.announcement_bytes.get(),
        )
    })
}

/// Sends `a.warmup` small transactions at the case's pace and waits (up to
/// 2 minutes) until every node holds them; their arrivals are discarded.
async fn warm_up(
    a: &Args,
    nodes: &[NodeHandle],
    rx: &mut mpsc::UnboundedReceiver<(usize, TxHash, Instant)>,
    interval: Duration,
    seed: u64,
) {
    if a.warmup == 0 {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    for k in 0..a.warmup {
        tick.tick().await;
        let data = payload(u64::MAX / 2 + seed * 1_000_000 + k as u64, 512);
        let d = nodes[k % nodes.len()].distributor.clone();
        tokio::spawn(async move { d.submit(data).await.unwrap() });
    }
    let want = a.warmup * nodes.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got = 0;
    while got < want && Instant::now() < deadline {
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            got += 1;
        }
    }
}

async fn run_case(
    a: &Args,
    tls: bool,
    load: &'static str,
    interval: Duration,
    size: usize,
    seed: u64,
) -> Case {
    let root = tempfile::tempdir().unwrap();
    let nodes = network(a, root.path(), tls).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, TxHash, Instant)>();
    for (i, n) in nodes.iter().enumerate() {
        let mut sub = n.distributor.subscribe_stored();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(h) = sub.recv().await {
                let _ = tx.send((i, h, Instant::now()));
            }
        });
    }
    warm_up(a, &nodes, &mut rx, a.warmup_every.unwrap_or(interval), seed).await;
    let idle_from = (Instant::now(), cpu_seconds());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rate = (cpu_seconds() - idle_from.1) / idle_from.0.elapsed().as_secs_f64();
    eprintln!("idle network CPU: {:.1}% of one core", idle_rate * 100.0);
    let cpu_from = (Instant::now(), cpu_seconds());
    let before = totals(&nodes);
    let mut submitted: HashMap<TxHash, Instant> = HashMap::new();
    let mut arrivals: HashMap<TxHash, Vec<Instant>> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    let mut rng = seed;
    let mut shapes = tree_shape::Samples::new(Duration::from_millis(100));
    for k in 0..a.tx {
        tick.tick().await;
        shapes.sample(&nodes);
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let origin = (rng >> 33) as usize % nodes.len();
        let data = payload(seed * 1_000_000 + k as u64, size);
        let h = hash_of(&data);
        let d = nodes[origin].distributor.clone();
        submitted.insert(h, Instant::now());
        tokio::spawn(async move { d.submit(data).await.unwrap() });
        while let Ok((_, h, t)) = rx.try_recv() {
            arrivals.entry(h).or_default().push(t);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let want = a.tx * nodes.len();
    let mut got: usize = arrivals.values().map(Vec::len).sum();
    while got < want && Instant::now() < deadline {
        shapes.sample(&nodes);
        if let Ok(Some((_, h, t))) =
            tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
        {
            arrivals.entry(h).or_default().push(t);
            got += 1;
        }
    }
    eprintln!("{}", shapes.summary());
    let after = totals(&nodes);
    tree_shape::print_counters(&nodes);
    let busy = cpu_seconds() - cpu_from.1 - idle_rate * cpu_from.0.elapsed().as_secs_f64();
    let n = nodes.len();
    let (mut t90, mut t100) = (Vec::new(), Vec::new());
    let mut curve = vec![Vec::new(); CURVE.len()];
    for (h, t0) in &submitted {
        let mut ts: Vec<f64> = arrivals.get(h).map_or(Vec::new(), |v| {
            v.iter()
                .map(|t| t.duration_since(*t0).as_secs_f64())
                .collect()
        });
        ts.sort_by(f64::total_cmp);
        let i90 = (n * 9).div_ceil(10) - 1;
        t90.push(ts.get(i90).copied().unwrap_or(f64::INFINITY));
        for (c, k) in curve.iter_mut().zip(CURVE) {
            c.push(ts.get(k - 1).copied().unwrap_or(f64::INFINITY));
        }
        t100.push(if ts.len() == n {
            ts[n - 1]
        } else {
            f64::INFINITY
        });
    }
    futures::future::join_all(nodes.into_iter().map(NodeHandle::shutdown)).await;
    let announcements = (after.2 - before.2).max(1) as f64;
    Case {
        tls,
        load,
        size,
        t90,
        t100,
        curve,
        delivered: got as f64 / want as f64,
        wire_per_peer_tx: (after.0 - before.0) as f64 / (n * a.tx) as f64,
        dups_per_tx: (after.1 - before.1) as f64 / a.tx as f64,
        bytes_per_announcement: (after.3 - before.3) as f64 / announcements,
        cpu_ms_per_tx: busy.max(0.0) * 1000.0 / a.tx as f64,
    }
}

/// CPU time (user + system) this process has used, in seconds, from
/// `/proc/self/stat` (ticks of `CLK_TCK`, 100 per second on Linux).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64 * p).ceil() as usize).clamp(1, s.len()) - 1]
}

fn ms(x: f64) -> String {
    if x.is_infinite() {
        "never".into()
    } else if x >= 1.0 {
        format!("{x:.2} s")
    } else {
        format!("{:.0} ms", x * 1000.0)
    }
}

fn links(tls: bool) -> &'static str {
    if tls { "mutual TLS" } else { "plaintext" }
}

fn human(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// Queue 100,000 while Offline, then time the drain once a peer appears.
async fn flush_rate(a: &Args) -> (f64, f64) {
    let root = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = bench_config(a, &root.path().join("a"));
    cfg.peer_discovery.bootstrap_nodes = vec![format!("http://127.0.0.1:{port}")];
    cfg.peer_discovery.bootstrap_retry_minutes = Duration::from_millis(100);
    // The bootstrap URL is dead until B starts; its circuit must half-open
    // as often as bootstrap is retried, or the flush waits out the
    // default 5-minute reset.
    cfg.communication.circuit_breaker_reset_minutes = Duration::from_millis(100);
    cfg.offline_mode.max_queue_size = 200_000;
    let a_node = node::start(cfg).await.unwrap();
    while !a_node.membership.is_ready() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total = 100_000u64;
    let started = Instant::now();
    let d = a_node.distributor.clone();
    let tasks: Vec<_> = (0..64u64)
        .map(|w| {
            let d = d.clone();
            tokio::spawn(async move {
                for k in (w..total).step_by(64) {
                    assert!(d.submit(payload(9_000_000 + k, 256)).await.unwrap().queued);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let offline_ingest = total as f64 / started.elapsed().as_secs_f64();
    let mut bcfg = bench_config(a, &root.path().join("b"));
    bcfg.listen_port = port;
    let b_node = node::start(bcfg).await.unwrap();
    let started = Instant::now();
    while !a_node.distributor.queue.is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let flush = total as f64 / started.elapsed().as_secs_f64();
    a_node.shutdown().await;
    b_node.shutdown().await;
    (flush, offline_ingest)
}

/// Acknowledged (durably stored) submissions per second on one Online node.
async fn ingest_rate(a: &Args) -> f64 {
    let root = tempfile::tempdir().unwrap();
    let mut small = Args { peers: 2, ..args() };
    small.fanout = a.fanout;
    let nodes = network(&small, root.path(), false).await;
    let total = 50_000u64;
    let started = Instant::now();
    let d = nodes[0].distributor.clone();
    let tasks: Vec<_> = (0..256u64)
        .map(|w| {
            let d = d.clone();
            tokio::spawn(async move {
                for k in (w..total).step_by(256) {
                    d.submit(payload(20_000_000 + k, 256)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    // Not timed: the peer must end up with every one (nothing was dropped
    // to go faster).
    let deadline = Instant::now() + Duration::from_secs(120);
    while nodes[1].distributor.store.count().unwrap() < total {
        assert!(
            Instant::now() < deadline,
            "the peer holds only {} of {total}",
            nodes[1].distributor.store.count().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in nodes {
        n.shutdown().await;
    }
    rate
}

fn gossip_table(a: &Args, rt: &tokio::runtime::Runtime) {
    let mut cases = Vec::new();
    for (li, (load, interval)) in a.loads.iter().enumerate() {
        for (si, size) in a.sizes.iter().enumerate() {
            for &tls in &a.tls {
                // The same seed in both link modes: the same publishers.
                let seed = (li * 10 + si + 1) as u64;
                let c = rt.block_on(run_case(a, tls, load, *interval, *size, seed));
                eprintln!(
                    "{} {} {}: delivered {:.2}%",
                    links(c.tls),
                    c.load,
                    human(c.size),
                    c.delivered * 100.0
                );
                cases.push(c);
            }
        }
    }
    println!();
    println!(
        "{} peers, {} transactions per row from random publishers, {:?} gossip, fanout {}, eager push <= {} B",
        a.peers,
        a.tx,
        a.mode,
        a.fanout
            .map_or("ceil(sqrt(N))".to_string(), |f| f.to_string()),
        a.eager_threshold.unwrap_or(
            PeerServiceConfig::default()
                .transaction_distribution
                .eager_push_threshold
        )
    );
    println!();
    println!(
        "| links | load | size | delivered | to 90% p50 / p95 / p99 | to 100% p50 / p95 / p99 | wire bytes per peer per tx | × payload | duplicates per tx | bytes per announcement | CPU per tx, all peers |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for c in &cases {
        println!(
            "| {} | {} | {} | {:.1}% | {} / {} / {} | {} / {} / {} | {:.0} | {:.2} | {:.1} | {:.1} | {:.0} ms |",
            links(c.tls),
            c.load,
            human(c.size),
            c.delivered * 100.0,
            ms(pct(&c.t90, 0.5)),
            ms(pct(&c.t90, 0.95)),
            ms(pct(&c.t90, 0.99)),
            ms(pct(&c.t100, 0.5)),
            ms(pct(&c.t100, 0.95)),
            ms(pct(&c.t100, 0.99)),
            c.wire_per_peer_tx,
            c.wire_per_peer_tx / c.size as f64,
            c.dups_per_tx,
            c.bytes_per_announcement,
            c.cpu_ms_per_tx,
        );
    }
    println!();
    println!("Spread curve: p50 time until the k-th peer stored the transaction.");
    println!();
    let ks: Vec<String> = CURVE
        .iter()
        .filter(|&&k| k <= a.peers)
        .map(|k| format!("k = {k}"))
        .collect();
    println!("| links | load | size | {} |", ks.join(" | "));
    println!("|---|---|---|{}", "---|".repeat(ks.len()));
    for c in &cases {
        let cells: Vec<String> = c
            .curve
            .iter()
            .zip(CURVE)
            .filter(|(_, k)| *k <= a.peers)
            .map(|(v, _)| ms(pct(v, 0.5)))
            .collect();
        println!(
            "| {} | {} | {} | {} |",
            links(c.tls),
            c.load,
            human(c.size),
            cells.join(" | ")
        );
    }
}

fn main() {
    let a = args();
    let rt = support::runtime();
    if a.gossip {
        gossip_table(&a, &rt);
    }
    if a.flush {
        let (flush, offline_ingest) = rt.block_on(flush_rate(&a));
        println!();
        println!("| offline queue | result | goal |");
        println!("|---|---|---|");
        println!(
            "| flush of 100,000 queued transactions once a peer appears | {flush:.0} tx/s | > 100,000 tx/s (design > 1,000) |"
        );
        println!(
            "| queueing while Offline (64 concurrent submitters, 256 B) | {offline_ingest:.0} tx/s | — |"
        );
    }
    if a.ingest {
        let rate = rt.block_on(ingest_rate(&a));
        println!(
            "| durable ingest, one Online node (256 concurrent submitters, 256 B) | {rate:.0} tx/s | > 50,000 tx/s |"
        );
    }
}
