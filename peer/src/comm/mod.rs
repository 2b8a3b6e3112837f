//! The communication manager (design "Communication Manager"): every call
//! to another peer — discovery and gossip alike — goes through [`Comm`],
//! which
//! - negotiates the protocol per peer: gRPC stream → gRPC unary → REST,
//!   capped by this node's `Communication.PreferredProtocol` and what the
//!   peer advertises, remembered, and re-probed upward ([`protocol`]);
//! - keeps one pooled HTTP/2 connection per peer, closes idle ones and
//!   bounds the total ([`pool`]), each opened by the [`connector`]
//!   (plaintext, or mutual TLS checking the peer's identity);
//! - retries idempotent calls with exponential backoff and jitter
//!   (`MaxRetries`, `RetryDelaySeconds`, [`backoff`]);
//! - fails fast to peers whose circuit breaker is open
//!   (`CircuitBreakerThreshold`, `CircuitBreakerResetMinutes`, [`breaker`]),
//!   with state changes as events and metrics.
pub mod backoff;
pub mod breaker;
pub mod connector;
pub mod metrics;
pub mod pool;
pub mod protocol;
pub mod rest;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use connector::{Connector, peer_url};
pub use metrics::CommMetrics;
pub use protocol::Protocol;

use crate::config::CommunicationConfig;
use crate::discovery::Membership;
use crate::events::EventKind;
use crate::security::clock::{Clock, MonotonicClock};
use crate::{Error, Result};
use backoff::Backoff;
use breaker::{Admission, Breaker, BreakerState};
use protocol::Negotiation;

/// What a call does; decides whether it may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ping,
    PeerList,
    Register,
    Notify,
    Push,
    Fetch,
    Sync,
}

impl Op {
    pub fn label(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::PeerList => "peer_list",
            Op::Register => "register",
            Op::Notify => "notify",
            Op::Push => "push",
            Op::Fetch => "fetch",
            Op::Sync => "sync",
        }
    }

    /// Retried after a failure. Reads and registration are idempotent.
    /// Gossip sends are not retried: a lost announcement is recovered by
    /// anti-entropy, and a retried one would count twice. Ping is the
    /// health probe itself: its failure is the signal discovery counts.
    pub fn retried(self) -> bool {
        matches!(self, Op::PeerList | Op::Register | Op::Fetch | Op::Sync)
    }
}

/// One peer link: its negotiated protocol and circuit breaker.
struct Link {
    negotiation: Negotiation,
    breaker: Breaker,
    /// Clock time of the last call.
    used: Duration,
}

/// A link unused this long is forgotten (unless its circuit is open), so
/// peers that came and went do not accumulate.
pub const LINK_IDLE: Duration = Duration::from_secs(30 * 60);

pub struct Comm {
    own: Protocol,
    backoff: Backoff,
    breaker_threshold: u32,
    breaker_reset: Duration,
    clock: Arc<dyn Clock>,
    links: Mutex<HashMap<String, Link>>,
    pub pool: pool::Pool,
    pub rest: rest::RestClient,
    m: Arc<Membership>,
}

impl Comm {
    pub fn new(cfg: &CommunicationConfig, m: Arc<Membership>, connector: Connector) -> Arc<Self> {
        Self::with_clock(cfg, m, connector, Arc::new(MonotonicClock::default()))
    }

    pub fn with_clock(
        cfg: &CommunicationConfig,
        m: Arc<Membership>,
        connector: Connector,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        // Room for a full peer list plus bootstrap nodes and strangers.
        let max_connections = (m.cfg.max_peers_in_list * 2).max(64);
        Arc::new(Comm {
            own: cfg.preferred_protocol,
            backoff: Backoff {
                base: cfg.retry_delay_seconds,
                max_retries: cfg.max_retries,
            },
            breaker_threshold: cfg.circuit_breaker_threshold,
            breaker_reset: cfg.circuit_breaker_reset_minutes,
            clock,
            links: Mutex::new(HashMap::new()),
            pool: pool::Pool::new(connector.clone(), max_connections),
            rest: rest::RestClient::new(connector),
            m,
        })
    }

    pub fn metrics(&self) -> &CommMetrics {
        &self.m.metrics.comm
    }

