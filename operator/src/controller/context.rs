//! What every reconcile shares: the client, the event recorder, metrics,
//! the clock and operator settings.
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::metrics::Metrics;

/// Source of "now", replaceable in tests so certificate expiry and rollout
/// stalls can be reached without waiting.
#[derive(Clone)]
pub enum Clock {
    System,
    Manual(Arc<Mutex<Timestamp>>),
}

impl Clock {
    pub fn manual(start: Timestamp) -> Self {
        Clock::Manual(Arc::new(Mutex::new(start)))
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Manual(t) => *t.lock().expect("clock lock"),
        }
    }

    /// Moves a manual clock forward; no effect on the system clock.
    pub fn advance(&self, by: std::time::Duration) {
        if let Clock::Manual(t) = self {
            let mut g = t.lock().expect("clock lock");
            *g = g
                .checked_add(jiff::SignedDuration::try_from(by).expect("duration in range"))
                .expect("time in range");
        }
    }
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// Cluster DNS suffix used in bootstrap URLs and certificate SANs.
    pub cluster_domain: String,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, clock: Clock, cluster_domain: &str) -> Self {
        let reporter = Reporter {
            controller: crate::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            clock,
            cluster_domain: cluster_domain.to_owned(),
        }
    }
}
