//! The crate's one error type. Every variant says what went wrong and, where
//! a user can act, what to do; `label()` names it for failure metrics.
use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration:\n{0}")]
    Config(ConfigErrors),
    #[error("cannot read configuration file {path}: {source}")]
    ConfigFile {
        path: String,
        source: std::io::Error,
    },
    #[error("storage error in {path}: {source}")]
    Store {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("peer {peer} unreachable: {message}")]
    PeerUnreachable { peer: String, message: String },
    #[error("peer {peer} answered with an error: {message}")]
    PeerRejected { peer: String, message: String },
    #[error("peer {peer} does not serve {protocol}")]
    ProtocolUnsupported {
        peer: String,
        protocol: &'static str,
    },
    #[error("invalid peer address {address:?}: {reason}")]
    InvalidPeerAddress { address: String, reason: String },
    #[error(
        "the offline queue is full (OfflineMode.MaxQueueSize = {max} transactions); nothing was \
         queued: retry once the node is back online and has flushed, or raise MaxQueueSize"
    )]
    QueueFull { max: usize },
    #[error("invalid transaction hash {hash:?}: expected 64 lowercase hex digits (SHA-256)")]
    InvalidTxHash { hash: String },
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
    #[error("transaction of {size} bytes exceeds MaxTransactionSize ({max} bytes)")]
    TransactionTooLarge { size: u64, max: u64 },
    #[error("transaction store {0} is closed")]
    StoreClosed(String),
    #[error("writing to {path} failed: {message}")]
    StoreWrite { path: String, message: String },
    #[error("transaction file {path}: {source}")]
    StoreFile {
        path: String,
        source: std::io::Error,
    },
    #[error("address lookup via {target} failed: {message}")]
    AddressLookup { target: String, message: String },
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
}

impl Error {
    /// Stable, low-cardinality label for the `error` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::ConfigFile { .. } => "config_file",
            Error::Store { .. } => "store",
            Error::DataDir { .. } => "data_dir",
            Error::Bind { .. } => "bind",
            Error::PeerUnreachable { .. } => "peer_unreachable",
            Error::PeerRejected { .. } => "peer_rejected",
            Error::ProtocolUnsupported { .. } => "protocol_unsupported",
            Error::InvalidPeerAddress { .. } => "invalid_peer_address",
            Error::QueueFull { .. } => "queue_full",
            Error::InvalidTxHash { .. } => "invalid_tx_hash",
            Error::AddressLookup { .. } => "address_lookup",
            Error::StoreClosed(_) => "store_closed",
            Error::InvalidTransaction(_) => "invalid_transaction",
            Error::TransactionTooLarge { .. } => "transaction_too_large",
            Error::StoreWrite { .. } => "store_write",
            Error::StoreFile { .. } => "store_file",
            Error::Security(_) => "security",
        }
    }
}

/// One problem with one configuration field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Full path, e.g. `PeerService.PeerDiscovery.MaxPeersInList`.
    pub field: String,
    /// The offending value as the user wrote it.
    pub value: String,
    /// What is allowed instead.
    pub expected: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: got {}, expected {}",
            self.field, self.value, self.expected
        )
    }
}

/// Every problem found in one configuration, so a user fixes them in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<FieldError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    pub fn single(
        field: impl Into<String>,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        ConfigErrors(vec![FieldError {
            field: field.into(),
            value: value.into(),
            expected: expected.into(),
        }])
    }
}
