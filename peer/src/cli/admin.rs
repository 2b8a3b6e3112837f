//! `sorcha-peer admin ...`: calls that change a node. The node serves them
//! to loopback callers, or to any caller with the token from its
//! `Security.AdminTokenFile`.
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct AdminOptions {
    /// Base URL of the node, e.g. http://127.0.0.1:7001
    #[arg(long, global = true, default_value = "http://127.0.0.1:5001")]
    peer: String,
    /// File holding the node's admin token (sent as a bearer token).
    #[arg(long, global = true, env = "SORCHA_ADMIN_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    tls: super::tls::TlsOptions,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Remove a peer from the node's list.
    RemovePeer { peer_id: String },
    /// Move a dead-lettered transaction back to the offline queue.
    Requeue { hash: String },
    /// List the bans in force (peer, time left, reason).
    Bans,
    /// Ban a peer (refused by this node until the ban ends).
    Ban {
        peer_id: String,
        /// Ban length in minutes; without it the ban lasts until unbanned.
        #[arg(long)]
        minutes: Option<u64>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a ban.
    Unban { peer_id: String },
}

pub async fn run(opts: AdminOptions) -> anyhow::Result<()> {
    let base = opts.peer.trim_end_matches('/');
    let http = opts.tls.http_client()?;
    let req = match &opts.command {
        AdminCommand::RemovePeer { peer_id } => {
            http.delete(format!("{base}/api/v1/admin/peers/{peer_id}"))
        }
        AdminCommand::Requeue { hash } => {
            http.post(format!("{base}/api/v1/admin/dead-letters/{hash}/requeue"))
        }
        AdminCommand::Bans => http.get(format!("{base}/api/v1/admin/bans")),
        AdminCommand::Ban {
            peer_id,
            minutes,
            reason,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(m) = minutes {
                body.insert("minutes".into(), (*m).into());
            }
            if let Some(r) = reason {
                body.insert("reason".into(), r.clone().into());
            }
            http.put(format!("{base}/api/v1/admin/bans/{peer_id}"))
                .json(&body)
        }
        AdminCommand::Unban { peer_id } => {
            http.delete(format!("{base}/api/v1/admin/bans/{peer_id}"))
        }
    };
    let req = match &opts.token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --token-file {}", path.display()))?;
            req.bearer_auth(token.trim())
        }
        None => req,
    };
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{status}: {}",
            body["error"].as_str().unwrap_or("no error message")
        );
    }
    println!("{body}");
    Ok(())
}
