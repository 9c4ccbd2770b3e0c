//! Configuration schema of `jwt-auth` (the shape of Envoy's `JwtAuthentication`, JSON names
//! kept) and the policy built from it once, in `on_configure`.

use crate::claims::ClaimPath;
use crate::duration::EnvoyDuration;
use crate::jwks::KeySet;
use crate::matcher::{RouteMatch, RouteMatchConfig, StringMatcher, StringMatcherConfig};
use crate::token::{HeaderLocation, Locations};
use serde::Deserialize;
use shield_kit::config::{ConfigError, parse_json};
use shield_kit::header_name::HeaderName;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Default `clock_skew_seconds` (Envoy's).
pub const DEFAULT_CLOCK_SKEW_SECONDS: u32 = 60;
/// Largest `clock_skew_seconds` accepted.
pub const MAX_CLOCK_SKEW_SECONDS: u32 = 3600;
/// Default `jwt_cache_config.jwt_cache_size` (Envoy's).
pub const DEFAULT_JWT_CACHE_SIZE: u32 = 100;
/// Largest `jwt_cache_size` accepted.
pub const MAX_JWT_CACHE_SIZE: u32 = 100_000;
/// Default `remote_jwks.cache_duration` (Envoy's: 10 minutes).
pub const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(600);
/// Shortest `cache_duration` accepted (refreshing more often only loads the issuer).
pub const MIN_CACHE_DURATION: Duration = Duration::from_secs(1);
/// Default `http_uri.timeout`.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(1);
/// Default `remote_jwks.wait_timeout`: how long a request waits for the first keys.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most providers, rules and `claim_to_headers` entries (each is work per request).
pub const MAX_ENTRIES: usize = 64;

/// The JSON configuration of the filter.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtAuthConfig {
    /// Providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Rules, first match wins; a request no rule matches is not checked.
    pub rules: Vec<RuleConfig>,
    /// Let CORS preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) through
    /// without a token (default false, as in Envoy).
    pub bypass_cors_preflight: bool,
}

/// Envoy's `JwtProvider`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// Required `iss`; unset: not checked.
    pub issuer: Option<String>,
    /// Allowed `aud` values (one must be present); empty: not checked.
    pub audiences: Vec<String>,
    /// `sub` must match this.
    pub subjects: Option<StringMatcherConfig>,
    /// `exp` must be present.
    pub require_expiration: bool,
    /// Longest lifetime (`exp` minus `nbf`, else `iat`); implies `exp` is required.
    pub max_lifetime: Option<EnvoyDuration>,
    /// The same limit in whole seconds (the issue's name for it); give one of the two.
    pub max_lifetime_seconds: Option<u64>,
    /// Tolerance for `exp` and `nbf` (default 60).
    pub clock_skew_seconds: Option<u32>,
    /// Keys given inline.
    pub local_jwks: Option<LocalJwksConfig>,
    /// Keys fetched from an Envoy cluster.
    pub remote_jwks: Option<RemoteJwksConfig>,
    /// Token headers; default `Authorization: Bearer ` plus the `access_token` parameter.
    pub from_headers: Vec<HeaderLocation>,
    /// Token query parameters.
    pub from_params: Vec<String>,
    /// Token cookies.
    pub from_cookies: Vec<String>,
    /// Keep the token header on the upstream request (default false, as in Envoy).
    pub forward: bool,
    /// Header that gets the verified payload (base64url).
    pub forward_payload_header: Option<HeaderName>,
    /// Claims copied to request headers.
    pub claim_to_headers: Vec<ClaimToHeaderConfig>,
    /// Verified-token cache.
    pub jwt_cache_config: Option<JwtCacheConfig>,
}

/// Envoy's `DataSource`, inline only (a Wasm filter has no file system).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalJwksConfig {
    /// The JWKS JSON.
    pub inline_string: String,
}

/// Envoy's `RemoteJwks` plus this filter's `fail_open` and `wait_timeout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteJwksConfig {
    /// Where the JWKS is.
    pub http_uri: HttpUriConfig,
    /// Keys are refreshed before this age (default 600s).
    pub cache_duration: Option<EnvoyDuration>,
    /// Extension: when the first fetch has not succeeded within `wait_timeout`, let requests
    /// through unverified instead of answering 503 (default false: fail closed).
    #[serde(default)]
    pub fail_open: bool,
    /// Extension: how long a request waits for the first keys (default 5s).
    pub wait_timeout: Option<EnvoyDuration>,
}

