//! String and route matchers, in the shape of Envoy's `StringMatcher` and `RouteMatch`.

use regex_lite::Regex;
use serde::Deserialize;

/// Longest regular expression accepted from configuration.
pub const MAX_REGEX_LENGTH: usize = 1024;

/// Envoy's `RegexMatcher`: `{regex: "..."}`. The whole value must match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexConfig {
    /// The pattern (RE2-like syntax; `regex-lite` here).
    pub regex: String,
}

/// Compiles `pattern` anchored at both ends, as Envoy's `safe_regex` matches the whole value.
pub fn compile_full_match(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_REGEX_LENGTH {
        return Err(format!("regex longer than {MAX_REGEX_LENGTH} bytes"));
    }
    Regex::new(&format!("^(?:{pattern})$")).map_err(|error| format!("invalid regex: {error}"))
}

/// Envoy's `StringMatcher`: exactly one of `exact`, `prefix`, `suffix`, `contains`,
/// `safe_regex`, optionally `ignore_case` (not for `safe_regex`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatcherConfig {
    /// The whole value equals this.
    pub exact: Option<String>,
    /// The value starts with this.
    pub prefix: Option<String>,
    /// The value ends with this.
    pub suffix: Option<String>,
    /// The value contains this.
    pub contains: Option<String>,
    /// The whole value matches this regular expression.
    pub safe_regex: Option<RegexConfig>,
    /// Compare ASCII case-insensitively (default false).
    #[serde(default)]
    pub ignore_case: bool,
}

/// A compiled [`StringMatcherConfig`].
#[derive(Debug, Clone)]
pub enum StringMatcher {
    /// Equal.
    Exact(String, bool),
    /// Starts with.
    Prefix(String, bool),
    /// Ends with.
    Suffix(String, bool),
    /// Contains.
    Contains(String, bool),
    /// Whole-value regex.
    Regex(Regex),
}

impl StringMatcher {
    /// Validates and compiles the configuration.
    pub fn build(config: StringMatcherConfig) -> Result<Self, String> {
        let ignore_case = config.ignore_case;
        let fold = |text: String| if ignore_case { text.to_ascii_lowercase() } else { text };
        let mut built = Vec::new();
        if let Some(value) = config.exact {
            built.push(Self::Exact(fold(value), ignore_case));
        }
        if let Some(value) = config.prefix {
            built.push(Self::Prefix(fold(value), ignore_case));
        }
        if let Some(value) = config.suffix {
            built.push(Self::Suffix(fold(value), ignore_case));
        }
        if let Some(value) = config.contains {
            built.push(Self::Contains(fold(value), ignore_case));
        }
        if let Some(regex) = config.safe_regex {
            if ignore_case {
                return Err("ignore_case cannot be combined with safe_regex".into());
            }
            built.push(Self::Regex(compile_full_match(&regex.regex)?));
        }
        if built.len() != 1 {
            return Err("exactly one of exact, prefix, suffix, contains, safe_regex must be set".into());
        }
        built.pop().ok_or_else(|| "no matcher".to_string())
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        let folded = |ignore_case: bool| {
            if ignore_case { std::borrow::Cow::Owned(value.to_ascii_lowercase()) } else { value.into() }
        };
        match self {
            Self::Exact(expected, ignore_case) => folded(*ignore_case) == expected.as_str(),
            Self::Prefix(expected, ignore_case) => folded(*ignore_case).starts_with(expected.as_str()),
            Self::Suffix(expected, ignore_case) => folded(*ignore_case).ends_with(expected.as_str()),
            Self::Contains(expected, ignore_case) => folded(*ignore_case).contains(expected.as_str()),
            Self::Regex(regex) => regex.is_match(value),
        }
    }
}

/// Envoy's `RouteMatch` subset: exactly one of `prefix`, `path`, `safe_regex` on the path
/// (query string excluded), `case_sensitive` (default true), and `methods`, an extension of
/// this filter (Envoy writes it as a `:method` header matcher).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatchConfig {
    /// The path starts with this.
    pub prefix: Option<String>,
    /// The path equals this.
    pub path: Option<String>,
    /// The whole path matches this regular expression.
    pub safe_regex: Option<RegexConfig>,
    /// Whether `prefix` and `path` compare case-sensitively (default true).
    pub case_sensitive: Option<bool>,
    /// Methods the rule applies to (default: all).
    #[serde(default)]
    pub methods: Vec<String>,
}

/// How a route's path is matched.
#[derive(Debug, Clone)]
enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(Regex),
}

/// A compiled [`RouteMatchConfig`].
#[derive(Debug, Clone)]
pub struct RouteMatch {
    path: PathMatch,
    case_sensitive: bool,
    /// Uppercase method names; empty means any.
    methods: Vec<String>,
}

