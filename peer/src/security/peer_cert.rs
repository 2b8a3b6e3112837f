//! Who a certificate belongs to. The convention shared with the operator:
//! the peer id travels as a URI subject-alternative name
//! `urn:sorcha:peer:<peer-id>`; DNS names (and IP addresses) in the SAN are
//! for ordinary hostname verification. A URN rather than the CN because
//! SANs are what X.509 path validation and every TLS stack look at, and a
//! URN cannot be confused with a host name.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::error::{Result, SecurityError};
use crate::config::PeerRole;

/// Prefix of the URI SAN carrying the peer id.
pub const PEER_ID_URI_PREFIX: &str = "urn:sorcha:peer:";

/// Prefix of the URI SAN carrying the peer's role.
pub const ROLE_URI_PREFIX: &str = "urn:sorcha:role:";

/// The URI SAN value for `role`.
pub fn role_uri(role: PeerRole) -> String {
    format!("{ROLE_URI_PREFIX}{}", role.as_str())
}

/// The URI SAN value for `peer_id` (what the operator writes into a
/// certificate it issues).
pub fn peer_id_uri(peer_id: &str) -> String {
    format!("{PEER_ID_URI_PREFIX}{peer_id}")
}

/// Same rule as `PeerService.NodeId`: what may follow the URN prefix.
pub fn is_valid_peer_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What a (verified) certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// From the `urn:sorcha:peer:` URI SAN; `None` when the certificate has
    /// none (a server certificate may identify by host name only).
    pub peer_id: Option<String>,
    /// DNS SANs, as written.
    pub dns_names: Vec<String>,
    /// Serial number, normalized by [`normalize_serial`].
    pub serial: String,
    pub not_after: SystemTime,
    /// From the `urn:sorcha:role:` URI SAN; `None` when absent (a full peer).
    pub role: Option<PeerRole>,
}

impl PeerCertificate {
    /// Parses the end-entity certificate. It does not verify it: call this
    /// on certificates rustls has already verified (or on our own).
    pub fn from_der(der: &CertificateDer<'_>) -> Result<Self> {
        let bad = |m: String| SecurityError::PeerCertificate(m);
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| bad(format!("not a valid X.509 certificate ({e})")))?;
        let mut peer_ids = Vec::new();
        let mut dns_names = Vec::new();
        let mut roles = Vec::new();
        let san = cert
            .subject_alternative_name()
            .map_err(|e| bad(format!("unreadable subjectAltName extension ({e})")))?;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            match name {
                GeneralName::URI(uri) => {
                    if let Some(id) = strip_prefix_ignore_case(uri, PEER_ID_URI_PREFIX) {
                        peer_ids.push(id.to_string());
                    } else if let Some(r) = strip_prefix_ignore_case(uri, ROLE_URI_PREFIX) {
                        roles.push(r.to_string());
                    }
                }
                GeneralName::DNSName(dns) => dns_names.push(dns.to_string()),
                _ => {}
            }
        }
        let peer_id = match peer_ids.as_slice() {
            [] => None,
            [id] if is_valid_peer_id(id) => Some(id.clone()),
            [id] => {
                return Err(bad(format!(
                    "URI SAN {}{id:?} holds an invalid peer id (expected 1 to 128 \
                     characters of A-Z, a-z, 0-9, '.', '_' and '-')",
                    PEER_ID_URI_PREFIX
                )));
            }
            many => {
                return Err(bad(format!(
                    "{} {PEER_ID_URI_PREFIX} URI SANs ({}); a certificate must name exactly one peer",
                    many.len(),
                    many.join(", ")
                )));
            }
        };
        let role = match roles.as_slice() {
            [] => None,
            [r] => Some(PeerRole::parse(r).ok_or_else(|| {
                bad(format!(
                    "URI SAN {ROLE_URI_PREFIX}{r:?} names an unknown role (expected readonly, \
                     full or bootstrap)"
                ))
            })?),
            many => {
                return Err(bad(format!(
                    "{} {ROLE_URI_PREFIX} URI SANs ({}); a certificate names at most one role",
                    many.len(),
                    many.join(", ")
                )));
            }
        };
        let not_after = cert.validity().not_after.timestamp();
        let not_after = if not_after >= 0 {
            UNIX_EPOCH + Duration::from_secs(not_after as u64)
        } else {
            UNIX_EPOCH
        };
        Ok(PeerCertificate {
            peer_id,
            dns_names,
            serial: normalize_serial(&hex::encode(cert.raw_serial())),
            not_after,
            role,
        })
    }

    /// The identity of the other side of an established TLS session: its
    /// end-entity certificate (which rustls verified during the handshake)
    /// must carry a peer id.
    pub fn authenticated(certs: Option<&[CertificateDer<'_>]>) -> Result<Self> {
        let end_entity = certs.and_then(|c| c.first()).ok_or_else(|| {
            SecurityError::PeerCertificate("the peer presented no certificate".into())
        })?;
        let cert = Self::from_der(end_entity)?;
        if cert.peer_id.is_none() {
            return Err(SecurityError::PeerCertificate(format!(
                "certificate (serial {}) carries no {PEER_ID_URI_PREFIX}<peer-id> URI SAN",
                cert.serial
            )));
        }
        Ok(cert)
    }

    /// The holder's role: the certificate's, or `full` when it names none.
    pub fn role(&self) -> PeerRole {
        self.role.unwrap_or(PeerRole::Full)
    }

    /// Refuses a peer whose claimed id (in a request) is not the one its
    /// certificate was issued to: a valid certificate must not let one peer
    /// speak for another.
    pub fn check_claimed_peer_id(&self, claimed: &str) -> Result<()> {
        match &self.peer_id {
            Some(id) if id == claimed => Ok(()),
            Some(id) => Err(SecurityError::PeerIdMismatch {
                claimed: claimed.into(),
                certified: format!("{id:?}"),
            }),
            None => Err(SecurityError::PeerIdMismatch {
                claimed: claimed.into(),
                certified: "no peer id".into(),
            }),
        }
    }
}