/// Envoy's `HttpUri`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpUriConfig {
    /// `http(s)://authority/path`: authority and path of the request.
    pub uri: String,
    /// Envoy cluster the request goes to.
    pub cluster: String,
    /// Fetch timeout (default 1s).
    pub timeout: Option<EnvoyDuration>,
}

/// Envoy's `JwtClaimToHeader`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeaderConfig {
    /// Request header to set.
    pub header_name: HeaderName,
    /// Claim path, nested with `.`.
    pub claim_name: String,
}

/// Envoy's `JwtCacheConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtCacheConfig {
    /// Most cached tokens (default 100; 0 disables the cache).
    pub jwt_cache_size: u32,
}

/// Envoy's `RequirementRule`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Which requests.
    #[serde(rename = "match")]
    pub route: RouteMatchConfig,
    /// What they need; absent: nothing (e.g. health checks).
    pub requires: Option<RequirementConfig>,
}

/// Envoy's `JwtRequirement`: exactly one member.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequirementConfig {
    /// A valid token of this provider.
    pub provider_name: Option<String>,
    /// A valid token of this provider, with these audiences instead of the provider's.
    pub provider_and_audiences: Option<ProviderAndAudiencesConfig>,
    /// Any of these.
    pub requires_any: Option<RequirementListConfig>,
    /// All of these.
    pub requires_all: Option<RequirementListConfig>,
    /// A missing token is fine; a present one must be valid for some provider.
    pub allow_missing: Option<Empty>,
    /// Always fine; a valid token still gets its claims forwarded.
    pub allow_missing_or_failed: Option<Empty>,
}

/// Envoy's `ProviderWithAudiences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderAndAudiencesConfig {
    /// The provider.
    pub provider_name: String,
    /// Allowed audiences for this rule.
    pub audiences: Vec<String>,
}

/// Envoy's `JwtRequirementOrList` / `JwtRequirementAndList`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequirementListConfig {
    /// The requirements.
    pub requirements: Vec<RequirementConfig>,
}

/// `{}` (protobuf `Empty`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Where a provider's keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// Fixed at configuration.
    Local(Rc<KeySet>),
    /// Fetched (see [`crate::remote`]).
    Remote(RemoteJwks),
}

/// A validated `remote_jwks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    /// Envoy cluster.
    pub cluster: String,
    /// `:authority` of the fetch.
    pub authority: String,
    /// `:path` of the fetch.
    pub path: String,
    /// Fetch timeout.
    pub timeout: Duration,
    /// Refresh before this age.
    pub cache_duration: Duration,
    /// Let requests through when no keys arrived within `wait_timeout`.
    pub fail_open: bool,
    /// How long a request waits for the first keys.
    pub wait_timeout: Duration,
}

/// A claim copied to a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    /// Lowercase header name.
    pub header: String,
    /// Claim path.
    pub claim: ClaimPath,
}

/// A provider, ready to verify.
#[derive(Debug)]
pub struct Provider {
    /// Its name in the configuration.
    pub name: String,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Allowed audiences (empty: any).
    pub audiences: Vec<String>,
    /// `sub` matcher.
    pub subjects: Option<StringMatcher>,
    /// `exp` required.
    pub require_expiration: bool,
    /// Longest lifetime in seconds.
    pub max_lifetime: Option<i64>,
    /// `exp`/`nbf` tolerance in seconds.
    pub clock_skew: i64,
    /// Keys.
    pub keys: KeySource,
    /// Token locations.
    pub locations: Locations,
    /// Keep the token header upstream.
    pub forward: bool,
    /// Header for the payload.
    pub forward_payload_header: Option<String>,
    /// Claims to headers.
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// Cache size.
    pub cache_size: usize,
}

/// A requirement, providers by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A valid token of provider `index`; `audiences` overrides the provider's when set.
    Provider { index: usize, audiences: Option<Vec<String>> },
    /// Any of these.
    Any(Vec<Requirement>),
    /// All of these.
    All(Vec<Requirement>),
    /// Missing is fine; present must verify with some provider.
    AllowMissing,
    /// Always fine.
    AllowMissingOrFailed,
}

/// A rule.
#[derive(Debug)]
pub struct Rule {
    /// Which requests.
    pub route: RouteMatch,
    /// What they need; `None`: nothing.
    pub requirement: Option<Requirement>,
}

