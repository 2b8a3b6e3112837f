//! Options this build accepts and validates but does not act on yet,
//! because the component they configure has not landed. `run` warns about
//! each one set away from its default, so nobody mistakes it for working.
use super::PeerServiceConfig;

impl PeerServiceConfig {
    /// Paths of options set to a non-default value that have no effect yet,
    /// each with the component that will give it one.
    pub fn inert_options(&self) -> Vec<(&'static str, &'static str)> {
        let d = PeerServiceConfig::default();
        let mut out = Vec::new();
        let mut check = |changed: bool, path, component| {
            if changed {
                out.push((path, component));
            }
        };
        let (c, dc) = (&self.communication, &d.communication);
        check(
            c.preferred_protocol != dc.preferred_protocol,
            "Communication.PreferredProtocol",
            "communication manager",
        );
        check(
            c.max_retries != dc.max_retries,
            "Communication.MaxRetries",
            "communication manager",
        );
        check(
            c.retry_delay_seconds != dc.retry_delay_seconds,
            "Communication.RetryDelaySeconds",
            "communication manager",
        );
        check(
            c.circuit_breaker_threshold != dc.circuit_breaker_threshold,
            "Communication.CircuitBreakerThreshold",
            "communication manager",
        );
        check(
            c.circuit_breaker_reset_minutes != dc.circuit_breaker_reset_minutes,
            "Communication.CircuitBreakerResetMinutes",
            "communication manager",
        );
        // Mutual TLS, its files, hot reload and the connection-rate limit
        // are live; so is AdminTokenFile (the admin API checks it).
        let (s, ds) = (&self.security, &d.security);
        check(
            s.max_requests_per_minute != ds.max_requests_per_minute
                || s.max_bytes_per_minute != ds.max_bytes_per_minute
                || s.max_transactions_per_minute != ds.max_transactions_per_minute,
            "Security.Max*PerMinute",
            "rate limiting",
        );
        check(
            s.ban_duration_minutes != ds.ban_duration_minutes,
            "Security.BanDurationMinutes",
            "peer reputation and banning",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_not_reported_and_each_changed_option_is() {
        let mut cfg = PeerServiceConfig::default();
        assert!(cfg.inert_options().is_empty());
        // Address discovery works: its options are not inert.
        cfg.network_address.stun_servers = vec!["127.0.0.1:3478".into()];
        cfg.network_address.http_lookup_services = vec!["http://127.0.0.1/ip".into()];
        // Nor are those of transaction distribution and the offline queue.
        cfg.offline_mode.max_queue_size = 5;
        cfg.transaction_distribution.gossip_rounds = 5;
        cfg.communication.max_retries = 9;
        // Nor are mutual TLS and the connection-rate limit.
        cfg.security.trusted_cas = Some("ca.pem".into());
        cfg.security.reload_interval_seconds = std::time::Duration::from_secs(1);
        cfg.security.max_connections_per_minute = 1;
        let paths: Vec<_> = cfg.inert_options().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, vec!["Communication.MaxRetries"]);
    }

    #[test]
    fn every_new_security_key_is_reported() {
        type Mutate = fn(&mut crate::config::SecurityConfig);
        let cases: &[(&str, Mutate)] = &[
            ("Security.Max*PerMinute", |s| s.max_requests_per_minute = 1),
            ("Security.Max*PerMinute", |s| s.max_bytes_per_minute = 1),
            ("Security.Max*PerMinute", |s| {
                s.max_transactions_per_minute = 1
            }),
            ("Security.BanDurationMinutes", |s| {
                s.ban_duration_minutes = std::time::Duration::from_secs(60)
            }),
        ];
        for (path, mutate) in cases {
            let mut cfg = PeerServiceConfig::default();
            mutate(&mut cfg.security);
            let paths: Vec<_> = cfg.inert_options().into_iter().map(|(p, _)| p).collect();
            assert_eq!(paths, vec![*path]);
        }
    }
}
