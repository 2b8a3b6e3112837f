//! Durations in the spec are Go-style strings (`720h`, `30s`), the form
//! the CRD's CEL `duration()` rules also read.
use std::time::Duration;

use crate::{Error, Result};

/// Parses `value` of spec field `field`; the error names both.
pub fn parse(field: &str, value: &str) -> Result<Duration> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        Error::invalid(
            field,
            format!("got {value:?} ({e}); expected a duration such as 30s, 15m or 720h"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations_parse() {
        assert_eq!(parse("f", "720h").unwrap(), Duration::from_secs(720 * 3600));
        assert_eq!(parse("f", "1h30m").unwrap(), Duration::from_secs(5400));
    }

    #[test]
    fn error_names_the_field() {
        let e = parse("spec.tls.renewBefore", "soon")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spec.tls.renewBefore") && e.contains("soon"),
            "{e}"
        );
    }
}
