//! Configuration schema of `rate-limit` and the policy built from it once, in `on_configure`.

use crate::bucket::BucketSpec;
use crate::key::{KeyPart, MissingKeyPolicy};
use crate::matcher::{RuleMatch, RuleMatchConfig};
use serde::Deserialize;
use shield_kit::config::{ConfigError, parse_json};
use std::fmt;
use std::time::Duration;

/// Default status of a rejected request (Envoy `local_ratelimit` answers 429 too).
pub const DEFAULT_STATUS: u16 = 429;
/// Default body of a rejected request.
pub const DEFAULT_BODY: &str = "rate limited\n";
/// Default number of keys a rule remembers before the least recently used one is dropped.
pub const DEFAULT_MAX_KEYS: u32 = 10_000;
/// Largest accepted `max_keys`.
pub const MAX_MAX_KEYS: u32 = 1_000_000;
/// Shortest accepted `fill_interval` (Envoy's `local_ratelimit` refuses less than 50 ms).
pub const MIN_FILL_INTERVAL: Duration = Duration::from_millis(50);
/// Longest accepted `fill_interval`.
pub const MAX_FILL_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default tick period of the idle-key eviction.
pub const DEFAULT_EVICTION_INTERVAL: Duration = Duration::from_secs(5);
/// Default compare-and-swap attempts in shared mode before `on_contention` applies.
pub const DEFAULT_CAS_ATTEMPTS: u32 = 8;
/// Most rules one filter holds (every rule costs work on every request it matches).
pub const MAX_RULES: usize = 16;
/// Longest accepted rule name (it is part of metric names and shared-data keys).
pub const MAX_RULE_NAME_LENGTH: usize = 64;

/// The JSON configuration of the filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `local` (each worker counts alone) or `shared` (all workers count together).
    #[serde(default)]
    pub mode: Mode,
    /// The limits, checked in order; every matching rule is checked. At least one.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Which rate-limit headers a response carries.
    #[serde(default)]
    pub response_headers: HeaderStyle,
    /// Whether allowed requests get the remaining-budget headers too (default false).
    #[serde(default)]
    pub headers_on_allowed: bool,
    /// Status of a rejected request (400 to 599, default 429).
    #[serde(default = "default_status")]
    pub status: Status,
    /// Body of a rejected request.
    #[serde(default = "default_body")]
    pub body: String,
    /// Shared mode: compare-and-swap attempts per rule and request before `on_contention`.
    #[serde(default = "default_cas_attempts")]
    pub cas_attempts: CasAttempts,
    /// Shared mode: what happens when every attempt lost the race (or shared data failed).
    #[serde(default)]
    pub on_contention: ContentionPolicy,
    /// How often idle keys are evicted, e.g. `"5s"`.
    #[serde(default = "default_eviction_interval")]
    pub eviction_interval: TextDuration,
    /// Count `allowed` in the worker and add it to the metric on the eviction tick instead of
    /// once per request (saves a hostcall per request; the metric lags by up to one tick).
    #[serde(default)]
    pub batch_allowed_metric: bool,
}

/// One limit: which requests it applies to, what it counts by, and the bucket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Names the rule in metrics, logs, headers and shared-data keys: 1 to 64 of `a-z 0-9 _ -`.
    pub name: RuleName,
    /// Which requests the rule applies to; absent = every request.
    #[serde(default, rename = "match")]
    pub matcher: RuleMatchConfig,
    /// What a bucket is per: the parts of the key, at least one.
    pub key: Vec<KeyPart>,
    /// What happens when a key part is missing from the request.
    #[serde(default)]
    pub on_missing_key: MissingKeyPolicy,
    /// Bucket size: the burst a key may send at once (Envoy `max_tokens`).
    pub max_tokens: PositiveCount,
    /// Tokens added per fill (Envoy `tokens_per_fill`, default 1).
    #[serde(default = "PositiveCount::one")]
    pub tokens_per_fill: PositiveCount,
    /// Time between fills (Envoy `fill_interval`), e.g. `"1s"`, `"500ms"`, `"1h"`.
    pub fill_interval: TextDuration,
    /// Keys remembered at once; the least recently used one is dropped beyond it.
    #[serde(default = "default_max_keys")]
    pub max_keys: MaxKeys,
    /// Count and log, but never reject (to tune a limit before enforcing it).
    #[serde(default)]
    pub shadow: bool,
}

/// Where buckets live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// In the worker's memory: exact per worker, the total is up to workers × the limit.
    #[default]
    Local,
    /// In Proxy-Wasm shared data (one per Envoy process), updated with compare-and-swap.
    Shared,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Local => "local",
            Self::Shared => "shared",
        })
    }
}

