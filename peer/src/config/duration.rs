//! Serde adapters for `Duration` fields whose key names their unit
//! (`RefreshIntervalMinutes`, `PeerTimeoutSeconds`).
//!
//! Accepted on input:
//! - a non-negative number (integer or float), read in the field's unit;
//! - a plain numeric string (`"15"`), read in the field's unit — environment
//!   overrides arrive as strings;
//! - a string with a unit suffix, parsed by humantime (`"500ms"`, `"2s"`,
//!   `"15m"`, `"1h"`).
//!
//! On output a whole number of units is written as a number, anything else
//! as a humantime string, so values round-trip exactly.
use std::fmt;
use std::time::Duration;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserializer, Serializer};

/// The unit a bare number is read in.
#[derive(Clone, Copy)]
struct Unit {
    /// Plural name used in messages ("minutes").
    name: &'static str,
    secs: u64,
}

const MINUTES: Unit = Unit {
    name: "minutes",
    secs: 60,
};
const SECONDS: Unit = Unit {
    name: "seconds",
    secs: 1,
};

/// What an invalid value is replaced by in error messages.
pub(crate) fn expected_text(unit_name: &str) -> String {
    format!("a number of {unit_name} or a duration such as \"30s\" or \"500ms\"")
}

/// Formats a duration for messages and YAML (`"1m 30s"`, `"500ms"`).
pub(crate) fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn serialize_in<S: Serializer>(d: &Duration, unit: Unit, s: S) -> Result<S::Ok, S::Error> {
    if d.subsec_nanos() == 0 && d.as_secs().checked_rem(unit.secs) == Some(0) {
        s.serialize_u64(d.as_secs() / unit.secs)
    } else {
        s.serialize_str(&human(*d))
    }
}

struct DurationVisitor(Unit);

impl DurationVisitor {
    fn in_units<E: de::Error>(&self, n: f64, unexp: Unexpected<'_>) -> Result<Duration, E> {
        if !n.is_finite() || n < 0.0 {
            return Err(E::invalid_value(unexp, self));
        }
        Duration::try_from_secs_f64(n * self.0.secs as f64)
            .map_err(|_| E::invalid_value(unexp, self))
    }
}

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&expected_text(self.0.name))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        v.checked_mul(self.0.secs)
            .map(Duration::from_secs)
            .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        self.in_units(v, Unexpected::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        let t = v.trim();
        if t.is_empty() {
            return Err(E::invalid_value(Unexpected::Str(v), &self));
        }
        // A bare number ("15", "0.5") is in the field's unit. Reject words
        // f64 would accept ("inf", "NaN") by requiring a digit.
        if t.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
        {
            return match t.parse::<f64>() {
                Ok(n) => self.in_units(n, Unexpected::Str(v)),
                Err(_) => Err(E::invalid_value(Unexpected::Str(v), &self)),
            };
        }
        humantime::parse_duration(t).map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }
}

macro_rules! unit_module {
    ($name:ident, $unit:expr, $doc:literal) => {
        #[doc = $doc]
        pub mod $name {
            use super::*;

            pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
                serialize_in(d, $unit, s)
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
                d.deserialize_any(DurationVisitor($unit))
            }
        }
    };
}

unit_module!(
    minutes,
    MINUTES,
    "`#[serde(with = \"minutes\")]`: bare numbers are minutes."
);
unit_module!(
    seconds,
    SECONDS,
    "`#[serde(with = \"seconds\")]`: bare numbers are seconds."
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct T {
        #[serde(with = "minutes")]
        m: Duration,
        #[serde(with = "seconds")]
        s: Duration,
    }

    fn parse(yaml: &str) -> Result<T, String> {
        serde_norway::from_str(yaml).map_err(|e| e.to_string())
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn numbers_are_in_the_field_unit() {
        let t = parse("m: 15\ns: 30").unwrap();
        assert_eq!(
            t,
            T {
                m: secs(900),
                s: secs(30)
            }
        );
        let t = parse("m: 0.5\ns: 1.5").unwrap();
        assert_eq!(t.m, secs(30));
        assert_eq!(t.s, Duration::from_millis(1500));
        let t = parse("m: 0\ns: 0").unwrap();
        assert_eq!(t.m, Duration::ZERO);
    }

    #[test]
    fn unit_suffixed_strings_use_humantime() {
        let t = parse("m: 2s\ns: 500ms").unwrap();
        assert_eq!(t.m, secs(2));
        assert_eq!(t.s, Duration::from_millis(500));
        let t = parse("m: 1h\ns: 15m").unwrap();
        assert_eq!(
            t,
            T {
                m: secs(3600),
                s: secs(900)
            }
        );
        let t = parse("m: 1m 30s\ns: \" 2s \"").unwrap();
        assert_eq!(
            t,
            T {
                m: secs(90),
                s: secs(2)
            }
        );
    }

    #[test]
    fn numeric_strings_are_in_the_field_unit() {
        let t = parse("m: '15'\ns: '2.5'").unwrap();
        assert_eq!(t.m, secs(900));
        assert_eq!(t.s, Duration::from_millis(2500));
    }

    #[test]
    fn rejects_negative_and_garbage_with_a_helpful_message() {
        for bad in [
            "m: -1\ns: 1",
            "m: -0.5\ns: 1",
            "m: '-3'\ns: 1",
            "m: soon\ns: 1",
            "m: ''\ns: 1",
            "m: .inf\ns: 1",
            "m: 'inf'\ns: 1",
            "m: true\ns: 1",
            "m: [1]\ns: 1",
            "m: 12 parsecs\ns: 1",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.contains(
                    r#"expected a number of minutes or a duration such as "30s" or "500ms""#
                ),
                "{bad}: {err}"
            );
        }
        let err = parse("m: 1\ns: -2").unwrap_err();
        assert!(err.contains("a number of seconds"), "{err}");
    }

    #[test]
    fn rejects_overflow() {
        assert!(parse(&format!("m: {}\ns: 1", u64::MAX)).is_err());
        assert!(parse("m: 1e300\ns: 1").is_err());
    }

    #[test]
    fn serializes_whole_units_as_numbers_else_as_strings() {
        let y = serde_norway::to_string(&T {
            m: secs(900),
            s: secs(30),
        })
        .unwrap();
        assert_eq!(y, "m: 15\ns: 30\n");
        let t = T {
            m: secs(90),
            s: Duration::from_millis(500),
        };
        let y = serde_norway::to_string(&t).unwrap();
        assert_eq!(y, "m: 1m 30s\ns: 500ms\n");
        assert_eq!(parse(&y).unwrap(), t);
    }

    #[test]
    fn round_trips_odd_values() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(100),
            Duration::new(7, 123_456_789),
            secs(86_400 * 400),
        ] {
            let t = T { m: d, s: d };
            let y = serde_norway::to_string(&t).unwrap();
            assert_eq!(parse(&y).unwrap(), t, "{y}");
        }
    }
}
