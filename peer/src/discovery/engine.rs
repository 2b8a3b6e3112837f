//! The design's three discovery phases, driven by one loop per node:
//! 1. bootstrap: try each bootstrap node in order, register, fetch up to
//!    `BootstrapPeerListSize` peers;
//! 2. list building: ask newly found peers for their lists, at most
//!    `MaxConcurrentDiscoveries` at a time, until the list is full or a round
//!    finds nobody new;
//! 3. refresh: every `RefreshInterval` ping everyone, count failures, remove
//!    the dead, fetch lists from responders, and go back to the bootstrap
//!    nodes when fewer than `MinHealthyPeers` answer.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use sorcha_proto::discovery::{PeerListRequest, PingRequest, RegisterPeerRequest};
use tokio_util::sync::CancellationToken;

use super::Membership;
use super::membership::{PeerDescription, Source};
use super::state::NodeState;
use super::wire::describe;
use crate::client::PeerClient;
use crate::events::EventKind;

pub struct Engine {
    m: Arc<Membership>,
    client: PeerClient,
}

impl Engine {
    pub fn new(m: Arc<Membership>, client: PeerClient) -> Self {
        Self { m, client }
    }

    /// Runs until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = self.m.cfg.clone();
        loop {
            if !self.m.ids().is_empty() {
                self.refresh().await;
            }
            let mut bootstrap_failed = false;
            let (_, active) = self.m.counts();
            if active < cfg.min_healthy_peers && !cfg.bootstrap_nodes.is_empty() {
                bootstrap_failed = !self.bootstrap().await;
            }
            self.m.mark_ready();
            let wait = if bootstrap_failed && self.m.state() == NodeState::Offline {
                cfg.bootstrap_retry_minutes
            } else {
                cfg.refresh_interval_minutes
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    fn list_request(&self, max: usize) -> PeerListRequest {
        PeerListRequest {
            requesting_peer_id: self.m.id().to_owned(),
            max_peers: i32::try_from(max).unwrap_or(i32::MAX),
            requester: Some(self.m.self_info()),
        }
    }

    /// (peer id, URL) of those `ids` still in the list.
    fn targets(&self, ids: &[String]) -> Vec<(String, String)> {
        ids.iter()
            .filter_map(|id| {
                self.m
                    .get(id)
                    .map(|p| (id.clone(), self.client.url(&p.address, p.port)))
            })
            .collect()
    }

    /// Phase 1. True when a bootstrap node answered.
    pub async fn bootstrap(&self) -> bool {
        let started = Instant::now();
        self.m
            .metrics
            .discovery_rounds
            .with_label_values(&["bootstrap"])
            .inc();
        let mut errors = Vec::new();
        for url in &self.m.cfg.bootstrap_nodes {
            match self.bootstrap_from(url).await {
                Ok(Some(bootstrap_id)) => {
                    self.m.discovery_succeeded();
                    self.m.events.record(
                        EventKind::BootstrapSucceeded,
                        Some(&bootstrap_id),
                        format!("bootstrapped from {url}"),
                    );
                    let seeds: Vec<String> = self
                        .m
                        .ids()
                        .into_iter()
                        .filter(|id| *id != bootstrap_id)
                        .collect();
                    self.build_list(seeds, [bootstrap_id].into()).await;
                    self.observe("bootstrap", started);
                    return true;
                }
                // The URL is this node itself (a shared bootstrap list).
                Ok(None) => {}
                Err(e) => {
                    self.m
                        .metrics
                        .connection_errors
                        .with_label_values(&["bootstrap"])
                        .inc();
                    errors.push(format!("{url}: {e}"));
                }
            }
        }
        self.observe("bootstrap", started);
        if !errors.is_empty() {
            self.m.events.record(
                EventKind::BootstrapFailed,
                None,
                format!(
                    "no bootstrap node answered ({}); retrying in {}",
                    errors.join("; "),
                    humantime::format_duration(self.m.cfg.bootstrap_retry_minutes)
                ),
            );
        }
        false
    }

    /// Ping, register, fetch the list. `Ok(None)` if `url` is this node.
    async fn bootstrap_from(&self, url: &str) -> crate::Result<Option<String>> {
        let pong = self
            .client
            .ping(
                url,
                None,
                PingRequest {
                    peer_id: self.m.id().to_owned(),
                    sender: Some(self.m.self_info()),
                },
            )
            .await?;
        if pong.peer_id == self.m.id() {
            return Ok(None);
        }
        // Registration is a courtesy: the ping above and the list request
        // below both describe this node too. A node that refuses it (only
        // bootstrap nodes accept registrations, PeerService.Role) is a
        // normal outcome, not a failed bootstrap.
        match self
            .client
            .register(
                url,
                None,
                RegisterPeerRequest {
                    peer_info: Some(self.m.self_info()),
                },
            )
            .await
        {
            Ok(reg) if !reg.success => {
                tracing::warn!(%url, message = %reg.message, "bootstrap node refused registration");
            }
            Ok(_) => {}
            Err(crate::Error::PeerRejected { message, .. }) => {
                tracing::info!(%url, %message, "node does not accept registrations");
            }
            Err(e) => return Err(e),
        }
        let list = self
            .client
            .get_peer_list(
                url,
                None,
                self.list_request(self.m.cfg.bootstrap_peer_list_size),
            )
            .await?;
        let bootstrap = list
            .responder
            .and_then(|r| describe(r).ok())
            .unwrap_or_else(|| described_by_url(&pong.peer_id, url));
        self.m
            .merge(std::slice::from_ref(&bootstrap), Source::Direct)?;
        self.m.mark_bootstrap(&bootstrap.peer_id)?;
        let peers: Vec<PeerDescription> = list
            .peers
            .into_iter()
            .filter_map(|p| describe(p).ok())
            .collect();
        self.m.merge(&peers, Source::Hearsay)?;
        Ok(Some(bootstrap.peer_id))
    }

    /// Phase 2: asks `frontier` for their lists, then whoever they named,
    /// until a round finds nobody new or the list is full.
    pub async fn build_list(&self, mut frontier: Vec<String>, mut queried: HashSet<String>) {
        let started = Instant::now();
        self.m
            .metrics
            .discovery_rounds
            .with_label_values(&["build"])
            .inc();
        while !frontier.is_empty() && !self.m.is_full() {
            frontier.retain(|id| queried.insert(id.clone()));
            let found = self.fetch_lists(&frontier).await;
            frontier = found;
        }
        self.observe("build", started);
    }

    /// Calls every peer in `ids` that is still listed, at most
    /// `MaxConcurrentDiscoveries` at a time. Each answer counts as a success
    /// and each error as a failure of `operation`; returns the answers.
    async fn call_each<T, F, Fut>(
        &self,
        ids: &[String],
        operation: &str,
        call: F,
    ) -> Vec<(String, T)>
    where
        F: Fn(String, String) -> Fut,
        Fut: Future<Output = crate::Result<T>>,
    {
        let calls = self.targets(ids).into_iter().map(|(id, url)| {
            let answer = call(id.clone(), url);
            async move { (id, answer.await) }
        });
        let results: Vec<_> = futures::stream::iter(calls)
            .buffer_unordered(self.m.cfg.max_concurrent_discoveries)
            .collect()
            .await;
        let mut answers = Vec::new();
        for (id, result) in results {
            let recorded = match result {
                Ok(answer) => {
                    answers.push((id.clone(), answer));
                    self.m.record_success(&id)
                }
                Err(e) => {
                    tracing::debug!(peer = %id, error = %e, operation, "discovery call failed");
                    self.m.record_failure(&id, operation).map(drop)
                }
            };
            if let Err(e) = recorded {
                self.m
                    .events
                    .record(EventKind::Error, Some(&id), e.to_string());
            }
        }
        answers
    }

    /// One round of GetPeerList calls; returns the ids it added.
    async fn fetch_lists(&self, ids: &[String]) -> Vec<String> {
        let max = self.m.cfg.max_peers_in_list;
        let lists = self
            .call_each(ids, "peer_list", |id, url| {
                let req = self.list_request(max);
                async move { self.client.get_peer_list(&url, Some(&id), req).await }
            })
            .await;
        let mut added = Vec::new();
        for (id, list) in lists {
            self.m.discovery_succeeded();
            let responder: Vec<_> = list
                .responder
                .into_iter()
                .filter_map(|r| describe(r).ok())
                .collect();
            let peers: Vec<_> = list
                .peers
                .into_iter()
                .filter_map(|p| describe(p).ok())
                .collect();
            let merged = self
                .m
                .merge(&responder, Source::Direct)
                .and_then(|_| self.m.merge(&peers, Source::Hearsay));
            match merged {
                Ok(report) => added.extend(report.added),
                Err(e) => self
                    .m
                    .events
                    .record(EventKind::Error, Some(&id), e.to_string()),
            }
        }
        added
    }

    /// Phase 3: ping everyone, then fetch lists from those who answered.
    pub async fn refresh(&self) {
        let started = Instant::now();
        self.m
            .metrics
            .discovery_rounds
            .with_label_values(&["refresh"])
            .inc();
        let ids = self.m.ids();
        let responders: Vec<String> = self
            .call_each(&ids, "ping", |id, url| {
                let req = PingRequest {
                    peer_id: self.m.id().to_owned(),
                    sender: Some(self.m.self_info()),
                };
                async move { self.client.ping(&url, Some(&id), req).await }
            })
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let (known, active) = self.m.counts();
        self.m.events.record(
            EventKind::DiscoveryRound,
            None,
            format!(
                "refresh: {} of {} pinged peers answered; {known} known, {active} active",
                responders.len(),
                ids.len()
            ),
        );
        if !responders.is_empty() {
            self.m.discovery_succeeded();
            let queried: HashSet<String> = responders.iter().cloned().collect();
            let new = self.fetch_lists(&responders).await;
            self.build_list(new, queried).await;
        }
        // Peers may have re-advertised their protocols meanwhile.
        self.client.comm().refresh_advertised();
        self.observe("refresh", started);
    }

    fn observe(&self, phase: &str, started: Instant) {
        self.m
            .metrics
            .discovery_duration
            .with_label_values(&[phase])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// A bootstrap node that did not describe itself: known by its URL.
fn described_by_url(peer_id: &str, url: &str) -> PeerDescription {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, p.parse().unwrap_or(80)),
        _ => (authority, if url.starts_with("https") { 443 } else { 80 }),
    };
    PeerDescription {
        peer_id: peer_id.to_owned(),
        address: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        supported_protocols: Vec::new(),
        last_seen: crate::clock::now_ms(),
        capabilities: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_urls_become_descriptions() {
        let d = described_by_url("b", "http://10.0.0.5:5001");
        assert_eq!((d.address.as_str(), d.port), ("10.0.0.5", 5001));
        let d = described_by_url("b", "https://[::1]:7000/");
        assert_eq!((d.address.as_str(), d.port), ("::1", 7000));
        let d = described_by_url("b", "https://peer-0.net.svc");
        assert_eq!((d.address.as_str(), d.port), ("peer-0.net.svc", 443));
    }
}
