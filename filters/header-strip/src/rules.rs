//! Which headers go: exact names and name prefixes, matched case-insensitively and with `_`
//! equal to `-`.
//!
//! Why `_` = `-`: CGI-style servers (WSGI, PHP, Rack, many CGI bridges) expose both `X-User-Email`
//! and `X_User_Email` as `HTTP_X_USER_EMAIL`, so a client sending `x_user_email` would otherwise
//! slip an identity past a filter that only knows the dashed spelling.

use std::borrow::Cow;

/// Header names and prefixes to remove, in matching form (lowercase, `_` → `-`), deduplicated.
///
/// Lists are a handful of entries, so a linear scan beats hashing or sorting (and keeps the
/// sort code out of the Wasm module).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StripRules {
    names: Vec<String>,
    prefixes: Vec<String>,
}

/// The outcome of matching one header map against [`StripRules`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stripped {
    /// Distinct names to remove as the request spelled them (lowercased), in order of first
    /// appearance. Removing a name removes every occurrence of it.
    pub names: Vec<String>,
    /// How many header lines these names account for (a repeated header counts each time).
    pub occurrences: usize,
    /// `(lowercase name, value)` of every removed line, only when values are to be logged.
    pub values: Vec<(String, Vec<u8>)>,
}

impl Stripped {
    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl StripRules {
    /// Rules from validated names and prefixes (duplicates are dropped).
    pub fn new(names: Vec<String>, prefixes: Vec<String>) -> Self {
        Self { names: distinct(names), prefixes: distinct(prefixes) }
    }

    /// Whether there is nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.prefixes.is_empty()
    }

    /// Whether a header called `name` (any case, `_` or `-`) is removed.
    pub fn matches(&self, name: &str) -> bool {
        let name = matching_form(name);
        self.names.iter().any(|configured| *configured == name)
            || self.prefixes.iter().any(|prefix| name.starts_with(prefix.as_str()))
    }

    /// The headers of `headers` to remove; `keep_values` records the removed values for the
    /// audit line.
    pub fn plan<N: AsRef<str>, V: AsRef<[u8]>>(&self, headers: &[(N, V)], keep_values: bool) -> Stripped {
        let mut stripped = Stripped::default();
        if self.is_empty() {
            return stripped;
        }
        for (name, value) in headers {
            let (name, value) = (name.as_ref(), value.as_ref());
            if !self.matches(name) {
                continue;
            }
            // Removed under its own spelling: the host looks names up case-insensitively but
            // does not equate `_` with `-`.
            let name = name.to_ascii_lowercase();
            stripped.occurrences += 1;
            if keep_values {
                stripped.values.push((name.clone(), value.to_vec()));
            }
            if !stripped.names.contains(&name) {
                stripped.names.push(name);
            }
        }
        stripped
    }
}

