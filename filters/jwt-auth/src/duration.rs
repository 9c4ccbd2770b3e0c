//! Durations in configuration, written as Envoy writes `google.protobuf.Duration` in JSON:
//! decimal seconds with an `s` suffix (`"5s"`, `"0.5s"`, `"600s"`).

use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// Longest duration accepted anywhere in the configuration: one year. Anything longer is a typo
/// (milliseconds written as seconds) and would overflow timer arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A validated duration from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct EnvoyDuration(Duration);

impl EnvoyDuration {
    /// Wraps a duration (for defaults).
    pub const fn new(duration: Duration) -> Self {
        Self(duration)
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }

    /// Whole nanoseconds, saturating.
    pub fn as_nanos(self) -> u64 {
        u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Parses `"<seconds>[.<fraction>]s"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("invalid duration {text:?}: expected seconds with an `s` suffix, e.g. \"5s\" or \"0.5s\"");
        let Some(number) = text.strip_suffix('s') else {
            return Err(invalid());
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || whole.len() > 12 {
            return Err(invalid());
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 9 || number.ends_with('.') {
            return Err(invalid());
        }
        let seconds: u64 = whole.parse().map_err(|_| invalid())?;
        let mut nanos: u32 = 0;
        if !fraction.is_empty() {
            let digits: u32 = fraction.parse().map_err(|_| invalid())?;
            let scale = 10u32.pow(9 - fraction.len() as u32);
            nanos = digits * scale;
        }
        let duration = Duration::new(seconds, nanos);
        if duration > MAX_DURATION {
            return Err(format!("duration {text:?} is longer than one year"));
        }
        Ok(Self(duration))
    }
}

impl TryFrom<String> for EnvoyDuration {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl fmt::Display for EnvoyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis.is_multiple_of(1000) { write!(f, "{}s", millis / 1000) } else { write!(f, "{}ms", millis) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envoy_durations() {
        assert_eq!(EnvoyDuration::parse("5s").unwrap().get(), Duration::from_secs(5));
        assert_eq!(EnvoyDuration::parse("0.5s").unwrap().get(), Duration::from_millis(500));
        assert_eq!(EnvoyDuration::parse("600s").unwrap().get(), Duration::from_secs(600));
        assert_eq!(EnvoyDuration::parse("1.000000001s").unwrap().get(), Duration::new(1, 1));
        assert_eq!(EnvoyDuration::parse("0s").unwrap().get(), Duration::ZERO);
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in ["5", "5m", "s", ".5s", "5.s", "-1s", "1e3s", "5 s", "1.0000000001s", ""] {
            assert!(EnvoyDuration::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_more_than_a_year() {
        assert!(EnvoyDuration::parse("31536000s").is_ok());
        assert!(EnvoyDuration::parse("31536001s").is_err());
        assert!(EnvoyDuration::parse("999999999999s").is_err());
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(EnvoyDuration::parse("5s").unwrap().to_string(), "5s");
        assert_eq!(EnvoyDuration::parse("0.25s").unwrap().to_string(), "250ms");
    }
}
