//! Loading: defaults, then the YAML file (root key `PeerService:`), then
//! `SORCHA__SECTION__KEY` environment variables, then validation.
use std::path::Path;

use serde_norway::{Mapping, Value};
use serde_path_to_error::Segment;

use super::PeerServiceConfig;
use super::merge::{self, ENV_PREFIX, EnvLeaves, ROOT, render};
use crate::error::{ConfigErrors, Error, FieldError};

/// Reads the file at `path` (if any) and the process's `SORCHA__*`
/// variables, and returns the validated configuration.
pub fn load(path: Option<&Path>) -> crate::Result<PeerServiceConfig> {
    let text = match path {
        Some(p) => Some(
            std::fs::read_to_string(p).map_err(|source| Error::ConfigFile {
                path: p.display().to_string(),
                source,
            })?,
        ),
        None => None,
    };
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| {
            k.get(..ENV_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
        })
        .collect();
    load_from(text.as_deref(), &env)
}

/// Pure core of [`load`]: `yaml` is the file's text, `env` the variables
/// (those without the `SORCHA__` prefix are ignored). All problems found are
/// returned together as `Error::Config`.
pub fn load_from(yaml: Option<&str>, env: &[(String, String)]) -> crate::Result<PeerServiceConfig> {
    let defaults = default_tree();
    let mut tree = defaults.clone();
    let mut errors = Vec::new();
    if let Some(text) = yaml {
        let section = file_section(text, &mut errors)?;
        merge::merge_value(&mut tree, section, &[], &mut errors);
    }
    let leaves = merge::apply_env(&mut tree, &defaults, env, &mut errors);
    let cfg = deserialize(tree, &defaults, &leaves, &mut errors);
    if let Some(cfg) = &cfg {
        for p in cfg.problems() {
            // A field whose value was replaced after a type error is not
            // checked again.
            if !errors.iter().any(|e| e.field == p.field) {
                errors.push(p);
            }
        }
    }
    match cfg {
        Some(cfg) if errors.is_empty() => Ok(cfg),
        _ => Err(Error::Config(ConfigErrors(errors))),
    }
}

/// The effective configuration as YAML under `PeerService:`; [`load_from`]
/// reads it back to the same value.
pub fn to_yaml(cfg: &PeerServiceConfig) -> String {
    let mut root = Mapping::new();
    let body = serde_norway::to_value(cfg).expect("configuration serializes to YAML");
    root.insert(Value::from(ROOT), body);
    serde_norway::to_string(&Value::Mapping(root)).expect("YAML value renders")
}

fn default_tree() -> Value {
    serde_norway::to_value(PeerServiceConfig::default()).expect("defaults serialize")
}

fn single(field: &str, value: String, expected: &str) -> FieldError {
    FieldError {
        field: field.into(),
        value,
        expected: expected.into(),
    }
}

/// The value under the root key, or `Null` when there is nothing to merge.
/// Syntax errors end loading at once; root problems are collected.
fn file_section(text: &str, errors: &mut Vec<FieldError>) -> crate::Result<Value> {
    let mut doc: Value = serde_norway::from_str(text)
        .and_then(|mut v: Value| v.apply_merge().map(|()| v))
        .map_err(|e| {
            Error::Config(ConfigErrors::single(
                "configuration file",
                e.to_string(),
                "well-formed YAML with the root key PeerService:",
            ))
        })?;
    let want = "a YAML file whose only top-level key is PeerService:, with all settings under it";
    let Value::Mapping(top) = std::mem::take(&mut doc) else {
        let got = if doc.is_null() {
            "an empty file".into()
        } else {
            render(&doc)
        };
        errors.push(single(ROOT, got, want));
        return Ok(Value::Null);
    };
    let mut section = None;
    for (k, v) in top {
        match k.as_str() {
            Some(s) if s.eq_ignore_ascii_case(ROOT) && section.is_none() => section = Some(v),
            Some(s) if s.eq_ignore_ascii_case(ROOT) => {
                errors.push(single(ROOT, "the root key twice".into(), want));
            }
            _ => {
                let name = k.as_str().map_or_else(|| render(&k), str::to_owned);
                errors.push(single(
                    &name,
                    format!("unknown top-level key {name:?}"),
                    want,
                ));
            }
        }
    }
    match section {
        None => {
            errors.push(single(ROOT, "no PeerService: key".into(), want));
            Ok(Value::Null)
        }
        Some(v @ (Value::Mapping(_) | Value::Null)) => Ok(v),
        Some(v) => {
            errors.push(single(ROOT, render(&v), "a mapping of settings"));
            Ok(Value::Null)
        }
    }
}