/// What the filter does, built once from [`JwtAuthConfig`].
#[derive(Debug, Default)]
pub struct Policy {
    /// Providers, in name order.
    pub providers: Vec<Provider>,
    /// Rules, first match wins.
    pub rules: Vec<Rule>,
    /// CORS preflights pass.
    pub bypass_cors_preflight: bool,
    /// Every header this filter writes from a token (claim headers and payload headers):
    /// removed from every request first, so a client cannot set them.
    pub output_headers: Vec<String>,
}

impl Policy {
    /// Parses and validates the plugin configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_config(parse_json(bytes)?)
    }

    /// Builds the policy, checking fields against each other.
    pub fn from_config(config: JwtAuthConfig) -> Result<Self, ConfigError> {
        if config.providers.len() > MAX_ENTRIES {
            return Err(ConfigError::new("providers", format!("at most {MAX_ENTRIES} providers")));
        }
        if config.rules.len() > MAX_ENTRIES {
            return Err(ConfigError::new("rules", format!("at most {MAX_ENTRIES} rules")));
        }
        let mut providers = Vec::with_capacity(config.providers.len());
        for (name, provider) in config.providers {
            providers.push(build_provider(name, provider)?);
        }
        let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        let mut rules = Vec::with_capacity(config.rules.len());
        for (index, rule) in config.rules.into_iter().enumerate() {
            let field = format!("rules[{index}]");
            let route = RouteMatch::build(rule.route).map_err(|e| ConfigError::new(format!("{field}.match"), e))?;
            let requirement = match rule.requires {
                None => None,
                Some(requires) => Some(build_requirement(requires, &names, &format!("{field}.requires"))?),
            };
            rules.push(Rule { route, requirement });
        }
        let mut output_headers: Vec<String> = Vec::new();
        for provider in &providers {
            let names = provider.claim_to_headers.iter().map(|c| &c.header).chain(&provider.forward_payload_header);
            for name in names {
                if !output_headers.contains(name) {
                    output_headers.push(name.clone());
                }
            }
        }
        Ok(Self { providers, rules, bypass_cors_preflight: config.bypass_cors_preflight, output_headers })
    }
}

fn build_provider(name: String, config: ProviderConfig) -> Result<Provider, ConfigError> {
    let field = |member: &str| format!("providers.{name}.{member}");
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(ConfigError::new(
            format!("providers.{name}"),
            "provider names use only letters, digits, '-', '_' and '.'",
        ));
    }
    let keys = match (config.local_jwks, config.remote_jwks) {
        (Some(local), None) => {
            let set = KeySet::parse(local.inline_string.as_bytes())
                .map_err(|e| ConfigError::new(field("local_jwks.inline_string"), e))?;
            KeySource::Local(Rc::new(set))
        }
        (None, Some(remote)) => KeySource::Remote(build_remote(remote, &field("remote_jwks"))?),
        _ => {
            return Err(ConfigError::new(
                format!("providers.{name}"),
                "exactly one of local_jwks, remote_jwks is required",
            ));
        }
    };
    let subjects = match config.subjects {
        None => None,
        Some(matcher) => Some(StringMatcher::build(matcher).map_err(|e| ConfigError::new(field("subjects"), e))?),
    };
    let clock_skew = config.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS);
    if clock_skew > MAX_CLOCK_SKEW_SECONDS {
        return Err(ConfigError::new(
            field("clock_skew_seconds"),
            format!("{clock_skew} is more than {MAX_CLOCK_SKEW_SECONDS}"),
        ));
    }
    let (max_lifetime, lifetime_field) = match (config.max_lifetime, config.max_lifetime_seconds) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                field("max_lifetime_seconds"),
                "give max_lifetime (Envoy's duration) or max_lifetime_seconds, not both",
            ));
        }
        (Some(duration), None) => (Some(i64::try_from(duration.get().as_secs()).unwrap_or(i64::MAX)), "max_lifetime"),
        (None, Some(seconds)) => (Some(i64::try_from(seconds).unwrap_or(i64::MAX)), "max_lifetime_seconds"),
        (None, None) => (None, "max_lifetime"),
    };
    if max_lifetime == Some(0) {
        return Err(ConfigError::new(field(lifetime_field), "must be at least 1s"));
    }
    if config.claim_to_headers.len() > MAX_ENTRIES {
        return Err(ConfigError::new(field("claim_to_headers"), format!("at most {MAX_ENTRIES} entries")));
    }
    let mut claim_to_headers = Vec::with_capacity(config.claim_to_headers.len());
    for (index, entry) in config.claim_to_headers.into_iter().enumerate() {
        let claim = ClaimPath::parse(&entry.claim_name)
            .map_err(|e| ConfigError::new(field(&format!("claim_to_headers[{index}].claim_name")), e))?;
        claim_to_headers.push(ClaimToHeader { header: entry.header_name.into_string(), claim });
    }
    for (index, param) in config.from_params.iter().enumerate() {
        if param.is_empty() || param.contains(['&', '=', '#']) {
            return Err(ConfigError::new(field(&format!("from_params[{index}]")), "invalid query parameter name"));
        }
    }
    for (index, cookie) in config.from_cookies.iter().enumerate() {
        if cookie.is_empty() || !cookie.bytes().all(shield_kit::header_name::is_token_byte) {
            return Err(ConfigError::new(field(&format!("from_cookies[{index}]")), "invalid cookie name"));
        }
    }
    let locations = if config.from_headers.is_empty() && config.from_params.is_empty() && config.from_cookies.is_empty()
    {
        Locations::envoy_default()
    } else {
        Locations { headers: config.from_headers, params: config.from_params, cookies: config.from_cookies }
    };
    let cache_size = config.jwt_cache_config.map_or(DEFAULT_JWT_CACHE_SIZE, |c| c.jwt_cache_size);
    if cache_size > MAX_JWT_CACHE_SIZE {
        return Err(ConfigError::new(
            field("jwt_cache_config.jwt_cache_size"),
            format!("{cache_size} is more than {MAX_JWT_CACHE_SIZE}"),
        ));
    }
    Ok(Provider {
        issuer: config.issuer,
        audiences: config.audiences,
        subjects,
        require_expiration: config.require_expiration || max_lifetime.is_some(),
        max_lifetime,
        clock_skew: i64::from(clock_skew),
        keys,
        locations,
        forward: config.forward,
        forward_payload_header: config.forward_payload_header.map(HeaderName::into_string),
        claim_to_headers,
        cache_size: cache_size as usize,
        name,
    })
}

