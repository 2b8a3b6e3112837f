//! `sorcha-operator`: parses arguments, sets up logging, runs the
//! controller from the library.
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use sorcha_operator::controller::{self, RunConfig, lease::LeaseConfig};

#[derive(Parser)]
#[command(about = "Kubernetes operator for Sorcha peer networks", version)]
struct Args {
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(
        long,
        env = "SORCHA_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    metrics_addr: SocketAddr,
    /// Cluster DNS suffix used in bootstrap URLs and certificate SANs.
    #[arg(
        long,
        env = "SORCHA_OPERATOR_CLUSTER_DOMAIN",
        default_value = "cluster.local"
    )]
    cluster_domain: String,
    /// Elect a leader through this Lease (needed when running more than one
    /// replica); empty disables election.
    #[arg(long, env = "SORCHA_OPERATOR_LEASE", default_value = "sorcha-operator")]
    lease_name: String,
    /// Namespace of the Lease; defaults to POD_NAMESPACE.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease; defaults to POD_NAME.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Watch only these namespaces (comma-separated), so the operator needs
    /// Roles there instead of a ClusterRole; empty watches every namespace.
    #[arg(
        long,
        env = "SORCHA_OPERATOR_NAMESPACES",
        value_delimiter = ',',
        value_parser = parse_namespace
    )]
    namespaces: Vec<String>,
}

/// A namespace name is a DNS-1123 label; a typo here would otherwise watch
/// a namespace that never exists.
fn parse_namespace(s: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"
        ))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    let args = Args::parse();
    let client = kube::Client::try_default().await?;
    let lease = (!args.lease_name.is_empty()).then(|| LeaseConfig {
        name: args.lease_name,
        namespace: args.lease_namespace,
        identity: args
            .identity
            .unwrap_or_else(|| format!("sorcha-operator-{}", std::process::id())),
        duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(5),
    });
    controller::run(
        client,
        RunConfig {
            metrics_addr: args.metrics_addr,
            cluster_domain: args.cluster_domain,
            lease,
            namespaces: args.namespaces,
        },
    )
    .await
}
