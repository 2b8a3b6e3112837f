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
        // RequireMutualTLS=true is refused at start instead (node::start).
        // The `security` module implements what the remaining keys configure,
        // but the listener and clients do not use it yet (AdminTokenFile is
        // live: the admin API checks it).
        let (s, ds) = (&self.security, &d.security);
        check(
            s.certificate_path != ds.certificate_path
                || s.certificate_password != ds.certificate_password
                || s.trusted_cas != ds.trusted_cas
                || s.private_key_path != ds.private_key_path
                || s.revocation_list_path != ds.revocation_list_path
                || s.reload_interval_seconds != ds.reload_interval_seconds,
            "Security",
            "mutual TLS",
        );
        check(
            s.max_connections_per_minute != ds.max_connections_per_minute,
            "Security.MaxConnectionsPerMinute",
            "connection rate limiting",
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
        // Nor the communication manager's.
        cfg.communication.max_retries = 9;
        cfg.communication.preferred_protocol = crate::config::CommunicationProtocol::Rest;
        cfg.communication.circuit_breaker_threshold = 2;
        cfg.security.trusted_cas = Some("ca.pem".into());
        let paths: Vec<_> = cfg.inert_options().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, vec!["Security"]);
    }

    #[test]
    fn limits_and_ban_duration_are_live() {
        let mut cfg = PeerServiceConfig::default();
        cfg.security.max_requests_per_minute = 1;
        cfg.security.max_bytes_per_minute = 1;
        cfg.security.max_transactions_per_minute = 1;
        cfg.security.ban_duration_minutes = std::time::Duration::from_secs(60);
        cfg.role = crate::config::PeerRole::Full;
        assert!(cfg.inert_options().is_empty());
    }

    #[test]
    fn every_new_security_key_is_reported() {
        type Mutate = fn(&mut crate::config::SecurityConfig);
        let cases: &[(&str, Mutate)] = &[
            ("Security", |s| s.private_key_path = Some("k".into())),
            ("Security", |s| s.revocation_list_path = Some("r".into())),
            ("Security", |s| {
                s.reload_interval_seconds = std::time::Duration::from_secs(1)
            }),
            ("Security.MaxConnectionsPerMinute", |s| {
                s.max_connections_per_minute = 1
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
