//! go-ftw's checks of one stage's output against what was observed: the rule IDs that fired, the
//! status the client got, and regular expressions over the WAF log (which here is one
//! ModSecurity-style `[id "N"]` line per fired rule, followed by the filter's own log lines).

use serde::Serialize;

use super::ftw::Output;

/// What one request produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observation {
    /// Rule IDs that fired and log (what ModSecurity's log would show), ascending.
    pub fired: Vec<u32>,
    /// Rule IDs that matched without logging (`nolog`: CRS's bookkeeping), ascending.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nolog: Vec<u32>,
    /// The status the client got (`None`: no response, e.g. a reset or a timeout).
    pub status: Option<u16>,
    /// The filter's log lines of the request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

impl Observation {
    /// The log the regular expressions of a test are matched against.
    pub fn log_text(&self) -> Vec<String> {
        self.fired.iter().map(|id| format!("[id \"{id}\"]")).chain(self.logs.iter().cloned()).collect()
    }
}

/// Every way `observed` misses `output` (empty: the stage passed).
pub fn check(output: &Output, observed: &Observation) -> Vec<String> {
    let mut failures = Vec::new();
    if output.expect_error == Some(true) {
        if let Some(status) = observed.status {
            failures.push(format!("expect_error: expected no HTTP response, got status {status}"));
        }
        return failures;
    }
    if let Some(expected) = &output.status {
        match observed.status {
            Some(status) if expected.accepts(status) => {}
            Some(status) => failures.push(format!("status: expected {}, got {status}", expected.describe())),
            None => failures.push(format!("status: expected {}, got no response", expected.describe())),
        }
    }
    let log = observed.log_text();
    if let Some(expect) = &output.log {
        let missing: Vec<u32> = expect.expect_ids.iter().copied().filter(|id| !observed.fired.contains(id)).collect();
        if !missing.is_empty() {
            failures.push(format!("expect_ids: {} did not fire", join(&missing)));
        }
        let unwanted: Vec<u32> =
            expect.no_expect_ids.iter().copied().filter(|id| observed.fired.contains(id)).collect();
        if !unwanted.is_empty() {
            failures.push(format!("no_expect_ids: {} fired", join(&unwanted)));
        }
        regex_check("match_regex", expect.match_regex.as_deref(), true, &log, &mut failures);
        regex_check("no_match_regex", expect.no_match_regex.as_deref(), false, &log, &mut failures);
    }
    regex_check("log_contains", output.log_contains.as_deref(), true, &log, &mut failures);
    regex_check("no_log_contains", output.no_log_contains.as_deref(), false, &log, &mut failures);
    failures
}

fn regex_check(field: &str, pattern: Option<&str>, must_match: bool, log: &[String], failures: &mut Vec<String>) {
    let Some(pattern) = pattern.filter(|p| !p.is_empty()) else { return };
    let regex = match regex::Regex::new(pattern) {
        Ok(regex) => regex,
        Err(error) => {
            failures.push(format!("{field}: invalid regular expression {pattern:?}: {error}"));
            return;
        }
    };
    let matched = log.iter().any(|line| regex.is_match(line));
    match (must_match, matched) {
        (true, false) => failures.push(format!("{field}: no log line matches {pattern:?}")),
        (false, true) => failures.push(format!("{field}: a log line matches {pattern:?}")),
        _ => {}
    }
}

/// `920100,920110`.
pub fn join(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crs::ftw::{LogExpect, StatusExpect};

    fn observed(fired: &[u32], status: u16) -> Observation {
        Observation {
            fired: fired.to_vec(),
            nolog: Vec::new(),
            status: Some(status),
            logs: vec!["waf decision rules=1".into()],
        }
    }

    #[test]
    fn ids_status_and_regexes_are_checked() {
        let output = Output {
            status: Some(StatusExpect::One(200)),
            log: Some(LogExpect {
                expect_ids: vec![920100],
                no_expect_ids: vec![920101],
                match_regex: Some(r#"id "920100""#.into()),
                no_match_regex: None,
            }),
            ..Output::default()
        };
        assert!(check(&output, &observed(&[920100, 949110], 200)).is_empty());
        let failures = check(&output, &observed(&[920101], 403));
        assert_eq!(failures.len(), 4, "{failures:?}");
        assert!(failures[0].starts_with("status: expected 200, got 403"));
        assert!(failures[1].contains("920100 did not fire"));
        assert!(failures[2].contains("920101 fired"));
    }

    #[test]
    fn older_log_contains_and_expect_error() {
        let output = Output { no_log_contains: Some(r#"id "\d+""#.into()), ..Output::default() };
        assert!(check(&output, &observed(&[], 200)).is_empty());
        assert_eq!(check(&output, &observed(&[942100], 200)).len(), 1);
        let error = Output { expect_error: Some(true), ..Output::default() };
        assert_eq!(check(&error, &observed(&[], 400)).len(), 1);
        assert!(check(&error, &Observation::default()).is_empty());
    }
}
