//! `--cert/--key/--ca` (or `--tls-config`) for commands that call a node
//! over REST, so they can reach a node with mutual TLS. The CLI presents a
//! peer certificate like any peer: the node serves nothing else but health
//! and metrics to a client without one.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::comm::Connector;
use crate::config::SecurityConfig;
use crate::security::{PeerTls, TlsFiles};

#[derive(Debug, Clone, Default, Args)]
pub struct TlsOptions {
    /// Client certificate for a node with mutual TLS: PEM (key in --key or
    /// beside it as .key), or PKCS#12.
    #[arg(long, global = true, env = "SORCHA_CLI_CERT")]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert (default: the .key file beside it).
    #[arg(long, global = true, env = "SORCHA_CLI_KEY")]
    pub key: Option<PathBuf>,
    /// CA bundle the node's certificate must chain to.
    #[arg(long, global = true, env = "SORCHA_CLI_CA")]
    pub ca: Option<PathBuf>,
    /// Take certificate, key, password and CA bundle from this peer config
    /// file's Security section (plus SORCHA__* overrides), e.g. in the pod.
    #[arg(long, global = true, conflicts_with_all = ["cert", "key", "ca"])]
    pub tls_config: Option<PathBuf>,
    /// Require the node to present this peer id instead of matching the
    /// host name in --peer (e.g. https://127.0.0.1 inside its pod).
    #[arg(long, global = true)]
    pub server_peer_id: Option<String>,
}

impl TlsOptions {
    /// A plain client when no TLS option is given.
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        let security = match (&self.tls_config, &self.cert, &self.ca) {
            (None, None, None) => {
                if self.key.is_some() || self.server_peer_id.is_some() {
                    bail!("--key and --server-peer-id need --cert and --ca (or --tls-config)");
                }
                return Ok(reqwest::Client::new());
            }
            (Some(path), _, _) => crate::config::load(Some(path))?.security,
            (None, Some(cert), Some(ca)) => SecurityConfig {
                certificate_path: Some(cert.clone()),
                private_key_path: self.key.clone(),
                trusted_cas: Some(ca.clone()),
                ..SecurityConfig::default()
            },
            (None, None, Some(_)) => {
                bail!("--ca needs --cert: the node requires a client certificate")
            }
            (None, Some(_), None) => {
                bail!("--cert needs --ca: the CA bundle the node's certificate must chain to")
            }
        };
        let files = TlsFiles::from_config(&security).context("TLS options")?;
        let tls = PeerTls::load(files).context("TLS options")?;
        let connector = Connector::mutual_tls(tls, Duration::from_secs(10));
        Ok(connector.http_client(Duration::from_secs(60), self.server_peer_id.as_deref())?)
    }
}
