//! Commands that talk to a running node over its REST API.
use anyhow::Context;
use sorcha_proto::discovery::PeerListResponse;

use crate::discovery::NodeStatus;

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    base: &str,
    path: &str,
) -> anyhow::Result<T> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let resp = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        anyhow::bail!("{url} answered {status}: {body}");
    }
    resp.json()
        .await
        .with_context(|| format!("{url} sent an unexpected body"))
}

pub async fn status(http: &reqwest::Client, peer: &str, json: bool) -> anyhow::Result<()> {
    let s: NodeStatus = get_json(http, peer, "/api/v1/status").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("node id:         {}", s.node_id);
    println!("address:         {}:{}", s.address, s.port);
    let na = &s.network_address;
    if !na.method.is_empty() {
        println!(
            "external:        {} (found by {}; internal {})",
            na.external_address, na.method, na.internal_address
        );
        println!("NAT:             {} (mapping {})", na.nat_type, na.mapping);
        println!("reachability:    {}", na.reachability);
    }
    println!("state:           {}", s.state);
    println!(
        "peers:           {} known, {} active (minimum healthy {})",
        s.known_peers, s.active_peers, s.min_healthy_peers
    );
    println!("last discovery:  {}", ago(s.last_successful_discovery));
    println!("uptime:          {}s", s.uptime_seconds);
    println!("version:         {}", s.version);
    Ok(())
}

pub async fn peers_list(http: &reqwest::Client, peer: &str, json: bool) -> anyhow::Result<()> {
    let list: PeerListResponse =
        get_json(http, peer, "/api/v1/peers/list?max_peers=100000").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{:<34} {:<24} {:<12} PROTOCOLS",
        "PEER ID", "ADDRESS", "LAST SEEN"
    );
    for p in &list.peers {
        println!(
            "{:<34} {:<24} {:<12} {}",
            p.peer_id,
            format!("{}:{}", p.address, p.port),
            ago(p.last_seen),
            p.supported_protocols.join(",")
        );
    }
    println!("{} of {} peers", list.peers.len(), list.total_peers);
    Ok(())
}

/// "3s ago" for a Unix-millisecond timestamp; "never" for 0.
pub fn ago(ms: i64) -> String {
    if ms <= 0 {
        return "never".into();
    }
    let secs = (crate::clock::now_ms() - ms).max(0) / 1000;
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s => format!("{}h ago", s / 3600),
    }
}
