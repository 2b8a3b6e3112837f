//! The design's step 5: the node calls its own API through the address it
//! is about to advertise. If that fails, peers outside will most likely
//! fail too: the node is behind a restrictive NAT (no port forward, or no
//! hairpinning), and peers must rely on it calling them.
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Result of the self-check, as shown in the status API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachability {
    /// None until the first check ran.
    pub reachable: Option<bool>,
    /// "reachable", "behind restrictive NAT" or "not checked yet".
    pub summary: String,
    /// What was tried and, on failure, what went wrong.
    pub detail: String,
}

pub const RESTRICTIVE: &str = "behind restrictive NAT";

impl Reachability {
    pub fn unchecked() -> Self {
        Self {
            reachable: None,
            summary: "not checked yet".into(),
            detail: String::new(),
        }
    }
}

/// GETs `/api/v1/status` at `address:port` and expects this node's id back,
/// so a different host answering at that address does not count.
/// With mutual TLS the call presents this node's certificate and requires
/// the answering server's to name `node_id`.
pub async fn verify(
    address: &str,
    port: u16,
    node_id: &str,
    timeout: Duration,
    connector: &crate::comm::Connector,
) -> Reachability {
    let url = format!("{}/api/v1/status", connector.url(address, port));
    let fetched = match connector.http_client(timeout, Some(node_id)) {
        Ok(client) => fetch_node_id(&client, &url, timeout).await,
        Err(e) => Err(e.to_string()),
    };
    match fetched {
        Ok(id) if id == node_id => Reachability {
            reachable: Some(true),
            summary: "reachable".into(),
            detail: format!("{url} answered as this node"),
        },
        Ok(id) => Reachability {
            reachable: Some(false),
            summary: RESTRICTIVE.into(),
            detail: format!("{url} answered as node {id:?}, not this node"),
        },
        Err(e) => Reachability {
            reachable: Some(false),
            summary: RESTRICTIVE.into(),
            detail: format!("{url}: {e}"),
        },
    }
}

async fn fetch_node_id(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<String, String> {
    let resp = client.get(url).send().await.map_err(|e| {
        if e.is_timeout() {
            format!("no answer within {}", humantime::format_duration(timeout))
        } else if e.is_connect() {
            "connection failed (refused or unreachable)".to_owned()
        } else {
            e.to_string()
        }
    })?;
    if !resp.status().is_success() {
        return Err(format!("answered {}", resp.status()));
    }
    let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    body.get("node_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "answer has no node_id".to_owned())
}
