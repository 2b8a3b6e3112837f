//! The `sorcha-peer` command line: argument types and dispatch. `main.rs`
//! only sets up logging and calls `run`.
mod address;
mod admin;
mod devnet;
mod remote;
mod tls;
mod tx;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use devnet::{DevnetOptions, devnet_config};

#[derive(Debug, Parser)]
#[command(name = "sorcha-peer", version, about = "Sorcha peer-to-peer node")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node from a YAML config file (plus SORCHA__* environment overrides).
    Run {
        #[arg(long, short, env = "SORCHA_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Start a local network of N peers on 127.0.0.1 with a live status table.
    Devnet(DevnetOptions),
    /// Discover this host's external address and NAT type once, and print how.
    Address(address::AddressOptions),
    /// Inspect the peer list of a running node.
    Peers {
        #[command(flatten)]
        tls: tls::TlsOptions,
        #[command(subcommand)]
        command: PeersCommand,
    },
    /// Show the status of a running node.
    Status {
        /// Base URL of the node, e.g. http://127.0.0.1:7001
        #[arg(long)]
        peer: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        tls: tls::TlsOptions,
    },
    /// Submit and fetch transactions.
    Tx {
        #[command(flatten)]
        tls: tls::TlsOptions,
        #[command(subcommand)]
        command: tx::TxCommand,
    },
    /// Admin calls: remove a peer, requeue a dead letter, list/ban/unban peers.
    Admin(admin::AdminOptions),
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PeersCommand {
    /// List the peers a node knows.
    List {
        /// Base URL of the node, e.g. http://127.0.0.1:7001
        #[arg(long)]
        peer: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (file + environment + defaults) as YAML.
    Print {
        #[arg(long, short, env = "SORCHA_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => run_node(config).await,
        Command::Devnet(opts) => devnet::run(opts).await,
        Command::Address(opts) => address::run(opts).await,
        Command::Peers {
            tls,
            command: PeersCommand::List { peer, json },
        } => remote::peers_list(&tls.http_client()?, &peer, json).await,
        Command::Status { peer, json, tls } => {
            remote::status(&tls.http_client()?, &peer, json).await
        }
        Command::Tx { tls, command } => tx::run(&tls.http_client()?, command).await,
        Command::Admin(opts) => admin::run(opts).await,
        Command::Config {
            command: ConfigCommand::Print { config },
        } => {
            let cfg = crate::config::load(config.as_deref())?;
            print!("{}", crate::config::to_yaml(&cfg));
            Ok(())
        }
    }
}

async fn run_node(config: Option<PathBuf>) -> anyhow::Result<()> {
    let cfg = crate::config::load(config.as_deref())?;
    if !cfg.enabled {
        println!("PeerService.Enabled is false: not starting");
        return Ok(());
    }
    let node = crate::node::start(cfg).await?;
    println!(
        "node {} listening on {} (advertised as {})",
        node.node_id(),
        node.local_addr,
        node.url()
    );
    shutdown_signal().await;
    node.shutdown().await;
    Ok(())
}

/// Ctrl-C or SIGTERM (what Kubernetes sends).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
