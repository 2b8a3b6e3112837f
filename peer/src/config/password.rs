//! `${VAR}` expansion for `Security.CertificatePassword`, so the secret can
//! live in the environment instead of the file.
use crate::error::{ConfigErrors, Error};

const FIELD: &str = "PeerService.Security.CertificatePassword";

/// Replaces every `${VAR}` in `raw` with the environment variable VAR.
/// Any other `$` is kept as written. An unset (or non-Unicode) variable or
/// an unterminated `${` is an `Error::Config` naming the variable; the
/// password itself never appears in the message.
pub fn resolve_password(raw: &str) -> crate::Result<String> {
    resolve_with(raw, |name| std::env::var(name).ok())
}

pub(crate) fn resolve_with(
    raw: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> crate::Result<String> {
    let fail = |value: String, expected: String| {
        Err(Error::Config(ConfigErrors::single(FIELD, value, expected)))
    };
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return fail(
                "a \"${\" without a closing \"}\"".into(),
                "${VAR} references closed with '}'".into(),
            );
        };
        let name = &after[..end];
        let name_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return fail(
                format!("${{{name}}}"),
                "${VAR} where VAR is letters, digits and '_'".into(),
            );
        }
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => {
                return fail(
                    format!("${{{name}}}"),
                    format!("environment variable {name} to be set"),
                );
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PEER_CERT_PASSWORD" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn field_error(r: crate::Result<String>) -> crate::error::FieldError {
        match r {
            Err(Error::Config(ConfigErrors(mut v))) if v.len() == 1 => v.remove(0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expands_references() {
        assert_eq!(
            resolve_with("${PEER_CERT_PASSWORD}", env).unwrap(),
            "s3cret"
        );
        assert_eq!(
            resolve_with("a${EMPTY}b${PEER_CERT_PASSWORD}c", env).unwrap(),
            "abs3cretc"
        );
        assert_eq!(
            resolve_with("plain $x $ {Y}", env).unwrap(),
            "plain $x $ {Y}"
        );
        assert_eq!(resolve_with("", env).unwrap(), "");
    }

    #[test]
    fn unset_variable_is_named() {
        let e = field_error(resolve_with("x${MISSING_VAR}", env));
        assert_eq!(e.field, FIELD);
        assert_eq!(e.value, "${MISSING_VAR}");
        assert!(e.expected.contains("MISSING_VAR"));
    }

    #[test]
    fn malformed_references() {
        let e = field_error(resolve_with("secret${OPEN", env));
        assert!(!e.value.contains("secret"), "{e}");
        field_error(resolve_with("${}", env));
        field_error(resolve_with("${1A}", env));
        field_error(resolve_with("${A B}", env));
    }

    #[test]
    fn public_function_reads_the_environment() {
        // A variable name nobody sets.
        let e = field_error(resolve_password("${SORCHA_TEST_SURELY_UNSET_4F7A}"));
        assert!(e.expected.contains("SORCHA_TEST_SURELY_UNSET_4F7A"));
        assert_eq!(resolve_password("no refs").unwrap(), "no refs");
    }
}
