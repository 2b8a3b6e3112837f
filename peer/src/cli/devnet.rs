//! `sorcha-peer devnet`: N peers in one process on 127.0.0.1, the first as
//! bootstrap, data in a temporary directory removed at exit.
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use clap::Args;

use super::remote::ago;
use crate::config::PeerServiceConfig;
use crate::node::{self, NodeHandle};

#[derive(Debug, Clone, Args)]
pub struct DevnetOptions {
    /// Number of peers.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub peers: u16,
    /// Peer i listens on port-base + i.
    #[arg(long, default_value_t = 7001)]
    pub port_base: u16,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Discovery refresh interval in seconds.
    #[arg(long, default_value_t = 5)]
    pub refresh_seconds: u64,
}

/// Configuration of devnet peer `i`: loopback only, quick intervals, and a
/// healthy-peer minimum the network can actually reach.
pub fn devnet_config(opts: &DevnetOptions, i: u16, data_root: &Path) -> PeerServiceConfig {
    let mut cfg =
        PeerServiceConfig::loopback(data_root.join(format!("peer-{i}")), opts.port_base + i);
    let d = &mut cfg.peer_discovery;
    if i > 0 {
        d.bootstrap_nodes = vec![format!("http://127.0.0.1:{}", opts.port_base)];
    }
    d.refresh_interval_minutes = Duration::from_secs(opts.refresh_seconds.max(1));
    d.peer_timeout_seconds = Duration::from_secs(2).min(d.refresh_interval_minutes / 2);
    d.bootstrap_retry_minutes = Duration::from_secs(2);
    d.min_healthy_peers = d
        .min_healthy_peers
        .min(usize::from(opts.peers.saturating_sub(1)).max(1));
    cfg.communication.connection_timeout = Duration::from_secs(2);
    cfg
}

pub async fn run(opts: DevnetOptions) -> anyhow::Result<()> {
    if u32::from(opts.port_base) + u32::from(opts.peers) > 65536 {
        anyhow::bail!(
            "--port-base {} + --peers {} exceeds port 65535",
            opts.port_base,
            opts.peers
        );
    }
    let data = tempfile::Builder::new()
        .prefix("sorcha-devnet-")
        .tempdir()?;
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..opts.peers {
        match node::start(devnet_config(&opts, i, data.path())).await {
            Ok(n) => {
                let role = if i == 0 { "bootstrap" } else { "peer" };
                println!("peer {i:<3} {}  {}  ({role})", n.node_id(), n.url());
                nodes.push(n);
            }
            Err(e) => {
                for n in nodes {
                    n.shutdown().await;
                }
                anyhow::bail!("starting peer {i}: {e}");
            }
        }
    }
    println!("data in {}; Ctrl-C to stop", data.path().display());
    let until = async {
        match opts.duration {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    let tty = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(if tty { 1 } else { 5 }));
    let mut drawn = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => drawn = draw(&nodes, tty, drawn),
            _ = &mut until => break,
            _ = super::shutdown_signal() => break,
        }
    }
    draw(&nodes, tty, drawn);
    println!("stopping {} peers", nodes.len());
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

/// Prints the status table; on a terminal, over the previous one.
fn draw(nodes: &[NodeHandle], tty: bool, previous_lines: usize) -> usize {
    let mut out = String::new();
    if tty && previous_lines > 0 {
        out.push_str(&format!("\x1b[{previous_lines}A\x1b[J"));
    }
    out.push_str(&format!(
        "{:<5} {:<34} {:<22} {:<9} {:>6} {:>7}  {}\n",
        "PEER", "NODE ID", "ADDRESS", "STATE", "KNOWN", "ACTIVE", "LAST DISCOVERY"
    ));
    for (i, n) in nodes.iter().enumerate() {
        let s = n.membership.status();
        out.push_str(&format!(
            "{:<5} {:<34} {:<22} {:<9} {:>6} {:>7}  {}\n",
            i,
            s.node_id,
            format!("{}:{}", s.address, s.port),
            s.state,
            s.known_peers,
            s.active_peers,
            ago(s.last_successful_discovery)
        ));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    nodes.len() + 1
}
