//! Merging user settings over the default value tree: YAML file sections and
//! `SORCHA__SECTION__KEY` environment overrides.
//!
//! Keys match case-insensitively; the default tree's spelling is canonical,
//! so the merged tree always deserializes with the schema's own names.
use std::collections::HashMap;

use serde_norway::{Mapping, Value};

use crate::error::FieldError;

/// The YAML root key; also the prefix of every field path in errors.
pub(crate) const ROOT: &str = "PeerService";
/// Environment variables with this prefix (any case) override settings.
pub(crate) const ENV_PREFIX: &str = "SORCHA__";

/// Environment overrides that replaced a leaf, by canonical key path, with
/// the variable's raw text (used to fall back to a plain string).
pub(crate) type EnvLeaves = HashMap<Vec<String>, String>;

/// Compact rendering of a value for messages: `"abc"`, `7`, `[1,2]`.
pub(crate) fn render(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"))
}

/// `PeerService.A.B` for a key path below the root.
pub(crate) fn dotted(path: &[String]) -> String {
    std::iter::once(ROOT)
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(".")
}

fn err(field: String, value: String, expected: String) -> FieldError {
    FieldError {
        field,
        value,
        expected,
    }
}

/// The canonical spelling of `key` in `map`, matched case-insensitively.
fn canonical(map: &Mapping, key: &str) -> Option<String> {
    map.keys()
        .filter_map(Value::as_str)
        .find(|k| k.eq_ignore_ascii_case(key))
        .map(str::to_owned)
}

fn key_list(map: &Mapping) -> String {
    map.keys()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            let subst = prev + usize::from(!ca.eq_ignore_ascii_case(cb));
            row[j + 1] = subst.min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// "one of A, B, C" plus a suggestion for a near miss.
fn valid_keys_text(map: &Mapping, path: &[String], wrong: &str) -> String {
    let mut text = format!("one of the keys of {}: {}", dotted(path), key_list(map));
    let best = map
        .keys()
        .filter_map(Value::as_str)
        .map(|k| (edit_distance(wrong, k), k))
        .min()
        .filter(|_| !wrong.is_empty());
    if let Some((_, k)) = best.filter(|(d, _)| *d <= 3) {
        text.push_str(&format!(" (did you mean {k}?)"));
    }
    text
}

/// Merges `overlay` over `base`. Sections merge key by key; a null section
/// keeps its defaults; anything else replaces the base value (type errors
/// are left to deserialization, which names the path).
pub(crate) fn merge_value(
    base: &mut Value,
    overlay: Value,
    path: &[String],
    errors: &mut Vec<FieldError>,
) {
    match (base, overlay) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            let mut seen: HashMap<String, String> = HashMap::new();
            for (k, v) in o {
                let Some(key) = k.as_str() else {
                    errors.push(err(
                        dotted(path),
                        format!("key {}", render(&k)),
                        valid_keys_text(b, path, ""),
                    ));
                    continue;
                };
                let Some(canon) = canonical(b, key) else {
                    let mut full = path.to_vec();
                    full.push(key.to_owned());
                    errors.push(err(
                        dotted(&full),
                        format!("unknown key {key:?}"),
                        valid_keys_text(b, path, key),
                    ));
                    continue;
                };
                let mut full = path.to_vec();
                full.push(canon.clone());
                if let Some(first) = seen.insert(canon.clone(), key.to_owned()) {
                    errors.push(err(
                        dotted(&full),
                        format!("both {first:?} and {key:?}"),
                        "each key once (keys are case-insensitive)".into(),
                    ));
                    continue;
                }
                if let Some(slot) = b.get_mut(canon.as_str()) {
                    merge_value(slot, v, &full, errors);
                }
            }
        }
        (Value::Mapping(_), Value::Null) => {}
        (b, o) => *b = o,
    }
}