fn field_path(path: &serde_path_to_error::Path) -> String {
    let mut s = ROOT.to_owned();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("[{index}]")),
            Segment::Map { key } => s.push_str(&format!(".{key}")),
            Segment::Enum { variant } => s.push_str(&format!(".{variant}")),
            Segment::Unknown => s.push_str(".?"),
        }
    }
    s
}

/// Map keys of the path, up to the first list index.
fn key_prefix(path: &serde_path_to_error::Path) -> Vec<String> {
    path.iter()
        .map_while(|seg| match seg {
            Segment::Map { key } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

fn get_mut<'a>(mut v: &'a mut Value, keys: &[String]) -> Option<&'a mut Value> {
    for k in keys {
        v = v.get_mut(k.as_str())?;
    }
    Some(v)
}

/// The value at a serde path (keys and list indices) in `tree`.
fn lookup<'a>(tree: &'a Value, path: &serde_path_to_error::Path) -> Option<&'a Value> {
    path.iter().try_fold(tree, |v, seg| match seg {
        Segment::Map { key } => v.get(key.as_str()),
        Segment::Seq { index } => v.get(*index),
        _ => Some(v),
    })
}

/// Turns serde's "invalid type: X, expected Y" into Y, in plain words.
fn expected_of(msg: &str) -> String {
    let exp = msg.split_once(", expected ").map_or(msg, |(_, e)| e);
    match exp {
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" => "a non-negative whole number".into(),
        "a boolean" => "true or false".into(),
        "path string" => "a path".into(),
        other => other.to_owned(),
    }
}

/// Deserializes, collecting every type error: after each one the offending
/// value is reset to its default and deserialization runs again.
fn deserialize(
    mut tree: Value,
    defaults: &Value,
    leaves: &EnvLeaves,
    errors: &mut Vec<FieldError>,
) -> Option<PeerServiceConfig> {
    // Bounded: each round resets one distinct value or gives up.
    for _ in 0..256 {
        let err = match serde_path_to_error::deserialize::<_, PeerServiceConfig>(tree.clone()) {
            Ok(cfg) => return Some(cfg),
            Err(e) => e,
        };
        let msg = err.inner().to_string();
        let keys = key_prefix(err.path());
        // An environment value that looked like a number or boolean but
        // lands in a string field is taken verbatim.
        let whole_leaf = keys.len() == err.path().iter().count();
        if let Some(raw) = leaves.get(&keys).filter(|_| whole_leaf) {
            let slot = get_mut(&mut tree, &keys).expect("env leaves exist in the tree");
            if expected_of(&msg).contains("string") && !slot.is_string() {
                *slot = Value::String(raw.clone());
                continue;
            }
        }
        let shown = lookup(&tree, err.path()).map_or_else(|| "?".to_owned(), render);
        errors.push(FieldError {
            field: field_path(err.path()),
            value: shown,
            expected: expected_of(&msg),
        });
        let default = keys
            .iter()
            .try_fold(defaults, |v, k| v.get(k.as_str()))
            .cloned();
        match (default, get_mut(&mut tree, &keys)) {
            (Some(d), Some(slot)) if *slot != d && !keys.is_empty() => *slot = d,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
