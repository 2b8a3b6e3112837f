//! Prometheus metrics as one struct, registered once per node.
//!
//! Names follow Prometheus conventions, so a few differ from the design's:
//!
//! | design                      | here                                                   |
//! |-----------------------------|--------------------------------------------------------|
//! | `peer_count`                | `sorcha_peers_known` (`_count` is reserved for histograms) |
//! | `peer_count_active`         | `sorcha_peers_active`                                  |
//! | `peer_service_status`       | `sorcha_peer_service_status{state}` (1 for the current state) |
//! | `last_successful_discovery` | `sorcha_last_successful_discovery_timestamp_seconds`   |
//! | `connection_errors_total`   | `sorcha_connection_errors_total{operation}`            |
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::discovery::state::NodeState;

pub struct Metrics {
    registry: Registry,
    pub peers_known: IntGauge,
    pub peers_active: IntGauge,
    pub service_status: IntGaugeVec,
    pub last_successful_discovery: Gauge,
    pub connection_errors: IntCounterVec,
    pub discovery_rounds: IntCounterVec,
    pub discovery_duration: HistogramVec,
    pub peers_removed: IntCounter,
    pub state_transitions: IntCounterVec,
    pub requests: IntCounterVec,
    /// Admin calls refused, by reason (`security::AdminRefusal::label`).
    pub admin_refusals: IntCounterVec,
    /// Peer requests refused by the caller policy, by reason
    /// (`security::Refusal::reason`).
    pub peer_refusals: IntCounterVec,
    pub peer_bans: IntCounter,
    pub active_bans: IntGauge,
    /// 1 for the advertised address, with how it was found (address discovery).
    pub external_address_info: IntGaugeVec,
    /// Self-verification: 1 reachable, 0 behind a restrictive NAT, -1 not checked yet.
    pub external_address_reachable: IntGauge,
    pub tx_distribution_latency: Histogram,
    pub tx_queue_size: IntGauge,
    pub bandwidth_sent: IntCounter,
    pub bandwidth_received: IntCounter,
    pub gossip_rounds: IntCounter,
    pub tx_duplicates: IntCounter,
    /// Pushed copies of transactions already held (part of `tx_duplicates`).
    pub tx_push_duplicates: IntCounter,
    /// Pushes received, by `via`: `call` (PushTransaction(s)) or `stream`
    /// (a peer's PushStream).
    pub tx_pushes_received: IntCounterVec,
    /// Broadcast tree (`GossipMode: Tree`): links pruned and grafted, and
    /// the eager links now.
    pub tree_prunes: IntCounter,
    pub tree_grafts: IntCounter,
    pub tree_eager_links: IntGauge,
    pub tx_pulls_served: IntCounter,
    pub tx_stored: IntCounter,
    pub anti_entropy_repairs: IntCounter,
    pub announcements_sent: IntCounter,
    pub announcement_bytes: IntCounter,
    pub listener_received: IntCounter,
    pub listener_sent: IntCounter,
    /// Protocol negotiation, circuit breakers, retries, the connection pool.
    pub comm: crate::comm::CommMetrics,
    /// TLS handshakes (and anonymous requests) refused, by
    /// `security::RefusalReason::label`.
    pub tls_handshake_refusals: IntCounterVec,
    /// Connections closed before any handshake, by reason (`rate_limit`).
    pub connections_refused: IntCounterVec,
    /// Hot reloads of the TLS material, by part and result.
    pub tls_reloads: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Self {
            peers_known: IntGauge::new(
                "sorcha_peers_known",
                "Peers in this node's peer list (design: peer_count)",
            )
            .unwrap(),
            peers_active: IntGauge::new(
                "sorcha_peers_active",
                "Peers that answered this node's last call (design: peer_count_active)",
            )
            .unwrap(),
            service_status: IntGaugeVec::new(
                Opts::new(
                    "sorcha_peer_service_status",
                    "1 for the node's current state (Online, Degraded, Offline)",
                ),
                &["state"],
            )
            .unwrap(),
            last_successful_discovery: Gauge::new(
                "sorcha_last_successful_discovery_timestamp_seconds",
                "Unix time of the last discovery round that reached at least one peer",
            )
            .unwrap(),
            connection_errors: IntCounterVec::new(
                Opts::new(
                    "sorcha_connection_errors_total",
                    "Failed outgoing calls to peers, by operation",
                ),
                &["operation"],
            )
            .unwrap(),
            discovery_rounds: IntCounterVec::new(
                Opts::new(
                    "sorcha_discovery_rounds_total",
                    "Discovery rounds run, by phase (bootstrap, build, refresh)",
                ),
                &["phase"],
            )
            .unwrap(),
            discovery_duration: HistogramVec::new(
                HistogramOpts::new(
                    "sorcha_discovery_duration_seconds",
                    "Duration of discovery rounds, by phase",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
                &["phase"],
            )
            .unwrap(),
            peers_removed: IntCounter::new(
                "sorcha_peers_removed_total",
                "Peers removed after exceeding the failure threshold",
            )
            .unwrap(),
            state_transitions: IntCounterVec::new(
                Opts::new(
                    "sorcha_state_transitions_total",
                    "Node state changes, by from and to state",
                ),
                &["from", "to"],
            )
            .unwrap(),
            requests: IntCounterVec::new(
                Opts::new(
                    "sorcha_requests_total",
                    "Incoming discovery requests, by operation and protocol",
                ),
                &["operation", "protocol"],
            )
            .unwrap(),
            admin_refusals: IntCounterVec::new(
                Opts::new(
                    "sorcha_admin_refusals_total",
                    "Admin calls refused, by reason",
                ),
                &["reason"],
            )
            .unwrap(),
            peer_refusals: IntCounterVec::new(
                Opts::new(
                    "sorcha_peer_refusals_total",
                    "Peer requests refused, by reason (peer_id_mismatch, banned, requests, bytes, \
                     transactions, read_only, not_bootstrap)",
                ),
                &["reason"],
            )
            .unwrap(),
            peer_bans: IntCounter::new(
                "sorcha_peer_bans_total",
                "Peer bans started, automatic (reputation) and by admin call",
            )
            .unwrap(),
            active_bans: IntGauge::new("sorcha_peer_active_bans", "Peer bans in force").unwrap(),
            external_address_info: IntGaugeVec::new(
                Opts::new(
                    "sorcha_external_address_info",
                    "1 for the address this node advertises, with its NAT type and the method that found it",
                ),
                &["address", "nat_type", "method"],
            )
            .unwrap(),
            external_address_reachable: IntGauge::new(
                "sorcha_external_address_reachable",
                "1 if the node reached itself through its advertised address, 0 if not (behind restrictive NAT), -1 before the first check",
            )
            .unwrap(),
            tx_distribution_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "sorcha_transaction_distribution_latency_seconds",
                    "From submission at this node to its first successful gossip send (design: transaction_distribution_latency)",
                )
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            )
            .unwrap(),
            tx_queue_size: IntGauge::new(
                "sorcha_transaction_queue_size",
                "Transactions waiting in the offline queue (design: transaction_queue_size)",
            )
            .unwrap(),
            bandwidth_sent: IntCounter::new(
                "sorcha_bandwidth_sent_bytes_total",
                "Transaction and announcement payload bytes sent to peers (design: bandwidth_sent_bytes)",
            )
            .unwrap(),
            bandwidth_received: IntCounter::new(
                "sorcha_bandwidth_received_bytes_total",
                "Transaction payload bytes received from peers (design: bandwidth_received_bytes)",
            )
            .unwrap(),
            gossip_rounds: IntCounter::new(
                "sorcha_gossip_rounds_total",
                "Gossip rounds this node started (design: gossip_rounds_total)",
            )
            .unwrap(),
            tx_duplicates: IntCounter::new(
                "sorcha_transaction_duplicates_received_total",
                "Announcements, pushes or pulls of transactions this node already held",
            )
            .unwrap(),
            tx_push_duplicates: IntCounter::new(
                "sorcha_transaction_push_duplicates_total",
                "Pushed transactions this node already held (whole copies sent in vain)",
            )
            .unwrap(),
            tx_pushes_received: IntCounterVec::new(
                Opts::new(
                    "sorcha_transaction_pushes_received_total",
                    "Eager pushes received, by how they came: a call or a peer's push stream",
                ),
                &["via"],
            )
            .unwrap(),
            tree_prunes: IntCounter::new(
                "sorcha_gossip_tree_prunes_total",
                "Broadcast-tree links closed because a push met a transaction already held",
            )
            .unwrap(),
            tree_grafts: IntCounter::new(
                "sorcha_gossip_tree_grafts_total",
                "Broadcast-tree links (re)opened after a transaction missed the tree",
            )
            .unwrap(),
            tree_eager_links: IntGauge::new(
                "sorcha_gossip_tree_eager_links",
                "Peers this node pushes every new transaction to",
            )
            .unwrap(),
            tx_pulls_served: IntCounter::new(
                "sorcha_transaction_pulls_served_total",
                "Stored transactions served to peers and clients",
            )
            .unwrap(),
            tx_stored: IntCounter::new(
                "sorcha_transactions_stored_total",
                "Transactions this node stored for the first time",
            )
            .unwrap(),
            anti_entropy_repairs: IntCounter::new(
                "sorcha_anti_entropy_repairs_total",
                "Transactions found missing on one side by anti-entropy",
            )
            .unwrap(),
            announcements_sent: IntCounter::new(
                "sorcha_announcements_sent_total",
                "Transaction announcements sent (hash, size, round), batched per peer",
            )
            .unwrap(),
            announcement_bytes: IntCounter::new(
                "sorcha_announcement_bytes_total",
                "Encoded bytes of the announcement batches sent (gRPC message bodies)",
            )
            .unwrap(),
            listener_received: IntCounter::new(
                "sorcha_listener_received_bytes_total",
                "Bytes read from connections this node accepted (all protocols, framing included)",
            )
            .unwrap(),
            listener_sent: IntCounter::new(
                "sorcha_listener_sent_bytes_total",
                "Bytes written to connections this node accepted (all protocols, framing included)",
            )
            .unwrap(),
            comm: crate::comm::CommMetrics::new(),
            tls_handshake_refusals: IntCounterVec::new(
                Opts::new(
                    "sorcha_tls_handshake_refusals_total",
                    "TLS connections refused, by reason (anonymous requests beyond health and metrics count as no_client_certificate)",
                ),
                &["reason"],
            )
            .unwrap(),
            connections_refused: IntCounterVec::new(
                Opts::new(
                    "sorcha_connections_refused_total",
                    "Incoming connections closed before any handshake, by reason",
                ),
                &["reason"],
            )
            .unwrap(),
            tls_reloads: IntCounterVec::new(
                Opts::new(
                    "sorcha_tls_reloads_total",
                    "Changed TLS files seen by hot reload, by part and result (applied, failed)",
                ),
                &["part", "result"],
            )
            .unwrap(),
            registry,
        };
        m.comm
            .register(&m.registry)
            .expect("metric names are unique");
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.peers_known.clone()),
            Box::new(m.peers_active.clone()),
            Box::new(m.service_status.clone()),
            Box::new(m.last_successful_discovery.clone()),
            Box::new(m.connection_errors.clone()),
            Box::new(m.discovery_rounds.clone()),
            Box::new(m.discovery_duration.clone()),
            Box::new(m.peers_removed.clone()),
            Box::new(m.state_transitions.clone()),
            Box::new(m.requests.clone()),
            Box::new(m.admin_refusals.clone()),
            Box::new(m.peer_refusals.clone()),
            Box::new(m.peer_bans.clone()),
            Box::new(m.active_bans.clone()),
            Box::new(m.external_address_info.clone()),
            Box::new(m.external_address_reachable.clone()),
            Box::new(m.tx_distribution_latency.clone()),
            Box::new(m.tx_queue_size.clone()),
            Box::new(m.bandwidth_sent.clone()),
            Box::new(m.bandwidth_received.clone()),
            Box::new(m.gossip_rounds.clone()),
            Box::new(m.tx_duplicates.clone()),
            Box::new(m.tx_push_duplicates.clone()),
            Box::new(m.tx_pushes_received.clone()),
            Box::new(m.tree_prunes.clone()),
            Box::new(m.tree_grafts.clone()),
            Box::new(m.tree_eager_links.clone()),
            Box::new(m.tx_pulls_served.clone()),
            Box::new(m.tx_stored.clone()),
            Box::new(m.anti_entropy_repairs.clone()),
            Box::new(m.announcements_sent.clone()),
            Box::new(m.announcement_bytes.clone()),
            Box::new(m.listener_received.clone()),
            Box::new(m.listener_sent.clone()),
            Box::new(m.tls_handshake_refusals.clone()),
            Box::new(m.connections_refused.clone()),
            Box::new(m.tls_reloads.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m.set_state(NodeState::Offline);
        m.external_address_reachable.set(-1);
        m
    }

    pub fn set_state(&self, state: NodeState) {
        for s in NodeState::ALL {
            self.service_status
                .with_label_values(&[s.as_str()])
                .set(i64::from(s == state));
        }
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("exposition format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_design_metrics_under_conventional_names() {
        let m = Metrics::new();
        m.connection_errors.with_label_values(&["ping"]).inc();
        m.set_state(NodeState::Degraded);
        let text = m.render();
        for name in [
            "sorcha_peers_known ",
            "sorcha_peers_active ",
            "sorcha_peer_service_status{state=\"Degraded\"} 1",
            "sorcha_peer_service_status{state=\"Online\"} 0",
            "sorcha_last_successful_discovery_timestamp_seconds ",
            "sorcha_connection_errors_total{operation=\"ping\"} 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
