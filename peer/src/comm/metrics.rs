//! The communication manager's metrics, registered with the node's.
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct CommMetrics {
    /// Circuit breaker state changes, by the state entered.
    pub breaker_transitions: IntCounterVec,
    /// Peers whose circuit is open right now.
    pub breakers_open: IntGauge,
    /// Calls failed fast because the peer's circuit was open.
    pub calls_refused_open: IntCounter,
    /// Protocol steps down (`from` → `to`) and upward re-probes.
    pub protocol_changes: IntCounterVec,
    /// Retried calls, by operation.
    pub retries: IntCounterVec,
    /// Pooled HTTP/2 connections, and those closed (idle or over the bound).
    pub connections_open: IntGauge,
    pub connections_closed: IntCounterVec,
}

impl CommMetrics {
    pub fn new() -> Self {
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).unwrap()
        };
        CommMetrics {
            breaker_transitions: counter_vec(
                "sorcha_circuit_breaker_transitions_total",
                "Per-peer circuit breaker state changes, by the state entered",
                &["state"],
            ),
            breakers_open: IntGauge::new(
                "sorcha_circuit_breakers_open",
                "Peers whose circuit breaker is open",
            )
            .unwrap(),
            calls_refused_open: IntCounter::new(
                "sorcha_circuit_breaker_refusals_total",
                "Calls failed fast because the peer's circuit was open",
            )
            .unwrap(),
            protocol_changes: counter_vec(
                "sorcha_protocol_changes_total",
                "Negotiated protocol changes per peer link: steps down, and upward re-probes",
                &["from", "to"],
            ),
            retries: counter_vec(
                "sorcha_call_retries_total",
                "Idempotent calls retried after a failure, by operation",
                &["operation"],
            ),
            connections_open: IntGauge::new(
                "sorcha_pooled_connections",
                "HTTP/2 connections to peers held in the pool",
            )
            .unwrap(),
            connections_closed: counter_vec(
                "sorcha_pooled_connections_closed_total",
                "Pooled connections closed, by reason (idle, bound, error)",
                &["reason"],
            ),
        }
    }

    pub fn register(&self, r: &Registry) -> prometheus::Result<()> {
        r.register(Box::new(self.breaker_transitions.clone()))?;
        r.register(Box::new(self.breakers_open.clone()))?;
        r.register(Box::new(self.calls_refused_open.clone()))?;
        r.register(Box::new(self.protocol_changes.clone()))?;
        r.register(Box::new(self.retries.clone()))?;
        r.register(Box::new(self.connections_open.clone()))?;
        r.register(Box::new(self.connections_closed.clone()))
    }
}

impl Default for CommMetrics {
    fn default() -> Self {
        Self::new()
    }
}