/// `items` in matching form, without repeats, first occurrence kept.
fn distinct(items: Vec<String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let item = matching_form(&item).into_owned();
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

/// Lowercase with `_` as `-`. Envoy delivers lowercase dashed names, so this rarely allocates.
fn matching_form(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|byte| byte.is_ascii_uppercase() || byte == b'_') {
        Cow::Owned(name.chars().map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() }).collect())
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(names: &[&str], prefixes: &[&str]) -> StripRules {
        StripRules::new(
            names.iter().map(|name| name.to_string()).collect(),
            prefixes.iter().map(|name| name.to_string()).collect(),
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.as_bytes().to_vec())).collect()
    }

    #[test]
    fn exact_and_prefix_matching() {
        let rules = rules(&["x-user-email"], &["x-auth-"]);
        assert!(rules.matches("x-user-email"));
        assert!(!rules.matches("x-user-email2"));
        assert!(!rules.matches("x-user"));
        assert!(rules.matches("x-auth-token"));
        assert!(rules.matches("x-auth-"));
        assert!(!rules.matches("x-auth"));
        assert!(!rules.matches("y-x-auth-token"));
    }

    #[test]
    fn mixed_case_headers_are_matched_and_reported_lowercase() {
        let rules = rules(&["x-user-email"], &["x-auth-request-"]);
        let stripped = rules.plan(
            &headers(&[("X-User-Email", "mallory@example.com"), ("X-AUTH-REQUEST-User", "mallory"), ("Accept", "*/*")]),
            false,
        );
        assert_eq!(stripped.names, vec!["x-user-email", "x-auth-request-user"]);
        assert_eq!(stripped.occurrences, 2);
        assert!(stripped.values.is_empty());
    }

    #[test]
    fn repeated_headers_are_named_once_and_counted_each_time() {
        let rules = rules(&["x-user-email"], &[]);
        let stripped = rules.plan(
            &headers(&[("x-user-email", "a@example.com"), ("host", "api"), ("X-User-Email", "b@example.com")]),
            true,
        );
        assert_eq!(stripped.names, vec!["x-user-email"]);
        assert_eq!(stripped.occurrences, 2);
        assert_eq!(
            stripped.values,
            vec![
                ("x-user-email".to_string(), b"a@example.com".to_vec()),
                ("x-user-email".to_string(), b"b@example.com".to_vec()),
            ]
        );
    }

    #[test]
    fn underscores_match_dashes_and_are_removed_as_spelled() {
        let rules = rules(&["x-user-email"], &["x-auth-request-"]);
        assert!(rules.matches("x_user_email"));
        assert!(rules.matches("X_User-Email"));
        assert!(rules.matches("x_auth_request_user"));
        let stripped = rules.plan(
            &headers(&[
                ("X_User_Email", "a@example.com"),
                ("x-user-email", "b@example.com"),
                ("x_auth_request_groups", "admins"),
            ]),
            false,
        );
        assert_eq!(stripped.names, vec!["x_user_email", "x-user-email", "x_auth_request_groups"]);
        assert_eq!(stripped.occurrences, 3);
    }

    #[test]
    fn configured_underscores_also_match_dashes() {
        let rules = rules(&["x_custom_id"], &["x_claim_"]);
        assert!(rules.matches("x-custom-id"));
        assert!(rules.matches("x_custom_id"));
        assert!(rules.matches("x-claim-sub"));
        assert!(!rules.matches("x-custom-idx"));
    }

    #[test]
    fn non_ascii_names_do_not_panic_or_match() {
        let rules = rules(&["x-user-email"], &["x-"]);
        assert!(!rules.matches("ü-user"));
        assert!(rules.matches("x-ü"));
    }

    #[test]
    fn nothing_matching_is_empty() {
        let rules = rules(&["x-user-email"], &["x-auth-"]);
        let stripped = rules.plan(&headers(&[(":path", "/"), ("x-request-id", "abc"), ("x-authz", "1")]), true);
        assert!(stripped.is_empty());
        assert_eq!(stripped, Stripped::default());
    }

    #[test]
    fn pseudo_headers_never_match() {
        // Configured names are tokens, which cannot contain ':'.
        let rules = rules(&["path", "authority"], &["a", "p"]);
        let stripped = rules.plan(&headers(&[(":path", "/"), (":authority", "api"), (":method", "GET")]), false);
        assert!(stripped.is_empty());
    }

    #[test]
    fn empty_rules_match_nothing() {
        let rules = StripRules::default();
        assert!(rules.is_empty());
        assert!(!rules.matches("x-user-email"));
        assert!(rules.plan(&headers(&[("x-user-email", "a")]), true).is_empty());
    }

    #[test]
    fn duplicates_in_configuration_are_harmless() {
        let rules = rules(&["x-a", "x-a", "x-b"], &["x-p-", "x-p-"]);
        assert_eq!(rules.names, vec!["x-a", "x-b"]);
        assert_eq!(rules.prefixes, vec!["x-p-"]);
        let stripped = rules.plan(&headers(&[("x-a", "1"), ("x-p-q", "2")]), false);
        assert_eq!(stripped.names, vec!["x-a", "x-p-q"]);
    }

    #[test]
    fn every_configured_name_is_found() {
        let names = ["x-c", "x-a", "x-e", "x-b", "x-d"];
        let rules = rules(&names, &[]);
        for name in names {
            assert!(rules.matches(name), "{name}");
        }
        assert!(!rules.matches("x-f"));
        assert!(!rules.matches("x-"));
    }
}
