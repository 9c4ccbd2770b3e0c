//! Configuration schema of `request-id` and the policy built from it once, in `on_configure`.

use crate::id::{ULID_LENGTH, UUID_LENGTH};
use crate::traceparent::{TRACEPARENT, TRACESTATE};
use serde::Deserialize;
use shield_kit::config::{ConfigError, parse_json};
use shield_kit::header_name::HeaderName;
use shield_kit::request_id::DEFAULT_REQUEST_ID_HEADER;
use std::fmt;

/// Default `max_length`.
pub const DEFAULT_MAX_LENGTH: usize = 128;

/// Largest `max_length` accepted: an ID is repeated in every log line and header of the request.
pub const MAX_MAX_LENGTH: usize = 1024;

/// How new request IDs are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdFormat {
    /// Random UUID version 4, lowercase (`0f4c1c7e-3b5a-4c2e-9d1f-2a7b8c9d0e1f`).
    #[default]
    Uuid4,
    /// ULID: millisecond timestamp + 80 random bits, 26 Crockford base32 characters; sorts by
    /// creation time.
    Ulid,
}

impl IdFormat {
    /// Length of the IDs this format generates.
    pub fn length(self) -> usize {
        match self {
            Self::Uuid4 => UUID_LENGTH,
            Self::Ulid => ULID_LENGTH,
        }
    }
}

impl fmt::Display for IdFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Uuid4 => "uuid4",
            Self::Ulid => "ulid",
        })
    }
}

/// What the filter does with the W3C `traceparent` header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceparentMode {
    /// Keep a valid one; create one from the request ID when it is absent; replace an invalid
    /// one (and drop the `tracestate` that came with a replaced or missing one).
    #[default]
    Create,
    /// Never read or write `traceparent`/`tracestate`.
    Off,
}

impl fmt::Display for TraceparentMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Create => "create",
            Self::Off => "off",
        })
    }
}

/// `max_length`: 1 to [`MAX_MAX_LENGTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct MaxLength(usize);

impl TryFrom<u64> for MaxLength {
    type Error = String;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        match usize::try_from(value) {
            Ok(length) if (1..=MAX_MAX_LENGTH).contains(&length) => Ok(Self(length)),
            _ => Err(format!("{value} is out of range: must be 1 to {MAX_MAX_LENGTH}")),
        }
    }
}

impl Default for MaxLength {
    fn default() -> Self {
        Self(DEFAULT_MAX_LENGTH)
    }
}

/// The JSON configuration of the filter. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestIdConfig {
    /// Request header carrying the ID (default `x-request-id`).
    pub header: Option<HeaderName>,
    /// Longest incoming ID accepted, in bytes (default 128, 1 to 1024, and at least the length
    /// of the generated format: 36 for `uuid4`, 26 for `ulid`).
    pub max_length: MaxLength,
    /// Format of generated IDs: `uuid4` (default) or `ulid`.
    pub format: IdFormat,
    /// Whether the ID is set on the response to the client (default true).
    pub echo_response: bool,
    /// Response header for the echo (default: the same as `header`).
    pub response_header: Option<HeaderName>,
    /// `create` (default) or `off`; see [`TraceparentMode`].
    pub traceparent: TraceparentMode,
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        Self {
            header: None,
            max_length: MaxLength::default(),
            format: IdFormat::default(),
            echo_response: true,
            response_header: None,
            traceparent: TraceparentMode::default(),
        }
    }
}

/// What the filter does, precomputed from [`RequestIdConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Lowercase request header name.
    pub header: String,
    /// Longest incoming ID accepted.
    pub max_length: usize,
    /// Format of generated IDs.
    pub format: IdFormat,
    /// Lowercase response header to echo the ID in; `None` when echo is off.
    pub echo_header: Option<String>,
    /// Trace context handling.
    pub traceparent: TraceparentMode,
}

impl Default for Policy {
    fn default() -> Self {
        Self::build(RequestIdConfig::default())
    }
}

