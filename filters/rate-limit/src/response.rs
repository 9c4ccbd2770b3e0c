//! The rate-limit headers of a response: `Retry-After` on a rejection, and the budget in the
//! IETF draft form or Envoy's `x-ratelimit-*` form.

use crate::config::{HeaderStyle, Policy};
use crate::limiter::Budget;

/// `Retry-After` (RFC 9110), seconds.
pub const RETRY_AFTER: &str = "retry-after";
/// IETF draft (draft-ietf-httpapi-ratelimit-headers): the quota policy.
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
/// IETF draft: the remaining quota and the seconds until it grows.
pub const RATELIMIT: &str = "ratelimit";
/// Envoy's variant: the bucket size.
pub const X_RATELIMIT_LIMIT: &str = "x-ratelimit-limit";
/// Envoy's variant: tokens left.
pub const X_RATELIMIT_REMAINING: &str = "x-ratelimit-remaining";
/// Envoy's variant: seconds until the next fill.
pub const X_RATELIMIT_RESET: &str = "x-ratelimit-reset";

/// The budget headers for `budget`, in the policy's style (none for `HeaderStyle::None`).
pub fn budget_headers(policy: &Policy, budget: &Budget) -> Vec<(&'static str, String)> {
    let Some(rule) = policy.rules.get(budget.rule) else { return Vec::new() };
    match policy.response_headers {
        HeaderStyle::None => Vec::new(),
        HeaderStyle::IetfDraft => vec![
            (RATELIMIT_POLICY, rule.policy_header.clone()),
            (RATELIMIT, format!("\"{}\";r={};t={}", rule.name, budget.remaining, budget.reset_seconds)),
        ],
        HeaderStyle::XRatelimit => vec![
            (X_RATELIMIT_LIMIT, rule.bucket.max_tokens().to_string()),
            (X_RATELIMIT_REMAINING, budget.remaining.to_string()),
            (X_RATELIMIT_RESET, budget.reset_seconds.to_string()),
        ],
    }
}

/// The headers of a rejection: `Retry-After` (when waiting helps), then the budget headers of
/// the rule with the longest wait (only when waiting helps: a missing key has no budget).
pub fn rejection_headers(
    policy: &Policy,
    budget: Option<&Budget>,
    retry_after: Option<u64>,
) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(seconds) = retry_after {
        headers.push((RETRY_AFTER, seconds.to_string()));
        if let Some(budget) = budget {
            headers.extend(budget_headers(policy, budget));
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(style: &str) -> Policy {
        let json = format!(
            r#"{{"response_headers":"{style}","rules":[{{"name":"per-ip","key":["remote_address"],"max_tokens":100,"tokens_per_fill":10,"fill_interval":"6s"}}]}}"#
        );
        Policy::from_json(json.as_bytes()).unwrap()
    }

    const BUDGET: Budget = Budget { rule: 0, remaining: 0, reset_seconds: 4 };

    #[test]
    fn ietf_draft_headers() {
        let headers = rejection_headers(&policy("ietf_draft"), Some(&BUDGET), Some(4));
        assert_eq!(
            headers,
            [
                (RETRY_AFTER, "4".to_owned()),
                (RATELIMIT_POLICY, "\"per-ip\";q=100;w=60".to_owned()),
                (RATELIMIT, "\"per-ip\";r=0;t=4".to_owned()),
            ]
        );
    }

    #[test]
    fn x_ratelimit_headers() {
        let headers = budget_headers(&policy("x_ratelimit"), &Budget { remaining: 42, ..BUDGET });
        assert_eq!(
            headers,
            [
                (X_RATELIMIT_LIMIT, "100".to_owned()),
                (X_RATELIMIT_REMAINING, "42".to_owned()),
                (X_RATELIMIT_RESET, "4".to_owned()),
            ]
        );
    }

    #[test]
    fn no_style_keeps_retry_after_only() {
        assert_eq!(rejection_headers(&policy("none"), Some(&BUDGET), Some(4)), [(RETRY_AFTER, "4".to_owned())]);
    }

    #[test]
    fn missing_key_rejection_has_no_retry_after() {
        assert!(rejection_headers(&policy("ietf_draft"), Some(&BUDGET), None).is_empty());
    }
}
