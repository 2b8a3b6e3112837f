//! Loading this node's identity: its certificate chain and private key,
//! from PEM files or from a PKCS#12 (`.pfx`) bundle as in the design's
//! example. The format is told by content, not by file name, so a renamed
//! file still loads and a wrong one is named in the error.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::error::{Result, SecurityError};

const CERT: &str = "certificate";
const KEY: &str = "private key";

/// Where the identity comes from, as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// PEM chain (end entity first), or a PKCS#12 bundle.
    pub certificate: PathBuf,
    /// PEM private key; `None` when the key is in `certificate` (a PKCS#12
    /// bundle, or a PEM file holding both).
    pub private_key: Option<PathBuf>,
    /// PKCS#12 password, already `${VAR}`-expanded.
    pub password: Option<String>,
}

impl std::fmt::Debug for IdentityFiles {
    // The password must not reach logs through a `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityFiles")
            .field("certificate", &self.certificate)
            .field("private_key", &self.private_key)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The parsed contents, before they become a rustls `CertifiedKey`.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// Reads the bytes of every file of `files`, in a fixed order, so a change
/// of any one can be detected by hashing them (see `reload`).
pub(crate) fn read_identity_files(files: &IdentityFiles) -> Result<Vec<Vec<u8>>> {
    let mut out = vec![read(CERT, &files.certificate)?];
    if let Some(k) = &files.private_key {
        out.push(read(KEY, k)?);
    }
    Ok(out)
}

pub(crate) fn read(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| SecurityError::read(what, path, e))
}

/// Parses identity files already read by [`read_identity_files`].
pub(crate) fn parse_identity(files: &IdentityFiles, contents: &[Vec<u8>]) -> Result<Identity> {
    let cert_bytes = &contents[0];
    if !is_pem(cert_bytes) {
        return parse_pkcs12(files, cert_bytes);
    }
    let chain = parse_pem_certs(CERT, &files.certificate, cert_bytes)?;
    let (key_path, key_bytes) = match (&files.private_key, contents.get(1)) {
        (Some(p), Some(b)) => (p.as_path(), b.as_slice()),
        // A PEM file may carry its own key (cert-manager's `tls-combined.pem`).
        _ => (files.certificate.as_path(), cert_bytes.as_slice()),
    };
    let key = PrivateKeyDer::from_pem_slice(key_bytes).map_err(|e| {
        let hint = if files.private_key.is_none() {
            " (set Security.PrivateKeyPath to the key file)"
        } else {
            ""
        };
        SecurityError::invalid(
            KEY,
            key_path,
            format!("no usable private key ({e}){hint}"),
            "a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block",
        )
    })?;
    Ok(Identity { chain, key })
}

/// Loads and checks the identity: the key must match the end-entity
/// certificate, otherwise a half-finished rotation (new certificate, old
/// key) would be served and every handshake would fail.
pub fn load_identity(
    files: &IdentityFiles,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>> {
    let contents = read_identity_files(files)?;
    certified_key(files, &contents, provider)
}

pub(crate) fn certified_key(
    files: &IdentityFiles,
    contents: &[Vec<u8>],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>> {
    let Identity { chain, key } = parse_identity(files, contents)?;
    let key_path = files.private_key.as_ref().unwrap_or(&files.certificate);
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => SecurityError::KeyMismatch {
                cert: files.certificate.clone(),
                key: key_path.clone(),
                message: e.to_string(),
            },
            other => SecurityError::invalid(
                KEY,
                key_path,
                other.to_string(),
                "an RSA, ECDSA (P-256/P-384) or Ed25519 private key",
            ),
        })
}

pub(crate) fn is_pem(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes[start..].starts_with(b"-----BEGIN ")
}

/// Every certificate of a PEM file, in order. Other blocks (a key in a
/// combined file) are skipped; a damaged block is an error, not skipped,
/// so a truncated copy is noticed.
pub(crate) fn parse_pem_certs(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>> {
    let mut certs = Vec::new();
    for (i, c) in CertificateDer::pem_slice_iter(bytes).enumerate() {
        certs.push(c.map_err(|e| {
            SecurityError::invalid(
                what,
                path,
                format!("PEM certificate block {} is unreadable ({e})", i + 1),
                "PEM \"CERTIFICATE\" blocks",
            )
        })?);
    }
    if certs.is_empty() {
        return Err(SecurityError::invalid(
            what,
            path,
            "no certificate found",
            "at least one PEM \"CERTIFICATE\" block",
        ));
    }
    Ok(certs)
}

fn parse_pkcs12(files: &IdentityFiles, bytes: &[u8]) -> Result<Identity> {
    let path = &files.certificate;
    let expected = "a PEM certificate chain, or a PKCS#12 (.pfx) file with its password in \
                    Security.CertificatePassword";
    let password = files.password.as_deref().unwrap_or("");
    let store = p12_keystore::KeyStore::from_pkcs12(
        bytes,
        password,
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .map_err(|e| {
        let hint = if files.password.is_none() {
            " (no CertificatePassword is set)"
        } else {
            " (is CertificatePassword right?)"
        };
        SecurityError::invalid(
            CERT,
            path,
            format!("cannot open as PKCS#12: {e}{hint}"),
            expected,
        )
    })?;
    let Some((_, chain)) = store.private_key_chain() else {
        return Err(SecurityError::invalid(
            CERT,
            path,
            "the PKCS#12 file holds no private key with its certificate",
            expected,
        ));
    };
    if chain.certs().is_empty() {
        return Err(SecurityError::invalid(
            CERT,
            path,
            "the PKCS#12 key has no certificate",
            expected,
        ));
    }
    // p12-keystore orders the chain end entity first.
    let certs = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    Ok(Identity { chain: certs, key })
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
