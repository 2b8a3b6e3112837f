//! A minimal in-process Kubernetes API server for reconcile tests: GET,
//! LIST (label selectors), POST, PUT (with resourceVersion conflicts),
//! PATCH (server-side apply, merge patch, status subresource) and DELETE,
//! for any kind, stored as JSON in memory. Server-side apply is modelled
//! for a single field manager per object: the applied object replaces the
//! previous one, keeping server-owned metadata and the status.
//!
//! It is an axum Router handed to `kube::Client::new` as its service, so
//! no socket is opened at all. Every write is recorded so tests can assert
//! that a steady reconcile writes nothing.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Identifies a stored object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// `v1` or `group/version`.
    pub gv: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Default)]
pub struct Store {
    pub objects: BTreeMap<Key, Value>,
    /// `METHOD path` of every write except Events.
    pub writes: Vec<String>,
    pub events: Vec<Value>,
    /// `group/version` → kinds served (for discovery of optional CRDs).
    pub served: BTreeMap<String, BTreeSet<String>>,
    /// `group/version/plural` of custom resources without CRD (LIST → 404).
    pub missing: BTreeSet<String>,
    pub(crate) rv: u64,
    uid: u64,
    /// Every change, for watches (see `fake_watch`).
    pub changes: Vec<super::fake_watch::Change>,
    pub changed: Arc<tokio::sync::Notify>,
}

#[derive(Clone, Default)]
pub struct FakeApi(pub Arc<Mutex<Store>>);

fn kind_of(plural: &str) -> String {
    match plural {
        "statefulsets" => "StatefulSet",
        "services" => "Service",
        "configmaps" => "ConfigMap",
        "secrets" => "Secret",
        "serviceaccounts" => "ServiceAccount",
        "roles" => "Role",
        "rolebindings" => "RoleBinding",
        "poddisruptionbudgets" => "PodDisruptionBudget",
        "networkpolicies" => "NetworkPolicy",
        "pods" => "Pod",
        "leases" => "Lease",
        "events" => "Event",
        "storageclasses" => "StorageClass",
        "sorchanetworks" => "SorchaNetwork",
        "sorchapeers" => "SorchaPeer",
        "servicemonitors" => "ServiceMonitor",
        "podmonitors" => "PodMonitor",
        other => other,
    }
    .to_owned()
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

/// `(key without name for lists, subresource)` from a request path.
fn parse(path: &str) -> Option<(Key, Option<String>, bool)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ((*v).to_owned(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, "", None),
        [p, n] => (*p, *n, None),
        [p, n, s] => (*p, *n, Some((*s).to_owned())),
        [] => ("", "", None),
        _ => return None,
    };
    Some((
        Key {
            gv,
            plural: plural.to_owned(),
            namespace,
            name: name.to_owned(),
        },
        sub,
        rest.is_empty(),
    ))
}

pub fn selector_matches(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v.trim_start_matches('='))
    })
}

pub fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(h) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(h);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl Store {
    fn stamp_new(&mut self, obj: &mut Value, key: &Key) {
        self.rv += 1;
        self.uid += 1;
        let m = &mut obj["metadata"];
        m["name"] = json!(key.name);
        if let Some(ns) = &key.namespace {
            m["namespace"] = json!(ns);
        }
        m["uid"] = json!(format!("uid-{}", self.uid));
        m["resourceVersion"] = json!(self.rv.to_string());
        m["generation"] = json!(1);
        m["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    }

    /// Replaces `old` by `new`, keeping server fields and (unless
    /// `with_status`) the status; bumps generation when the spec changed.
    fn replace(&mut self, old: &Value, mut new: Value, with_status: bool) -> Value {
        self.rv += 1;
        for f in ["uid", "creationTimestamp", "name", "namespace"] {
            new["metadata"][f] = old["metadata"][f].clone();
        }
        let mut generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("status");
                o.remove("metadata");
            }
            v
        };
        if strip(old) != strip(&new) {
            generation += 1;
        }
        new["metadata"]["generation"] = json!(generation);
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if !with_status {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    new.as_object_mut().unwrap().remove("status");
                }
            }
        }
        new
    }
}