impl Policy {
    /// Parses and validates the plugin configuration (zero bytes → defaults).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_config(parse_json(bytes)?)
    }

    /// Builds the policy from a parsed configuration, checking fields against each other.
    pub fn from_config(config: RequestIdConfig) -> Result<Self, ConfigError> {
        let policy = Self::build(config);
        if policy.max_length < policy.format.length() {
            // The next hop (or this filter, on a retry) would reject our own IDs.
            return Err(ConfigError::new(
                "max_length",
                format!(
                    "{} is shorter than the {}-character IDs of format {}",
                    policy.max_length,
                    policy.format.length(),
                    policy.format
                ),
            ));
        }
        if policy.header == TRACEPARENT || policy.header == TRACESTATE {
            return Err(ConfigError::new(
                "header",
                format!("{} is the trace context header, not a request ID", policy.header),
            ));
        }
        Ok(policy)
    }

    fn build(config: RequestIdConfig) -> Self {
        let header = config.header.map_or_else(|| DEFAULT_REQUEST_ID_HEADER.to_owned(), HeaderName::into_string);
        let echo_header = if config.echo_response {
            Some(config.response_header.map_or_else(|| header.clone(), HeaderName::into_string))
        } else {
            None
        };
        Self {
            header,
            max_length: config.max_length.0,
            format: config.format,
            echo_header,
            traceparent: config.traceparent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        for input in [&b""[..], b"{}", b"null"] {
            let policy = Policy::from_json(input).unwrap();
            assert_eq!(policy.header, "x-request-id");
            assert_eq!(policy.max_length, 128);
            assert_eq!(policy.format, IdFormat::Uuid4);
            assert_eq!(policy.echo_header.as_deref(), Some("x-request-id"));
            assert_eq!(policy.traceparent, TraceparentMode::Create);
            assert_eq!(policy, Policy::default());
        }
    }

    #[test]
    fn every_field_is_read() {
        let policy = Policy::from_json(
            br#"{"header":"X-Correlation-ID","max_length":64,"format":"ulid",
                 "echo_response":true,"response_header":"X-Trace-Ref","traceparent":"off"}"#,
        )
        .unwrap();
        assert_eq!(policy.header, "x-correlation-id");
        assert_eq!(policy.max_length, 64);
        assert_eq!(policy.format, IdFormat::Ulid);
        assert_eq!(policy.echo_header.as_deref(), Some("x-trace-ref"));
        assert_eq!(policy.traceparent, TraceparentMode::Off);
    }

    #[test]
    fn echo_follows_the_request_header_unless_set() {
        let policy = Policy::from_json(br#"{"header":"x-correlation-id"}"#).unwrap();
        assert_eq!(policy.echo_header.as_deref(), Some("x-correlation-id"));
    }

    #[test]
    fn echo_can_be_turned_off() {
        let policy = Policy::from_json(br#"{"echo_response":false,"response_header":"x-id"}"#).unwrap();
        assert_eq!(policy.echo_header, None);
    }

    #[test]
    fn max_length_bounds() {
        assert_eq!(Policy::from_json(br#"{"max_length":1024}"#).unwrap().max_length, 1024);
        for bad in [&br#"{"max_length":0}"#[..], br#"{"max_length":1025}"#] {
            let error = Policy::from_json(bad).unwrap_err();
            assert_eq!(error.field(), "max_length");
            assert!(error.message().contains("must be 1 to 1024"), "{error}");
        }
        let error = Policy::from_json(br#"{"max_length":-5}"#).unwrap_err();
        assert_eq!(error.field(), "max_length");
        let error = Policy::from_json(br#"{"max_length":"128"}"#).unwrap_err();
        assert_eq!(error.field(), "max_length");
        let error = Policy::from_json(br#"{"max_length":12.5}"#).unwrap_err();
        assert_eq!(error.field(), "max_length");
    }

    #[test]
    fn max_length_must_fit_generated_ids() {
        let error = Policy::from_json(br#"{"max_length":35}"#).unwrap_err();
        assert_eq!(error.field(), "max_length");
        assert!(error.message().contains("uuid4"), "{error}");
        assert!(Policy::from_json(br#"{"max_length":36}"#).is_ok());
        assert!(Policy::from_json(br#"{"max_length":26,"format":"ulid"}"#).is_ok());
        assert!(Policy::from_json(br#"{"max_length":25,"format":"ulid"}"#).is_err());
    }

    #[test]
    fn unknown_format_is_named() {
        let error = Policy::from_json(br#"{"format":"uuid7"}"#).unwrap_err();
        assert_eq!(error.field(), "format");
        assert!(error.message().contains("unknown variant `uuid7`"), "{error}");
        assert!(Policy::from_json(br#"{"format":"UUID4"}"#).is_err());
    }

    #[test]
    fn unknown_traceparent_mode_is_named() {
        let error = Policy::from_json(br#"{"traceparent":"keep"}"#).unwrap_err();
        assert_eq!(error.field(), "traceparent");
    }

    #[test]
    fn invalid_header_names_are_named() {
        let error = Policy::from_json(br#"{"header":"x request id"}"#).unwrap_err();
        assert_eq!(error.field(), "header");
        assert!(error.message().contains("invalid header name"), "{error}");
        let error = Policy::from_json(br#"{"response_header":""}"#).unwrap_err();
        assert_eq!(error.field(), "response_header");
    }

    #[test]
    fn trace_context_headers_cannot_carry_the_id() {
        let error = Policy::from_json(br#"{"header":"Traceparent"}"#).unwrap_err();
        assert_eq!(error.field(), "header");
    }

    #[test]
    fn unknown_key_is_named() {
        let error = Policy::from_json(br#"{"max_len":64}"#).unwrap_err();
        assert_eq!(error.field(), "max_len");
        assert!(error.message().contains("unknown field `max_len`"), "{error}");
    }

    #[test]
    fn wrong_types_are_named() {
        let error = Policy::from_json(br#"{"echo_response":"yes"}"#).unwrap_err();
        assert_eq!(error.field(), "echo_response");
        let error = Policy::from_json(br#"{"header":["x-request-id"]}"#).unwrap_err();
        assert_eq!(error.field(), "header");
    }
}
