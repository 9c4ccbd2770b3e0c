//! One request through the policy: phase 1 at the request head, phase 2 once the body is
//! buffered (or at once when there is none), and the verdict: allow, detected, or block.
//!
//! This is the per-request API a combined module calls: plain data in, a plain verdict out.

use crate::body::BodyProcessor;
use crate::config::{Mode, Policy, RuleSetChoice, Settings};
use crate::engine::{RuleMatch, Transaction};
use crate::native::ANOMALY_SCORE_VARIABLE;
use crate::request::{Collections, RequestHead, Source};
use crate::rule::{ForcedBodyProcessor, Phase};

/// The CRS score 949110 compares with the threshold (reported in the decision line).
const CRS_SCORE_VARIABLE: &str = "blocking_inbound_anomaly_score";

/// What the rules found, for the audit line and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub mode: Mode,
    pub score: i64,
    pub threshold: i64,
    /// The request reached the threshold, or a rule denied it.
    pub over_threshold: bool,
    /// Every rule that matched, in evaluation order: `nolog` ones too (they count in the
    /// metrics; the decision line lists only the logged ones).
    pub matches: Vec<RuleMatch>,
}

impl Report {
    /// IDs of every matched rule (`nolog` ones included), for the hit counters.
    pub fn rule_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.matches.iter().map(|matched| matched.rule_id)
    }

    /// IDs of the matched rules that log.
    pub fn logged_rule_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.matches.iter().filter(|matched| matched.log).map(|matched| matched.rule_id)
    }
}

/// The decision for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing matched.
    Allow,
    /// Rules matched; the request goes on (detect mode, or below the threshold).
    Pass(Report),
    /// Reject with `status`.
    Block { status: u16, report: Report },
}

/// After the request head.
pub enum HeadersOutcome {
    /// Decided: no body follows, or the head alone was enough to block.
    Done(Verdict),
    /// The body is needed: buffer it and call [`Inspection::finish_with_body`].
    ReadBody(Box<Inspection>),
}

/// A request waiting for its body.
pub struct Inspection {
    transaction: Transaction,
    settings: Settings,
    processor: BodyProcessor,
}

impl Policy {
    /// Runs phase 1 on the head; with `end_of_stream` (no body) phase 2 too.
    pub fn inspect_headers(&self, head: &RequestHead<'_>, end_of_stream: bool) -> HeadersOutcome {
        let mut collections = Collections::from_head_for(head, self.ruleset.used_sources());
        let path = collections.first(Source::RequestUri, None).unwrap_or_default().to_vec();
        let processor = BodyProcessor::for_content_type(collections.header("content-type"));
        // As in ModSecurity, REQBODY_PROCESSOR is known from the head (phase-1 rules read it).
        collections.set(Source::ReqbodyProcessor, processor.name().to_vec());
        let settings = self.settings_for(&path);
        let tx = self.initial_tx(&settings);
        let mut transaction = Transaction::new(collections, settings.paranoia, settings.exclusions.clone(), tx);
        transaction.set_detection_only(settings.mode == Mode::Detect);
        transaction.run_phase(&self.ruleset, Phase::RequestHeaders);
        if end_of_stream {
            transaction.run_phase(&self.ruleset, Phase::RequestBody);
            return HeadersOutcome::Done(self.verdict(&transaction, &settings));
        }
        let early = self.verdict(&transaction, &settings);
        if matches!(early, Verdict::Block { .. }) {
            return HeadersOutcome::Done(early);
        }
        HeadersOutcome::ReadBody(Box::new(Inspection { transaction, settings, processor }))
    }

    /// The verdict for a transaction's current state.
    fn verdict(&self, transaction: &Transaction, settings: &Settings) -> Verdict {
        let interruption = transaction.interruption();
        if interruption.is_none() && !transaction.matched().iter().any(|matched| matched.log) {
            return Verdict::Allow;
        }
        // Native rules add to tx.anomaly_score (compared here); CRS scores itself and its
        // 949110 `deny` decides (the interruption).
        let native_score = transaction.tx_number(ANOMALY_SCORE_VARIABLE);
        let score = match self.rule_set {
            RuleSetChoice::Crs => native_score.saturating_add(transaction.tx_number(CRS_SCORE_VARIABLE)),
            _ => native_score,
        };
        let over_threshold = interruption.is_some() || native_score >= settings.threshold;
        let report = Report {
            mode: settings.mode,
            score,
            threshold: settings.threshold,
            over_threshold,
            matches: transaction.matched().to_vec(),
        };
        if over_threshold && settings.mode == Mode::Block {
            let status = interruption.and_then(|interruption| interruption.status).unwrap_or(self.block_status);
            return Verdict::Block { status, report };
        }
        Verdict::Pass(report)
    }
}

