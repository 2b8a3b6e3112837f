//! The crate's one error type. Each variant has a metric label so
//! `sorcha_operator_reconcile_errors_total{reason=...}` tells failures apart.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),

    /// A spec the schema admits but the operator cannot satisfy.
    #[error("{field}: {message}")]
    InvalidSpec { field: String, message: String },

    #[error("CA Secret {name:?} (spec.tls.caSecretName): {message}")]
    CaSecret { name: String, message: String },

    #[error("certificate: {0}")]
    Certificate(String),

    #[error("object has no {0}; the API server sets it, so this object did not come from one")]
    MissingMetadata(&'static str),

    #[error(
        "CRD {0} is not installed: apply crds/ (kubectl apply -f crds/) and start the operator again"
    )]
    CrdNotInstalled(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Label for the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Serialization(_) => "serialization",
            Error::InvalidSpec { .. } => "invalid_spec",
            Error::CaSecret { .. } => "ca_secret",
            Error::Certificate(_) => "certificate",
            Error::MissingMetadata(_) => "missing_metadata",
            Error::CrdNotInstalled(_) => "crd_not_installed",
        }
    }

    /// Errors a user fixes in the spec or in the cluster; they become a
    /// Degraded condition and an Event rather than a hot retry loop.
    pub fn is_user_error(&self) -> bool {
        matches!(self, Error::InvalidSpec { .. } | Error::CaSecret { .. })
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidSpec {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<rcgen::Error> for Error {
    fn from(e: rcgen::Error) -> Self {
        Error::Certificate(e.to_string())
    }
}