/// Turns a variable's text into a value shaped like the default it replaces:
/// strings stay verbatim, lists accept `[a, b]` or `a,b`, and everything
/// else is read as a YAML scalar (`15`, `true`, `null`, `2s`).
fn env_value(default: &Value, raw: &str) -> Value {
    let parsed = || serde_norway::from_str::<Value>(raw).unwrap_or(Value::String(raw.to_owned()));
    match default {
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Sequence(_) => match parsed() {
            v @ Value::Sequence(_) => v,
            Value::Null => Value::Sequence(Vec::new()),
            _ => Value::Sequence(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ),
        },
        Value::Null => match parsed() {
            v @ (Value::Null | Value::Number(_) | Value::Bool(_)) => v,
            _ => Value::String(raw.to_owned()),
        },
        _ => parsed(),
    }
}

/// The canonical key path named by `rest` (`PEERDISCOVERY__MAXPEERSINLIST`),
/// or what a valid name looks like.
fn resolve(tree: &Value, rest: &str) -> Result<Vec<String>, String> {
    let mut cur = tree;
    let mut path: Vec<String> = Vec::new();
    for seg in rest.split("__") {
        let Value::Mapping(map) = cur else {
            return Err(format!(
                "a variable naming a setting; {} is a single value with no keys below it",
                dotted(&path)
            ));
        };
        let Some(canon) = canonical(map, seg) else {
            return Err(format!(
                "a variable naming a setting, i.e. {}",
                valid_keys_text(map, &path, seg)
            ));
        };
        cur = &map[canon.as_str()];
        path.push(canon);
    }
    Ok(path)
}