impl Inspection {
    /// Adds the buffered body (at most the limit) and runs phase 2.
    pub fn finish_with_body(mut self, policy: &Policy, body: &[u8]) -> Verdict {
        let processor = match self.transaction.forced_processor() {
            Some(ForcedBodyProcessor::UrlEncoded) => BodyProcessor::UrlEncoded,
            Some(ForcedBodyProcessor::Json) => BodyProcessor::Json,
            Some(ForcedBodyProcessor::Xml) => BodyProcessor::Xml,
            None => self.processor.clone(),
        };
        self.transaction.add_body(&processor, body);
        self.transaction.run_phase(&policy.ruleset, Phase::RequestBody);
        policy.verdict(&self.transaction, &self.settings)
    }

    /// The mode in force for this request.
    pub fn mode(&self) -> Mode {
        self.settings.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(path: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        let mut headers = vec![
            (":method".to_string(), b"GET".to_vec()),
            (":path".to_string(), path.as_bytes().to_vec()),
            (":authority".to_string(), b"shop.example.com".to_vec()),
            ("user-agent".to_string(), b"Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0".to_vec()),
            ("accept".to_string(), b"text/html".to_vec()),
        ];
        headers.extend(extra.iter().map(|(name, value)| (name.to_string(), value.as_bytes().to_vec())));
        headers
    }

    fn verdict_for(policy: &Policy, path: &str, extra: &[(&str, &str)]) -> Verdict {
        let headers = head(path, extra);
        match policy.inspect_headers(&RequestHead { headers: &headers, protocol: b"HTTP/1.1", remote_addr: b"" }, true)
        {
            HeadersOutcome::Done(verdict) => verdict,
            HeadersOutcome::ReadBody(_) => panic!("no body follows"),
        }
    }

    fn post(policy: &Policy, path: &str, content_type: &str, body: &[u8]) -> Verdict {
        let mut headers = head(path, &[("content-type", content_type)]);
        headers[0].1 = b"POST".to_vec();
        match policy.inspect_headers(&RequestHead { headers: &headers, protocol: b"HTTP/1.1", remote_addr: b"" }, false)
        {
            HeadersOutcome::Done(verdict) => verdict,
            HeadersOutcome::ReadBody(inspection) => inspection.finish_with_body(policy, body),
        }
    }

    fn blocked_ids(verdict: &Verdict) -> Vec<u32> {
        match verdict {
            Verdict::Block { report, .. } => report.rule_ids().collect(),
            other => panic!("expected a block, got {other:?}"),
        }
    }

    #[test]
    fn benign_get_is_allowed() {
        let policy = Policy::from_json(br#"{"ruleset": "builtin"}"#).unwrap();
        assert_eq!(verdict_for(&policy, "/search?q=O%27Brien&page=2", &[]), Verdict::Allow);
    }

    #[test]
    fn sqli_in_query_is_blocked_with_default_status() {
        let policy = Policy::from_json(br#"{"ruleset": "builtin"}"#).unwrap();
        let verdict = verdict_for(&policy, "/search?q=1%27%20OR%20%271%27%3D%271", &[]);
        let Verdict::Block { status, report } = &verdict else { panic!("{verdict:?}") };
        assert_eq!(*status, 403);
        assert!(report.score >= 5);
        assert!(report.matches.iter().any(|matched| matched.target == "ARGS:q"), "{report:?}");
    }

    #[test]
    fn detect_mode_never_blocks() {
        let policy = Policy::from_json(br#"{"mode": "detect"}"#).unwrap();
        let verdict = verdict_for(&policy, "/?q=%3Cscript%3Ealert(1)%3C/script%3E", &[]);
        let Verdict::Pass(report) = verdict else { panic!("{verdict:?}") };
        assert!(report.over_threshold);
        assert_eq!(report.mode, Mode::Detect);
    }

    #[test]
    fn custom_deny_rule_uses_its_status_and_chain() {
        let policy = Policy::from_json(
            br#"{"builtin_groups": [], "rules": [{"id": 1, "phase": 1, "targets": ["REQUEST_METHOD"], "operator": "@streq GET",
                  "action": "deny", "status": 405,
                  "chain": {"targets": ["ARGS_GET:admin"], "operator": "@eq 1"}}]}"#,
        )
        .unwrap();
        assert_eq!(verdict_for(&policy, "/?admin=0", &[]), Verdict::Allow);
        let verdict = verdict_for(&policy, "/?admin=1", &[]);
        assert!(matches!(verdict, Verdict::Block { status: 405, .. }), "{verdict:?}");
    }

    #[test]
    fn anomaly_threshold_adds_up_scores() {
        let rules = br#"{"builtin_groups": [], "inbound_threshold": 6, "rules": [
            {"id": 1, "targets": ["ARGS"], "operator": "@contains aaa", "severity": "warning"},
            {"id": 2, "targets": ["ARGS"], "operator": "@contains bbb", "severity": "warning"}]}"#;
        let policy = Policy::from_json(rules).unwrap();
        assert!(matches!(verdict_for(&policy, "/?x=aaa", &[]), Verdict::Pass(Report { score: 3, .. })));
        assert_eq!(blocked_ids(&verdict_for(&policy, "/?x=aaa&y=bbb", &[])), vec![1, 2]);
    }

    #[test]
    fn route_exclusions_apply() {
        let policy = Policy::from_json(
            br#"{"ruleset": "builtin", "routes": [{"prefix": "/search", "disabled_targets": [{"rules": "100000-199999", "target": "ARGS:q"}]},
                            {"prefix": "/legacy", "mode": "detect"}]}"#,
        )
        .unwrap();
        let attack = "?q=%3Cscript%3Ealert(1)%3C/script%3E";
        assert_eq!(verdict_for(&policy, &format!("/search{attack}"), &[]), Verdict::Allow);
        assert!(matches!(verdict_for(&policy, &format!("/legacy{attack}"), &[]), Verdict::Pass(_)));
        assert!(matches!(verdict_for(&policy, &format!("/other{attack}"), &[]), Verdict::Block { .. }));
    }

    #[test]
    fn bodies_of_each_type_are_inspected() {
        let policy = Policy::from_json(br#"{"ruleset": "builtin"}"#).unwrap();
        let form = post(&policy, "/login", "application/x-www-form-urlencoded", b"user=admin%27--&pw=x");
        assert!(matches!(form, Verdict::Block { .. }), "{form:?}");
        let json = post(&policy, "/api", "application/json", br#"{"a":{"b":["<script>alert(1)</script>"]}}"#);
        let Verdict::Block { report, .. } = &json else { panic!("{json:?}") };
        assert!(report.matches.iter().any(|matched| matched.target == "ARGS:a.b.0"), "{report:?}");
        let multipart = post(
            &policy,
            "/upload",
            "multipart/form-data; boundary=b",
            b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../../etc/passwd\"\r\n\r\nx\r\n--b--\r\n",
        );
        assert!(matches!(multipart, Verdict::Block { .. }), "{multipart:?}");
        let benign = post(&policy, "/api", "application/json", br#"{"name":"O'Brien","tags":["a","b"],"n":3}"#);
        assert_eq!(benign, Verdict::Allow);
    }

    #[test]
    fn removed_rules_by_ctl_do_not_run() {
        let policy = Policy::from_json(
            br#"{"builtin_groups": [], "rules": [
                {"id": 1, "phase": 1, "targets": ["REQUEST_FILENAME"], "operator": "@beginsWith /health", "action": "pass",
                 "log": false, "ctl": ["ruleRemoveById=2"]},
                {"id": 2, "targets": ["ARGS"], "operator": "@contains bad"}]}"#,
        )
        .unwrap();
        assert_eq!(verdict_for(&policy, "/health?x=bad", &[]), Verdict::Allow);
        assert!(matches!(verdict_for(&policy, "/other?x=bad", &[]), Verdict::Block { .. }));
    }

    #[test]
    fn skip_after_jumps_to_marker() {
        let policy = Policy::from_json(
            br#"{"builtin_groups": [], "rules": [
                {"id": 1, "phase": 1, "targets": ["REQUEST_HEADERS:x-trusted"], "operator": "@streq yes", "action": "pass",
                 "log": false, "skip_after": "END"},
                {"id": 2, "phase": 1, "targets": ["ARGS"], "operator": "@contains bad"},
                {"marker": "END"}]}"#,
        )
        .unwrap();
        assert_eq!(verdict_for(&policy, "/?x=bad", &[("x-trusted", "yes")]), Verdict::Allow);
        assert!(matches!(verdict_for(&policy, "/?x=bad", &[]), Verdict::Block { .. }));
    }

    #[test]
    fn a_macro_naming_args_reads_body_arguments_too() {
        // CRS 920650 compares the method with `%{ARGS._method}`; a form field is an ARGS_POST
        // entry, which the macro must find as ModSecurity's ARGS does.
        let policy = Policy::from_json(
            br#"{"builtin_groups": [], "seclang": "SecRule REQUEST_METHOD \"!@streq %{ARGS._method}\" \"id:1,phase:2,deny,status:405,t:lowercase\""}"#,
        )
        .unwrap();
        let form = "application/x-www-form-urlencoded";
        assert_eq!(post(&policy, "/users/sign_out", form, b"_method=post&token=x"), Verdict::Allow);
        assert!(matches!(
            post(&policy, "/users/sign_out", form, b"_method=delete"),
            Verdict::Block { status: 405, .. }
        ));
        // A query argument is still found first.
        let policy = policy;
        assert_eq!(post(&policy, "/x?_method=post", form, b"a=1"), Verdict::Allow);
    }
}
