//! The node's TLS state: identity, trust bundle and revocation list behind
//! atomic swaps, and the rustls server/client configs built on them. The
//! configs are built once; what they use changes underneath them on reload
//! (see `reload.rs`).
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};

use super::error::{Result, SecurityError};
use super::identity::{IdentityFiles, certified_key, read_identity_files};
use super::peer_cert::PeerCertificate;
use super::reload::{Digests, digest};
use super::revocation::{RevocationList, Revoked};
use super::trust::parse_trust_bundle;
use super::verify::{IdentityResolver, PeerClientVerifier, PeerServerVerifier, TrustState};
use crate::config::SecurityConfig;

/// ALPN ids offered and accepted: gRPC needs h2, REST also speaks HTTP/1.1.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Every file the TLS state is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub identity: IdentityFiles,
    pub trusted_cas: PathBuf,
    pub revocation_list: Option<PathBuf>,
}

impl TlsFiles {
    /// From `PeerService.Security`, with `${VAR}` in CertificatePassword
    /// expanded. Validation has already checked which fields are set; this
    /// repeats the check so a caller that skipped it gets a clear error.
    pub fn from_config(s: &SecurityConfig) -> Result<Self> {
        let need = |p: &Option<PathBuf>, key: &str| {
            p.clone()
                .filter(|p| !p.as_os_str().is_empty())
                .ok_or_else(|| {
                    SecurityError::TlsSetup(format!(
                        "PeerService.Security.{key} is not set; mutual TLS needs it"
                    ))
                })
        };
        let password = certificate_password(s)?;
        let certificate = need(&s.certificate_path, "CertificatePath")?;
        let private_key = s
            .private_key_path
            .clone()
            .or_else(|| sibling_key(&certificate));
        Ok(TlsFiles {
            identity: IdentityFiles {
                certificate,
                private_key,
                password,
            },
            trusted_cas: need(&s.trusted_cas, "TrustedCAs")?,
            revocation_list: s.revocation_list_path.clone(),
        })
    }
}

/// `Security.CertificatePassword` with `${VAR}` expanded.
pub fn certificate_password(s: &SecurityConfig) -> Result<Option<String>> {
    s.certificate_password
        .as_deref()
        .map(crate::config::resolve_password)
        .transpose()
        .map_err(|e| SecurityError::Password(e.to_string()))
}

/// The node's live TLS material. Share it as `Arc<PeerTls>`.
pub struct PeerTls {
    pub(crate) files: TlsFiles,
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) identity: Arc<ArcSwap<CertifiedKey>>,
    pub(crate) trust: Arc<ArcSwap<TrustState>>,
    /// What was last applied (and last failed), so a reload only acts on
    /// changed files and logs each failure once.
    pub(crate) digests: Mutex<Digests>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls")
            .field("files", &self.files)
            .finish()
    }
}

