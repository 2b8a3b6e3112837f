use clap::Parser;
use sorcha_peer::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The devnet's table is the output; keep logs to warnings unless asked.
    let default = if matches!(cli.command, Command::Devnet(_)) {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
    sorcha_peer::cli::run(cli).await
}
