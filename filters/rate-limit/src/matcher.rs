//! Which requests a rule applies to: path (prefix, exact or regex), method, headers.

use crate::request::{METHOD, PATH, Request, path_without_query};
use regex_lite::Regex;
use serde::Deserialize;
use shield_kit::header_name::{HeaderName, is_token_byte};

/// The `match` of a rule; every condition given must hold. Empty = every request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMatchConfig {
    /// The path, without its query string.
    #[serde(default)]
    pub path: Option<PathMatchConfig>,
    /// Methods the rule applies to (exact, case-sensitive as HTTP methods are); empty = any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Header conditions, all of which must hold.
    #[serde(default)]
    pub headers: Vec<HeaderMatchConfig>,
}

/// How the path is matched (like Envoy's route `prefix`, `path` and `safe_regex`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatchConfig {
    /// The path starts with this.
    Prefix(String),
    /// The path is exactly this.
    Exact(String),
    /// The whole path matches this regular expression (regex-lite syntax, linear time).
    Regex(String),
}

/// A header condition: `present` (true: the header is there; false: it is not) or `equals`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchConfig {
    /// The header name.
    pub name: HeaderName,
    /// Whether the header must be present (default true when `equals` is absent).
    #[serde(default)]
    pub present: Option<bool>,
    /// The exact value the header must have (its first occurrence).
    #[serde(default)]
    pub equals: Option<String>,
}

#[derive(Debug, Clone)]
enum PathMatch {
    Prefix(Vec<u8>),
    Exact(Vec<u8>),
    Regex(Regex),
}

#[derive(Debug, Clone)]
enum HeaderCondition {
    Present(bool),
    Equals(Vec<u8>),
}

/// A compiled `match`.
#[derive(Debug, Clone, Default)]
pub struct RuleMatch {
    path: Option<PathMatch>,
    methods: Vec<Vec<u8>>,
    headers: Vec<(String, HeaderCondition)>,
}

/// Longest accepted regular expression, in bytes.
const MAX_REGEX_LENGTH: usize = 1024;

