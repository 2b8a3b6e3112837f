//! Peer security (design "Security Considerations"): mutual TLS with
//! certificate-based peer identity, a revocation list, hot reload of all
//! of it, abuse limits and reputation.
//!
//! - [`tls::PeerTls`] holds the node's identity ([`identity`]: PEM or
//!   PKCS#12), trust bundle ([`trust`]: several CAs, for rotation) and
//!   [`revocation`] list behind atomic swaps, and builds the rustls
//!   `ServerConfig` (client certificates required) and `ClientConfig`
//!   from the [`verify`] plug-ins. [`reload`] re-reads changed files.
//! - [`peer_cert`] is the identity convention shared with the operator: the
//!   peer id is the URI SAN `urn:sorcha:peer:<peer-id>`.
//! - [`handshake::accept`] runs a server handshake and returns the
//!   authenticated peer or a classified, logged refusal.
//! - [`limits`] and [`reputation`] are pure accounting over a [`clock`].
//! - [`policy`] decides, per request, who the caller is and whether to
//!   serve it (claimed id vs certificate, bans, limits, capabilities).
//! - [`admin::AdminAuth`] decides who may call admin operations.
pub mod admin;
pub mod clock;
pub mod error;
pub mod handshake;
pub mod identity;
pub mod limits;
pub mod peer_cert;
pub mod policy;
pub mod reload;
pub mod reputation;
pub mod revocation;
pub mod tls;
pub mod trust;
pub mod verify;

#[cfg(test)]
pub(crate) mod test_pki;

pub use admin::{AdminAuth, AdminRefusal};
pub use error::{Result, SecurityError};
pub use handshake::{HandshakeRefusal, RefusalReason, accept, accept_optional};
pub use identity::{IdentityFiles, load_identity};
pub use limits::{
    ConnectionRateLimiter, LimitExceeded, LimitKind, PeerLimits, PeerRateLimiter, RequestCost,
};
pub use peer_cert::{PEER_ID_URI_PREFIX, PeerCertificate, ROLE_URI_PREFIX, peer_id_uri, role_uri};
pub use policy::{
    Action, Admission, CallerFacts, Identity, PeerObserver, Policy, Refusal, RefusalClass,
};
pub use reload::{Part, ReloadReport};
pub use reputation::{Observation, Reputation, ReputationConfig};
pub use revocation::RevocationList;
pub use tls::{ALPN_PROTOCOLS, PeerTls, TlsFiles};

use crate::config::SecurityConfig;

impl PeerLimits {
    pub fn from_config(s: &SecurityConfig) -> Self {
        PeerLimits {
            requests_per_minute: s.max_requests_per_minute,
            bytes_per_minute: s.max_bytes_per_minute,
            transactions_per_minute: s.max_transactions_per_minute,
        }
    }
}

impl ReputationConfig {
    pub fn from_config(s: &SecurityConfig) -> Self {
        ReputationConfig {
            ban_duration: s.ban_duration_minutes,
            ..ReputationConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_from, to_yaml};
    use std::time::Duration;

    #[test]
    fn security_keys_load_from_yaml_and_environment() {
        let yaml = "PeerService:\n  Security:\n    RequireMutualTLS: false\n    \
                    PrivateKeyPath: /certs/tls.key\n    RevocationListPath: /certs/revoked.txt\n    \
                    ReloadIntervalSeconds: 500ms\n    MaxRequestsPerMinute: 50\n    \
                    BanDurationMinutes: 2\n    AdminTokenFile: /secrets/admin\n";
        let env = [(
            "SORCHA__SECURITY__MAXTRANSACTIONSPERMINUTE".to_string(),
            "7".to_string(),
        )];
        let cfg = load_from(Some(yaml), &env).unwrap();
        let s = &cfg.security;
        assert_eq!(
            s.private_key_path.as_deref(),
            Some("/certs/tls.key".as_ref())
        );
        assert_eq!(s.reload_interval_seconds, Duration::from_millis(500));
        assert_eq!(
            s.admin_token_file.as_deref(),
            Some("/secrets/admin".as_ref())
        );
        let limits = PeerLimits::from_config(s);
        assert_eq!(limits.requests_per_minute, 50);
        assert_eq!(limits.transactions_per_minute, 7);
        assert_eq!(limits.bytes_per_minute, 100 * 1024 * 1024);
        assert_eq!(
            ReputationConfig::from_config(s).ban_duration,
            Duration::from_secs(120)
        );
        // Round trip through the YAML the `config` command prints.
        assert_eq!(load_from(Some(&to_yaml(&cfg)), &[]).unwrap(), cfg);
        // Defaults equal the design's limits.
        let d = crate::config::SecurityConfig::default();
        assert_eq!(PeerLimits::from_config(&d), PeerLimits::default());
    }
}
