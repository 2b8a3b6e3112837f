//! `sorcha-peer tx ...`: submit and fetch transactions over REST.
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Submit the bytes of FILE ("-" for stdin) as one transaction; prints its hash.
    Submit {
        #[arg(long)]
        peer: String,
        file: PathBuf,
    },
    /// Fetch a transaction by hash; writes its bytes to --output or stdout.
    Get {
        #[arg(long)]
        peer: String,
        hash: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List transactions the offline queue gave up on (past OfflineMode.MaxRetries).
    DeadLetters {
        #[arg(long)]
        peer: String,
    },
}

pub async fn run(http: &reqwest::Client, cmd: TxCommand) -> anyhow::Result<()> {
    match cmd {
        TxCommand::Submit { peer, file } => {
            let data = read_input(&file)?;
            let url = format!("{}/api/v1/transactions", peer.trim_end_matches('/'));
            let resp = http
                .post(&url)
                .body(data)
                .send()
                .await
                .with_context(|| format!("cannot reach {url}"))?;
            let status = resp.status();
            let body: serde_json::Value = resp
                .json()
                .await
                .with_context(|| format!("{url} sent an unexpected body"))?;
            if !status.is_success() {
                anyhow::bail!(
                    "{url} answered {status}: {}",
                    body["error"].as_str().unwrap_or_default()
                );
            }
            let note = match (body["queued"].as_bool(), body["already_known"].as_bool()) {
                (Some(true), _) => " (queued: the node is offline)",
                (_, Some(true)) => " (already known)",
                _ => "",
            };
            println!(
                "{}{note}",
                body["transaction_hash"].as_str().unwrap_or_default()
            );
        }
        TxCommand::Get { peer, hash, output } => {
            let url = format!("{}/api/v1/transactions/{hash}", peer.trim_end_matches('/'));
            let resp = http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("cannot reach {url}"))?;
            let status = resp.status();
            if !status.is_success() {
                anyhow::bail!(
                    "{url} answered {status}: {}",
                    resp.text().await.unwrap_or_default()
                );
            }
            let bytes = resp.bytes().await?;
            match output {
                Some(path) => std::fs::write(&path, &bytes)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
            }
        }
        TxCommand::DeadLetters { peer } => {
            let url = format!(
                "{}/api/v1/transactions/dead-letters",
                peer.trim_end_matches('/')
            );
            let body: serde_json::Value = http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("cannot reach {url}"))?
                .json()
                .await?;
            println!("{:<66} {:>10} {:>6}  LAST ERROR", "HASH", "SIZE", "TRIES");
            for l in body["dead_letters"].as_array().into_iter().flatten() {
                println!(
                    "{:<66} {:>10} {:>6}  {}",
                    l["transaction_hash"].as_str().unwrap_or_default(),
                    l["size"],
                    l["retry_count"],
                    l["last_error"].as_str().unwrap_or_default()
                );
            }
            println!("queue size: {}", body["queue_size"]);
        }
    }
    Ok(())
}

fn read_input(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        return Ok(buf);
    }
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}
