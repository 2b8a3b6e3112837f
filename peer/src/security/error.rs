//! The security module's one error type. Each variant names the file or
//! field at fault and what was expected, because most of these reach an
//! operator who just rotated a certificate and needs to know which file is
//! wrong. `label()` gives a stable name for failure metrics.
use std::path::{Path, PathBuf};

pub type Result<T, E = SecurityError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} file {path}: {message}; expected {expected}")]
    Invalid {
        what: &'static str,
        path: PathBuf,
        message: String,
        expected: &'static str,
    },
    #[error(
        "certificate {cert} and private key {key} do not belong together ({message}); \
         replace both files with a matching pair"
    )]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("revocation list {path} line {line}: {message}")]
    RevocationSyntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The `${VAR}` expansion's message, which names the field and variable.
    #[error("{0}")]
    Password(String),
    #[error("peer certificate: {0}")]
    PeerCertificate(String),
    #[error(
        "peer claims id {claimed:?} but its certificate is issued to {certified}; refusing the peer"
    )]
    PeerIdMismatch { claimed: String, certified: String },
    #[error("cannot build the TLS configuration: {0}")]
    TlsSetup(String),
}

impl SecurityError {
    /// Stable, low-cardinality label for the `error` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            SecurityError::Read { .. } => "security_file_read",
            SecurityError::Invalid { .. } => "security_file_invalid",
            SecurityError::KeyMismatch { .. } => "key_mismatch",
            SecurityError::RevocationSyntax { .. } => "revocation_syntax",
            SecurityError::Password(_) => "certificate_password",
            SecurityError::PeerCertificate(_) => "peer_certificate",
            SecurityError::PeerIdMismatch { .. } => "peer_id_mismatch",
            SecurityError::TlsSetup(_) => "tls_setup",
        }
    }

    pub(crate) fn read(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        SecurityError::Read {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(
        what: &'static str,
        path: &Path,
        message: impl Into<String>,
        expected: &'static str,
    ) -> Self {
        SecurityError::Invalid {
            what,
            path: path.to_path_buf(),
            message: message.into(),
            expected,
        }
    }
}
