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
/// Lower bound of `NetworkAddress.RecheckIntervalMinutes`: each re-check
/// sends STUN requests, so a typo like "1ms" must not flood the servers.
pub const MIN_RECHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Bounds of `BloomFilterBits`: one byte, and 2^34 bits (2 GiB) per
/// generation (two generations are held).
pub const MIN_BLOOM_FILTER_BITS: u64 = 8;
pub const MAX_BLOOM_FILTER_BITS: u64 = 1 << 34;
/// Upper bound of `BloomFilterHashes`.
pub const MAX_BLOOM_FILTER_HASHES: u32 = 32;
/// Lower bound of `Security.ReloadIntervalSeconds` (each poll reads and
/// hashes the certificate files).
pub const MIN_RELOAD_INTERVAL: Duration = Duration::from_millis(100);
/// Upper bound of `Security.BanDurationMinutes`: automatic bans double per
/// repeat offence up to a day, so a longer first ban could not be honoured.
pub const MAX_BAN_DURATION: Duration = Duration::from_secs(24 * 3600);

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
        p.require(
            n.recheck_interval_minutes >= MIN_RECHECK_INTERVAL,
            "NetworkAddress.RecheckIntervalMinutes",
            human(n.recheck_interval_minutes),
            "at least 1s",
        );
        p.positive(
            "NetworkAddress.LookupTimeoutSeconds",
            n.lookup_timeout_seconds,
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
        let st_ok = st != 0 && !(max_size_ok && st > max_size);
        if !st_ok {
            p.add(
                "TransactionDistribution.StreamingThreshold",
                st,
                format!("a number of bytes from 1 to MaxTransactionSize ({max_size})"),
            );
        }
        let bits = t.bloom_filter_bits as u64;
        p.require(
            (MIN_BLOOM_FILTER_BITS..=MAX_BLOOM_FILTER_BITS).contains(&bits),
            "TransactionDistribution.BloomFilterBits",
            bits,
            "a number of bits from 8 to 17179869184 (2^34, 2 GiB)",
        );
        p.require(
            (1..=MAX_BLOOM_FILTER_HASHES).contains(&t.bloom_filter_hashes),
            "TransactionDistribution.BloomFilterHashes",
            t.bloom_filter_hashes,
            "a number of hash functions from 1 to 32",
        );
        p.positive(
            "TransactionDistribution.BloomFilterResetMinutes",
            t.bloom_filter_reset_minutes,
        );
        if st_ok && t.eager_push_threshold > st {
            p.add(
                "TransactionDistribution.EagerPushThreshold",
                t.eager_push_threshold,
                format!("0 (off) or a number of bytes up to StreamingThreshold ({st})"),
            );
        }
        p.positive(
            "TransactionDistribution.AntiEntropyIntervalSeconds",
            t.anti_entropy_interval_seconds,
        );

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
        for (key, path) in [
            ("PrivateKeyPath", &s.private_key_path),
            ("RevocationListPath", &s.revocation_list_path),
            ("AdminTokenFile", &s.admin_token_file),
        ] {
            if let Some(path) = path {
                p.require(
                    !path.as_os_str().is_empty(),
                    &format!("Security.{key}"),
                    "\"\"",
                    "null or a file path",
                );
            }
        }
        p.require(
            s.reload_interval_seconds >= MIN_RELOAD_INTERVAL,
            "Security.ReloadIntervalSeconds",
            human(s.reload_interval_seconds),
            "at least 100ms",
        );
        p.at_least_one("Security.MaxRequestsPerMinute", s.max_requests_per_minute);
        // A transaction larger than a minute's byte allowance could never be
        // accepted from anyone.
        if s.max_bytes_per_minute == 0 || (max_size_ok && s.max_bytes_per_minute < max_size) {
            p.add(
                "Security.MaxBytesPerMinute",
                s.max_bytes_per_minute,
                format!("at least MaxTransactionSize ({max_size} bytes)"),
            );
        }
        p.at_least_one(
            "Security.MaxTransactionsPerMinute",
            s.max_transactions_per_minute,
        );
        p.at_least_one(
            "Security.MaxConnectionsPerMinute",
            s.max_connections_per_minute,
        );
        p.require(
            !s.ban_duration_minutes.is_zero() && s.ban_duration_minutes <= MAX_BAN_DURATION,
            "Security.BanDurationMinutes",
            human(s.ban_duration_minutes),
            "greater than zero and at most 24h",
        );
        p.0
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