/// Which rate-limit headers responses carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderStyle {
    /// `RateLimit-Policy` and `RateLimit` of the IETF httpapi draft.
    #[default]
    IetfDraft,
    /// `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset` (Envoy's variant).
    XRatelimit,
    /// Only `Retry-After` on rejections.
    None,
}

/// What the shared mode does when it cannot update a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentionPolicy {
    /// Reject the request (closed, the default).
    #[default]
    Deny,
    /// Let the request through uncounted (open, explicit choice).
    Allow,
}

/// A rule name: 1 to 64 of `a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RuleName(String);

impl RuleName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RuleName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        let valid = !name.is_empty()
            && name.len() <= MAX_RULE_NAME_LENGTH
            && name
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-');
        if valid {
            Ok(Self(name))
        } else {
            Err(format!(
                "invalid rule name {}: 1 to {MAX_RULE_NAME_LENGTH} of a-z 0-9 _ -",
                shield_kit::log_escape::escape_quoted(name.as_bytes())
            ))
        }
    }
}

/// A count of at least 1 (tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct PositiveCount(u32);

impl PositiveCount {
    fn one() -> Self {
        Self(1)
    }
}

impl TryFrom<u64> for PositiveCount {
    type Error = String;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        match u32::try_from(value) {
            Ok(count) if count >= 1 => Ok(Self(count)),
            _ => Err(format!("{value} is out of range: must be 1 to {}", u32::MAX)),
        }
    }
}

/// `max_keys`: 1 to [`MAX_MAX_KEYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct MaxKeys(u32);

impl TryFrom<u64> for MaxKeys {
    type Error = String;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        match u32::try_from(value) {
            Ok(count) if (1..=MAX_MAX_KEYS).contains(&count) => Ok(Self(count)),
            _ => Err(format!("{value} is out of range: must be 1 to {MAX_MAX_KEYS}")),
        }
    }
}

/// `cas_attempts`: 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct CasAttempts(u32);

impl TryFrom<u64> for CasAttempts {
    type Error = String;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        match u32::try_from(value) {
            Ok(count) if (1..=100).contains(&count) => Ok(Self(count)),
            _ => Err(format!("{value} is out of range: must be 1 to 100")),
        }
    }
}

/// A response status from 400 to 599.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct Status(u16);

impl TryFrom<u64> for Status {
    type Error = String;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        match u16::try_from(value) {
            Ok(status) if (400..=599).contains(&status) => Ok(Self(status)),
            _ => Err(format!("{value} is out of range: must be 400 to 599")),
        }
    }
}

/// A duration written as text (`"1s"`, `"250ms"`, `"1h"`, `"1m 30s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TextDuration(Duration);

impl TextDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl TryFrom<String> for TextDuration {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        humantime::parse_duration(&text).map(Self).map_err(|error| {
            format!("invalid duration {}: {error}", shield_kit::log_escape::escape_quoted(text.as_bytes()))
        })
    }
}

fn default_status() -> Status {
    Status(DEFAULT_STATUS)
}

fn default_body() -> String {
    DEFAULT_BODY.to_owned()
}

fn default_cas_attempts() -> CasAttempts {
    CasAttempts(DEFAULT_CAS_ATTEMPTS)
}

fn default_eviction_interval() -> TextDuration {
    TextDuration(DEFAULT_EVICTION_INTERVAL)
}

fn default_max_keys() -> MaxKeys {
    MaxKeys(DEFAULT_MAX_KEYS)
}

/// A rule, precomputed.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Which requests it applies to.
    pub matcher: RuleMatch,
    /// The key parts.
    pub key: Vec<KeyPart>,
    /// What a missing key part does.
    pub on_missing_key: MissingKeyPolicy,
    /// The bucket arithmetic.
    pub bucket: BucketSpec,
    /// Keys remembered at once.
    pub max_keys: u32,
    /// Count and log only.
    pub shadow: bool,
    /// Whether a key part reads the downstream address.
    pub needs_source_address: bool,
    /// `RateLimit-Policy` value, formatted once.
    pub policy_header: String,
}

