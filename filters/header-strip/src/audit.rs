//! The audit log line of a request that lost headers.
//!
//! Format (one line, key=value, Envoy style):
//! `stripped request headers request_id=<id> count=<lines removed> names=<a>,<b>`
//! and, only with `log_values: true`, ` values=<a>="<escaped>",<b>="<escaped>"`.

use crate::rules::Stripped;
use shield_kit::log_escape::{escape_bare, escape_quoted};

/// At most this many names (and values) are listed; the rest is summarised as `...(+N)` so a
/// request carrying a hundred matching headers cannot produce a huge log line.
pub const MAX_LISTED: usize = 32;

/// The audit line for `stripped`, attributed to `request_id` (already log-safe).
pub fn request_line(request_id: &str, stripped: &Stripped) -> String {
    let mut line = format!("stripped request headers request_id={request_id} count={} names=", stripped.occurrences);
    push_list(&mut line, stripped.names.iter().map(|name| escape_bare(name.as_bytes())), stripped.names.len());
    if !stripped.values.is_empty() {
        line.push_str(" values=");
        push_list(
            &mut line,
            stripped
                .values
                .iter()
                .map(|(name, value)| format!("{}={}", escape_bare(name.as_bytes()), escape_quoted(value))),
            stripped.values.len(),
        );
    }
    line
}

fn push_list(line: &mut String, items: impl Iterator<Item = String>, total: usize) {
    for (index, item) in items.take(MAX_LISTED).enumerate() {
        if index > 0 {
            line.push(',');
        }
        line.push_str(&item);
    }
    if total > MAX_LISTED {
        line.push_str(&format!(",...(+{})", total - MAX_LISTED));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(names: &[&str], values: &[(&str, &[u8])]) -> Stripped {
        Stripped {
            names: names.iter().map(|name| name.to_string()).collect(),
            occurrences: values.len().max(names.len()),
            values: values.iter().map(|(name, value)| (name.to_string(), value.to_vec())).collect(),
        }
    }

    #[test]
    fn names_without_values() {
        let line = request_line("req-1", &stripped(&["x-user-email", "x-tenant-id"], &[]));
        assert_eq!(line, "stripped request headers request_id=req-1 count=2 names=x-user-email,x-tenant-id");
    }

    #[test]
    fn values_are_escaped_and_quoted() {
        let line = request_line(
            "req-2",
            &stripped(&["x-user-email"], &[("x-user-email", b"a@example.com"), ("x-user-email", b"b\r\nforged=1")]),
        );
        assert_eq!(
            line,
            r#"stripped request headers request_id=req-2 count=2 names=x-user-email values=x-user-email="a@example.com",x-user-email="b\r\nforged=1""#
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn long_lists_are_cut() {
        let names: Vec<String> = (0..40).map(|i| format!("x-auth-request-{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let line = request_line("r", &stripped(&refs, &[]));
        assert!(line.contains("x-auth-request-31,...(+8)"), "{line}");
        assert!(!line.contains("x-auth-request-32"));
    }

    #[test]
    fn exactly_the_limit_is_not_cut() {
        let names: Vec<String> = (0..MAX_LISTED).map(|i| format!("x-{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let line = request_line("r", &stripped(&refs, &[]));
        assert!(!line.contains("...("));
        assert!(line.ends_with(&format!("x-{}", MAX_LISTED - 1)));
    }
}
