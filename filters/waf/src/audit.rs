//! Audit lines and the block reply body.
//!
//! One line per decision (not per rule), Envoy `key=value` style:
//! `waf decision request_id=<id> mode=block outcome=blocked status=403 score=10 threshold=5
//! rules=107100,107130 target=ARGS_GET:q value="1' or '1'='1"`
//! `outcome` is `blocked`, `detected` (over the threshold in detect mode) or `below_threshold`.

use crate::inspect::Report;
use shield_kit::log_escape::{escape_bare, escape_quoted};

/// At most this many rule IDs are listed; the rest is summarised as `...(+N)`.
pub const MAX_LISTED_RULES: usize = 32;

/// Bytes of the matched value put in the line (escaped and bounded again by the kit).
pub const MAX_LOGGED_VALUE_BYTES: usize = 128;

/// The decision line for `report`; `status` when the request was blocked.
pub fn decision_line(request_id: &str, report: &Report, status: Option<u16>) -> String {
    let outcome = match (status, report.over_threshold) {
        (Some(_), _) => "blocked",
        (None, true) => "detected",
        (None, false) => "below_threshold",
    };
    let mut line = format!("waf decision request_id={request_id} mode={} outcome={outcome}", report.mode.as_str());
    if let Some(status) = status {
        line.push_str(&format!(" status={status}"));
    }
    line.push_str(&format!(" score={} threshold={} rules=", report.score, report.threshold));
    // Only the rules that log (`nolog` ones, e.g. CRS's bookkeeping, count in the metrics only).
    let logged = report.matches.iter().filter(|matched| matched.log);
    for (index, matched) in logged.clone().take(MAX_LISTED_RULES).enumerate() {
        if index > 0 {
            line.push(',');
        }
        line.push_str(&matched.rule_id.to_string());
    }
    let logged_count = logged.clone().count();
    if logged_count > MAX_LISTED_RULES {
        line.push_str(&format!(",...(+{})", logged_count - MAX_LISTED_RULES));
    }
    if let Some(first) = report.matches.iter().find(|matched| matched.log) {
        let target = if first.target.is_empty() { "-" } else { first.target.as_str() };
        let value = first.value.get(..MAX_LOGGED_VALUE_BYTES).unwrap_or(&first.value);
        line.push_str(&format!(" target={} value={}", escape_bare(target.as_bytes()), escape_quoted(value)));
    }
    line
}

/// The line for a body over the limit.
pub fn over_limit_line(request_id: &str, mode: &str, limit: usize, outcome: &str) -> String {
    format!("waf body over limit request_id={request_id} mode={mode} limit={limit} outcome={outcome}")
}

/// The JSON body of a block reply: the request ID and nothing about the rules.
pub fn block_body(request_id: &str) -> Vec<u8> {
    let body = serde_json::json!({"error": "request blocked", "request_id": request_id});
    let mut bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"request blocked\"}".to_vec());
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::engine::RuleMatch;

    fn report(over: bool) -> Report {
        Report {
            mode: Mode::Block,
            score: 10,
            threshold: 5,
            over_threshold: over,
            matches: vec![
                RuleMatch { rule_id: 901200, target: String::new(), value: Vec::new(), msg: None, log: false },
                RuleMatch {
                    rule_id: 107100,
                    target: "ARGS_GET:q".into(),
                    value: b"1' or 1=1\n--".to_vec(),
                    msg: None,
                    log: true,
                },
                RuleMatch { rule_id: 107130, target: "ARGS_GET:q".into(), value: b"x".to_vec(), msg: None, log: true },
            ],
        }
    }

    #[test]
    fn blocked_line_lists_rules_target_and_escaped_value() {
        let line = decision_line("abc", &report(true), Some(403));
        assert_eq!(
            line,
            "waf decision request_id=abc mode=block outcome=blocked status=403 score=10 threshold=5 rules=107100,107130 target=ARGS_GET:q value=\"1\\' or 1=1\\n--\""
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn many_logged_rules_are_summarised_and_nolog_ones_left_out() {
        let mut many = report(true);
        for id in 0..80 {
            many.matches.push(RuleMatch {
                rule_id: id,
                target: "A".into(),
                value: Vec::new(),
                msg: None,
                log: id % 2 == 0,
            });
        }
        let line = decision_line("-", &many, None);
        assert!(line.contains(",...(+10)"), "{line}");
        assert!(!line.contains("901200"), "{line}");
    }

    #[test]
    fn outcomes() {
        assert!(decision_line("-", &report(true), None).contains("outcome=detected"));
        assert!(decision_line("-", &report(false), None).contains("outcome=below_threshold"));
    }

    #[test]
    fn long_values_are_cut() {
        let mut long = report(true);
        long.matches[1].value = vec![b'a'; 5000];
        let line = decision_line("-", &long, None);
        assert!(line.len() < 600, "{}", line.len());
    }

    #[test]
    fn block_body_is_json_without_internals() {
        let body = block_body("req-\"1");
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["request_id"], "req-\"1");
        assert_eq!(parsed["error"], "request blocked");
        assert_eq!(parsed.as_object().unwrap().len(), 2);
    }
}