/// What the filter does, precomputed from [`RateLimitConfig`].
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where buckets live.
    pub mode: Mode,
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// Response header style.
    pub response_headers: HeaderStyle,
    /// Whether allowed requests get budget headers.
    pub headers_on_allowed: bool,
    /// Status of a rejection.
    pub status: u16,
    /// Body of a rejection.
    pub body: String,
    /// CAS attempts per rule and request (shared mode).
    pub cas_attempts: u32,
    /// What contention does (shared mode).
    pub on_contention: ContentionPolicy,
    /// Tick period of the eviction.
    pub eviction_interval: Duration,
    /// Whether `allowed` is added on the tick rather than per request.
    pub batch_allowed_metric: bool,
    /// Request headers some rule reads (lowercase, deduplicated; pseudo-headers included).
    pub needed_headers: Vec<String>,
}

impl Policy {
    /// Parses and validates the plugin configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError::new("rules", "missing: the filter needs at least one rule"));
        }
        let config: Option<RateLimitConfig> = parse_json(bytes)?;
        match config {
            Some(config) => Self::from_config(config),
            None => Err(ConfigError::new("rules", "missing: the filter needs at least one rule")),
        }
    }

    /// Builds the policy from a parsed configuration.
    pub fn from_config(config: RateLimitConfig) -> Result<Self, ConfigError> {
        if config.rules.is_empty() {
            return Err(ConfigError::new("rules", "is empty: the filter needs at least one rule"));
        }
        if config.rules.len() > MAX_RULES {
            return Err(ConfigError::new("rules", format!("{} rules: at most {MAX_RULES}", config.rules.len())));
        }
        let eviction_interval = config.eviction_interval.get();
        if eviction_interval < Duration::from_millis(100) || eviction_interval > Duration::from_secs(3600) {
            return Err(ConfigError::new("eviction_interval", "out of range: must be 100ms to 1h"));
        }
        let mut rules = Vec::with_capacity(config.rules.len());
        let mut needed_headers: Vec<String> = Vec::new();
        for (index, rule) in config.rules.into_iter().enumerate() {
            let field = |name: &str| format!("rules[{index}].{name}");
            if rules.iter().any(|existing: &Rule| existing.name == rule.name.as_str()) {
                return Err(ConfigError::new(field("name"), format!("duplicate rule name {:?}", rule.name.as_str())));
            }
            if rule.key.is_empty() {
                return Err(ConfigError::new(field("key"), "is empty: give at least one key part"));
            }
            let interval = rule.fill_interval.get();
            if !(MIN_FILL_INTERVAL..=MAX_FILL_INTERVAL).contains(&interval) {
                return Err(ConfigError::new(field("fill_interval"), "out of range: must be 50ms to 7 days"));
            }
            let matcher = RuleMatch::build(rule.matcher).map_err(|(sub, message)| {
                ConfigError::new(if sub.is_empty() { field("match") } else { field(&format!("match.{sub}")) }, message)
            })?;
            for name in matcher.header_names().chain(rule.key.iter().filter_map(KeyPart::header_name)) {
                if !needed_headers.iter().any(|known| known == name) {
                    needed_headers.push(name.to_owned());
                }
            }
            let bucket = BucketSpec::new(
                u64::from(rule.max_tokens.0),
                u64::from(rule.tokens_per_fill.0),
                u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            );
            let needs_source_address = rule.key.iter().any(KeyPart::needs_source_address);
            let policy_header =
                format!("\"{}\";q={};w={}", rule.name.as_str(), rule.max_tokens.0, bucket.window_seconds());
            rules.push(Rule {
                name: rule.name.0,
                matcher,
                key: rule.key,
                on_missing_key: rule.on_missing_key,
                bucket,
                max_keys: rule.max_keys.0,
                shadow: rule.shadow,
                needs_source_address,
                policy_header,
            });
        }
        Ok(Self {
            mode: config.mode,
            rules,
            response_headers: config.response_headers,
            headers_on_allowed: config.headers_on_allowed,
            status: config.status.0,
            body: config.body,
            cas_attempts: config.cas_attempts.0,
            on_contention: config.on_contention,
            eviction_interval,
            batch_allowed_metric: config.batch_allowed_metric,
            needed_headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> ConfigError {
        Policy::from_json(json.as_bytes()).unwrap_err()
    }

    const MINIMAL: &str = r#"{"rules":[{"name":"ip","key":["remote_address"],"max_tokens":10,"fill_interval":"1s"}]}"#;

    #[test]
    fn minimal_configuration_gets_the_defaults() {
        let policy = Policy::from_json(MINIMAL.as_bytes()).unwrap();
        assert_eq!(policy.mode, Mode::Local);
        assert_eq!(policy.status, 429);
        assert_eq!(policy.body, DEFAULT_BODY);
        assert_eq!(policy.response_headers, HeaderStyle::IetfDraft);
        assert!(!policy.headers_on_allowed);
        assert_eq!(policy.on_contention, ContentionPolicy::Deny);
        assert_eq!(policy.cas_attempts, DEFAULT_CAS_ATTEMPTS);
        assert!(!policy.batch_allowed_metric, "exact counters by default");
        let rule = &policy.rules[0];
        assert_eq!(rule.max_keys, DEFAULT_MAX_KEYS);
        assert_eq!(rule.on_missing_key, MissingKeyPolicy::OwnBucket);
        assert!(rule.needs_source_address);
        assert_eq!(rule.policy_header, "\"ip\";q=10;w=10");
        assert!(policy.needed_headers.is_empty(), "remote_address needs no header");
    }

    #[test]
    fn no_configuration_is_refused() {
        for input in ["", "  ", "null", "{}"] {
            let error = Policy::from_json(input.as_bytes()).unwrap_err();
            assert_eq!(error.field(), "rules", "{input:?}: {error}");
        }
        assert_eq!(error(r#"{"rules":[]}"#).field(), "rules");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"rules":[{"name":"Bad Name","key":["path"],"max_tokens":1,"fill_interval":"1s"}]}"#, "rules[0].name"),
            (r#"{"rules":[{"name":"a","key":["path"],"max_tokens":0,"fill_interval":"1s"}]}"#, "rules[0].max_tokens"),
            (
                r#"{"rules":[{"name":"a","key":["path"],"max_tokens":1,"fill_interval":"10ms"}]}"#,
                "rules[0].fill_interval",
            ),
            (
                r#"{"rules":[{"name":"a","key":["path"],"max_tokens":1,"fill_interval":"soon"}]}"#,
                "rules[0].fill_interval",
            ),
            (r#"{"rules":[{"name":"a","key":[],"max_tokens":1,"fill_interval":"1s"}]}"#, "rules[0].key"),
            (r#"{"rules":[{"name":"a","key":["ip"],"max_tokens":1,"fill_interval":"1s"}]}"#, "rules[0].key[0]"),
            (
                r#"{"rules":[{"name":"a","key":[{"header":"x y"}],"max_tokens":1,"fill_interval":"1s"}]}"#,
                "rules[0].key[0].header",
            ),
            (
                r#"{"rules":[{"name":"a","key":["path"],"max_tokens":1,"fill_interval":"1s","max_keys":0}]}"#,
                "rules[0].max_keys",
            ),
            (
                r#"{"rules":[{"name":"a","key":["path"],"max_tokens":1,"fill_interval":"1s","colour":1}]}"#,
                "rules[0].colour",
            ),
            (
                r#"{"rules":[{"name":"a","key":["path"],"max_tokens":1,"fill_interval":"1s"},{"name":"a","key":["path"],"max_tokens":1,"fill_interval":"1s"}]}"#,
                "rules[1].name",
            ),
            (
                r#"{"rules":[{"name":"a","key":["path"],"max_tokens":1,"fill_interval":"1s","match":{"path":{"regex":"("}}}]}"#,
                "rules[0].match.path.regex",
            ),
            (
                r#"{"rules":[{"name":"a","key":["path"],"max_tokens":1,"fill_interval":"1s","match":{"methods":["G ET"]}}]}"#,
                "rules[0].match.methods[0]",
            ),
            (r#"{"mode":"global","rules":[]}"#, "mode"),
            (r#"{"status":200,"rules":[]}"#, "status"),
            (r#"{"cas_attempts":0,"rules":[]}"#, "cas_attempts"),
        ];
        for (json, field) in cases {
            let error = Policy::from_json(json.as_bytes()).unwrap_err();
            assert_eq!(error.field(), field, "{json}: {error}");
        }
    }

    #[test]
    fn needed_headers_are_collected_once() {
        let json = r#"{"rules":[
            {"name":"a","key":[{"header":"X-Api-Key"},"path"],"max_tokens":1,"fill_interval":"1s",
             "match":{"methods":["POST"],"headers":[{"name":"x-api-key","present":true}]}},
            {"name":"b","key":[{"x_forwarded_for":{"trusted_hops":1}}],"max_tokens":1,"fill_interval":"1s"}]}"#;
        let policy = Policy::from_json(json.as_bytes()).unwrap();
        let mut names = policy.needed_headers.clone();
        names.sort();
        assert_eq!(names, [":method", ":path", "x-api-key", "x-forwarded-for"]);
        assert!(!policy.rules[0].needs_source_address);
        assert!(policy.rules[1].needs_source_address, "the XFF fallback reads the source address");
    }
}
