//! Configuration schema of `header-strip` and the policy built from it once, in `on_configure`.

use crate::cidr::Cidr;
use crate::rules::StripRules;
use serde::Deserialize;
use shield_kit::config::{ConfigError, parse_json};
use shield_kit::header_name::HeaderName;

/// Request headers stripped by default: the identity headers auth proxies and gateways write
/// after verification, which a client must never be able to supply itself.
pub const DEFAULT_STRIP: &[&str] =
    &["x-user-email", "x-forwarded-groups", "x-tenant-id", "x-forwarded-user", "x-forwarded-email"];

/// Request header prefixes stripped by default (oauth2-proxy's `X-Auth-Request-*` family).
pub const DEFAULT_STRIP_PREFIXES: &[&str] = &["x-auth-request-"];

/// Response headers stripped when `response_defaults` is true: they reveal the upstream's
/// software or timing and are of no use to a client.
pub const DEFAULT_RESPONSE_STRIP: &[&str] =
    &["server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version", "x-envoy-upstream-service-time"];

/// The JSON configuration of the filter. Every field is optional; `{}` or no configuration at
/// all strips the default set from every request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderStripConfig {
    /// Request header names to remove (exact match, case-insensitive), every occurrence.
    pub strip: Vec<HeaderName>,
    /// Request header name prefixes to remove, e.g. `x-auth-` or `x-jwt-claim-`.
    pub strip_prefixes: Vec<HeaderName>,
    /// Whether [`DEFAULT_STRIP`] and [`DEFAULT_STRIP_PREFIXES`] apply in addition to `strip` and
    /// `strip_prefixes` (default true: configured lists extend the defaults, so adding one name
    /// can never silently stop the defaults from being stripped).
    pub include_defaults: bool,
    /// CIDR ranges (IPv4 or IPv6; a bare address means /32 or /128) whose requests keep their
    /// headers, matched against the downstream address (`source.address`). Default: none, so
    /// every request is stripped.
    pub trusted_sources: Vec<Cidr>,
    /// Response header names to remove before the response reaches the client.
    pub response_strip: Vec<HeaderName>,
    /// Response header name prefixes to remove.
    pub response_strip_prefixes: Vec<HeaderName>,
    /// Whether [`DEFAULT_RESPONSE_STRIP`] is added to the response lists (default false:
    /// response stripping is hygiene, not a trust boundary, so it is opt-in).
    pub response_defaults: bool,
    /// Whether the audit log line carries the removed values, escaped and bounded (default
    /// false: values may be personal data or credentials).
    pub log_values: bool,
}

impl Default for HeaderStripConfig {
    fn default() -> Self {
        Self {
            strip: Vec::new(),
            strip_prefixes: Vec::new(),
            include_defaults: true,
            trusted_sources: Vec::new(),
            response_strip: Vec::new(),
            response_strip_prefixes: Vec::new(),
            response_defaults: false,
            log_values: false,
        }
    }
}

/// What the filter does, precomputed from [`HeaderStripConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Removed from requests of untrusted sources.
    pub request: StripRules,
    /// Removed from every response.
    pub response: StripRules,
    /// Sources whose requests are left untouched.
    pub trusted_sources: Vec<Cidr>,
    /// Whether the audit line carries the removed values.
    pub log_values: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self::build(HeaderStripConfig::default())
    }
}

impl Policy {
    /// Parses and validates the plugin configuration (zero bytes → defaults).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_config(parse_json(bytes)?)
    }

    /// Builds the policy from a parsed configuration, refusing one that would do nothing.
    pub fn from_config(config: HeaderStripConfig) -> Result<Self, ConfigError> {
        let policy = Self::build(config);
        if policy.request.is_empty() && policy.response.is_empty() {
            // Closed by default: a filter that strips nothing is a misconfiguration, not a choice.
            return Err(ConfigError::new(
                "include_defaults",
                "is false and none of strip, strip_prefixes, response_strip, \
                 response_strip_prefixes, response_defaults is set: the filter would strip nothing",
            ));
        }
        Ok(policy)
    }

    fn build(config: HeaderStripConfig) -> Self {
        let mut names = owned(config.strip);
        let mut prefixes = owned(config.strip_prefixes);
        if config.include_defaults {
            names.extend(DEFAULT_STRIP.iter().map(|name| (*name).to_owned()));
            prefixes.extend(DEFAULT_STRIP_PREFIXES.iter().map(|name| (*name).to_owned()));
        }
        let mut response_names = owned(config.response_strip);
        if config.response_defaults {
            response_names.extend(DEFAULT_RESPONSE_STRIP.iter().map(|name| (*name).to_owned()));
        }
        Self {
            request: StripRules::new(names, prefixes),
            response: StripRules::new(response_names, owned(config.response_strip_prefixes)),
            trusted_sources: config.trusted_sources,
            log_values: config.log_values,
        }
    }
}

