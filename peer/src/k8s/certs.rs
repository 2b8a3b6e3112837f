//! What the status says about TLS material, read from the configured files
//! each round. The files, not a cached copy, because the operator's CA
//! rotation waits until every peer reports the new CA: the mounted trust
//! bundle changing on disk is exactly the news it waits for.
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::status::CertificateFacts;
use crate::config::SecurityConfig;
use crate::security::identity::{IdentityFiles, is_pem, parse_identity, parse_pem_certs, read};
use crate::security::trust::parse_trust_bundle;
use crate::security::{PeerCertificate, SecurityError};

fn configured(p: &Option<PathBuf>) -> Option<&Path> {
    p.as_deref().filter(|p| !p.as_os_str().is_empty())
}

/// Serial and expiry of the certificate at `Security.CertificatePath` (PEM
/// chain, end entity first, or PKCS#12); `None` when none is configured.
pub fn served_certificate(s: &SecurityConfig) -> Option<Result<CertificateFacts, String>> {
    let path = configured(&s.certificate_path)?;
    Some(read_certificate(s, path).map_err(|e| e.to_string()))
}

fn read_certificate(s: &SecurityConfig, path: &Path) -> Result<CertificateFacts, SecurityError> {
    let bytes = read("certificate", path)?;
    let end_entity = if is_pem(&bytes) {
        parse_pem_certs("certificate", path, &bytes)?.remove(0)
    } else {
        // PKCS#12: its own key is inside, so no key file is consulted.
        let password = crate::security::tls::certificate_password(s)?;
        let files = IdentityFiles {
            certificate: path.to_path_buf(),
            private_key: None,
            password,
        };
        parse_identity(&files, &[bytes])?.chain.remove(0)
    };
    let cert = PeerCertificate::from_der(&end_entity)?;
    Ok(CertificateFacts {
        serial: cert.serial,
        not_after: cert.not_after,
    })
}

/// SHA-256 of the DER of each CA in `Security.TrustedCAs`, lowercase hex,
/// in file order; `None` when no bundle is configured. A bundle the TLS
/// layer would refuse is an error rather than a partial list, so a CA the
/// peer cannot actually use is never reported as trusted.
pub fn trusted_ca_fingerprints(s: &SecurityConfig) -> Option<Result<Vec<String>, String>> {
    let path = configured(&s.trusted_cas)?;
    Some(read_fingerprints(path).map_err(|e| e.to_string()))
}

fn read_fingerprints(path: &Path) -> Result<Vec<String>, SecurityError> {
    let bytes = read("trust bundle (TrustedCAs)", path)?;
    parse_trust_bundle(path, &bytes)?;
    let certs = parse_pem_certs("trust bundle (TrustedCAs)", path, &bytes)?;
    Ok(certs
        .iter()
        .map(|der| hex::encode(Sha256::digest(der.as_ref())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::test_pki::Ca;

    fn security(dir: &Path) -> SecurityConfig {
        SecurityConfig {
            certificate_path: Some(dir.join("tls.crt")),
            trusted_cas: Some(dir.join("ca.pem")),
            ..SecurityConfig::default()
        }
    }

    #[test]
    fn nothing_configured_reports_nothing() {
        let s = SecurityConfig {
            certificate_path: Some(PathBuf::new()),
            ..SecurityConfig::default()
        };
        assert!(served_certificate(&s).is_none());
        assert!(trusted_ca_fingerprints(&s).is_none());
    }

    #[test]
    fn pem_certificate_and_bundle_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Ca::new("ca-a"), Ca::new("ca-b"));
        let leaf = a.leaf("alpha-0").serial(0x8f1a).issue();
        std::fs::write(dir.path().join("tls.crt"), &leaf.cert_pem).unwrap();
        let bundle = format!("{}\n{}", a.cert_pem(), b.cert_pem());
        std::fs::write(dir.path().join("ca.pem"), bundle).unwrap();
        let s = security(dir.path());

        let c = served_certificate(&s).unwrap().unwrap();
        assert_eq!(c.serial, leaf.serial_hex);
        let fps = trusted_ca_fingerprints(&s).unwrap().unwrap();
        let expect: Vec<String> = [&a, &b]
            .iter()
            .map(|ca| hex::encode(Sha256::digest(ca.cert.der().as_ref())))
            .collect();
        assert_eq!(fps, expect);
        assert!(fps.iter().all(|f| {
            f.len() == 64
                && f.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        }));
    }

    #[test]
    fn pkcs12_certificate_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("ca");
        let leaf = ca.leaf("alpha-0").issue();
        let path = dir.path().join("peer.pfx");
        std::fs::write(&path, leaf.pkcs12("s3cret")).unwrap();
        let s = SecurityConfig {
            certificate_path: Some(path),
            certificate_password: Some("s3cret".into()),
            ..SecurityConfig::default()
        };
        assert_eq!(
            served_certificate(&s).unwrap().unwrap().serial,
            leaf.serial_hex
        );
    }

    #[test]
    fn missing_or_damaged_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = security(dir.path());
        let e = served_certificate(&s).unwrap().unwrap_err();
        assert!(e.contains("tls.crt"), "{e}");
        std::fs::write(dir.path().join("ca.pem"), "not pem").unwrap();
        let e = trusted_ca_fingerprints(&s).unwrap().unwrap_err();
        assert!(e.contains("ca.pem") && e.contains("no certificate"), "{e}");
    }
}
