//! Watches for the fake API server: every stored change is logged with its
//! resourceVersion, and a WATCH request streams the changes after the
//! version it names (as JSON lines, `{"type": .., "object": ..}`) until its
//! `timeoutSeconds`. So a controller under test reacts to changes the way
//! it does in a cluster — through watch events, not periodic re-lists.
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::fake_api::{FakeApi, Key, Store, query_param, selector_matches};

/// One change, as a watch event.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub key: Key,
    pub kind: &'static str,
    pub object: Value,
}

impl Store {
    /// Stores `v` under `key`, logging the change for watchers.
    pub fn insert(&mut self, key: Key, v: Value) {
        let kind = if self.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let rv = v["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(self.rv);
        self.objects.insert(key.clone(), v.clone());
        self.log_change(rv, key, kind, v);
    }

    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut v = self.objects.remove(key)?;
        self.rv += 1;
        v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.log_change(self.rv, key.clone(), "DELETED", v.clone());
        Some(v)
    }

    fn log_change(&mut self, rv: u64, key: Key, kind: &'static str, object: Value) {
        self.changes.push(Change {
            rv,
            key,
            kind,
            object,
        });
        self.changed.notify_waiters();
    }
}

/// A WATCH on the collection `key` (name empty), from `resourceVersion`.
pub fn watch(fake: &FakeApi, key: Key, uri: &Uri) -> Response {
    let since: u64 = query_param(uri, "resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let selector = query_param(uri, "labelSelector").unwrap_or_default();
    let timeout = query_param(uri, "timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(290), Duration::from_secs);
    let deadline = tokio::time::Instant::now() + timeout;
    let fake = fake.clone();
    let events = futures::stream::unfold(since, move |seen| {
        let (fake, key, selector) = (fake.clone(), key.clone(), selector.clone());
        async move {
            loop {
                let (batch, last, changed) = {
                    let st = fake.0.lock().unwrap();
                    let mut out = Vec::new();
                    let mut last = seen;
                    for c in st.changes.iter().filter(|c| c.rv > seen) {
                        last = last.max(c.rv);
                        let k = &c.key;
                        if k.gv == key.gv
                            && k.plural == key.plural
                            && (key.namespace.is_none() || k.namespace == key.namespace)
                            && selector_matches(&c.object, &selector)
                        {
                            let line = json!({"type": c.kind, "object": c.object});
                            out.extend(serde_json::to_vec(&line).unwrap());
                            out.push(b'\n');
                        }
                    }
                    (out, last, st.changed.clone())
                };
                if !batch.is_empty() {
                    return Some((Ok::<_, std::convert::Infallible>(Bytes::from(batch)), last));
                }
                let notified = changed.notified();
                // A change logged after the scan above but before this wait
                // would be missed: look again shortly in any case.
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    () = tokio::time::sleep_until(deadline) => return None,
                }
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
            }
        }
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        Body::from_stream(events),
    )
        .into_response()
}