/// Applies `SORCHA__...` overrides to `tree`, shaping each value like its
/// counterpart in `defaults` (variables sorted by name, so the outcome never
/// depends on the order the OS lists variables in). Variables without the
/// prefix are ignored.
pub(crate) fn apply_env(
    tree: &mut Value,
    defaults: &Value,
    env: &[(String, String)],
    errors: &mut Vec<FieldError>,
) -> EnvLeaves {
    let mut leaves = EnvLeaves::new();
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(name, _)| {
            name.get(..ENV_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
        })
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let fail =
            |expected: String| err(name.clone(), render(&Value::String(raw.clone())), expected);
        let path = match resolve(tree, &name[ENV_PREFIX.len()..]) {
            Ok(path) => path,
            Err(expected) => {
                errors.push(fail(expected));
                continue;
            }
        };
        let slot = path
            .iter()
            .try_fold(&mut *tree, |v, k| v.get_mut(k.as_str()))
            .expect("resolved path exists");
        if slot.is_mapping() {
            match serde_norway::from_str::<Value>(raw) {
                Ok(v @ Value::Mapping(_)) => merge_value(slot, v, &path, errors),
                _ => errors.push(fail(format!(
                    "{} is a section: set one of its keys, e.g. {name}__KEY=value, \
                     or give a YAML mapping {{Key: value}}",
                    dotted(&path)
                ))),
            }
            continue;
        }
        let default = path
            .iter()
            .try_fold(defaults, |v, k| v.get(k.as_str()))
            .unwrap_or(&Value::Null);
        *slot = env_value(default, raw);
        leaves.insert(path, raw.clone());
    }
    leaves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Value {
        serde_norway::from_str(yaml).unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BASE: &str = "A: 1\nSec:\n  Name: x\n  List: []\n  Opt: null\n  Dur: 15\n";

    #[test]
    fn merges_case_insensitively_with_canonical_spelling() {
        let mut base = tree(BASE);
        let mut errors = Vec::new();
        merge_value(&mut base, tree("a: 2\nsEC:\n  NAME: y\n"), &[], &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            base,
            tree("A: 2\nSec:\n  Name: y\n  List: []\n  Opt: null\n  Dur: 15\n")
        );
    }

    #[test]
    fn null_section_keeps_defaults() {
        let mut base = tree(BASE);
        let mut errors = Vec::new();
        merge_value(&mut base, tree("Sec:\n"), &[], &mut errors);
        assert!(errors.is_empty());
        assert_eq!(base, tree(BASE));
    }

    #[test]
    fn unknown_and_duplicate_keys_are_reported_with_full_path() {
        let mut base = tree(BASE);
        let mut errors = Vec::new();
        let overlay = tree("Sec:\n  Nme: y\n  List: [a]\n  LIST: [b]\nZzz: 1\n");
        merge_value(&mut base, overlay, &[], &mut errors);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(errors[0].field, "PeerService.Sec.Nme");
        assert!(
            errors[0].expected.contains("Name, List, Opt, Dur"),
            "{errors:?}"
        );
        assert!(
            errors[0].expected.contains("did you mean Name?"),
            "{errors:?}"
        );
        assert_eq!(errors[1].field, "PeerService.Sec.List");
        assert_eq!(errors[2].field, "PeerService.Zzz");
    }

    #[test]
    fn env_overrides_shape_values_like_the_default() {
        let mut t = tree(BASE);
        let d = t.clone();
        let mut errors = Vec::new();
        let vars = env(&[
            ("SORCHA__A", "7"),
            ("sorcha__sec__name", "a # b: c"),
            ("SORCHA__SEC__LIST", "[http://a:1, http://b:2]"),
            ("SORCHA__SEC__OPT", "42"),
            ("SORCHA__SEC__DUR", "2s"),
            ("OTHER__A", "ignored"),
        ]);
        let leaves = apply_env(&mut t, &d, &vars, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(t["A"], Value::from(7));
        assert_eq!(t["Sec"]["Name"], Value::from("a # b: c"));
        assert_eq!(t["Sec"]["List"], tree("['http://a:1', 'http://b:2']"));
        assert_eq!(t["Sec"]["Opt"], Value::from(42));
        assert_eq!(t["Sec"]["Dur"], Value::from("2s"));
        assert_eq!(leaves[&vec!["Sec".to_string(), "Opt".to_string()]], "42");
    }

    #[test]
    fn env_list_forms() {
        for (raw, want) in [
            ("http://a:1,http://b:2", "['http://a:1', 'http://b:2']"),
            ("http://a:1", "['http://a:1']"),
            ("", "[]"),
            ("[]", "[]"),
            ("null", "[]"),
        ] {
            let mut t = tree(BASE);
            let d = t.clone();
            let mut errors = Vec::new();
            apply_env(&mut t, &d, &env(&[("SORCHA__SEC__LIST", raw)]), &mut errors);
            assert!(errors.is_empty());
            assert_eq!(t["Sec"]["List"], tree(want), "{raw}");
        }
    }

    #[test]
    fn env_null_and_section_mapping() {
        let mut t = tree("Opt: 3\nSec:\n  Name: x\n");
        let d = t.clone();
        let mut errors = Vec::new();
        let vars = env(&[("SORCHA__OPT", "null"), ("SORCHA__SEC", "{name: z}")]);
        apply_env(&mut t, &d, &vars, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(t, tree("Opt: null\nSec:\n  Name: z\n"));
    }

    #[test]
    fn env_errors_name_the_variable_and_valid_keys() {
        let mut t = tree(BASE);
        let d = t.clone();
        let mut errors = Vec::new();
        let vars = env(&[
            ("SORCHA__SEC__NOPE", "1"),
            ("SORCHA__A__B", "1"),
            ("SORCHA__SEC", "5"),
            ("SORCHA__", "5"),
        ]);
        apply_env(&mut t, &d, &vars, &mut errors);
        assert_eq!(errors.len(), 4, "{errors:?}");
        let by = |name: &str| errors.iter().find(|e| e.field == name).unwrap();
        assert!(
            by("SORCHA__SEC__NOPE")
                .expected
                .contains("PeerService.Sec: Name, List, Opt, Dur")
        );
        assert!(
            by("SORCHA__A__B")
                .expected
                .contains("PeerService.A is a single value")
        );
        assert!(by("SORCHA__SEC").expected.contains("is a section"));
        assert!(by("SORCHA__").expected.contains("PeerService: A, Sec"));
        assert_eq!(t, tree(BASE));
    }

    #[test]
    fn edit_distance_works() {
        assert_eq!(
            edit_distance("RefreshIntervalMinutez", "RefreshIntervalMinutes"),
            1
        );
        assert_eq!(edit_distance("abc", "ABC"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
