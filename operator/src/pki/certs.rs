//! Certificates with rcgen: a CA per network (generated, or supplied in a
//! Secret) and one certificate per peer.
//!
//! Convention shared with the peer: the peer id travels in the certificate
//! as the URI SAN `urn:sorcha:peer:<peer-id>`, beside the pod's DNS names,
//! and its role (design "Authorization") as `urn:sorcha:role:<role>`.
use std::time::Duration;

use jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A certificate and its private key, PEM encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What the operator needs to know about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// SHA-256 of the DER, lowercase hex (what peers report as trusted).
    pub fingerprint: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    pub not_after: Timestamp,
    /// URI SANs (the peer id) and DNS SANs.
    pub uris: Vec<String>,
    pub dns_names: Vec<String>,
    pub is_ca: bool,
}

pub fn peer_uri(peer_id: &str) -> String {
    format!("urn:sorcha:peer:{peer_id}")
}

/// What a peer may do, as its certificate says (the peer reads
/// `urn:sorcha:role:<readonly|full|bootstrap>`; absent means full). The
/// operator issues `bootstrap` to the pods others bootstrap from and
/// `full` to the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    Full,
    Bootstrap,
}

impl PeerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerRole::Full => "full",
            PeerRole::Bootstrap => "bootstrap",
        }
    }
}

pub fn role_uri(role: PeerRole) -> String {
    format!("urn:sorcha:role:{}", role.as_str())
}

fn to_time(t: Timestamp) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second())
        .map_err(|e| Error::Certificate(format!("time out of range: {e}")))
}

fn plus(t: Timestamp, d: Duration) -> Result<Timestamp> {
    let span = jiff::SignedDuration::try_from(d)
        .map_err(|e| Error::Certificate(format!("validity out of range: {e}")))?;
    t.checked_add(span)
        .map_err(|e| Error::Certificate(format!("validity out of range: {e}")))
}

/// Serial from the key: unique per certificate because keys are, and no
/// second randomness source to seed in tests.
fn serial_for(key: &KeyPair) -> SerialNumber {
    let mut bytes = Sha256::digest(key.der_bytes())[..16].to_vec();
    bytes[0] &= 0x7f; // positive INTEGER
    SerialNumber::from_slice(&bytes)
}

/// A self-signed CA named after the network, valid from `now` for `validity`.
pub fn generate_ca(common_name: &str, now: Timestamp, validity: Duration) -> Result<KeyedCert> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Sorcha");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = to_time(now)?;
    params.not_after = to_time(plus(now, validity)?)?;
    params.serial_number = Some(serial_for(&key));
    let cert = params.self_signed(&key)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A peer certificate for client and server use, signed by `ca`. It never
/// outlives the CA: a chain with an expired CA fails anyway.
pub fn issue_peer_cert(
    ca: &KeyedCert,
    peer_id: &str,
    role: PeerRole,
    dns_names: &[String],
    now: Timestamp,
    validity: Duration,
) -> Result<KeyedCert> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let ca_info = inspect(&ca.cert_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, &ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, peer_id);
    params.distinguished_name = dn;
    let mut sans = vec![
        SanType::URI(
            peer_uri(peer_id)
                .try_into()
                .map_err(|_| Error::Certificate(format!("peer id {peer_id:?} is not URI-safe")))?,
        ),
        SanType::URI(
            role_uri(role)
                .try_into()
                .expect("role URIs are ASCII constants"),
        ),
    ];
    for d in dns_names {
        sans.push(SanType::DnsName(d.clone().try_into().map_err(|_| {
            Error::Certificate(format!("{d:?} is not a valid DNS name"))
        })?));
    }
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = to_time(now)?;
    params.not_after = to_time(plus(now, validity)?.min(ca_info.not_after))?;
    params.serial_number = Some(serial_for(&key));
    let cert = params.signed_by(&key, &issuer)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Parses the first certificate of a PEM text.
pub fn inspect(pem_text: &str) -> Result<CertInfo> {
    let bad = |m: String| Error::Certificate(m);
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    let not_after = Timestamp::from_second(cert.validity().not_after.timestamp())
        .map_err(|e| bad(format!("notAfter out of range: {e}")))?;
    let mut uris = Vec::new();
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::URI(u) => uris.push((*u).to_owned()),
                x509_parser::extensions::GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        fingerprint: hex::encode(Sha256::digest(&pem.contents)),
        serial: normalize_serial(&hex::encode(cert.raw_serial())),
        not_after,
        uris,
        dns_names,
        is_ca: cert.is_ca(),
    })
}

/// Canonical serial, the form the peer reports (`certificateSerial`):
/// lowercase hex without `:` or `0x` and without leading zeros, so the
/// DER sign byte and tool spellings compare equal.
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
    match hex.trim_start_matches('0') {
        "" => "0".into(),
        t => t.into(),
    }
}

