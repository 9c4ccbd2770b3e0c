//! The go-ftw test format CRS writes its regression tests in: a file has `rule_id` and `tests`,
//! a test has `test_id` and `stages`, a stage has an `input` (the request) and an `output` (what
//! must be seen). Stages may also be written in the older `- stage: {input, output}` form, and
//! outputs in the older `log_contains` / `no_log_contains` form.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::fixture::Scalar;

/// One test file.
#[derive(Debug, Deserialize)]
pub struct FtwFile {
    /// The rule the file tests (the first part of every test's title).
    #[serde(default)]
    pub rule_id: Option<u32>,
    /// The tests.
    #[serde(default)]
    pub tests: Vec<FtwTest>,
}

/// One test: a title `<rule_id>-<test_id>` and its stages.
#[derive(Debug, Deserialize)]
pub struct FtwTest {
    /// The number within the file.
    pub test_id: Scalar,
    /// Free text.
    #[serde(default)]
    pub desc: Option<String>,
    /// The requests, in order.
    #[serde(default)]
    pub stages: Vec<StageEntry>,
}

/// A stage, in the current form (`input`/`output` directly) or the older `stage:` wrapper.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StageEntry {
    /// `- stage: {input, output}`.
    Wrapped {
        /// The stage.
        stage: Stage,
    },
    /// `- {input, output}`.
    Plain(Stage),
}

impl StageEntry {
    /// The stage, whichever form it was written in.
    pub fn stage(&self) -> &Stage {
        match self {
            StageEntry::Wrapped { stage } | StageEntry::Plain(stage) => stage,
        }
    }
}

/// A request and what it must produce.
#[derive(Debug, Default, Deserialize)]
pub struct Stage {
    /// The request.
    #[serde(default)]
    pub input: Input,
    /// The expectations.
    #[serde(default)]
    pub output: Output,
}

/// The request of a stage; absent fields take go-ftw's defaults (`GET`, `/`, `HTTP/1.1`).
#[derive(Debug, Default, Deserialize)]
pub struct Input {
    /// Where go-ftw connects (informational here: every request goes to the filter under test).
    #[serde(default)]
    pub dest_addr: Option<String>,
    /// Port (informational).
    #[serde(default)]
    pub port: Option<u16>,
    /// `http` or `https` (only `http` is supported).
    #[serde(default)]
    pub protocol: Option<String>,
    /// The request method, sent as written.
    #[serde(default)]
    pub method: Option<String>,
    /// The request target, sent as written.
    #[serde(default)]
    pub uri: Option<String>,
    /// The version token of the request line, sent as written.
    #[serde(default)]
    pub version: Option<String>,
    /// Headers: go-ftw keeps one value per name and sends them sorted by name.
    #[serde(default)]
    pub headers: BTreeMap<String, Option<Scalar>>,
    /// The body, a Go template (CRS uses `{{ "x" | repeat N }}`).
    #[serde(default)]
    pub data: Option<String>,
    /// The body, base64.
    #[serde(default)]
    pub encoded_data: Option<String>,
    /// The whole request, base64: sent exactly as decoded.
    #[serde(default)]
    pub encoded_request: Option<String>,
    /// The whole request, as text.
    #[serde(default)]
    pub raw_request: Option<String>,
    /// Whether go-ftw adds `Connection`, `Content-Length` and a form `Content-Type` (default true).
    #[serde(default)]
    pub autocomplete_headers: Option<bool>,
}

/// What a stage must produce.
#[derive(Debug, Default, Deserialize)]
pub struct Output {
    /// The response status (one value or a list of accepted values).
    #[serde(default)]
    pub status: Option<StatusExpect>,
    /// Expectations on the WAF's log.
    #[serde(default)]
    pub log: Option<LogExpect>,
    /// Older form: a regular expression the log must match (`id "942100"`).
    #[serde(default)]
    pub log_contains: Option<String>,
    /// Older form: a regular expression the log must not match.
    #[serde(default)]
    pub no_log_contains: Option<String>,
    /// A text the raw response must contain.
    #[serde(default)]
    pub response_contains: Option<String>,
    /// The request is expected to fail at the connection level (no HTTP response).
    #[serde(default)]
    pub expect_error: Option<bool>,
}

/// One accepted status, or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusExpect {
    /// One status.
    One(u16),
    /// Any of these.
    Any(Vec<u16>),
}

impl StatusExpect {
    /// Whether `status` is accepted.
    pub fn accepts(&self, status: u16) -> bool {
        match self {
            StatusExpect::One(expected) => *expected == status,
            StatusExpect::Any(list) => list.contains(&status),
        }
    }

