//! rustls plug-ins that read the *current* material on every handshake.
//! rustls configs are immutable once built; these hold an `ArcSwap` that the
//! reloader replaces, so a new certificate, CA bundle or revocation list
//! applies to the next handshake while established sessions keep the state
//! they were verified with.
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ResolvesClientCert, WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor,
};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::error::{Result, SecurityError};
use super::peer_cert::{PEER_ID_URI_PREFIX, PeerCertificate};
use super::revocation::RevocationList;

/// What a peer's certificate is checked against; replaced as a whole.
#[derive(Debug)]
pub(crate) struct TrustState {
    pub roots: Arc<RootCertStore>,
    pub revocation: Arc<RevocationList>,
    client: Arc<dyn ClientCertVerifier>,
    server: Arc<WebPkiServerVerifier>,
}

impl TrustState {
    pub fn new(
        roots: Arc<RootCertStore>,
        revocation: Arc<RevocationList>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self> {
        let setup = |e: rustls::server::VerifierBuilderError| {
            SecurityError::TlsSetup(format!("certificate verifier: {e}"))
        };
        let client = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(setup)?;
        let server = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(setup)?;
        Ok(TrustState {
            roots,
            revocation,
            client,
            server,
        })
    }
}

/// Error text for logs: rustls shows its `Other` variant with `{:?}`, so
/// our own errors inside it are unwrapped to their message.
pub(crate) fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(o)) => o.0.to_string(),
        other => other.to_string(),
    }
}

/// Logs why a certificate was refused. The handshake error that reaches
/// the acceptor carries only a category; the matching revocation entry
/// and its reason are known only here.
fn refuse(side: &str, cert: Option<&PeerCertificate>, reason: &str) {
    tracing::warn!(
        side,
        peer_id = cert.and_then(|c| c.peer_id.as_deref()).unwrap_or("-"),
        serial = cert.map_or("-", |c| c.serial.as_str()),
        "refusing TLS {side} certificate: {reason}"
    );
}

fn revocation_check(
    side: &str,
    end_entity: &CertificateDer<'_>,
    list: &RevocationList,
    require_peer_id: bool,
) -> Result<(), rustls::Error> {
    let cert = PeerCertificate::from_der(end_entity).map_err(|e| {
        refuse(side, None, &e.to_string());
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
    })?;
    if require_peer_id && cert.peer_id.is_none() {
        let e = SecurityError::PeerCertificate(format!(
            "certificate carries no {PEER_ID_URI_PREFIX}<peer-id> URI SAN, so the peer cannot \
             be identified"
        ));
        refuse(side, Some(&cert), &e.to_string());
        return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(e)),
        )));
    }
    if let Some(revoked) = list.check(&cert) {
        refuse(side, Some(&cert), &revoked.to_string());
        return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
    }
    Ok(())
}

/// Server side: requires a client certificate that chains to the current
/// trust bundle, names a peer id, and is not revoked.
#[derive(Debug)]
pub struct PeerClientVerifier {
    pub(crate) trust: Arc<ArcSwap<TrustState>>,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
    /// False lets a client without any certificate finish the handshake
    /// (anonymous: the listener then serves it health and metrics only);
    /// a certificate that *is* presented is verified all the same.
    pub(crate) mandatory: bool,
}

impl ClientCertVerifier for PeerClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    // CA hints would have to borrow from a state that a reload may drop;
    // they are optional in TLS and our own clients ignore them.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let trust = self.trust.load();
        if let Err(e) = trust
            .client
            .verify_client_cert(end_entity, intermediates, now)
        {
            refuse(
                "client",
                PeerCertificate::from_der(end_entity).ok().as_ref(),
                &describe(&e),
            );
            return Err(e);
        }
        revocation_check("client", end_entity, &trust.revocation, true)?;
        Ok(ClientCertVerified::assertion())
    }

    // Handshake signatures depend only on the provider's algorithms, not on
    // the (reloadable) trust state.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Client side: the server's certificate must chain to the current bundle
/// and not be revoked, and identify the server in one of two ways:
/// - `expected_peer_id: None`: it matches the host name or IP dialled (DNS
///   and IP SANs, standard WebPKI rules); a peer id is not required.
/// - `Some(id)`: it carries `urn:sorcha:peer:<id>`, whatever address was
///   dialled. Peers reach each other at addresses learned by discovery
///   (pod IPs, NAT-mapped addresses) that no certificate can list in
///   advance, while the peer id is stable and is what the operator signs.
#[derive(Debug)]
pub struct PeerServerVerifier {
    pub(crate) trust: Arc<ArcSwap<TrustState>>,
    pub(crate) expected_peer_id: Option<String>,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl PeerServerVerifier {
    /// Chain, validity and extended key usage as WebPKI checks them, then
    /// the peer id instead of the host name.
    fn verify_pinned(
        &self,
        trust: &TrustState,
        expected: &str,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &trust.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        PeerCertificate::from_der(end_entity)
            .and_then(|c| c.check_claimed_peer_id(expected))
            .map_err(|e| {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
            })
    }
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let trust = self.trust.load();
        let verdict = match &self.expected_peer_id {
            Some(id) => self.verify_pinned(&trust, id, end_entity, intermediates, now),
            None => trust
                .server
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
        };
        if let Err(e) = verdict {
            refuse(
                "server",
                PeerCertificate::from_der(end_entity).ok().as_ref(),
                &describe(&e),
            );
            return Err(e);
        }
        revocation_check("server", end_entity, &trust.revocation, false)?;
        Ok(ServerCertVerified::assertion())
    }

    // Handshake signatures depend only on the provider's algorithms, not on
    // the (reloadable) trust state.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Serves (and presents, as a client) whatever identity is current.
#[derive(Debug)]
pub struct IdentityResolver {
    pub(crate) identity: Arc<ArcSwap<CertifiedKey>>,
}

impl ResolvesServerCert for IdentityResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.identity.load_full())
    }
}

impl ResolvesClientCert for IdentityResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.identity.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
