//! Status reporting to Kubernetes: a peer running in a pod writes its own
//! `SorchaPeer` status (phase, peers, queue, certificates, conditions),
//! which the operator aggregates and gates rollouts and CA rotation on.
//!
//! - [`status`]: the pure builder, snapshot in, status out, plus the
//!   "changed?" comparison.
//! - [`certs`]: certificate serial/expiry and CA fingerprints from the
//!   configured files.
//! - [`reporter`]: the background task that applies the status (server-side
//!   apply, field manager `sorcha-peer`) only when it changed.
//!
//! Nothing starts outside a pod: [`start_in_pod`] looks for the downward
//! API variables the operator's StatefulSet sets (`POD_NAME`,
//! `POD_NAMESPACE`, `POD_UID`, and `SORCHA_PEER_NAME`, the object to write).
pub mod certs;
pub mod reporter;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use reporter::{NodeView, Progress, Reporter};

use crate::config::SecurityConfig;
use crate::discovery::Membership;
use crate::tx::distributor::Distributor;

/// Environment variable overriding [`ReporterConfig::min_interval`], as a
/// humantime duration (`5s`, `500ms`).
pub const INTERVAL_ENV: &str = "SORCHA_STATUS_INTERVAL";
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "SorchaPeer {namespace}/{name} does not exist: the operator creates one per pod of a \
         SorchaNetwork; check SORCHA_PEER_NAME and that the operator is running"
    )]
    NotFound { namespace: String, name: String },
    #[error(
        "not allowed to patch sorchapeers/status of {namespace}/{name} ({message}): the pod's \
         ServiceAccount needs the Role the operator creates (get/patch sorchapeers/status)"
    )]
    Forbidden {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("the API server refused the status of SorchaPeer {namespace}/{name}: {message}")]
    Rejected {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("cannot reach the Kubernetes API server: {0}")]
    Unreachable(String),
    #[error("cannot configure the Kubernetes client from the pod's service account: {0}")]
    ClientConfig(String),
    #[error(
        "{variable}={value:?} is not a duration; expected e.g. \"5s\" or \"500ms\" (at least 100ms)"
    )]
    InvalidInterval {
        variable: &'static str,
        value: String,
    },
}

impl Error {
    /// Stable, low-cardinality label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "k8s_not_found",
            Error::Forbidden { .. } => "k8s_forbidden",
            Error::Rejected { .. } => "k8s_rejected",
            Error::Unreachable(_) => "k8s_unreachable",
            Error::ClientConfig(_) => "k8s_client_config",
            Error::InvalidInterval { .. } => "k8s_invalid_interval",
        }
    }

    /// Names the object and the likely fix for the API answers a
    /// misconfigured deployment produces.
    pub fn from_kube(e: kube::Error, namespace: &str, name: &str) -> Self {
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        match e {
            kube::Error::Api(s) if s.code == 404 => Error::NotFound { namespace, name },
            kube::Error::Api(s) if s.code == 401 || s.code == 403 => Error::Forbidden {
                namespace,
                name,
                message: s.message,
            },
            kube::Error::Api(s) => Error::Rejected {
                namespace,
                name,
                message: format!("{} ({} {})", s.message, s.code, s.reason),
            },
            other => Error::Unreachable(other.to_string()),
        }
    }
}

/// Which object to write and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReporterConfig {
    pub namespace: String,
    /// The `SorchaPeer`: `SORCHA_PEER_NAME`, else the pod name.
    pub name: String,
    pub pod_uid: Option<String>,
    /// Rounds (snapshot, compare, maybe write) are this far apart, so the
    /// API server sees at most one write per interval.
    pub min_interval: Duration,
    /// Longest wait between retries of a failing write.
    pub max_backoff: Duration,
    /// An unchanged status is re-applied after this long anyway.
    pub resync: Duration,
}

impl ReporterConfig {
    /// From the pod's environment, given as a lookup so tests need not
    /// touch the process environment. `Ok(None)` outside a pod (no
    /// `POD_NAME` or `POD_NAMESPACE`).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, Error> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let (Some(pod), Some(namespace)) = (var("POD_NAME"), var("POD_NAMESPACE")) else {
            return Ok(None);
        };
        let min_interval = match var(INTERVAL_ENV) {
            None => DEFAULT_MIN_INTERVAL,
            Some(v) => humantime::parse_duration(v.trim())
                .ok()
                .filter(|d| *d >= Duration::from_millis(100))
                .ok_or(Error::InvalidInterval {
                    variable: INTERVAL_ENV,
                    value: v,
                })?,
        };
        Ok(Some(ReporterConfig {
            namespace,
            name: var("SORCHA_PEER_NAME").unwrap_or(pod),
            pod_uid: var("POD_UID"),
            min_interval,
            max_backoff: DEFAULT_MAX_BACKOFF.max(min_interval),
            resync: DEFAULT_RESYNC.max(min_interval),
        }))
    }
}

