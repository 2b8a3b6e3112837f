//! Operator metrics, registered once.
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::Error;
use crate::crd::SorchaNetworkStatus;

pub struct Metrics {
    pub registry: Registry,
    pub reconciles: IntCounter,
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
    /// Not-after (Unix seconds) of each CA and peer certificate.
    pub certificate_not_after: GaugeVec,
    /// 1 while a network's Ready condition is True, else 0.
    pub network_ready: IntGaugeVec,
    /// Peers of a network by reported phase (Online/Degraded/Offline).
    pub network_peers: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounter::new(
            "sorcha_operator_reconciles_total",
            "Reconciliations started",
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "sorcha_operator_reconcile_errors_total",
                "Reconciliations that failed, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "sorcha_operator_reconcile_duration_seconds",
                "Time taken by one reconciliation",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["kind"],
        )
        .expect("valid metric");
        let certificate_not_after = GaugeVec::new(
            Opts::new(
                "sorcha_operator_certificate_not_after_timestamp_seconds",
                "Expiry of each CA and peer certificate the operator manages",
            ),
            &["namespace", "network", "certificate"],
        )
        .expect("valid metric");
        let network_ready = IntGaugeVec::new(
            Opts::new(
                "sorcha_operator_network_ready",
                "1 while the SorchaNetwork's Ready condition is True",
            ),
            &["namespace", "network"],
        )
        .expect("valid metric");
        let network_peers = IntGaugeVec::new(
            Opts::new(
                "sorcha_operator_network_peers",
                "Peers of a SorchaNetwork by the phase they report",
            ),
            &["namespace", "network", "phase"],
        )
        .expect("valid metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(certificate_not_after.clone()),
            Box::new(network_ready.clone()),
            Box::new(network_peers.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            registry,
            reconciles,
            errors,
            duration,
            certificate_not_after,
            network_ready,
            network_peers,
        }
    }
}

impl Metrics {
    /// The health a status reports, for alerting on networks that are not
    /// Ready or have Offline peers without scraping every peer.
    pub fn record_network(&self, namespace: &str, network: &str, st: &SorchaNetworkStatus) {
        let ready = st
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        self.network_ready
            .with_label_values(&[namespace, network])
            .set(i64::from(ready));
        for (phase, n) in [
            ("Online", st.peers_online),
            ("Degraded", st.peers_degraded),
            ("Offline", st.peers_offline),
        ] {
            self.network_peers
                .with_label_values(&[namespace, network, phase])
                .set(i64::from(n));
        }
    }

    pub fn record_error(&self, e: &Error) {
        self.errors.with_label_values(&[e.metric_label()]).inc();
    }

    /// Text exposition format, for `/metrics`.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_labelled_by_variant() {
        let m = Metrics::default();
        m.reconciles.inc();
        m.record_error(&Error::invalid("spec.x", "bad"));
        m.certificate_not_after
            .with_label_values(&["ns", "alpha", "ca"])
            .set(1.8e9);
        let text = m.render();
        assert!(text.contains("sorcha_operator_reconciles_total 1"));
        assert!(text.contains("sorcha_operator_reconcile_errors_total{reason=\"invalid_spec\"} 1"));
        assert!(text.contains("certificate=\"ca\""));
    }

    #[test]
    fn network_health_follows_the_status() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let m = Metrics::default();
        let mut st = SorchaNetworkStatus {
            peers_online: 2,
            peers_offline: 1,
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: "PeersOffline".into(),
                message: String::new(),
                last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }],
            ..Default::default()
        };
        m.record_network("ns", "alpha", &st);
        let text = m.render();
        assert!(
            text.contains("sorcha_operator_network_ready{namespace=\"ns\",network=\"alpha\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("network=\"alpha\",phase=\"Offline\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("network=\"alpha\",phase=\"Online\"} 2"),
            "{text}"
        );
        st.conditions[0].status = "True".into();
        m.record_network("ns", "alpha", &st);
        assert!(
            m.render()
                .contains("sorcha_operator_network_ready{namespace=\"ns\",network=\"alpha\"} 1")
        );
    }
}
