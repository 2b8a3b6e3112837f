//! Writes that happen only when needed: server-side apply with field
//! manager `sorcha-operator`, skipped when the live object already holds
//! every field the operator wants (so a steady reconcile writes nothing).
use std::fmt::Debug;

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{FIELD_MANAGER, Result};

/// `desired` ⊆ `live`: every field of `desired` is in `live` with the same
/// value. Objects compare key by key (the server adds defaults and status);
/// arrays element by element and must have the same length (a removed
/// element is a change).
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => is_subset(dv, lv),
            None => dv.is_null() || dv.as_object().is_some_and(|o| o.is_empty()),
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        _ => desired == live,
    }
}

/// Hash of what the operator last applied to an object.
pub const APPLIED_HASH_ANNOTATION: &str = "sorcha.dev/applied-hash";

/// What an apply did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Unchanged,
    Created,
    Updated,
}

/// Applies `desired` unless the live object already matches it.
pub async fn apply<K>(api: &Api<K>, desired: &K) -> Result<Applied>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = desired.name_any();
    let live = api.get_opt(&name).await?;
    let mut want = serde_json::to_value(desired)?;
    // The hash notices fields the operator stopped setting (a subset check
    // cannot); the subset check notices fields someone else changed.
    let hash = crate::resources::short_hash(&serde_json::to_vec(&want)?);
    want["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = Value::String(hash.clone());
    if let Some(live) = &live
        && live.annotations().get(APPLIED_HASH_ANNOTATION) == Some(&hash)
        && is_subset(&want, &serde_json::to_value(live)?)
    {
        return Ok(Applied::Unchanged);
    }
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &pp, &Patch::Apply(&want)).await?;
    Ok(if live.is_some() {
        Applied::Updated
    } else {
        Applied::Created
    })
}

/// Deletes `name` if it exists; true when something was deleted.
pub async fn delete_if_exists<K>(api: &Api<K>, name: &str) -> Result<bool>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    if api.get_opt(name).await?.is_none() {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Deletes objects matching `selector` whose name `keep` rejects; returns
/// the deleted names.
pub async fn prune<K>(
    api: &Api<K>,
    selector: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    let mut deleted = Vec::new();
    for obj in api.list(&ListParams::default().labels(selector)).await? {
        let name = obj.name_any();
        if !keep(&name) && delete_if_exists(api, &name).await? {
            deleted.push(name);
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_added_fields() {
        let desired = json!({"spec": {"replicas": 3, "template": {"a": [1, {"x": 1}]}}});
        let live = json!({"spec": {"replicas": 3, "template": {"a": [1, {"x": 1, "d": 0}]}, "extra": 1}, "status": {}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn subset_notices_changes_and_removed_elements() {
        let live = json!({"spec": {"replicas": 3, "list": [1, 2]}});
        assert!(!is_subset(&json!({"spec": {"replicas": 5}}), &live));
        assert!(!is_subset(&json!({"spec": {"list": [1]}}), &live));
        assert!(!is_subset(&json!({"spec": {"new": "x"}}), &live));
        assert!(is_subset(&json!({"spec": {"absent": null}}), &live));
    }
}
