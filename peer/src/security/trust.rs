//! The trust bundle: the CA certificates a peer's certificate must chain
//! to. One file may hold several CAs, which is how a CA is rotated without
//! a flag day: add the new CA, re-issue peers, then drop the old one.
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;

use super::error::{Result, SecurityError};
use super::identity::parse_pem_certs;

const WHAT: &str = "trust bundle (TrustedCAs)";

/// Parses a PEM trust bundle. Every certificate must be usable as a trust
/// anchor: silently dropping one would make the peers it issued fail later
/// with an "unknown CA" that points nowhere near the real cause.
pub fn parse_trust_bundle(path: &Path, bytes: &[u8]) -> Result<Arc<RootCertStore>> {
    let certs = parse_pem_certs(WHAT, path, bytes)?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            SecurityError::invalid(
                WHAT,
                path,
                format!("certificate {} is not a usable CA certificate ({e})", i + 1),
                "PEM CA certificates",
            )
        })?;
    }
    Ok(Arc::new(roots))
}

pub fn load_trust_bundle(path: &Path) -> Result<Arc<RootCertStore>> {
    let bytes = super::identity::read(WHAT, path)?;
    parse_trust_bundle(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::test_pki::Ca;

    #[test]
    fn bundle_holds_every_ca() {
        let (a, b) = (Ca::new("ca-a"), Ca::new("ca-b"));
        let pem = format!("{}\n{}", a.cert_pem(), b.cert_pem());
        let roots = parse_trust_bundle(Path::new("ca.pem"), pem.as_bytes()).unwrap();
        assert_eq!(roots.len(), 2);
    }

    #[test]
    fn empty_or_damaged_bundle_names_the_file() {
        let e = parse_trust_bundle(Path::new("/etc/ca.pem"), b"").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/etc/ca.pem") && msg.contains("no certificate"),
            "{msg}"
        );
        let pem = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        let e = parse_trust_bundle(Path::new("/etc/ca.pem"), pem).unwrap_err();
        assert!(e.to_string().contains("block 1"), "{e}");
        let e = load_trust_bundle(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert_eq!(e.label(), "security_file_read");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