fn build_remote(config: RemoteJwksConfig, field: &str) -> Result<RemoteJwks, ConfigError> {
    let (authority, path) =
        split_uri(&config.http_uri.uri).map_err(|e| ConfigError::new(format!("{field}.http_uri.uri"), e))?;
    if config.http_uri.cluster.is_empty() {
        return Err(ConfigError::new(format!("{field}.http_uri.cluster"), "cluster is empty"));
    }
    let timeout = config.http_uri.timeout.map_or(DEFAULT_FETCH_TIMEOUT, EnvoyDuration::get);
    if timeout.is_zero() {
        return Err(ConfigError::new(format!("{field}.http_uri.timeout"), "must be more than 0s"));
    }
    let cache_duration = config.cache_duration.map_or(DEFAULT_CACHE_DURATION, EnvoyDuration::get);
    if cache_duration < MIN_CACHE_DURATION {
        return Err(ConfigError::new(format!("{field}.cache_duration"), "must be at least 1s"));
    }
    let wait_timeout = config.wait_timeout.map_or(DEFAULT_WAIT_TIMEOUT, EnvoyDuration::get);
    Ok(RemoteJwks {
        cluster: config.http_uri.cluster,
        authority,
        path,
        timeout,
        cache_duration,
        fail_open: config.fail_open,
        wait_timeout,
    })
}

