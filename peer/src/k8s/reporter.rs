//! The IO half: every `min_interval`, capture a snapshot of the node, build
//! the status and, only when it differs from the last one written, apply it
//! to the `status` subresource of this peer's `SorchaPeer` (server-side
//! apply, field manager `sorcha-peer`). Failures are logged and retried
//! with exponential backoff; the node never stops because of them.
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::status::{self, PeerStatus, Snapshot};
use super::{Error, ReporterConfig, certs};
use crate::config::SecurityConfig;
use crate::discovery::Membership;
use crate::tx::distributor::Distributor;

pub const FIELD_MANAGER: &str = "sorcha-peer";
pub const GROUP: &str = "sorcha.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "SorchaPeer";
pub const PLURAL: &str = "sorchapeers";

/// The parts of the node a status is built from.
#[derive(Clone)]
pub struct NodeView {
    pub membership: Arc<Membership>,
    pub distributor: Arc<Distributor>,
    pub security: SecurityConfig,
}

impl NodeView {
    /// Reads counters, the transaction store (SQLite) and the TLS files:
    /// blocking work, run off the async workers by `Reporter`.
    pub fn snapshot(&self, pod_uid: Option<String>) -> Snapshot {
        let m = &self.membership;
        let st = m.status();
        let transactions_seen = match self.distributor.store.count() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "status: cannot count stored transactions; reporting the last known count");
                None
            }
        };
        Snapshot {
            peer_id: st.node_id,
            pod_uid,
            state: m.state(),
            discovery_started: m.is_ready(),
            known_peers: st.known_peers,
            active_peers: st.active_peers,
            min_healthy_peers: st.min_healthy_peers,
            external_address: st.address,
            queue_size: self.distributor.queue.len(),
            transactions_seen,
            last_discovery_ms: st.last_successful_discovery,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            certificate: certs::served_certificate(&self.security),
            trusted_cas: certs::trusted_ca_fingerprints(&self.security),
        }
    }
}

/// Counters of the reporter's work, published after every round so tests
/// (and a debugger) can wait for rounds instead of sleeping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Rounds finished (a snapshot taken and, if needed, a write tried).
    pub rounds: u64,
    /// Status writes the API server accepted.
    pub writes: u64,
    /// Status writes that failed.
    pub errors: u64,
}

pub struct Reporter {
    api: Api<DynamicObject>,
    cfg: ReporterConfig,
    node: NodeView,
    progress: watch::Sender<Progress>,
}

/// The `ApiResource` of `SorchaPeer`, without needing the operator's types.
pub fn sorcha_peer_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// The object sent by server-side apply: only the identifying fields and
/// the status, so this field manager owns nothing but `.status`.
pub fn apply_body(name: &str, status: &PeerStatus) -> serde_json::Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": { "name": name },
        "status": status,
    })
}

impl Reporter {
    pub fn new(client: kube::Client, cfg: ReporterConfig, node: NodeView) -> Self {
        let api = Api::namespaced_with(client, &cfg.namespace, &sorcha_peer_resource());
        Reporter {
            api,
            cfg,
            node,
            progress: watch::channel(Progress::default()).0,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            namespace = %self.cfg.namespace,
            name = %self.cfg.name,
            interval = ?self.cfg.min_interval,
            "reporting status to SorchaPeer"
        );
        // `built` keeps conditions' transition times across rounds;
        // `written` is what the API server holds from us, if anything.
        let mut built: Option<PeerStatus> = None;
        let mut written: Option<(PeerStatus, Instant)> = None;
        let mut failures: u32 = 0;
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let Some(snapshot) = self.capture().await else {
                return;
            };
            let next = status::build(&snapshot, built.as_ref(), SystemTime::now());
            built = Some(next.clone());
            // The resync repairs a status lost behind our back (the object
            // deleted and re-created by the operator, a hand edit); an apply
            // that changes nothing is a no-op for the API server, so it
            // wakes no watcher.
            let due = written.as_ref().is_none_or(|(w, at)| {
                !status::same_ignoring_timestamps(w, &next) || at.elapsed() >= self.cfg.resync
            });
            wait = self.cfg.min_interval;
            if due {
                // A hung API server must not hold up the node's shutdown.
                let result = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = self.write(&next) => r,
                };
                match result {
                    Ok(()) => {
                        if failures > 0 {
                            tracing::info!(attempts = failures + 1, "status write succeeded again");
                        }
                        failures = 0;
                        written = Some((next, Instant::now()));
                        self.progress.send_modify(|p| p.writes += 1);
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        wait = backoff(self.cfg.min_interval, self.cfg.max_backoff, failures);
                        tracing::warn!(
                            error = %e,
                            attempt = failures,
                            retry_in = ?wait,
                            "cannot write SorchaPeer status; retrying"
                        );
                        self.progress.send_modify(|p| p.errors += 1);
                    }
                }
            }
            self.progress.send_modify(|p| p.rounds += 1);
        }
    }

    /// The snapshot, taken on the blocking pool (SQLite, file reads).
    /// `None` only if that task panicked, which ends the reporter: a panic
    /// there is a bug, and retrying it every few seconds would only spam.
    async fn capture(&self) -> Option<Snapshot> {
        let node = self.node.clone();
        let uid = self.cfg.pod_uid.clone();
        match tokio::task::spawn_blocking(move || node.snapshot(uid)).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "status snapshot failed; status reporting stops");
                None
            }
        }
    }

    async fn write(&self, s: &PeerStatus) -> Result<(), Error> {
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let body = apply_body(&self.cfg.name, s);
        self.api
            .patch_status(&self.cfg.name, &pp, &Patch::Apply(&body))
            .await
            .map(|_| ())
            .map_err(|e| Error::from_kube(e, &self.cfg.namespace, &self.cfg.name))
    }
}

/// `base`, doubled per consecutive failure after the first, capped at `max`.
pub fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(max.max(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Duration::from_secs;
        let b = |n| backoff(s(5), s(60), n);
        assert_eq!(
            [b(1), b(2), b(3), b(4), b(5)],
            [s(5), s(10), s(20), s(40), s(60)]
        );
        assert_eq!(b(1000), s(60));
        // A cap below the interval never makes retries faster than rounds.
        assert_eq!(backoff(s(5), s(1), 3), s(5));
    }

    #[test]
    fn apply_body_carries_only_identity_and_status() {
        let snap = Snapshot {
            peer_id: "p".into(),
            pod_uid: None,
            state: crate::discovery::state::NodeState::Offline,
            discovery_started: true,
            known_peers: 0,
            active_peers: 0,
            min_healthy_peers: 1,
            external_address: "10.0.0.1".into(),
            queue_size: 0,
            transactions_seen: Some(0),
            last_discovery_ms: 0,
            version: "0.1.0".into(),
            certificate: None,
            trusted_cas: None,
        };
        let st = status::build(&snap, None, SystemTime::UNIX_EPOCH);
        let body = apply_body("alpha-0", &st);
        assert_eq!(body["apiVersion"], "sorcha.dev/v1alpha1");
        assert_eq!(body["kind"], "SorchaPeer");
        assert_eq!(body["metadata"], json!({"name": "alpha-0"}));
        assert_eq!(body["status"]["phase"], "Offline");
        assert!(body.get("spec").is_none());
        let r = sorcha_peer_resource();
        assert_eq!(
            (r.api_version.as_str(), r.plural.as_str()),
            ("sorcha.dev/v1alpha1", "sorchapeers")
        );
    }
}