impl RuleMatch {
    /// Compiles a `match`; an error names the sub-field (e.g. `path.regex`) and what is wrong.
    pub fn build(config: RuleMatchConfig) -> Result<Self, (String, String)> {
        let path = match config.path {
            None => None,
            Some(PathMatchConfig::Prefix(prefix)) => Some(PathMatch::Prefix(prefix.into_bytes())),
            Some(PathMatchConfig::Exact(exact)) => Some(PathMatch::Exact(exact.into_bytes())),
            Some(PathMatchConfig::Regex(pattern)) => {
                if pattern.len() > MAX_REGEX_LENGTH {
                    return Err(("path.regex".into(), format!("longer than {MAX_REGEX_LENGTH} bytes")));
                }
                // Anchored: the whole path must match, as Envoy's safe_regex does.
                let regex = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|error| ("path.regex".to_owned(), format!("invalid regex: {error}")))?;
                Some(PathMatch::Regex(regex))
            }
        };
        let mut methods = Vec::with_capacity(config.methods.len());
        for (index, method) in config.methods.into_iter().enumerate() {
            if method.is_empty() || !method.bytes().all(is_token_byte) {
                return Err((
                    format!("methods[{index}]"),
                    format!("invalid method {}", shield_kit::log_escape::escape_quoted(method.as_bytes())),
                ));
            }
            methods.push(method.into_bytes());
        }
        let mut headers = Vec::with_capacity(config.headers.len());
        for (index, header) in config.headers.into_iter().enumerate() {
            let condition = match (header.present, header.equals) {
                (Some(_), Some(_)) => {
                    return Err((format!("headers[{index}]"), "give `present` or `equals`, not both".into()));
                }
                (Some(present), None) => HeaderCondition::Present(present),
                (None, Some(value)) => HeaderCondition::Equals(value.into_bytes()),
                (None, None) => HeaderCondition::Present(true),
            };
            headers.push((header.name.into_string(), condition));
        }
        Ok(Self { path, methods, headers })
    }

    /// The request headers this match reads (pseudo-headers included).
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        let path = self.path.as_ref().map(|_| PATH);
        let method = (!self.methods.is_empty()).then_some(METHOD);
        path.into_iter().chain(method).chain(self.headers.iter().map(|(name, _)| name.as_str()))
    }

    /// Whether the request is one the rule applies to.
    pub fn matches(&self, request: &Request<'_>) -> bool {
        if !self.methods.is_empty() {
            let Some(method) = request.header(METHOD) else { return false };
            if !self.methods.iter().any(|allowed| allowed.as_slice() == method) {
                return false;
            }
        }
        if let Some(path_match) = &self.path {
            let path = path_without_query(request.header(PATH).unwrap_or_default());
            let matched = match path_match {
                PathMatch::Prefix(prefix) => path.starts_with(prefix),
                PathMatch::Exact(exact) => path == exact.as_slice(),
                PathMatch::Regex(regex) => std::str::from_utf8(path).is_ok_and(|text| regex.is_match(text)),
            };
            if !matched {
                return false;
            }
        }
        self.headers.iter().all(|(name, condition)| match condition {
            HeaderCondition::Present(present) => request.header(name).is_some() == *present,
            HeaderCondition::Equals(value) => request.header(name) == Some(value.as_slice()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(json: &str) -> RuleMatch {
        RuleMatch::build(serde_json::from_str(json).unwrap()).unwrap()
    }

    fn request<'a>(headers: &'a [(&'a str, &'a [u8])]) -> Request<'a> {
        Request::new(headers)
    }

    #[test]
    fn empty_match_matches_everything() {
        assert!(build("{}").matches(&request(&[])));
    }

    #[test]
    fn path_prefix_exact_regex_ignore_the_query() {
        let prefix = build(r#"{"path":{"prefix":"/api/"}}"#);
        let exact = build(r#"{"path":{"exact":"/login"}}"#);
        let regex = build(r#"{"path":{"regex":"/users/[0-9]+"}}"#);
        let at = |path: &'static str| [(PATH, path.as_bytes())];
        assert!(prefix.matches(&request(&at("/api/orders?x=1"))));
        assert!(!prefix.matches(&request(&at("/apix"))));
        assert!(exact.matches(&request(&at("/login?next=/"))));
        assert!(!exact.matches(&request(&at("/login/"))));
        assert!(regex.matches(&request(&at("/users/42?full=1"))));
        assert!(!regex.matches(&request(&at("/users/42/x"))), "anchored at the end");
        assert!(!regex.matches(&request(&at("/v1/users/42"))), "anchored at the start");
        assert!(!prefix.matches(&request(&[])), "no path, no match");
    }

    #[test]
    fn methods_and_headers() {
        let rule = build(
            r#"{"methods":["POST","PUT"],"headers":[{"name":"X-Api-Key"},{"name":"x-env","equals":"prod"},{"name":"x-internal","present":false}]}"#,
        );
        let ok: [(&str, &[u8]); 3] = [(METHOD, b"POST"), ("x-api-key", b"k1"), ("x-env", b"prod")];
        assert!(rule.matches(&request(&ok)));
        let get: [(&str, &[u8]); 3] = [(METHOD, b"GET"), ("x-api-key", b"k1"), ("x-env", b"prod")];
        assert!(!rule.matches(&request(&get)));
        let staging: [(&str, &[u8]); 3] = [(METHOD, b"PUT"), ("x-api-key", b"k1"), ("x-env", b"staging")];
        assert!(!rule.matches(&request(&staging)));
        let internal: [(&str, &[u8]); 4] =
            [(METHOD, b"PUT"), ("x-api-key", b"k1"), ("x-env", b"prod"), ("x-internal", b"1")];
        assert!(!rule.matches(&request(&internal)));
        let names: Vec<&str> = rule.header_names().collect();
        assert_eq!(names, [":method", "x-api-key", "x-env", "x-internal"]);
    }

    #[test]
    fn bad_matches_are_refused_with_their_field() {
        let error = |json: &str| RuleMatch::build(serde_json::from_str(json).unwrap()).unwrap_err().0;
        assert_eq!(error(r#"{"path":{"regex":"(unclosed"}}"#), "path.regex");
        assert_eq!(error(r#"{"methods":["GET","P OST"]}"#), "methods[1]");
        assert_eq!(error(r#"{"headers":[{"name":"a","present":true,"equals":"b"}]}"#), "headers[0]");
    }
}
