//! Keeps the advertised address current: re-runs discovery every
//! `RecheckIntervalMinutes`, and at once when the host's interface
//! addresses change (a new network, a DHCP renewal, a VPN). After each run
//! the node verifies itself through the address, then publishes the result
//! to what RegisterPeer/Ping advertise, the status API and the metrics.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::verify::{Reachability, verify};
use super::{
    AddressClass, AddressReport, AddressStatus, DiscoverOptions, Method, discover, interfaces,
};
use crate::clock::now_ms;
use crate::config::NetworkAddressConfig;
use crate::discovery::Membership;

/// How often the interface list is compared for a network change. Reading
/// it is one netlink dump, cheap enough to do this often.
pub const NETWORK_POLL: Duration = Duration::from_secs(2);

pub struct Recheck {
    pub membership: Arc<Membership>,
    pub cfg: NetworkAddressConfig,
    pub bound: IpAddr,
    pub port: u16,
    /// Plaintext or mutual TLS, as peers will call this node.
    pub connector: crate::comm::Connector,
}

impl Recheck {
    fn options(&self) -> DiscoverOptions {
        DiscoverOptions::new(Some(self.bound), self.cfg.lookup_timeout_seconds)
    }

    /// Publishes `first` (the discovery done at start) as not yet
    /// verified, then runs the checks in a task until `shutdown`.
    pub fn start(
        self,
        first: AddressReport,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        publish(&self.membership, &first, &Reachability::unchecked());
        tokio::spawn(self.run(first, shutdown))
    }

    async fn run(self, first: AddressReport, shutdown: CancellationToken) {
        let mut report = first;
        let mut seen = interfaces::fingerprint(&interfaces::list());
        loop {
            let reach = tokio::select! {
                r = self.verify(&report) => r,
                _ = shutdown.cancelled() => return,
            };
            publish(&self.membership, &report, &reach);
            let changed = tokio::select! {
                c = wait_for_change(&mut seen, self.cfg.recheck_interval_minutes) => c,
                _ = shutdown.cancelled() => return,
            };
            if changed {
                tracing::info!("network interfaces changed; looking up the external address again");
            }
            let next = tokio::select! {
                r = discover(&self.cfg, self.options()) => r,
                _ = shutdown.cancelled() => return,
            };
            report = keep_last_good(&report, next);
        }
    }

    async fn verify(&self, report: &AddressReport) -> Reachability {
        if report.internal_class == AddressClass::Loopback && report.method == Method::Internal {
            // Only this host can connect, and it trivially can: asking would
            // only add a request per node to every devnet and benchmark start.
            return Reachability {
                reachable: None,
                summary: "not checked (bound to loopback)".into(),
                detail: String::new(),
            };
        }
        let timeout = self.cfg.lookup_timeout_seconds;
        verify(
            &report.external_address,
            self.port,
            self.membership.id(),
            timeout,
            &self.connector,
        )
        .await
    }
}

/// Sleeps until `interval` passed (false) or the interfaces changed (true).
async fn wait_for_change(seen: &mut Vec<(String, IpAddr)>, interval: Duration) -> bool {
    let deadline = Instant::now() + interval;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(NETWORK_POLL.min(deadline - now)).await;
        let current = interfaces::fingerprint(&interfaces::list());
        if current != *seen {
            *seen = current;
            return true;
        }
    }
}

/// A re-check whose lookups all failed on an unchanged network keeps the
/// last external address: a STUN outage must not make the node advertise
/// its private address.
pub fn keep_last_good(last: &AddressReport, mut next: AddressReport) -> AddressReport {
    let looked_up = matches!(last.method, Method::Stun | Method::Http);
    if next.method == Method::Internal
        && looked_up
        && next.internal_address == last.internal_address
    {
        let w = format!(
            "every lookup failed; keeping the last external address {} (found by {})",
            last.external_address,
            last.method.as_str()
        );
        tracing::warn!("{w}");
        next.warnings.push(w);
        next.external_address = last.external_address.clone();
        next.method = last.method;
        next.nat_type = last.nat_type;
        next.mapping = last.mapping;
    }
    next
}

/// Makes `report` what the node advertises and reports.
pub fn publish(m: &Membership, report: &AddressReport, reach: &Reachability) {
    let old = m.me().address.clone();
    if m.set_advertised_address(&report.external_address) {
        tracing::info!(
            from = %old,
            to = %report.external_address,
            method = report.method.as_str(),
            "advertised address changed"
        );
    }
    if reach.reachable == Some(false) {
        tracing::warn!(
            address = %report.external_address,
            detail = %reach.detail,
            "{}: peers will probably not reach this node at its advertised address",
            reach.summary
        );
    }
    let status = AddressStatus::new(report, reach, now_ms());
    let metrics = &m.metrics;
    metrics.external_address_info.reset();
    metrics
        .external_address_info
        .with_label_values(&[
            report.external_address.as_str(),
            report.nat_type.as_str(),
            report.method.as_str(),
        ])
        .set(1);
    metrics
        .external_address_reachable
        .set(reach.reachable.map_or(-1, i64::from));
    m.set_address_status(status);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{Mapping, NatType};

    fn report(method: Method, internal: &str, external: &str) -> AddressReport {
        let mut r = AddressReport::new(internal.parse().unwrap());
        r.method = method;
        r.external_address = external.into();
        r.nat_type = NatType::Symmetric;
        r.mapping = Mapping::EndpointDependent;
        r
    }

    #[test]
    fn failed_lookups_keep_the_last_external_address_on_the_same_network() {
        let last = report(Method::Stun, "10.0.0.2", "198.18.0.1");
        let failed = report(Method::Internal, "10.0.0.2", "10.0.0.2");
        let kept = keep_last_good(&last, failed);
        assert_eq!(kept.external_address, "198.18.0.1");
        assert_eq!(kept.method, Method::Stun);
        assert_eq!(kept.warnings.len(), 1);

        let moved = report(Method::Internal, "10.9.0.2", "10.9.0.2");
        assert_eq!(keep_last_good(&last, moved).external_address, "10.9.0.2");
        let found = report(Method::Http, "10.0.0.2", "198.18.0.7");
        assert_eq!(keep_last_good(&last, found).external_address, "198.18.0.7");
    }
}