impl RouteMatch {
    /// Validates and compiles the configuration.
    pub fn build(config: RouteMatchConfig) -> Result<Self, String> {
        let case_sensitive = config.case_sensitive.unwrap_or(true);
        let fold = |text: String| if case_sensitive { text } else { text.to_ascii_lowercase() };
        let mut built = Vec::new();
        if let Some(prefix) = config.prefix {
            built.push(PathMatch::Prefix(fold(prefix)));
        }
        if let Some(path) = config.path {
            built.push(PathMatch::Exact(fold(path)));
        }
        if let Some(regex) = config.safe_regex {
            built.push(PathMatch::Regex(compile_full_match(&regex.regex)?));
        }
        if built.len() != 1 {
            return Err("exactly one of prefix, path, safe_regex must be set".into());
        }
        let path = built.pop().ok_or_else(|| "no path matcher".to_string())?;
        let mut methods = Vec::with_capacity(config.methods.len());
        for method in config.methods {
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("invalid method {method:?}"));
            }
            methods.push(method.to_ascii_uppercase());
        }
        Ok(Self { path, case_sensitive, methods })
    }

    /// Whether a request with this path (query excluded) and method matches.
    pub fn matches(&self, path: &str, method: &str) -> bool {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            return false;
        }
        match &self.path {
            PathMatch::Prefix(prefix) if self.case_sensitive => path.starts_with(prefix.as_str()),
            PathMatch::Prefix(prefix) => path.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
            PathMatch::Exact(exact) if self.case_sensitive => path == exact,
            PathMatch::Exact(exact) => path.eq_ignore_ascii_case(exact),
            PathMatch::Regex(regex) => regex.is_match(path),
        }
    }
}

/// The path of `:path` without its query string or fragment.
pub fn path_without_query(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_matcher(json: &str) -> Result<StringMatcher, String> {
        StringMatcher::build(serde_json::from_str(json).map_err(|e| e.to_string())?)
    }

    fn route(json: &str) -> RouteMatch {
        RouteMatch::build(serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn string_matchers() {
        assert!(string_matcher(r#"{"exact":"a"}"#).unwrap().matches("a"));
        assert!(!string_matcher(r#"{"exact":"a"}"#).unwrap().matches("A"));
        assert!(string_matcher(r#"{"exact":"a","ignore_case":true}"#).unwrap().matches("A"));
        assert!(string_matcher(r#"{"prefix":"user:"}"#).unwrap().matches("user:1"));
        assert!(!string_matcher(r#"{"prefix":"user:"}"#).unwrap().matches("svc:1"));
        assert!(string_matcher(r#"{"suffix":"@example.com"}"#).unwrap().matches("a@example.com"));
        assert!(string_matcher(r#"{"contains":"mid"}"#).unwrap().matches("amidb"));
        let regex = string_matcher(r#"{"safe_regex":{"regex":"[a-z]+-[0-9]+"}}"#).unwrap();
        assert!(regex.matches("user-42"));
        assert!(!regex.matches("user-42x"), "the whole value must match");
    }

    #[test]
    fn string_matcher_needs_exactly_one() {
        assert!(string_matcher(r#"{}"#).is_err());
        assert!(string_matcher(r#"{"exact":"a","prefix":"b"}"#).is_err());
        assert!(string_matcher(r#"{"safe_regex":{"regex":"("}}"#).unwrap_err().contains("invalid regex"));
    }

    #[test]
    fn route_prefix_path_regex() {
        assert!(route(r#"{"prefix":"/api"}"#).matches("/api/orders", "GET"));
        assert!(!route(r#"{"prefix":"/api"}"#).matches("/API/orders", "GET"));
        assert!(route(r#"{"prefix":"/api","case_sensitive":false}"#).matches("/API/orders", "GET"));
        assert!(route(r#"{"path":"/healthz"}"#).matches("/healthz", "GET"));
        assert!(!route(r#"{"path":"/healthz"}"#).matches("/healthz/x", "GET"));
        assert!(route(r#"{"safe_regex":{"regex":"/v[0-9]+/.*"}}"#).matches("/v2/x", "GET"));
        assert!(!route(r#"{"safe_regex":{"regex":"/v[0-9]+/"}}"#).matches("/v2/x", "GET"));
    }

    #[test]
    fn route_methods() {
        let matcher = route(r#"{"prefix":"/","methods":["post","PUT"]}"#);
        assert!(matcher.matches("/a", "POST"));
        assert!(matcher.matches("/a", "put"));
        assert!(!matcher.matches("/a", "GET"));
        assert!(RouteMatch::build(serde_json::from_str(r#"{"prefix":"/","methods":["G T"]}"#).unwrap()).is_err());
    }

    #[test]
    fn route_needs_exactly_one_path_matcher() {
        assert!(RouteMatch::build(serde_json::from_str(r#"{}"#).unwrap()).is_err());
        assert!(RouteMatch::build(serde_json::from_str(r#"{"prefix":"/","path":"/a"}"#).unwrap()).is_err());
    }

    #[test]
    fn query_is_not_part_of_the_path() {
        assert_eq!(path_without_query("/a/b?x=1"), "/a/b");
        assert_eq!(path_without_query("/a#frag"), "/a");
        assert_eq!(path_without_query("/a"), "/a");
    }
}
