//! Semantic checks on a deserialized configuration. Every problem is
//! reported, one `FieldError` per bad field (or list entry), so a user fixes
//! everything in one go. A cross-field rule is skipped when the field it
//! compares against is itself invalid, so one mistake yields one error.
use std::fmt::Display;
use std::net::IpAddr;
use std::time::Duration;

use super::PeerServiceConfig;
use super::addr::{check_authority, check_http_url, is_host};
use super::duration::human;
use crate::error::{ConfigErrors, Error, FieldError};

/// Upper bound of `MaxTransactionSize`.
pub const MAX_TRANSACTION_SIZE_LIMIT: u64 = 1 << 30;
/// Lower bound of `RefreshIntervalMinutes`.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: &str, value: impl Display, expected: impl Into<String>) {
        self.0.push(FieldError {
            field: format!("PeerService.{field}"),
            value: value.to_string(),
            expected: expected.into(),
        });
    }

    /// `cond` must hold, else `field` is reported.
    fn require(&mut self, cond: bool, field: &str, value: impl Display, expected: &str) {
        if !cond {
            self.add(field, value, expected);
        }
    }

    fn positive(&mut self, field: &str, d: Duration) {
        self.require(
            !d.is_zero(),
            field,
            human(d),
            "a duration greater than zero",
        );
    }

    fn at_least_one(&mut self, field: &str, n: u64) {
        self.require(n >= 1, field, n, "at least 1");
    }

    fn list(
        &mut self,
        field: &str,
        items: &[String],
        what: &str,
        check: fn(&str) -> Result<(), String>,
    ) {
        for (i, item) in items.iter().enumerate() {
            if let Err(reason) = check(item) {
                self.add(
                    &format!("{field}[{i}]"),
                    format!("{item:?}"),
                    format!("{what} ({reason})"),
                );
            }
        }
    }
}

