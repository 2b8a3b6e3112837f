//! Fixtures for reconcile tests: a fake API server, a context with a manual
//! clock, and stand-ins for the StatefulSet controller and the peers.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]
pub mod fake_api;
pub mod fake_watch;
pub mod samples;

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};
use sorcha_operator::controller::{Clock, Context, reconcile};
use sorcha_operator::crd::SorchaNetwork;
use sorcha_operator::metrics::Metrics;

pub use fake_api::FakeApi;

pub const NS: &str = "ledger";
pub const GV: &str = "sorcha.dev/v1alpha1";

pub struct Harness {
    pub fake: FakeApi,
    pub ctx: Arc<Context>,
    pub clock: Clock,
}

impl Harness {
    pub fn new() -> Self {
        let fake = FakeApi::default();
        let clock = Clock::manual(Timestamp::from_second(1_800_000_000).unwrap());
        let ctx = Arc::new(Context::new(
            fake.client(),
            Arc::new(Metrics::default()),
            clock.clone(),
            "cluster.local",
        ));
        Self { fake, ctx, clock }
    }

    /// Creates (or updates the spec of) network `name`.
    pub fn put_network(&self, name: &str, spec: Value, annotations: Value) {
        self.fake.put(
            GV,
            "sorchanetworks",
            Some(NS),
            json!({
                "apiVersion": GV, "kind": "SorchaNetwork",
                "metadata": {"name": name, "namespace": NS, "annotations": annotations},
                "spec": spec,
            }),
        );
    }

    pub fn network(&self, name: &str) -> SorchaNetwork {
        serde_json::from_value(
            self.fake
                .get(GV, "sorchanetworks", NS, name)
                .expect("network stored"),
        )
        .unwrap()
    }

    pub async fn reconcile(&self, name: &str) {
        reconcile(Arc::new(self.network(name)), self.ctx.clone())
            .await
            .expect("reconcile succeeds");
    }

    pub fn get(&self, gv: &str, plural: &str, name: &str) -> Option<Value> {
        self.fake.get(gv, plural, NS, name)
    }

    pub fn sts(&self, name: &str) -> Value {
        self.get("apps/v1", "statefulsets", name)
            .expect("statefulset exists")
    }

    pub fn partition(&self, name: &str) -> i64 {
        self.sts(name)["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
            .as_i64()
            .unwrap()
    }

    /// Does what the StatefulSet controller and kubelet would: pods with
    /// ordinal >= partition run the update revision (a new pod UID when
    /// replaced); all pods become Ready.
    pub fn run_statefulset(&self, name: &str) {
        let sts = self.sts(name);
        let replicas = sts["spec"]["replicas"].as_i64().unwrap();
        let partition = sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
            .as_i64()
            .unwrap_or(0);
        let rev = format!(
            "rev-{}",
            sts["metadata"]["annotations"]["sorcha.dev/template-hash"]
                .as_str()
                .unwrap()
        );
        let labels = sts["spec"]["template"]["metadata"]["labels"].clone();
        for i in 0..replicas {
            let pod_name = format!("{name}-{i}");
            let existing = self.get("v1", "pods", &pod_name);
            let keep = existing.as_ref().filter(|_| i < partition);
            if keep.is_some() {
                continue;
            }
            let mut l = labels.clone();
            l["controller-revision-hash"] = json!(rev);
            if existing
                .as_ref()
                .is_some_and(|p| p["metadata"]["labels"]["controller-revision-hash"] == json!(rev))
            {
                continue;
            }
            if existing.is_some() {
                self.fake.edit("v1", "pods", NS, &pod_name, |p| {
                    p["metadata"]["labels"] = l.clone();
                    p["metadata"]["uid"] = json!(format!("uid-{pod_name}-{rev}"));
                });
            } else {
                self.fake.put(
                    "v1",
                    "pods",
                    Some(NS),
                    json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": pod_name, "namespace": NS, "labels": l},
                        "spec": {"containers": [{"name": "peer"}]},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                    }),
                );
                self.fake.edit("v1", "pods", NS, &pod_name, |p| {
                    p["metadata"]["uid"] = json!(format!("uid-{pod_name}-{rev}"));
                });
            }
        }
        self.fake.edit("apps/v1", "statefulsets", NS, name, |s| {
            s["status"] =
                json!({"replicas": replicas, "readyReplicas": replicas, "updateRevision": rev});
        });
    }

    pub fn pod_uid(&self, pod: &str) -> String {
        self.get("v1", "pods", pod).unwrap()["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Writes a SorchaPeer status as the peer in that pod would.
    pub fn report(&self, peer: &str, status: Value) {
        let uid = self
            .get("v1", "pods", peer)
            .map(|p| p["metadata"]["uid"].clone());
        self.fake.edit(GV, "sorchapeers", NS, peer, |p| {
            let mut s = status;
            if let Some(uid) = uid {
                s["podUid"] = uid;
            }
            p["status"] = s;
        });
    }

    pub fn report_all_online(&self, name: &str, replicas: i64) {
        for i in 0..replicas {
            self.report(&format!("{name}-{i}"), json!({"phase": "Online"}));
        }
    }

    pub fn condition(&self, name: &str, ty: &str) -> Value {
        let n = self.fake.get(GV, "sorchanetworks", NS, name).unwrap();
        n["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == ty).cloned())
            .unwrap_or(Value::Null)
    }

    /// The network's Degraded condition names `field` in its message.
    pub fn assert_degraded_naming(&self, name: &str, field: &str) {
        let d = self.condition(name, "Degraded");
        assert!(
            d["message"].as_str().unwrap_or_default().contains(field),
            "{d}"
        );
    }

    pub fn event_reasons(&self) -> Vec<String> {
        self.fake
            .take_events()
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}
