//! Accepting a TLS connection with a verdict the server can log, count and
//! act on. rustls reports refusals as `io::Error`s wrapping its own error;
//! this turns them into a small set of reasons (a metric label each) and
//! logs every refusal with the remote address.
use std::net::SocketAddr;
use std::time::Duration;

use rustls::{CertificateError, Error as TlsError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::error::SecurityError;
use super::peer_cert::PeerCertificate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The client sent no certificate (mutual TLS is required).
    NoClientCertificate,
    /// Its certificate does not chain to any CA of the trust bundle.
    UnknownCa,
    Expired,
    NotYetValid,
    /// On the revocation list (by peer id or serial).
    Revoked,
    /// Chains to a trusted CA but names no (or a malformed) peer id.
    NoPeerId,
    /// Any other certificate problem (bad encoding, wrong key usage...).
    BadCertificate,
    /// The bytes were not a TLS handshake: plaintext HTTP/gRPC to the TLS port.
    NotTls,
    /// No complete handshake within the deadline.
    Timeout,
    /// The client aborted with a TLS alert, usually because it refused
    /// *our* certificate (unknown CA, wrong name or peer id, revoked).
    RejectedByPeer,
    /// The client closed the connection during the handshake.
    ClosedByPeer,
    Other,
}

impl RefusalReason {
    /// Stable label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::NoClientCertificate => "no_client_certificate",
            RefusalReason::UnknownCa => "unknown_ca",
            RefusalReason::Expired => "expired",
            RefusalReason::NotYetValid => "not_yet_valid",
            RefusalReason::Revoked => "revoked",
            RefusalReason::NoPeerId => "no_peer_id",
            RefusalReason::BadCertificate => "bad_certificate",
            RefusalReason::NotTls => "not_tls",
            RefusalReason::Timeout => "timeout",
            RefusalReason::RejectedByPeer => "rejected_by_peer",
            RefusalReason::ClosedByPeer => "closed_by_peer",
            RefusalReason::Other => "other",
        }
    }
}

/// A refused handshake: why, with the underlying error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRefusal {
    pub remote: SocketAddr,
    pub reason: RefusalReason,
    pub detail: String,
}

impl std::fmt::Display for HandshakeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TLS handshake from {} refused ({}): {}",
            self.remote,
            self.reason.label(),
            self.detail
        )
    }
}

/// Classifies a rustls error into a [`RefusalReason`].
pub fn classify(e: &TlsError) -> RefusalReason {
    match e {
        TlsError::NoCertificatesPresented => RefusalReason::NoClientCertificate,
        TlsError::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => RefusalReason::UnknownCa,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                RefusalReason::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                RefusalReason::NotYetValid
            }
            CertificateError::Revoked => RefusalReason::Revoked,
            CertificateError::Other(o) if o.0.downcast_ref::<SecurityError>().is_some() => {
                RefusalReason::NoPeerId
            }
            _ => RefusalReason::BadCertificate,
        },
        // The first record was not TLS: typically "GET / HTTP/1.1" or an
        // HTTP/2 preface.
        TlsError::InvalidMessage(_) => RefusalReason::NotTls,
        TlsError::AlertReceived(_) => RefusalReason::RejectedByPeer,
        _ => RefusalReason::Other,
    }
}

fn classify_io(e: &std::io::Error) -> (RefusalReason, String) {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<TlsError>()) {
        return (classify(tls), super::verify::describe(tls));
    }
    let reason = match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe => RefusalReason::ClosedByPeer,
        _ => RefusalReason::Other,
    };
    (reason, e.to_string())
}

fn refusal(remote: SocketAddr, reason: RefusalReason, detail: String) -> HandshakeRefusal {
    let r = HandshakeRefusal {
        remote,
        reason,
        detail,
    };
    tracing::warn!(
        remote = %remote,
        reason = reason.label(),
        detail = %r.detail,
        "refused TLS connection"
    );
    r
}

/// Runs the server side of a handshake within `timeout` and returns the
/// stream with the client's authenticated identity, or the logged refusal.
pub async fn accept<IO>(
    acceptor: &TlsAcceptor,
    io: IO,
    remote: SocketAddr,
    timeout: Duration,
) -> Result<(TlsStream<IO>, PeerCertificate), HandshakeRefusal>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match accept_optional(acceptor, io, remote, timeout).await? {
        (stream, Some(cert)) => Ok((stream, cert)),
        (_, None) => Err(refusal(
            remote,
            RefusalReason::NoClientCertificate,
            "the client presented no certificate".into(),
        )),
    }
}

/// As [`accept`], for an acceptor whose config allows anonymous clients
/// (`PeerTls::server_config_allowing_anonymous`): `None` when the client
/// presented no certificate. A presented certificate is verified in the
/// handshake and must name a peer id.
pub async fn accept_optional<IO>(
    acceptor: &TlsAcceptor,
    io: IO,
    remote: SocketAddr,
    timeout: Duration,
) -> Result<(TlsStream<IO>, Option<PeerCertificate>), HandshakeRefusal>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let stream = match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Err(_) => {
            return Err(refusal(
                remote,
                RefusalReason::Timeout,
                format!("no complete handshake within {timeout:?}"),
            ));
        }
        Ok(Err(e)) => {
            let (reason, detail) = classify_io(&e);
            return Err(refusal(remote, reason, detail));
        }
        Ok(Ok(s)) => s,
    };
    let presented = stream.get_ref().1.peer_certificates();
    if presented.is_none_or(<[_]>::is_empty) {
        return Ok((stream, None));
    }
    // The verifier already required a peer id; this reads it back.
    match PeerCertificate::authenticated(presented) {
        Ok(cert) => Ok((stream, Some(cert))),
        Err(e) => Err(refusal(remote, RefusalReason::NoPeerId, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{InvalidMessage, OtherError};
    use std::sync::Arc;

    #[test]
    fn rustls_errors_map_to_reasons() {
        let cert = |c| TlsError::InvalidCertificate(c);
        let cases = [
            (TlsError::NoCertificatesPresented, "no_client_certificate"),
            (cert(CertificateError::UnknownIssuer), "unknown_ca"),
            (cert(CertificateError::Expired), "expired"),
            (cert(CertificateError::NotValidYet), "not_yet_valid"),
            (cert(CertificateError::Revoked), "revoked"),
            (cert(CertificateError::BadEncoding), "bad_certificate"),
            (
                cert(CertificateError::Other(OtherError(Arc::new(
                    SecurityError::PeerCertificate("x".into()),
                )))),
                "no_peer_id",
            ),
            (
                TlsError::InvalidMessage(InvalidMessage::InvalidContentType),
                "not_tls",
            ),
            (
                TlsError::AlertReceived(rustls::AlertDescription::BadCertificate),
                "rejected_by_peer",
            ),
            (TlsError::HandshakeNotComplete, "other"),
        ];
        for (e, label) in cases {
            assert_eq!(classify(&e).label(), label, "{e:?}");
        }
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            TlsError::NoCertificatesPresented,
        );
        assert_eq!(classify_io(&io).0, RefusalReason::NoClientCertificate);
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(classify_io(&eof).0, RefusalReason::ClosedByPeer);
    }
}
