//! Hot reload by polling file contents.
//!
//! Why polling and not `notify`: on Kubernetes, Secrets and ConfigMaps are
//! mounted as symlinks into a `..data` directory that the kubelet swaps
//! atomically; inotify watches on the files go stale after the first swap,
//! and watching the directory needs Kubernetes-specific event filtering.
//! Modification times are no better a signal (`cp -p`, `kubectl cp` and
//! restores keep them; coarse file systems round them). Reading a few KB
//! and hashing it every `ReloadIntervalSeconds` costs nothing and sees
//! every change, whichever way it was made.
//!
//! A change that does not parse (or a certificate whose key has not been
//! replaced yet) keeps the old material, is logged once and reported, and
//! is retried at each poll, so a rotation written file by file converges as
//! soon as the last file lands.
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use super::error::{Result, SecurityError};
use super::identity::{certified_key, read_identity_files};
use super::revocation::RevocationList;
use super::tls::{PeerTls, read_revocation};
use super::trust::parse_trust_bundle;
use super::verify::TrustState;

pub(crate) type Hash = [u8; 32];

/// Hash of each part as last applied, and of each part's last failure.
#[derive(Debug, Default)]
pub(crate) struct Digests {
    pub identity: Hash,
    pub trust: Hash,
    pub revocation: Hash,
    pub failed: [Option<String>; 3],
}

/// Length-prefixed, so moving bytes from one file to the next changes it.
pub(crate) fn digest(parts: &[Vec<u8>]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// The three independently reloaded parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Certificate chain + private key.
    Identity,
    TrustBundle,
    RevocationList,
}

impl Part {
    fn index(self) -> usize {
        self as usize
    }

    /// Stable label for metrics and events.
    pub fn label(self) -> &'static str {
        match self {
            Part::Identity => "certificate",
            Part::TrustBundle => "trust_bundle",
            Part::RevocationList => "revocation_list",
        }
    }
}

/// What one poll did. Unchanged parts appear in neither list.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub reloaded: Vec<Part>,
    /// Parts whose files changed but could not be used; the old material
    /// stays in force.
    pub failed: Vec<(Part, SecurityError)>,
    /// The parts of `failed` failing differently from the previous poll
    /// (a failure is retried at every poll; this reports each once).
    pub new_failures: Vec<Part>,
}

impl ReloadReport {
    pub fn is_empty(&self) -> bool {
        self.reloaded.is_empty() && self.failed.is_empty()
    }
}

impl PeerTls {
    /// Re-reads every file and swaps in each part whose content changed
    /// and parses. Blocking file IO: call from `spawn_blocking` (as
    /// [`spawn_reloader`](Self::spawn_reloader) does) or a test.
    pub fn reload_if_changed(&self) -> ReloadReport {
        let mut report = ReloadReport::default();
        let mut d = self.digests.lock().unwrap_or_else(|p| p.into_inner());

        // Identity.
        let id = read_identity_files(&self.files.identity).and_then(|bytes| {
            let h = digest(&bytes);
            if h == d.identity {
                return Ok(None);
            }
            certified_key(&self.files.identity, &bytes, &self.provider).map(|k| Some((k, h)))
        });
        match id {
            Ok(Some((key, h))) => {
                self.identity.store(key);
                d.identity = h;
                report.reloaded.push(Part::Identity);
            }
            Ok(None) => {}
            Err(e) => report.failed.push((Part::Identity, e)),
        }

        // Trust bundle and revocation list make one `TrustState`; each part
        // is taken from its new file if that parses, else kept.
        let current = self.trust.load_full();
        let roots = super::identity::read("trust bundle (TrustedCAs)", &self.files.trusted_cas)
            .and_then(|bytes| {
                let h = digest(std::slice::from_ref(&bytes));
                if h == d.trust {
                    return Ok(None);
                }
                parse_trust_bundle(&self.files.trusted_cas, &bytes).map(|r| Some((r, h)))
            });
        let revocation = read_revocation(&self.files).and_then(|bytes| {
            let h = digest(bytes.as_slice());
            if h == d.revocation {
                return Ok(None);
            }
            let list = match (&self.files.revocation_list, &bytes) {
                (Some(p), Some(b)) => RevocationList::parse_bytes(p, b)?,
                _ => RevocationList::default(),
            };
            Ok(Some((Arc::new(list), h)))
        });
        let (new_roots, new_revocation) = (
            take(roots, Part::TrustBundle, &mut report),
            take(revocation, Part::RevocationList, &mut report),
        );
        if new_roots.is_some() || new_revocation.is_some() {
            let roots = new_roots
                .as_ref()
                .map_or_else(|| current.roots.clone(), |(r, _)| r.clone());
            let list = new_revocation
                .as_ref()
                .map_or_else(|| current.revocation.clone(), |(l, _)| l.clone());
            match TrustState::new(roots, list, &self.provider) {
                Ok(state) => {
                    self.trust.store(Arc::new(state));
                    if let Some((_, h)) = new_roots {
                        d.trust = h;
                        report.reloaded.push(Part::TrustBundle);
                    }
                    if let Some((_, h)) = new_revocation {
                        d.revocation = h;
                        report.reloaded.push(Part::RevocationList);
                    }
                }
                Err(e) => report.failed.push((Part::TrustBundle, e)),
            }
        }

        self.log(&mut d, &mut report);
        report
    }