/// Starts the reporter when this process runs in a pod; `None` (and no
/// task) otherwise. Never fails the node: a bad interval is logged and the
/// default used, and the in-cluster client is retried until it works.
pub fn start_in_pod(
    security: &SecurityConfig,
    membership: Arc<Membership>,
    distributor: Arc<Distributor>,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    let env = |k: &str| std::env::var(k).ok();
    let cfg = match ReporterConfig::from_env(env) {
        Ok(cfg) => cfg?,
        Err(e) => {
            tracing::error!(error = %e, "using the default status interval {DEFAULT_MIN_INTERVAL:?}");
            let without_interval = |k: &str| if k == INTERVAL_ENV { None } else { env(k) };
            ReporterConfig::from_env(without_interval).ok()??
        }
    };
    let node = NodeView {
        membership,
        distributor,
        security: security.clone(),
    };
    Some(tokio::spawn(async move {
        let Some(client) = in_cluster_client(&cfg, &shutdown).await else {
            return;
        };
        Reporter::new(client, cfg, node).run(shutdown).await;
    }))
}

/// The in-cluster client, retried with backoff (a service-account token
/// mounted late must not disable reporting for the pod's life); `None` if
/// shut down first.
async fn in_cluster_client(
    cfg: &ReporterConfig,
    shutdown: &CancellationToken,
) -> Option<kube::Client> {
    let mut failures = 0u32;
    loop {
        let e = match kube::Client::try_default().await {
            Ok(c) => return Some(c),
            Err(e) => Error::ClientConfig(e.to_string()),
        };
        failures = failures.saturating_add(1);
        let wait = reporter::backoff(cfg.min_interval, cfg.max_backoff, failures);
        tracing::warn!(error = %e, retry_in = ?wait, "status reporting cannot start yet");
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn outside_a_pod_nothing_is_configured() {
        assert_eq!(ReporterConfig::from_env(env(&[])).unwrap(), None);
        let only_name = env(&[("POD_NAME", "alpha-0"), ("POD_NAMESPACE", " ")]);
        assert_eq!(ReporterConfig::from_env(only_name).unwrap(), None);
    }

    #[test]
    fn pod_environment_names_the_object() {
        let cfg = ReporterConfig::from_env(env(&[
            ("POD_NAME", "alpha-0"),
            ("POD_NAMESPACE", "ledger"),
            ("POD_UID", "u-1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            cfg.name, "alpha-0",
            "the pod name when SORCHA_PEER_NAME is unset"
        );
        assert_eq!(cfg.namespace, "ledger");
        assert_eq!(cfg.pod_uid.as_deref(), Some("u-1"));
        assert_eq!(cfg.min_interval, DEFAULT_MIN_INTERVAL);

        let standalone = ReporterConfig::from_env(env(&[
            ("POD_NAME", "solo-0"),
            ("POD_NAMESPACE", "ledger"),
            ("SORCHA_PEER_NAME", "solo"),
            (INTERVAL_ENV, "2s"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(standalone.name, "solo");
        assert_eq!(standalone.pod_uid, None);
        assert_eq!(standalone.min_interval, Duration::from_secs(2));
    }

    #[test]
    fn bad_interval_is_refused_with_the_variable_named() {
        for bad in ["soon", "10us"] {
            let e = ReporterConfig::from_env(env(&[
                ("POD_NAME", "a"),
                ("POD_NAMESPACE", "b"),
                (INTERVAL_ENV, bad),
            ]))
            .unwrap_err();
            assert!(e.to_string().contains(INTERVAL_ENV), "{e}");
            assert_eq!(e.label(), "k8s_invalid_interval");
        }
    }

    #[test]
    fn api_answers_become_errors_with_a_fix() {
        let api = |code: u16| {
            kube::Error::Api(
                kube::core::Status::failure("nope", "Reason")
                    .with_code(code)
                    .boxed(),
            )
        };
        let e = Error::from_kube(api(404), "ledger", "alpha-0");
        assert!(matches!(e, Error::NotFound { .. }));
        assert!(e.to_string().contains("ledger/alpha-0"), "{e}");
        let e = Error::from_kube(api(403), "ledger", "alpha-0");
        assert!(e.to_string().contains("sorchapeers/status"), "{e}");
        let e = Error::from_kube(api(422), "ledger", "alpha-0");
        assert!(e.to_string().contains("nope (422 Reason)"), "{e}");
    }
}