/// Checks a supplied CA: a CA certificate, whose key matches.
pub fn check_ca(ca: &KeyedCert) -> std::result::Result<CertInfo, String> {
    let info = inspect(&ca.cert_pem).map_err(|e| format!("tls.crt: {e}"))?;
    if !info.is_ca {
        return Err("tls.crt is not a CA certificate (basicConstraints CA:TRUE missing)".into());
    }
    let key = KeyPair::from_pem(&ca.key_pem).map_err(|e| format!("tls.key: {e}"))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca.cert_pem.as_bytes())
        .map_err(|e| format!("tls.crt: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("tls.crt: {e}"))?;
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err("tls.key does not belong to tls.crt".into());
    }
    Ok(info)
}

/// The trust bundle: PEM concatenation, in order.
pub fn bundle<'a>(cas: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for pem in cas {
        out.push_str(pem.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn ca_is_a_ca_with_requested_validity() {
        let ca = generate_ca("alpha", now(), 365 * DAY).unwrap();
        let info = check_ca(&ca).unwrap();
        assert!(info.is_ca);
        assert_eq!(info.not_after.as_second(), now().as_second() + 365 * 86_400);
        assert_eq!(info.fingerprint.len(), 64);
    }

    #[test]
    fn peer_cert_carries_peer_uri_and_dns_and_is_capped_by_ca() {
        let ca = generate_ca("alpha", now(), 10 * DAY).unwrap();
        let dns = vec!["alpha-0.alpha-peers.ledger.svc.cluster.local".to_owned()];
        let cert = issue_peer_cert(&ca, "alpha-0", PeerRole::Full, &dns, now(), 90 * DAY).unwrap();
        let info = inspect(&cert.cert_pem).unwrap();
        assert_eq!(
            info.uris,
            ["urn:sorcha:peer:alpha-0", "urn:sorcha:role:full"]
        );
        assert_eq!(info.dns_names, dns);
        assert!(!info.is_ca);
        assert_eq!(info.not_after, inspect(&ca.cert_pem).unwrap().not_after);
    }

    #[test]
    fn peer_cert_verifies_against_its_ca_only() {
        use x509_parser::prelude::*;
        let ca = generate_ca("alpha", now(), 10 * DAY).unwrap();
        let other = generate_ca("beta", now(), 10 * DAY).unwrap();
        let cert = issue_peer_cert(&ca, "alpha-0", PeerRole::Full, &[], now(), DAY).unwrap();
        let der = |p: &str| {
            x509_parser::pem::parse_x509_pem(p.as_bytes())
                .unwrap()
                .1
                .contents
        };
        let (c, ca_der, other_der) = (der(&cert.cert_pem), der(&ca.cert_pem), der(&other.cert_pem));
        let (_, c) = X509Certificate::from_der(&c).unwrap();
        let (_, ca_c) = X509Certificate::from_der(&ca_der).unwrap();
        let (_, other_c) = X509Certificate::from_der(&other_der).unwrap();
        assert!(c.verify_signature(Some(ca_c.public_key())).is_ok());
        assert!(c.verify_signature(Some(other_c.public_key())).is_err());
    }

    #[test]
    fn supplied_ca_checks() {
        let ca = generate_ca("alpha", now(), DAY).unwrap();
        let other = generate_ca("beta", now(), DAY).unwrap();
        let mismatched = KeyedCert {
            cert_pem: ca.cert_pem.clone(),
            key_pem: other.key_pem.clone(),
        };
        assert!(
            check_ca(&mismatched)
                .unwrap_err()
                .contains("does not belong")
        );
        let leaf = issue_peer_cert(&ca, "alpha-0", PeerRole::Full, &[], now(), DAY).unwrap();
        assert!(check_ca(&leaf).unwrap_err().contains("not a CA"));
        assert!(
            check_ca(&KeyedCert {
                cert_pem: "x".into(),
                key_pem: "y".into()
            })
            .is_err()
        );
    }

    #[test]
    fn serials_normalize_like_the_peer_reports_them() {
        assert_eq!(normalize_serial("00:8F:1A"), "8f1a");
        assert_eq!(normalize_serial("0x0a1b"), "a1b");
        assert_eq!(normalize_serial("000"), "0");
        let ca = generate_ca("alpha", now(), DAY).unwrap();
        let s = inspect(&ca.cert_pem).unwrap().serial;
        assert!(!s.starts_with('0') && s == s.to_lowercase(), "{s}");
    }

    #[test]
    fn bundle_concatenates_in_order() {
        let a = generate_ca("a", now(), DAY).unwrap();
        let b = generate_ca("b", now(), DAY).unwrap();
        let pem = bundle([a.cert_pem.as_str(), b.cert_pem.as_str()]);
        assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(pem.find(a.cert_pem.trim()).unwrap() < pem.find(b.cert_pem.trim()).unwrap());
    }
}