fn node_id_ok(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn missing(p: &Option<std::path::PathBuf>) -> bool {
    p.as_ref().is_none_or(|p| p.as_os_str().is_empty())
}

impl PeerServiceConfig {
    /// Checks every rule and returns all violations as `Error::Config`.
    pub fn validate(&self) -> crate::Result<()> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(ConfigErrors(problems)))
        }
    }

    /// Every violation, in schema order.
    pub(crate) fn problems(&self) -> Vec<FieldError> {
        let mut p = Problems::default();
        p.require(
            self.listen_port != 0,
            "ListenPort",
            self.listen_port,
            "a port from 1 to 65535",
        );
        p.require(
            self.listen_address.parse::<IpAddr>().is_ok(),
            "ListenAddress",
            format!("{:?}", self.listen_address),
            "an IP address such as 0.0.0.0, 127.0.0.1 or ::",
        );
        if let Some(id) = &self.node_id {
            p.require(
                node_id_ok(id),
                "NodeId",
                format!("{id:?}"),
                "null (generate one) or 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
            );
        }

        let n = &self.network_address;
        if let Some(a) = &n.external_address {
            p.require(
                is_host(a),
                "NetworkAddress.ExternalAddress",
                format!("{a:?}"),
                "null (discover it) or an IP address or DNS host name, without a port",
            );
        }
        p.list(
            "NetworkAddress.StunServers",
            &n.stun_servers,
            "host:port",
            |s| check_authority(s, true),
        );
        p.list(
            "NetworkAddress.HttpLookupServices",
            &n.http_lookup_services,
            "an http:// or https:// URL",
            check_http_url,
        );

        let d = &self.peer_discovery;
        p.list(
            "PeerDiscovery.BootstrapNodes",
            &d.bootstrap_nodes,
            "an http:// or https:// URL such as http://10.0.0.1:5001",
            check_http_url,
        );
        let refresh_ok = d.refresh_interval_minutes >= MIN_REFRESH_INTERVAL;
        p.require(
            refresh_ok,
            "PeerDiscovery.RefreshIntervalMinutes",
            human(d.refresh_interval_minutes),
            "at least 100ms",
        );
        let max_peers = d.max_peers_in_list;
        p.at_least_one("PeerDiscovery.MaxPeersInList", max_peers as u64);
        if d.min_healthy_peers == 0 || (max_peers >= 1 && d.min_healthy_peers > max_peers) {
            p.add(
                "PeerDiscovery.MinHealthyPeers",
                d.min_healthy_peers,
                format!("at least 1 and at most MaxPeersInList ({max_peers})"),
            );
        }
        let timeout = d.peer_timeout_seconds;
        if timeout.is_zero() || (refresh_ok && timeout >= d.refresh_interval_minutes) {
            p.add(
                "PeerDiscovery.PeerTimeoutSeconds",
                human(timeout),
                format!(
                    "greater than zero and less than RefreshIntervalMinutes ({})",
                    human(d.refresh_interval_minutes)
                ),
            );
        }
        p.require(
            (1..=1000).contains(&d.max_concurrent_discoveries),
            "PeerDiscovery.MaxConcurrentDiscoveries",
            d.max_concurrent_discoveries,
            "a number from 1 to 1000",
        );
        p.at_least_one("PeerDiscovery.FailureThreshold", d.failure_threshold.into());
        p.positive(
            "PeerDiscovery.BootstrapRetryMinutes",
            d.bootstrap_retry_minutes,
        );
        let size = d.bootstrap_peer_list_size;
        if size == 0 || (max_peers >= 1 && size > max_peers) {
            p.add(
                "PeerDiscovery.BootstrapPeerListSize",
                size,
                format!("at least 1 and at most MaxPeersInList ({max_peers})"),
            );
        }

        let c = &self.communication;
        p.positive("Communication.ConnectionTimeout", c.connection_timeout);
        p.positive("Communication.RetryDelaySeconds", c.retry_delay_seconds);
        p.at_least_one(
            "Communication.CircuitBreakerThreshold",
            c.circuit_breaker_threshold.into(),
        );
        p.positive(
            "Communication.CircuitBreakerResetMinutes",
            c.circuit_breaker_reset_minutes,
        );

        let t = &self.transaction_distribution;
        if let Some(f) = t.fanout_factor {
            p.require(
                f >= 1,
                "TransactionDistribution.FanoutFactor",
                f,
                "null (square root of the active peers) or at least 1",
            );
        }
        p.at_least_one(
            "TransactionDistribution.GossipRounds",
            t.gossip_rounds.into(),
        );
        p.positive(
            "TransactionDistribution.NotificationTimeout",
            t.notification_timeout,
        );
        p.positive(
            "TransactionDistribution.TransactionCacheTTL",
            t.transaction_cache_ttl,
        );
        let max_size = t.max_transaction_size;
        let max_size_ok = (1..=MAX_TRANSACTION_SIZE_LIMIT).contains(&max_size);
        p.require(
            max_size_ok,
            "TransactionDistribution.MaxTransactionSize",
            max_size,
            "a number of bytes from 1 to 1073741824 (1 GiB)",
        );
        let st = t.streaming_threshold;
        if st == 0 || (max_size_ok && st > max_size) {
            p.add(
                "TransactionDistribution.StreamingThreshold",
                st,
                format!("a number of bytes from 1 to MaxTransactionSize ({max_size})"),
            );
        }

        let o = &self.offline_mode;
        p.at_least_one("OfflineMode.MaxQueueSize", o.max_queue_size as u64);
        p.at_least_one("OfflineMode.MaxRetries", o.max_retries.into());

        let s = &self.security;
        if s.require_mutual_tls {
            let absent: Vec<&str> = [
                ("CertificatePath", &s.certificate_path),
                ("TrustedCAs", &s.trusted_cas),
            ]
            .into_iter()
            .filter(|(_, v)| missing(v))
            .map(|(k, _)| k)
            .collect();
            if !absent.is_empty() {
                p.add(
                    "Security.RequireMutualTLS",
                    true,
                    format!(
                        "false, or CertificatePath and TrustedCAs set as well (missing: {})",
                        absent.join(", ")
                    ),
                );
            }
        }
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    type Mutate = fn(&mut PeerServiceConfig);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// One case per rule: (field path expected in the single error, change).
    const CASES: &[(&str, Mutate)] = &[
        ("PeerService.ListenPort", |c| c.listen_port = 0),
        ("PeerService.ListenAddress", |c| {
            c.listen_address = "localhost:1".into()
        }),
        ("PeerService.NodeId", |c| c.node_id = Some(String::new())),
        ("PeerService.NodeId", |c| c.node_id = Some("a".repeat(129))),
        ("PeerService.NodeId", |c| c.node_id = Some("bad id!".into())),
        ("PeerService.NetworkAddress.ExternalAddress", |c| {
            c.network_address.external_address = Some("1.2.3.4:5".into())
        }),
        ("PeerService.NetworkAddress.StunServers[1]", |c| {
            c.network_address.stun_servers = vec!["127.0.0.1:3478".into(), "127.0.0.1".into()]
        }),
        ("PeerService.NetworkAddress.HttpLookupServices[0]", |c| {
            c.network_address.http_lookup_services = vec!["ftp://127.0.0.1".into()]
        }),
        ("PeerService.PeerDiscovery.BootstrapNodes[0]", |c| {
            c.peer_discovery.bootstrap_nodes = vec!["127.0.0.1:5001".into()]
        }),
        ("PeerService.PeerDiscovery.RefreshIntervalMinutes", |c| {
            c.peer_discovery.refresh_interval_minutes = ms(99)
        }),
        ("PeerService.PeerDiscovery.MaxPeersInList", |c| {
            c.peer_discovery.max_peers_in_list = 0
        }),
        ("PeerService.PeerDiscovery.MinHealthyPeers", |c| {
            c.peer_discovery.min_healthy_peers = 0
        }),
        ("PeerService.PeerDiscovery.MinHealthyPeers", |c| {
            c.peer_discovery.max_peers_in_list = 200;
            c.peer_discovery.bootstrap_peer_list_size = 10;
            c.peer_discovery.min_healthy_peers = 201;
        }),
        ("PeerService.PeerDiscovery.PeerTimeoutSeconds", |c| {
            c.peer_discovery.peer_timeout_seconds = Duration::ZERO
        }),
        ("PeerService.PeerDiscovery.PeerTimeoutSeconds", |c| {
            c.peer_discovery.peer_timeout_seconds = c.peer_discovery.refresh_interval_minutes
        }),
        ("PeerService.PeerDiscovery.MaxConcurrentDiscoveries", |c| {
            c.peer_discovery.max_concurrent_discoveries = 0
        }),
        ("PeerService.PeerDiscovery.MaxConcurrentDiscoveries", |c| {
            c.peer_discovery.max_concurrent_discoveries = 1001
        }),
        ("PeerService.PeerDiscovery.FailureThreshold", |c| {
            c.peer_discovery.failure_threshold = 0
        }),
        ("PeerService.PeerDiscovery.BootstrapRetryMinutes", |c| {
            c.peer_discovery.bootstrap_retry_minutes = Duration::ZERO
        }),
        ("PeerService.PeerDiscovery.BootstrapPeerListSize", |c| {
            c.peer_discovery.bootstrap_peer_list_size = 0
        }),
        ("PeerService.PeerDiscovery.BootstrapPeerListSize", |c| {
            c.peer_discovery.bootstrap_peer_list_size = 1001
        }),
        ("PeerService.Communication.ConnectionTimeout", |c| {
            c.communication.connection_timeout = Duration::ZERO
        }),
        ("PeerService.Communication.RetryDelaySeconds", |c| {
            c.communication.retry_delay_seconds = Duration::ZERO
        }),
        ("PeerService.Communication.CircuitBreakerThreshold", |c| {
            c.communication.circuit_breaker_threshold = 0
        }),
        (
            "PeerService.Communication.CircuitBreakerResetMinutes",
            |c| c.communication.circuit_breaker_reset_minutes = Duration::ZERO,
        ),
        ("PeerService.TransactionDistribution.FanoutFactor", |c| {
            c.transaction_distribution.fanout_factor = Some(0)
        }),
        ("PeerService.TransactionDistribution.GossipRounds", |c| {
            c.transaction_distribution.gossip_rounds = 0
        }),
        (
            "PeerService.TransactionDistribution.NotificationTimeout",
            |c| c.transaction_distribution.notification_timeout = Duration::ZERO,
        ),
        (
            "PeerService.TransactionDistribution.TransactionCacheTTL",
            |c| c.transaction_distribution.transaction_cache_ttl = Duration::ZERO,
        ),
        (
            "PeerService.TransactionDistribution.MaxTransactionSize",
            |c| c.transaction_distribution.max_transaction_size = 0,
        ),
        (
            "PeerService.TransactionDistribution.MaxTransactionSize",
            |c| c.transaction_distribution.max_transaction_size = MAX_TRANSACTION_SIZE_LIMIT + 1,
        ),
        (
            "PeerService.TransactionDistribution.StreamingThreshold",
            |c| c.transaction_distribution.streaming_threshold = 0,
        ),
        (
            "PeerService.TransactionDistribution.StreamingThreshold",
            |c| c.transaction_distribution.streaming_threshold = 10 * 1024 * 1024 + 1,
        ),
        ("PeerService.OfflineMode.MaxQueueSize", |c| {
            c.offline_mode.max_queue_size = 0
        }),
        ("PeerService.OfflineMode.MaxRetries", |c| {
            c.offline_mode.max_retries = 0
        }),
        ("PeerService.Security.RequireMutualTLS", |c| {
            c.security.require_mutual_tls = true
        }),
        ("PeerService.Security.RequireMutualTLS", |c| {
            c.security.require_mutual_tls = true;
            c.security.certificate_path = Some(PathBuf::from("./certs/peer.pfx"));
        }),
    ];

    #[test]
    fn defaults_are_valid() {
        PeerServiceConfig::default().validate().unwrap();
    }

    #[test]
    fn each_rule_reports_exactly_its_field() {
        for (i, (field, mutate)) in CASES.iter().enumerate() {
            let mut c = PeerServiceConfig::default();
            mutate(&mut c);
            let problems = c.problems();
            assert_eq!(problems.len(), 1, "case {i} ({field}): {problems:?}");
            assert_eq!(problems[0].field, *field, "case {i}");
            assert!(!problems[0].expected.is_empty() && !problems[0].value.is_empty());
            match c.validate() {
                Err(Error::Config(ConfigErrors(v))) => assert_eq!(v, problems),
                other => panic!("case {i}: {other:?}"),
            }
        }
    }

    #[test]
    fn all_problems_are_collected() {
        let mut c = PeerServiceConfig::default();
        for (_, mutate) in CASES {
            mutate(&mut c);
        }
        c.listen_port = 0;
        let problems = c.problems();
        assert!(problems.len() >= 25, "{problems:?}");
    }

    #[test]
    fn boundary_values_pass() {
        let mut c = PeerServiceConfig::default();
        c.listen_port = 65535;
        c.listen_address = "::".into();
        c.node_id = Some(format!("node-1.a_{}", "x".repeat(119)));
        c.network_address.external_address = Some("peer1.local".into());
        c.network_address.stun_servers = vec!["[::1]:3478".into()];
        c.network_address.http_lookup_services = vec!["https://127.0.0.1/ip".into()];
        c.peer_discovery.bootstrap_nodes = vec!["http://127.0.0.1:5001".into()];
        c.peer_discovery.refresh_interval_minutes = ms(100);
        c.peer_discovery.peer_timeout_seconds = ms(99);
        c.peer_discovery.max_peers_in_list = 1;
        c.peer_discovery.min_healthy_peers = 1;
        c.peer_discovery.bootstrap_peer_list_size = 1;
        c.peer_discovery.max_concurrent_discoveries = 1000;
        c.transaction_distribution.fanout_factor = Some(1);
        c.transaction_distribution.max_transaction_size = MAX_TRANSACTION_SIZE_LIMIT;
        c.transaction_distribution.streaming_threshold = MAX_TRANSACTION_SIZE_LIMIT;
        c.security.require_mutual_tls = true;
        c.security.certificate_path = Some("./certs/peer.pfx".into());
        c.security.trusted_cas = Some("./certs/ca.crt".into());
        assert_eq!(c.problems(), vec![]);
    }

    #[test]
    fn messages_show_value_and_limit() {
        let mut c = PeerServiceConfig::default();
        c.peer_discovery.min_healthy_peers = 2000;
        let e = &c.problems()[0];
        assert_eq!(e.value, "2000");
        assert!(e.expected.contains("MaxPeersInList (1000)"), "{e}");
        c.peer_discovery.min_healthy_peers = 5;
        c.security.require_mutual_tls = true;
        let e = &c.problems()[0];
        assert!(
            e.expected.contains("missing: CertificatePath, TrustedCAs"),
            "{e}"
        );
    }
}