async fn handle(
    State(fake): State<FakeApi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((key, sub, is_discovery)) = parse(uri.path()) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {}", uri.path()),
        );
    };
    let mut st = fake.0.lock().unwrap();
    if is_discovery {
        let Some(kinds) = st.served.get(&key.gv) else {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} not served", key.gv),
            );
        };
        let resources: Vec<Value> = kinds
            .iter()
            .map(|k| json!({"name": format!("{}s", k.to_lowercase()), "singularName": "", "namespaced": true, "kind": k, "verbs": ["get", "list", "patch", "delete"]}))
            .collect();
        return ok(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": key.gv, "resources": resources}),
        );
    }
    if st.missing.contains(&format!("{}/{}", key.gv, key.plural)) {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
        );
    }
    let is_event = key.plural == "events";
    let parsed: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if method != Method::GET && !is_event {
        st.writes.push(format!("{method} {}", uri.path()));
    }
    match (method.clone(), key.name.is_empty()) {
        (Method::GET, true)
            if query_param(&uri, "watch").is_some_and(|w| w == "true" || w == "1") =>
        {
            drop(st);
            super::fake_watch::watch(&fake, key, &uri)
        }
        (Method::GET, true) => {
            let sel = query_param(&uri, "labelSelector").unwrap_or_default();
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|(k, v)| {
                    k.gv == key.gv
                        && k.plural == key.plural
                        && (key.namespace.is_none() || k.namespace == key.namespace)
                        && selector_matches(v, &sel)
                })
                .map(|(_, v)| v.clone())
                .collect();
            let rv = st.rv.to_string();
            ok(json!({
                "apiVersion": key.gv, "kind": format!("{}List", kind_of(&key.plural)),
                "metadata": {"resourceVersion": rv}, "items": items,
            }))
        }
        (Method::GET, false) => match st.objects.get(&key) {
            Some(v) => ok(v.clone()),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} {:?} not found", key.plural, key.name),
            ),
        },
        (Method::POST, true) => {
            let Some(mut obj) = parsed else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "no body".into());
            };
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let key = Key { name, ..key };
            if st.objects.contains_key(&key) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{:?} exists", key.name),
                );
            }
            st.stamp_new(&mut obj, &key);
            if is_event {
                st.events.push(obj.clone());
            }
            st.insert(key, obj.clone());
            (StatusCode::CREATED, axum::Json(obj)).into_response()
        }
        (Method::PUT, false) => {
            let Some(new) = parsed else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "no body".into());
            };
            let Some(old) = st.objects.get(&key).cloned() else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{:?} not found", key.name),
                );
            };
            if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
                && Some(rv) != old["metadata"]["resourceVersion"].as_str()
            {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified".into(),
                );
            }
            let v = st.replace(&old, new, sub.as_deref() == Some("status"));
            st.insert(key, v.clone());
            ok(v)
        }
        (Method::PATCH, false) => {
            let Some(patch) = parsed else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "no body".into());
            };
            let old = st.objects.get(&key).cloned();
            let v = match (
                ctype.starts_with("application/apply-patch"),
                sub.as_deref(),
                old,
            ) {
                (true, Some("status"), Some(mut old)) => {
                    st.rv += 1;
                    old["status"] = patch["status"].clone();
                    old["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                    old
                }
                (_, Some("status"), None) | (false, _, None) => {
                    return status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("{:?} not found", key.name),
                    );
                }
                (true, _, Some(old)) => st.replace(&old, patch, false),
                (true, _, None) => {
                    let mut obj = patch;
                    st.stamp_new(&mut obj, &key);
                    if let Some(o) = obj.as_object_mut() {
                        o.remove("status");
                    }
                    obj
                }
                (false, _, Some(mut old)) => {
                    merge_patch(&mut old, &patch);
                    if is_event {
                        st.events.push(old.clone());
                    }
                    old
                }
            };
            st.insert(key, v.clone());
            ok(v)
        }
        (Method::DELETE, false) => match st.remove(&key) {
            Some(v) => ok(v),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{:?} not found", key.name),
            ),
        },
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} {}", uri.path()),
        ),
    }
}

impl FakeApi {
    /// Serves the fake over HTTP on an ephemeral loopback port (for running
    /// the operator binary against it); returns the base URL.
    pub async fn serve_http(&self) -> String {
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    pub fn client(&self) -> kube::Client {
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(self.clone());
        kube::Client::new(router, "default")
    }

    fn with<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    pub fn get(&self, gv: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.with(|s| {
            s.objects
                .get(&Key {
                    gv: gv.into(),
                    plural: plural.into(),
                    namespace: Some(ns.into()),
                    name: name.into(),
                })
                .cloned()
        })
    }

    pub fn list(&self, gv: &str, plural: &str) -> Vec<Value> {
        self.with(|s| {
            s.objects
                .iter()
                .filter(|(k, _)| k.gv == gv && k.plural == plural)
                .map(|(_, v)| v.clone())
                .collect()
        })
    }

    /// Stores `obj` as the API server would after a create (test setup).
    pub fn put(&self, gv: &str, plural: &str, ns: Option<&str>, mut obj: Value) {
        self.with(|s| {
            let key = Key {
                gv: gv.into(),
                plural: plural.into(),
                namespace: ns.map(Into::into),
                name: obj["metadata"]["name"].as_str().unwrap().into(),
            };
            match s.objects.get(&key).cloned() {
                Some(old) => {
                    // Like a spec update: the status stays unless given.
                    let with_status = obj.get("status").is_some();
                    let v = s.replace(&old, obj, with_status);
                    s.insert(key, v);
                }
                None => {
                    s.stamp_new(&mut obj, &key);
                    s.insert(key, obj);
                }
            }
        })
    }

    /// Edits a stored object in place (what another controller would do).
    pub fn edit(&self, gv: &str, plural: &str, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        self.with(|s| {
            let key = Key {
                gv: gv.into(),
                plural: plural.into(),
                namespace: Some(ns.into()),
                name: name.into(),
            };
            let mut v = s
                .objects
                .get(&key)
                .cloned()
                .unwrap_or_else(|| panic!("{plural}/{name} not stored"));
            f(&mut v);
            s.rv += 1;
            v["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            s.insert(key, v);
        })
    }

    pub fn serve(&self, gv: &str, kind: &str) {
        self.with(|s| s.served.entry(gv.into()).or_default().insert(kind.into()));
    }

    pub fn take_writes(&self) -> Vec<String> {
        self.with(|s| std::mem::take(&mut s.writes))
    }

    pub fn take_events(&self) -> Vec<Value> {
        self.with(|s| std::mem::take(&mut s.events))
    }
}

impl FakeApi {
    /// Deletes a stored object, as `kubectl delete` would (test action).
    pub fn delete(&self, gv: &str, plural: &str, ns: &str, name: &str) -> bool {
        self.with(|s| {
            s.remove(&Key {
                gv: gv.into(),
                plural: plural.into(),
                namespace: Some(ns.into()),
                name: name.into(),
            })
            .is_some()
        })
    }
}