/// The validated, lowercase names as plain strings for the matcher.
fn owned(names: Vec<HeaderName>) -> Vec<String> {
    names.into_iter().map(HeaderName::into_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn no_configuration_strips_the_default_set() {
        for input in [&b""[..], b"{}", b"null"] {
            let policy = Policy::from_json(input).unwrap();
            for name in DEFAULT_STRIP {
                assert!(policy.request.matches(name), "{name}");
            }
            assert!(policy.request.matches("x-auth-request-user"));
            assert!(!policy.request.matches("x-request-id"));
            assert!(policy.response.is_empty());
            assert!(policy.trusted_sources.is_empty());
            assert!(!policy.log_values);
        }
    }

    #[test]
    fn default_policy_equals_empty_configuration() {
        assert_eq!(Policy::default(), Policy::from_json(b"").unwrap());
        assert!(Policy::default().request.matches("x-user-email"));
    }

    #[test]
    fn configured_lists_extend_the_defaults() {
        let policy = Policy::from_json(br#"{"strip":["X-Internal-Role"],"strip_prefixes":["x-jwt-claim-"]}"#).unwrap();
        assert!(policy.request.matches("x-internal-role"));
        assert!(policy.request.matches("x-jwt-claim-sub"));
        assert!(policy.request.matches("x-user-email"));
        assert!(policy.request.matches("x-auth-request-email"));
    }

    #[test]
    fn include_defaults_false_replaces_them() {
        let policy = Policy::from_json(br#"{"strip":["x-internal-role"],"include_defaults":false}"#).unwrap();
        assert!(policy.request.matches("x-internal-role"));
        assert!(!policy.request.matches("x-user-email"));
        assert!(!policy.request.matches("x-auth-request-user"));
    }

    #[test]
    fn a_filter_that_strips_nothing_is_refused() {
        let error = Policy::from_json(br#"{"include_defaults":false}"#).unwrap_err();
        assert_eq!(error.field(), "include_defaults");
        assert!(error.to_string().contains("would strip nothing"));
    }

    #[test]
    fn response_only_configuration_is_accepted() {
        let policy = Policy::from_json(br#"{"include_defaults":false,"response_strip":["server"]}"#).unwrap();
        assert!(policy.request.is_empty());
        assert!(policy.response.matches("server"));
    }

    #[test]
    fn response_defaults_add_the_documented_set() {
        let policy = Policy::from_json(br#"{"response_defaults":true}"#).unwrap();
        for name in DEFAULT_RESPONSE_STRIP {
            assert!(policy.response.matches(name), "{name}");
        }
        assert!(!policy.response.matches("content-type"));
    }

    #[test]
    fn trusted_sources_are_parsed() {
        let policy = Policy::from_json(br#"{"trusted_sources":["10.0.0.0/8","2001:db8::1"]}"#).unwrap();
        assert_eq!(policy.trusted_sources.len(), 2);
        assert!(policy.trusted_sources[0].contains(ip("10.1.2.3")));
        assert!(policy.trusted_sources[1].contains(ip("2001:db8::1")));
    }

    #[test]
    fn invalid_cidr_names_its_index() {
        let error = Policy::from_json(br#"{"trusted_sources":["10.0.0.0/8","10.0.0.0/33"]}"#).unwrap_err();
        assert_eq!(error.field(), "trusted_sources[1]");
        assert!(
            error
                .to_string()
                .starts_with(r#"invalid configuration: field `trusted_sources[1]`: invalid CIDR "10.0.0.0/33""#),
            "{error}"
        );
    }

    #[test]
    fn illegal_header_name_names_its_index() {
        let error = Policy::from_json(br#"{"strip":["x-ok","x bad"]}"#).unwrap_err();
        assert_eq!(error.field(), "strip[1]");
        assert!(error.message().contains("invalid header name"), "{error}");
        let error = Policy::from_json(br#"{"response_strip_prefixes":[""]}"#).unwrap_err();
        assert_eq!(error.field(), "response_strip_prefixes[0]");
    }

    #[test]
    fn unknown_key_is_refused() {
        let error = Policy::from_json(br#"{"strip_prefix":["x-auth-"]}"#).unwrap_err();
        assert_eq!(error.field(), "strip_prefix");
        assert!(error.message().contains("unknown field `strip_prefix`"));
    }

    #[test]
    fn wrong_types_are_refused() {
        let error = Policy::from_json(br#"{"strip":"x-user-email"}"#).unwrap_err();
        assert_eq!(error.field(), "strip");
        let error = Policy::from_json(br#"{"log_values":"yes"}"#).unwrap_err();
        assert_eq!(error.field(), "log_values");
        let error = Policy::from_json(br#"{"trusted_sources":[10]}"#).unwrap_err();
        assert_eq!(error.field(), "trusted_sources[0]");
    }

    #[test]
    fn default_constants_are_valid_lowercase_names() {
        for name in DEFAULT_STRIP.iter().chain(DEFAULT_STRIP_PREFIXES).chain(DEFAULT_RESPONSE_STRIP) {
            assert_eq!(HeaderName::new(name).unwrap().as_str(), *name);
        }
    }
}