    fn log(&self, d: &mut Digests, report: &mut ReloadReport) {
        // A part that no longer fails (fixed, or reverted to what is in
        // use) forgets its failure, so a recurrence is logged again.
        for part in [Part::Identity, Part::TrustBundle, Part::RevocationList] {
            if !report.failed.iter().any(|(p, _)| *p == part) {
                d.failed[part.index()] = None;
            }
        }
        for part in &report.reloaded {
            match part {
                Part::Identity => match self.current_certificate() {
                    Ok(c) => tracing::info!(
                        serial = %c.serial,
                        peer_id = c.peer_id.as_deref().unwrap_or("-"),
                        not_after = %humantime::format_rfc3339_seconds(c.not_after),
                        "reloaded TLS certificate and key"
                    ),
                    Err(e) => tracing::info!("reloaded TLS certificate and key ({e})"),
                },
                Part::TrustBundle => {
                    tracing::info!(cas = self.trusted_ca_count(), "reloaded TLS trust bundle")
                }
                Part::RevocationList => tracing::info!(
                    entries = self.trust.load().revocation.len(),
                    "reloaded revocation list"
                ),
            }
        }
        for (part, e) in &report.failed {
            let msg = e.to_string();
            // Logged once per distinct failure: the poll retries every few
            // seconds and would otherwise flood the log.
            if d.failed[part.index()].as_deref() != Some(msg.as_str()) {
                tracing::error!(
                    part = ?part,
                    error = %msg,
                    "TLS reload failed; the previous material stays in use"
                );
                d.failed[part.index()] = Some(msg);
                report.new_failures.push(*part);
            }
        }
    }

    /// Polls every `interval` until `shutdown` is cancelled; `on_change`
    /// sees every report that reloaded or failed something.
    pub fn spawn_reloader(
        self: &Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
        on_change: impl Fn(&ReloadReport) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate; `load` just read everything
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let t = tls.clone();
                // The blocking thread logs to the subscriber of the task that
                // started the reloader (per-node subscribers in tests).
                let dispatch = tracing::dispatcher::get_default(|d| d.clone());
                // A panic here would be a bug; the next tick tries again.
                let report = tokio::task::spawn_blocking(move || {
                    tracing::dispatcher::with_default(&dispatch, || t.reload_if_changed())
                })
                .await;
                if let Ok(report) = report
                    && !report.is_empty()
                {
                    on_change(&report);
                }
            }
        })
    }
}

fn take<T>(r: Result<Option<T>>, part: Part, report: &mut ReloadReport) -> Option<T> {
    match r {
        Ok(v) => v,
        Err(e) => {
            report.failed.push((part, e));
            None
        }
    }
}