    /// Opens connections: plaintext or mutual TLS.
    pub fn connector(&self) -> &Connector {
        self.pool.connector()
    }

    /// The highest protocol this node serves and uses.
    pub fn own_protocol(&self) -> Protocol {
        self.own
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<String, Link>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A first call to `url`: starts from what the peer advertised, if it
    /// is in the peer list.
    fn new_link(&self, url: &str) -> Link {
        let mut negotiation = Negotiation::new(self.own);
        if let Some(p) = self
            .m
            .records()
            .into_iter()
            .find(|p| self.pool.connector().url(&p.address, p.port) == url)
        {
            negotiation.advertised(
                self.own,
                Protocol::highest_advertised(&p.supported_protocols),
            );
        }
        Link {
            negotiation,
            breaker: Breaker::new(self.breaker_threshold, self.breaker_reset),
            used: self.clock.now(),
        }
    }

    /// Re-reads every known peer's advertisement (after discovery rounds).
    pub fn refresh_advertised(&self) {
        for p in self.m.records() {
            let url = self.pool.connector().url(&p.address, p.port);
            if let Some(link) = self.links().get_mut(&url) {
                link.negotiation.advertised(
                    self.own,
                    Protocol::highest_advertised(&p.supported_protocols),
                );
            }
        }
    }

    /// Tells the manager what a peer advertises in `supported_protocols`.
    pub fn advertised(&self, url: &str, supported: &[String]) {
        let theirs = Protocol::highest_advertised(supported);
        let own = self.own;
        let mut links = self.links();
        let link = links
            .entry(url.to_owned())
            .or_insert_with(|| self.new_link(url));
        link.negotiation.advertised(own, theirs);
    }

    /// The protocol the next call to `url` would use.
    pub fn protocol(&self, url: &str) -> Protocol {
        self.links()
            .get(url)
            .map_or(self.own, |l| l.negotiation.current())
    }

    /// URLs whose circuit is open (one lock; no allocation when none is).
    pub fn open_circuits(&self) -> Vec<String> {
        self.links()
            .iter()
            .filter(|(_, l)| l.breaker.state() == BreakerState::Open)
            .map(|(url, _)| url.clone())
            .collect()
    }

    /// The circuit state for `url` (closed for peers never called).
    pub fn breaker_state(&self, url: &str) -> BreakerState {
        self.links()
            .get(url)
            .map_or(BreakerState::Closed, |l| l.breaker.state())
    }

    /// Runs `f` against `url` with the negotiated protocol: steps down
    /// when the peer does not serve it, retries idempotent operations on
    /// connection failures, and fails fast while the circuit is open.
    pub async fn call<T, F, Fut>(&self, url: &str, op: Op, mut f: F) -> Result<T>
    where
        F: FnMut(Protocol) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut failures = 0u32;
        loop {
            let (protocol, probe) = self.begin(url)?;
            let mut guard = ProbeGuard {
                comm: self,
                url,
                armed: probe,
            };
            let result = f(protocol).await;
            guard.armed = false;
            match result {
                Ok(v) => {
                    self.answered(url);
                    return Ok(v);
                }
                Err(Error::ProtocolUnsupported { .. }) if protocol.below().is_some() => {
                    // The peer is alive, it just does not serve this.
                    self.answered(url);
                    self.step_down(url, protocol);
                }
                Err(e @ Error::PeerUnreachable { .. }) => {
                    failures += 1;
                    let open = self.unreachable(url);
                    if open || !op.retried() || !self.backoff.may_retry(failures) {
                        return Err(e);
                    }
                    self.m
                        .metrics
                        .comm
                        .retries
                        .with_label_values(&[op.label()])
                        .inc();
                    let delay = self.backoff.delay(failures - 1, rand::random::<f64>());
                    tracing::debug!(peer = url, op = op.label(), ?delay, error = %e, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    // Any other answer proves the peer is there.
                    self.answered(url);
                    return Err(e);
                }
            }
        }
    }

    /// Admits a call: its protocol, and whether it is a half-open probe.
    fn begin(&self, url: &str) -> Result<(Protocol, bool)> {
        let now = self.clock.now();
        // (The peer list is read under the links lock: never the reverse.)
        let mut links = self.links();
        let link = links
            .entry(url.to_owned())
            .or_insert_with(|| self.new_link(url));
        link.used = now;
        let (admission, changed) = link.breaker.admit(now);
        let (protocol, reprobe) = link.negotiation.protocol(now);
        drop(links);
        if let Some(state) = changed {
            self.breaker_changed(url, state);
        }
        if reprobe {
            self.m
                .metrics
                .comm
                .protocol_changes
                .with_label_values(&["reprobe", protocol.label()])
                .inc();
        }
        match admission {
            Admission::Call => Ok((protocol, false)),
            Admission::Probe => Ok((protocol, true)),
            Admission::Refuse { retry_in } => {
                self.m.metrics.comm.calls_refused_open.inc();
                Err(Error::PeerUnreachable {
                    peer: url.to_owned(),
                    message: format!(
                        "circuit open after {} consecutive failures; next probe in {:.0?}",
                        self.breaker_threshold, retry_in
                    ),
                })
            }
        }
    }

    fn answered(&self, url: &str) {
        let changed = self
            .links()
            .get_mut(url)
            .and_then(|l| l.breaker.succeeded());
        if let Some(state) = changed {
            self.breaker_changed(url, state);
        }
    }

    /// Records a failure; true when the circuit is (now) open.
    fn unreachable(&self, url: &str) -> bool {
        let now = self.clock.now();
        let (changed, state) = match self.links().get_mut(url) {
            Some(l) => (l.breaker.failed(now), l.breaker.state()),
            None => (None, BreakerState::Closed),
        };
        if let Some(state) = changed {
            self.breaker_changed(url, state);
        }
        state == BreakerState::Open
    }

    /// `url` does not serve `failed`: the link steps below it. Also called
    /// from outside [`Comm::call`] by the announcement stream, which fails
    /// only after it started.
    pub fn step_down(&self, url: &str, failed: Protocol) {
        let now = self.clock.now();
        let next = self
            .links()
            .get_mut(url)
            .and_then(|l| l.negotiation.step_down(failed, now));
        if let Some(next) = next {
            self.m
                .metrics
                .comm
                .protocol_changes
                .with_label_values(&[failed.label(), next.label()])
                .inc();
            self.m.events.record(
                EventKind::ProtocolChanged,
                None,
                format!(
                    "{url} does not serve {}; using {} with it",
                    failed.label(),
                    next.label()
                ),
            );
        }
    }

    fn breaker_changed(&self, url: &str, state: BreakerState) {
        let metrics = &self.m.metrics.comm;
        metrics
            .breaker_transitions
            .with_label_values(&[state.label()])
            .inc();
        let open = self
            .links()
            .values()
            .filter(|l| l.breaker.state() == BreakerState::Open)
            .count();
        metrics.breakers_open.set(open as i64);
        let message = match state {
            BreakerState::Open => format!(
                "circuit to {url} opened after {} consecutive failures; calls fail fast for {:?}",
                self.breaker_threshold, self.breaker_reset
            ),
            BreakerState::HalfOpen => format!("circuit to {url} half-open: probing"),
            BreakerState::Closed => format!("circuit to {url} closed: the peer answers again"),
        };
        self.m
            .events
            .record(EventKind::CircuitChanged, None, message);
    }

    /// Closes pooled connections idle for `idle`, and forgets links idle
    /// for `LINK_IDLE` whose circuit is not open.
    pub fn evict_idle(&self, idle: Duration) -> usize {
        let now = self.clock.now();
        self.links().retain(|_, l| {
            l.breaker.state() == BreakerState::Open || now.saturating_sub(l.used) < LINK_IDLE
        });
        self.pool.evict_idle(idle, &self.m.metrics.comm)
    }

    /// Peer links remembered (negotiated protocol, breaker).
    pub fn links_tracked(&self) -> usize {
        self.links().len()
    }
}

/// Releases a half-open probe whose call was dropped before it finished,
/// so the circuit does not stay half-open refusing everything.
struct ProbeGuard<'a> {
    comm: &'a Comm,
    url: &'a str,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Some(l) = self.comm.links().get_mut(self.url)
        {
            l.breaker.abandoned();
        }
    }
}

#[cfg(test)]
mod call_tests;
