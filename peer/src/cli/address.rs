//! `sorcha-peer address`: runs address discovery once and prints what it
//! found and how, server by server. The first thing to reach for when a
//! peer is unreachable.
use std::net::IpAddr;
use std::path::PathBuf;

use crate::address::{AddressReport, DiscoverOptions, Method, discover};

#[derive(Debug, clap::Args)]
pub struct AddressOptions {
    #[arg(long, short, env = "SORCHA_CONFIG")]
    pub config: Option<PathBuf>,
    /// STUN server to ask, HOST:PORT; repeat for more (tried in order).
    /// Replaces NetworkAddress.StunServers.
    #[arg(long = "stun", value_name = "HOST:PORT")]
    pub stun: Vec<String>,
    /// HTTP lookup service URL answering with the caller's IP; repeat for
    /// more. Replaces NetworkAddress.HttpLookupServices.
    #[arg(long = "http-lookup", value_name = "URL")]
    pub http_lookup: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(opts: AddressOptions) -> anyhow::Result<()> {
    let mut cfg = crate::config::load(opts.config.as_deref())?;
    if !opts.stun.is_empty() {
        cfg.network_address.stun_servers = opts.stun;
    }
    if !opts.http_lookup.is_empty() {
        cfg.network_address.http_lookup_services = opts.http_lookup;
    }
    // The flags go through the same checks as the file.
    cfg.validate()?;
    let bound = cfg.listen_address.parse::<IpAddr>().ok();
    let n = &cfg.network_address;
    let report = discover(n, DiscoverOptions::new(bound, n.lookup_timeout_seconds)).await;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let nothing_configured = n.stun_servers.is_empty() && n.http_lookup_services.is_empty();
        print!("{}", render(&report, nothing_configured));
    }
    Ok(())
}

pub fn render(r: &AddressReport, nothing_configured: bool) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<18}{v}\n"));
    line(
        "internal address:",
        format!("{} ({})", r.internal_address, r.internal_class),
    );
    line("external address:", r.external_address.clone());
    line("method:", method_text(r.method).into());
    line(
        "NAT:",
        format!("{} ({})", r.nat_type.as_str(), r.nat_type.describe()),
    );
    line("mapping:", r.mapping.as_str().into());
    if !r.attempts.is_empty() {
        out.push_str("attempts:\n");
        for a in &r.attempts {
            let outcome = match (&a.answer, &a.error) {
                (_, Some(e)) => format!("failed: {e}"),
                (Some(ans), None) => format!("saw {ans}"),
                (None, None) => "skipped".into(),
            };
            out.push_str(&format!(
                "  {:<5} {:<32} {outcome}\n",
                a.method.as_str(),
                a.target
            ));
        }
    }
    for w in &r.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    if r.internal_class == crate::address::AddressClass::Loopback {
        out.push_str(
            "note: the node is bound to loopback (ListenAddress), so only this host can \
             reach it and nothing was looked up\n",
        );
    } else if nothing_configured && r.method == Method::Internal {
        out.push_str(
            "note: no STUN servers or HTTP lookup services are configured \
             (NetworkAddress.StunServers/HttpLookupServices, or --stun/--http-lookup), \
             so the internal address is advertised\n",
        );
    }
    out
}

fn method_text(m: Method) -> &'static str {
    match m {
        Method::Config => "config (NetworkAddress.ExternalAddress)",
        Method::Interface => "interface (the internal address is public)",
        Method::Stun => "stun",
        Method::Http => "http (HTTP lookup service)",
        Method::Internal => "internal (no lookup answered; the internal address is used)",
    }
}