impl PeerTls {
    /// Reads every file. Unlike a reload, any problem here is an error: a
    /// node must not start without a working identity.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let id_bytes = read_identity_files(&files.identity)?;
        let identity = certified_key(&files.identity, &id_bytes, &provider)?;
        let ca_bytes = super::identity::read("trust bundle (TrustedCAs)", &files.trusted_cas)?;
        let roots = parse_trust_bundle(&files.trusted_cas, &ca_bytes)?;
        let rl_bytes = read_revocation(&files)?;
        let revocation = match (&files.revocation_list, &rl_bytes) {
            (Some(p), Some(b)) => RevocationList::parse_bytes(p, b)?,
            _ => RevocationList::default(),
        };
        let trust = TrustState::new(roots, Arc::new(revocation), &provider)?;
        let digests = Digests {
            identity: digest(&id_bytes),
            trust: digest(&[ca_bytes]),
            revocation: digest(rl_bytes.as_slice()),
            ..Digests::default()
        };
        Ok(Arc::new(PeerTls {
            files,
            provider,
            identity: Arc::new(ArcSwap::new(identity)),
            trust: Arc::new(ArcSwap::from_pointee(trust)),
            digests: Mutex::new(digests),
        }))
    }

    /// Requires a client certificate (mutual TLS) in the handshake.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>> {
        self.build_server_config(true)
    }

    /// For the node's listener: a client certificate, when presented, must
    /// pass every check, but a client may also present none and finish the
    /// handshake anonymously. Kubelet probes and Prometheus scrapes have no
    /// peer certificate; the listener serves anonymous connections only
    /// `/healthz`, `/readyz` and `/metrics` (see `api::serve`).
    pub fn server_config_allowing_anonymous(&self) -> Result<Arc<ServerConfig>> {
        self.build_server_config(false)
    }

    fn build_server_config(&self, mandatory: bool) -> Result<Arc<ServerConfig>> {
        let verifier = Arc::new(PeerClientVerifier {
            trust: self.trust.clone(),
            algorithms: self.provider.signature_verification_algorithms,
            mandatory,
        });
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| SecurityError::TlsSetup(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(IdentityResolver {
                identity: self.identity.clone(),
            }));
        cfg.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        // Resumption would skip client-certificate verification, so a peer
        // revoked after its first handshake could come back on a ticket.
        // Peers keep pooled long-lived connections, so full handshakes are rare.
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
        Ok(Arc::new(cfg))
    }

    /// For outgoing connections by host name: presents our certificate and
    /// verifies the server's against the trust bundle, the revocation list
    /// and the name dialled (DNS or IP SAN).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        self.build_client_config(None)
    }

    /// For outgoing connections to a known peer: as
    /// [`client_config`](Self::client_config), but the server must carry
    /// `urn:sorcha:peer:<peer_id>` instead of matching the address dialled
    /// (see [`PeerServerVerifier`]). A server presenting another peer's
    /// certificate is refused.
    pub fn client_config_for_peer(&self, peer_id: &str) -> Result<Arc<ClientConfig>> {
        self.build_client_config(Some(peer_id.to_string()))
    }

    fn build_client_config(&self, expected_peer_id: Option<String>) -> Result<Arc<ClientConfig>> {
        let verifier = Arc::new(PeerServerVerifier {
            trust: self.trust.clone(),
            expected_peer_id,
            algorithms: self.provider.signature_verification_algorithms,
        });
        let mut cfg = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| SecurityError::TlsSetup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(IdentityResolver {
                identity: self.identity.clone(),
            }));
        cfg.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        // Same reason as the server side: every connection is verified anew.
        cfg.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(cfg))
    }

    /// The certificate this node currently presents (for status and expiry
    /// metrics).
    pub fn current_certificate(&self) -> Result<PeerCertificate> {
        let key = self.identity.load();
        let end_entity = key.end_entity_cert().map_err(|e| {
            SecurityError::TlsSetup(format!("current identity has no certificate ({e})"))
        })?;
        PeerCertificate::from_der(end_entity)
    }

    /// Whether the current revocation list refuses `cert`; lets the server
    /// drop an established connection of a peer revoked after it connected.
    pub fn revoked(&self, cert: &PeerCertificate) -> Option<Revoked> {
        self.trust.load().revocation.check(cert)
    }

    /// Number of CA certificates in the current trust bundle.
    pub fn trusted_ca_count(&self) -> usize {
        self.trust.load().roots.len()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// With no `PrivateKeyPath`, a PEM certificate's key is looked for beside
/// it with the extension `.key`: the layout of a Kubernetes TLS Secret
/// (`tls.crt` + `tls.key`), which is what the operator mounts.
fn sibling_key(cert: &Path) -> Option<PathBuf> {
    let ext = cert.extension()?.to_str()?.to_ascii_lowercase();
    if !matches!(ext.as_str(), "crt" | "pem" | "cer") {
        return None;
    }
    let key = cert.with_extension("key");
    key.is_file().then_some(key)
}

pub(crate) fn read_revocation(files: &TlsFiles) -> Result<Option<Vec<u8>>> {
    files
        .revocation_list
        .as_deref()
        .map(|p| super::identity::read("revocation list", p))
        .transpose()
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