/// URN scheme and namespace are case-insensitive (RFC 8141); the id is not.
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Canonical form of a serial number so that the forms tools print compare
/// equal: lowercase hex, no `:` separators, no `0x`, no leading zeros
/// (DER adds a 0x00 byte to serials whose top bit is set; openssl shows it,
/// other tools do not).
pub fn normalize_serial(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let hex: String = s
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_normalize_across_tool_spellings() {
        assert_eq!(normalize_serial("00:8F:1A"), "8f1a");
        assert_eq!(normalize_serial("0x8f1a"), "8f1a");
        assert_eq!(normalize_serial(" 8F1A "), "8f1a");
        assert_eq!(normalize_serial("0000"), "0");
    }

    #[test]
    fn peer_id_rules_and_uri() {
        assert_eq!(peer_id_uri("node-1"), "urn:sorcha:peer:node-1");
        assert!(is_valid_peer_id("node-1.a_b"));
        assert!(!is_valid_peer_id(""));
        assert!(!is_valid_peer_id("a b"));
        assert!(!is_valid_peer_id(&"x".repeat(129)));
        assert_eq!(
            strip_prefix_ignore_case("URN:Sorcha:PEER:n1", PEER_ID_URI_PREFIX),
            Some("n1")
        );
        assert_eq!(strip_prefix_ignore_case("urn:x", PEER_ID_URI_PREFIX), None);
    }

    #[test]
    fn claimed_id_must_match_certificate() {
        let cert = PeerCertificate {
            peer_id: Some("node-1".into()),
            dns_names: vec![],
            serial: "1".into(),
            not_after: UNIX_EPOCH,
            role: None,
        };
        cert.check_claimed_peer_id("node-1").unwrap();
        let e = cert.check_claimed_peer_id("node-2").unwrap_err();
        assert!(matches!(e, SecurityError::PeerIdMismatch { .. }), "{e}");
        assert!(e.to_string().contains("node-2") && e.to_string().contains("node-1"));
        let anonymous = PeerCertificate {
            peer_id: None,
            ..cert
        };
        assert!(anonymous.check_claimed_peer_id("node-1").is_err());
        assert!(PeerCertificate::authenticated(None).is_err());
    }

    #[test]
    fn role_comes_from_the_role_uri_san_and_defaults_to_full() {
        use crate::security::test_pki::Ca;
        let ca = Ca::new("roles");
        let plain = PeerCertificate::from_der(&ca.leaf("n1").issue().der).unwrap();
        assert_eq!((plain.role, plain.role()), (None, PeerRole::Full));
        for role in [PeerRole::ReadOnly, PeerRole::Full, PeerRole::Bootstrap] {
            let leaf = ca.leaf("n1").extra_uri(&role_uri(role)).issue();
            let c = PeerCertificate::from_der(&leaf.der).unwrap();
            assert_eq!(c.role(), role);
            assert_eq!(c.peer_id.as_deref(), Some("n1"));
        }
        let bad = ca.leaf("n1").extra_uri("urn:sorcha:role:admin").issue();
        let e = PeerCertificate::from_der(&bad.der).unwrap_err().to_string();
        assert!(e.contains("unknown role") && e.contains("admin"), "{e}");
        let two = ca
            .leaf("n1")
            .extra_uri("urn:sorcha:role:full")
            .extra_uri("urn:sorcha:role:bootstrap")
            .issue();
        let e = PeerCertificate::from_der(&two.der).unwrap_err().to_string();
        assert!(e.contains("at most one role"), "{e}");
    }
}
