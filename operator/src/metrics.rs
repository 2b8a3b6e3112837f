//! Operator metrics, registered once.
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

use crate::Error;

pub struct Metrics {
    pub registry: Registry,
    pub reconciles: IntCounter,
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
    /// Not-after (Unix seconds) of each CA and peer certificate.
    pub certificate_not_after: GaugeVec,
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
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(certificate_not_after.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            registry,
            reconciles,
            errors,
            duration,
            certificate_not_after,
        }
    }
}

impl Metrics {
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
}