    /// As text for reports.
    pub fn describe(&self) -> String {
        match self {
            StatusExpect::One(status) => status.to_string(),
            StatusExpect::Any(list) => format!("{list:?}"),
        }
    }
}

/// The `log` block of an output.
#[derive(Debug, Default, Deserialize)]
pub struct LogExpect {
    /// Rule IDs that must fire.
    #[serde(default)]
    pub expect_ids: Vec<u32>,
    /// Rule IDs that must not fire.
    #[serde(default)]
    pub no_expect_ids: Vec<u32>,
    /// A regular expression the log must match.
    #[serde(default)]
    pub match_regex: Option<String>,
    /// A regular expression the log must not match.
    #[serde(default)]
    pub no_match_regex: Option<String>,
}

/// A test with where it came from.
#[derive(Debug)]
pub struct LoadedTest {
    /// go-ftw's title: `<rule_id>-<test_id>`.
    pub title: String,
    /// The rule the file tests.
    pub rule_id: u32,
    /// The directory the file is in (`REQUEST-942-APPLICATION-ATTACK-SQLI`).
    pub group: String,
    /// The file.
    pub file: PathBuf,
    /// The test.
    pub test: FtwTest,
}

impl LoadedTest {
    /// The rule family: the number in the directory name (`REQUEST-942-...` → 942), else the
    /// rule ID's first three digits.
    pub fn family(&self) -> u32 {
        self.group.split('-').nth(1).and_then(|n| n.parse().ok()).unwrap_or(self.rule_id / 1000)
    }
}

/// Parses one go-ftw file. A file of comments only (no document) has no tests.
pub fn parse_file(text: &str) -> Result<Option<FtwFile>, String> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    if value.is_null() {
        return Ok(None);
    }
    serde_yaml_ng::from_value(value).map(Some).map_err(|e| e.to_string())
}

/// Reads every test of the `*.yaml` / `*.yml` files under `dir`, sorted by file path; a file that
/// does not parse is an error naming it.
pub fn load_dir(dir: &Path) -> Result<Vec<LoadedTest>, String> {
    let mut paths = Vec::new();
    collect(dir, &mut paths)?;
    paths.sort();
    let mut tests = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let Some(file) = parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))? else {
            continue;
        };
        let rule_id = match file.rule_id {
            Some(id) => id,
            None => path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("{}: no rule_id", path.display()))?,
        };
        let group =
            path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for test in file.tests {
            tests.push(LoadedTest {
                title: format!("{rule_id}-{}", test.test_id.0),
                rule_id,
                group: group.clone(),
                file: path.clone(),
                test,
            });
        }
    }
    Ok(tests)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: cannot read directory: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_and_older_forms_parse() {
        let text = r#"
meta: {author: x}
rule_id: 920100
tests:
  - test_id: 1
    stages:
      - input:
          method: GET
          port: 80
          headers: {Host: localhost, Content-Length: 0, X-Empty: }
        output:
          status: [200, 403]
          log: {expect_ids: [920100], no_expect_ids: [920101], match_regex: 'id "920100"'}
  - test_id: 2
    stages:
      - stage:
          input: {uri: /x, encoded_request: R0VUIC8gSFRUUC8xLjENCg0K}
          output: {log_contains: 'id "920101"', no_log_contains: 'id "1"', expect_error: true}
"#;
        let file = parse_file(text).expect("parses").expect("a document");
        assert_eq!(file.rule_id, Some(920100));
        let first = file.tests[0].stages[0].stage();
        assert_eq!(first.input.method.as_deref(), Some("GET"));
        assert_eq!(first.input.headers.get("Content-Length"), Some(&Some(Scalar("0".into()))));
        assert_eq!(first.input.headers.get("X-Empty"), Some(&None));
        let log = first.output.log.as_ref().expect("log");
        assert_eq!((log.expect_ids.as_slice(), log.no_expect_ids.as_slice()), (&[920100][..], &[920101][..]));
        assert!(first.output.status.as_ref().is_some_and(|s| s.accepts(403) && !s.accepts(400)));
        let second = file.tests[1].stages[0].stage();
        assert_eq!(second.input.uri.as_deref(), Some("/x"));
        assert_eq!(second.output.log_contains.as_deref(), Some("id \"920101\""));
        assert_eq!(second.output.expect_error, Some(true));
        assert_eq!(file.tests[1].test_id.0, "2");
    }

    #[test]
    fn a_file_of_comments_has_no_tests() {
        assert!(parse_file("# nothing here\n# ---\n").expect("parses").is_none());
        assert!(parse_file("rule_id: [").is_err());
    }
}