/// `http(s)://authority/path?query` → (authority, path with query).
fn split_uri(uri: &str) -> Result<(String, String), String> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
        .ok_or_else(|| format!("{uri:?} is not an http:// or https:// URI"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let visible = |text: &str| text.bytes().all(|b| b.is_ascii_graphic());
    if authority.is_empty() || !visible(authority) || !visible(path) {
        return Err(format!("{uri:?} has no valid authority and path"));
    }
    Ok((authority.to_owned(), path.to_owned()))
}

fn build_requirement(config: RequirementConfig, names: &[&str], field: &str) -> Result<Requirement, ConfigError> {
    let provider_index = |name: &str, field: String| {
        names
            .iter()
            .position(|candidate| *candidate == name)
            .ok_or_else(|| ConfigError::new(field, format!("unknown provider {name:?}")))
    };
    let mut built = Vec::new();
    if let Some(name) = config.provider_name {
        built.push(Requirement::Provider {
            index: provider_index(&name, format!("{field}.provider_name"))?,
            audiences: None,
        });
    }
    if let Some(with_audiences) = config.provider_and_audiences {
        let index =
            provider_index(&with_audiences.provider_name, format!("{field}.provider_and_audiences.provider_name"))?;
        built.push(Requirement::Provider { index, audiences: Some(with_audiences.audiences) });
    }
    for (list, any) in [(config.requires_any, true), (config.requires_all, false)] {
        let Some(list) = list else { continue };
        let member = if any { "requires_any" } else { "requires_all" };
        if list.requirements.is_empty() {
            return Err(ConfigError::new(format!("{field}.{member}.requirements"), "is empty"));
        }
        let mut requirements = Vec::with_capacity(list.requirements.len());
        for (index, requirement) in list.requirements.into_iter().enumerate() {
            requirements.push(build_requirement(
                requirement,
                names,
                &format!("{field}.{member}.requirements[{index}]"),
            )?);
        }
        built.push(if any { Requirement::Any(requirements) } else { Requirement::All(requirements) });
    }
    if config.allow_missing.is_some() {
        built.push(Requirement::AllowMissing);
    }
    if config.allow_missing_or_failed.is_some() {
        built.push(Requirement::AllowMissingOrFailed);
    }
    match (built.pop(), built.is_empty()) {
        (Some(requirement), true) => Ok(requirement),
        _ => Err(ConfigError::new(
            field,
            "exactly one of provider_name, provider_and_audiences, requires_any, requires_all, allow_missing, allow_missing_or_failed is required",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::tests::TEST_JWKS;

    fn config_with(provider_extra: &str, rules: &str) -> String {
        format!(
            r#"{{"providers":{{"main":{{"issuer":"https://issuer.example","local_jwks":{{"inline_string":{}}}{provider_extra}}}}},"rules":{rules}}}"#,
            serde_json::to_string(TEST_JWKS).unwrap()
        )
    }

    fn error(json: &str) -> ConfigError {
        Policy::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn empty_configuration_checks_nothing() {
        let policy = Policy::from_json(b"").unwrap();
        assert!(policy.providers.is_empty() && policy.rules.is_empty());
    }

    #[test]
    fn full_provider() {
        let json = config_with(
            r#","audiences":["api"],"subjects":{"prefix":"user-"},"require_expiration":true,"max_lifetime":"3600s",
               "clock_skew_seconds":30,"from_headers":[{"name":"X-Jwt","value_prefix":"Token "}],
               "from_params":["jwt"],"from_cookies":["session"],"forward":true,
               "forward_payload_header":"X-Jwt-Payload",
               "claim_to_headers":[{"header_name":"X-User","claim_name":"sub"},{"header_name":"x-roles","claim_name":"realm.roles"}],
               "jwt_cache_config":{"jwt_cache_size":10}"#,
            r#"[{"match":{"prefix":"/api"},"requires":{"provider_name":"main"}},{"match":{"path":"/healthz"}}]"#,
        );
        let policy = Policy::from_json(json.as_bytes()).unwrap();
        let provider = &policy.providers[0];
        assert_eq!(provider.name, "main");
        assert_eq!(provider.issuer.as_deref(), Some("https://issuer.example"));
        assert_eq!(provider.audiences, vec!["api".to_string()]);
        assert!(provider.subjects.as_ref().unwrap().matches("user-1"));
        assert_eq!(provider.max_lifetime, Some(3600));
        assert_eq!(provider.clock_skew, 30);
        assert_eq!(provider.locations.headers[0].name.as_str(), "x-jwt");
        assert_eq!(provider.locations.params, vec!["jwt".to_string()]);
        assert!(provider.forward);
        assert_eq!(provider.cache_size, 10);
        assert_eq!(policy.output_headers, vec!["x-user", "x-roles", "x-jwt-payload"]);
        assert_eq!(policy.rules.len(), 2);
        assert_eq!(policy.rules[0].requirement, Some(Requirement::Provider { index: 0, audiences: None }));
        assert_eq!(policy.rules[1].requirement, None);
    }

    #[test]
    fn defaults() {
        let policy = Policy::from_json(config_with("", "[]").as_bytes()).unwrap();
        let provider = &policy.providers[0];
        assert_eq!(provider.clock_skew, 60);
        assert_eq!(provider.cache_size, 100);
        assert!(!provider.forward);
        assert!(!provider.require_expiration);
        assert_eq!(provider.locations, Locations::envoy_default());
    }

    #[test]
    fn requirement_trees() {
        let json = config_with(
            "",
            r#"[{"match":{"prefix":"/"},"requires":{"requires_any":{"requirements":[
                {"provider_and_audiences":{"provider_name":"main","audiences":["x"]}},
                {"requires_all":{"requirements":[{"provider_name":"main"}]}},
                {"allow_missing":{}}]}}}]"#,
        );
        let policy = Policy::from_json(json.as_bytes()).unwrap();
        assert_eq!(
            policy.rules[0].requirement,
            Some(Requirement::Any(vec![
                Requirement::Provider { index: 0, audiences: Some(vec!["x".into()]) },
                Requirement::All(vec![Requirement::Provider { index: 0, audiences: None }]),
                Requirement::AllowMissing,
            ]))
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = error(&config_with("", r#"[{"match":{"prefix":"/"},"requires":{"provider_name":"other"}}]"#));
        assert_eq!(e.field(), "rules[0].requires.provider_name");
        assert!(e.message().contains("unknown provider \"other\""));
        let e = error(&config_with("", r#"[{"match":{},"requires":{"provider_name":"main"}}]"#));
        assert_eq!(e.field(), "rules[0].match");
        let e = error(&config_with("", r#"[{"match":{"prefix":"/"},"requires":{}}]"#));
        assert_eq!(e.field(), "rules[0].requires");
        let e = error(&config_with(r#","clock_skew_seconds":7200"#, "[]"));
        assert_eq!(e.field(), "providers.main.clock_skew_seconds");
        let e = error(&config_with(r#","claim_to_headers":[{"header_name":"x a","claim_name":"sub"}]"#, "[]"));
        assert_eq!(e.field(), "providers.main.claim_to_headers[0].header_name");
        let e = error(&config_with(r#","claim_to_headers":[{"header_name":"x-a","claim_name":"a..b"}]"#, "[]"));
        assert_eq!(e.field(), "providers.main.claim_to_headers[0].claim_name");
        let both = error(&config_with(r#","max_lifetime":"60s","max_lifetime_seconds":60"#, "[]"));
        assert!(both.to_string().contains("max_lifetime_seconds"), "{both}");
        let zero = error(&config_with(r#","max_lifetime_seconds":0"#, "[]"));
        assert!(zero.to_string().contains("max_lifetime_seconds"), "{zero}");
        let e = error(&config_with(r#","max_lifetime":"1h""#, "[]"));
        assert_eq!(e.field(), "providers.main.max_lifetime");
        let e = error(&config_with(r#","issuerr":"x""#, "[]"));
        assert_eq!(e.field(), "providers.main.issuerr");
        let e = error(r#"{"providers":{"p":{"local_jwks":{"inline_string":"{}"}}}}"#);
        assert_eq!(e.field(), "providers.p.local_jwks.inline_string");
        let e = error(r#"{"providers":{"p":{}}}"#);
        assert_eq!(e.field(), "providers.p");
        assert!(e.message().contains("exactly one of local_jwks, remote_jwks"));
    }

    #[test]
    fn remote_jwks() {
        let json = r#"{"providers":{"r":{"remote_jwks":{"http_uri":{"uri":"https://idp.example/keys?v=1","cluster":"idp","timeout":"2s"},
                       "cache_duration":"300s","fail_open":true,"wait_timeout":"0.5s"}}}}"#;
        let policy = Policy::from_json(json.as_bytes()).unwrap();
        let KeySource::Remote(remote) = &policy.providers[0].keys else { panic!("remote") };
        assert_eq!(remote.authority, "idp.example");
        assert_eq!(remote.path, "/keys?v=1");
        assert_eq!(remote.cluster, "idp");
        assert_eq!(remote.timeout, Duration::from_secs(2));
        assert_eq!(remote.cache_duration, Duration::from_secs(300));
        assert!(remote.fail_open);
        assert_eq!(remote.wait_timeout, Duration::from_millis(500));
        let e = error(r#"{"providers":{"r":{"remote_jwks":{"http_uri":{"uri":"ftp://x/","cluster":"idp"}}}}}"#);
        assert_eq!(e.field(), "providers.r.remote_jwks.http_uri.uri");
        assert_eq!(split_uri("http://host").unwrap(), ("host".to_string(), "/".to_string()));
    }
}
