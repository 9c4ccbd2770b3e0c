//! `host-test crs`: CRS's own regression tests (go-ftw YAML) through the WAF module, in the
//! harness and (with `--envoy`) through a real Envoy, with per-family pass / fail / skip counts,
//! every failure listed, a reviewed deviations file, and a JSON report.
//!
//! Each stage's request is built as the bytes go-ftw sends ([`raw`]), read as the request the
//! filter sees behind the web servers CRS's tests were written against ([`as_sent`]: nothing
//! normalised away; what is not an HTTP request at all, or what the harness cannot represent, is
//! skipped with the reason), sent through the plugin, and checked ([`check`]). What Envoy makes of
//! the same bytes ([`translate`]) is kept beside it: it explains where the `--envoy` run, which
//! measures real Envoy, differs from the harness.

pub mod as_sent;
pub mod check;
pub mod command;
pub mod deviations;
pub mod envoy;
pub mod ftw;
pub mod harness;
pub mod raw;
pub mod report;
pub mod translate;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::Host;
use check::Observation;
use deviations::Deviations;
use ftw::LoadedTest;
use translate::Translation;

/// CRS's test setup: paranoia level 4, detection only, and the `tx` settings of CRS's own test
/// environment (`tests/docker-compose.yml` of coreruleset: `BLOCKING_PARANOIA: 4`,
/// `VALIDATE_UTF8_ENCODING: 1`, `ARG_LENGTH: 400`, `MAX_FILE_SIZE: 64100`,
/// `COMBINED_FILE_SIZES: 65535`; the argument-name length, argument count and total length the
/// 920360 / 920380 / 920390 tests are written for).
pub fn default_config() -> serde_json::Value {
    serde_json::json!({
        "mode": "detect",
        "paranoia_level": 4,
        // ModSecurity buffers up to 13 MB; CRS's largest test body is 64 KB.
        "body": {"limit": 1_048_576, "over_limit": "inspect_first_part"},
        "crs": {
            "detection_paranoia_level": 4,
            "setup": {
                "crs_validate_utf8_encoding": 1,
                "arg_name_length": 100,
                "arg_length": 400,
                "total_arg_length": 64000,
                "max_num_args": 255,
                "max_file_size": 64100,
                "combined_file_sizes": 65535
            }
        }
    })
}

/// The rule directories that need a backend reflecting the request into the response.
pub const RESPONSE_SKIP_REASON: &str =
    "RESPONSE-* rules inspect the response: they need a backend that reflects the request body into the response";

/// What to run.
pub struct Options {
    /// The go-ftw tests directory.
    pub tests: PathBuf,
    /// The WAF module (a name in the module path, or a `.wasm` path).
    pub module: String,
    /// The plugin configuration.
    pub config: serde_json::Value,
    /// Only these families (`942`), rule IDs or test titles (all when empty).
    pub only: Vec<String>,
    /// Known deviations.
    pub deviations: Deviations,
}

/// One stage, prepared: the bytes go-ftw sends, the request the harness delivers, and what Envoy
/// makes of them.
pub struct PreparedStage {
    /// go-ftw's bytes (or why they cannot be built).
    pub raw: Result<Vec<u8>, String>,
    /// `raw` as sent ([`as_sent`]): what the harness delivers to the filter.
    pub translation: Option<Translation>,
    /// `raw` as Envoy 1.40 hands it to the filters ([`translate`]): explains the differences
    /// of the `--envoy` run.
    pub envoy: Option<Translation>,
}

impl PreparedStage {
    /// What Envoy does differently from the harness with this stage, as notes (empty when it
    /// hands the filter the same request).
    pub fn envoy_notes(&self) -> Vec<String> {
        match &self.envoy {
            Some(Translation::Request { notes, .. }) => notes.iter().map(|note| format!("Envoy: {note}")).collect(),
            Some(Translation::Rejected { status, reason }) => {
                vec![format!("Envoy: answers {status} before any filter runs: {reason}")]
            }
            Some(Translation::Unsupported(reason)) => vec![format!("Envoy: {reason}")],
            None => Vec::new(),
        }
    }
}

/// A test with its stages prepared.
pub struct PreparedTest {
    /// The test.
    pub test: LoadedTest,
    /// Why the whole test is skipped (RESPONSE-* rules), if it is.
    pub skip: Option<String>,
    /// Its stages.
    pub stages: Vec<PreparedStage>,
}

/// Loads the tests under `options.tests` (filtered by `only`) and prepares every stage.
pub fn prepare(options: &Options) -> Result<Vec<PreparedTest>, String> {
    let tests = ftw::load_dir(&options.tests)?;
    let selected = tests.into_iter().filter(|t| {
        options.only.is_empty()
            || options.only.iter().any(|o| *o == t.title || *o == t.rule_id.to_string() || *o == t.family().to_string())
    });
    Ok(selected
        .map(|test| {
            let skip = (!test.group.starts_with("REQUEST-")).then(|| {
                if test.group.starts_with("RESPONSE-") {
                    RESPONSE_SKIP_REASON.to_string()
                } else {
                    format!("{}: not a REQUEST-* rule directory", test.group)
                }
            });
            let stages = test
                .test
                .stages
                .iter()
                .map(|entry| {
                    let raw = raw::build(&entry.stage().input);
                    let translation = raw.as_ref().ok().map(|bytes| as_sent::as_sent(bytes));
                    let envoy = raw.as_ref().ok().map(|bytes| translate::translate(bytes));
                    PreparedStage { raw, translation, envoy }
                })
                .collect();
            PreparedTest { test, skip, stages }
        })
        .collect())
}

/// The verdict on a test.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every stage met its expectations.
    Passed,
    /// A stage did not; `deviation` is the reviewed reason when the test is a known deviation.
    Failed {
        /// What went wrong, per stage.
        failures: Vec<String>,
        /// The reason from the deviations file.
        #[serde(skip_serializing_if = "Option::is_none")]
        deviation: Option<String>,
    },
    /// The test could not run (the reason says why).
    Skipped {
        /// Why.
        reason: String,
    },
}

/// What one stage did.
#[derive(Debug, Clone, Serialize)]
pub struct StageResult {
    /// What the request's framing changed, and what Envoy does differently with it
    /// (`Envoy: …`; in the `--envoy` run this is what explains a difference).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What it produced (absent when it did not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observation>,
    /// Unmet expectations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Why it did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The result of one test.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    /// `<rule_id>-<test_id>`.
    pub title: String,
    /// The rule.
    pub rule_id: u32,
    /// The family (`942`).
    pub family: u32,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Per stage.
    pub stages: Vec<StageResult>,
}

impl TestResult {
    /// Whether this is a failure the deviations file does not explain.
    pub fn unexplained_failure(&self) -> bool {
        matches!(&self.verdict, Verdict::Failed { deviation: None, .. })
    }
}

/// Combines stage results into the test's verdict (a failure wins over a skip).
pub fn verdict_of(title: &str, stages: &[StageResult], deviations: &Deviations, envoy: bool) -> Verdict {
    let failures: Vec<String> = stages
        .iter()
        .enumerate()
        .flat_map(|(index, stage)| {
            stage
                .failures
                .iter()
                .map(move |f| if stages.len() > 1 { format!("stage {}: {f}", index + 1) } else { f.clone() })
        })
        .collect();
    if !failures.is_empty() {
        return Verdict::Failed { failures, deviation: deviations.reason(title, envoy).map(String::from) };
    }
    match stages.iter().find_map(|s| s.skipped.clone()) {
        Some(reason) => Verdict::Skipped { reason },
        None => Verdict::Passed,
    }
}

/// Why a prepared stage cannot be sent, if it cannot (in the harness).
pub fn harness_skip(stage: &PreparedStage, output: &ftw::Output) -> Option<String> {
    match (&stage.raw, &stage.translation) {
        (Err(error), _) => Some(format!("the request cannot be built as go-ftw does: {error}")),
        (_, Some(Translation::Rejected { status, reason })) => {
            let expected = match &output.status {
                Some(expected) if expected.accepts(*status) => " (the test expects that status)".to_string(),
                Some(expected) => format!(" (the test expects status {})", expected.describe()),
                None => String::new(),
            };
            Some(format!("an HTTP server answers {status} before any filter runs: {reason}{expected}"))
        }
        (_, Some(Translation::Unsupported(reason))) => Some(format!("not representable: {reason}")),
        _ => None,
    }
}

/// Runs the prepared tests through the WAF in the harness.
/// Also returns how often the plugin trapped (and was restarted), and the rules learnt to match
/// without logging.
pub fn run_harness(
    host: &mut Host,
    options: &Options,
    tests: &[PreparedTest],
) -> anyhow::Result<(Vec<TestResult>, usize, std::collections::BTreeSet<u32>)> {
    let mut waf = harness::HarnessWaf::start(host, &options.module, &options.config)?;
    let mut results = Vec::with_capacity(tests.len());
    for prepared in tests {
        let test = &prepared.test;
        let mut stages = Vec::new();
        if let Some(reason) = &prepared.skip {
            stages.push(StageResult {
                notes: Vec::new(),
                observed: None,
                failures: Vec::new(),
                skipped: Some(reason.clone()),
            });
        } else {
            for (stage, entry) in prepared.stages.iter().zip(&test.test.stages) {
                let output = &entry.stage().output;
                let mut result = StageResult { notes: Vec::new(), observed: None, failures: Vec::new(), skipped: None };
                if let Some(reason) = harness_skip(stage, output) {
                    result.skipped = Some(reason);
                } else if let Some(Translation::Request { request, notes, answered_by_envoy }) = &stage.translation {
                    result.notes = notes.iter().cloned().chain(stage.envoy_notes()).collect();
                    match waf.send(host, clone_request(request), *answered_by_envoy) {
                        Ok(observed) => {
                            result.failures = check::check(output, &observed);
                            result.observed = Some(observed);
                        }
                        Err(error) => result.failures.push(error),
                    }
                }
                stages.push(result);
            }
        }
        results.push(TestResult {
            title: test.title.clone(),
            rule_id: test.rule_id,
            family: test.family(),
            verdict: verdict_of(&test.title, &stages, &options.deviations, false),
            stages,
        });
    }
    Ok((results, waf.restarts, waf.nolog_known))
}

/// A copy of a request (the fixture type is not `Clone`: it is read from files once).
pub fn clone_request(request: &crate::fixture::Request) -> crate::fixture::Request {
    crate::fixture::Request {
        method: request.method.clone(),
        path: request.path.clone(),
        authority: request.authority.clone(),
        scheme: request.scheme.clone(),
        source: request.source.clone(),
        destination: request.destination.clone(),
        protocol: request.protocol.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
        trailers: request.trailers.clone(),
    }
}

/// The default tests directory: `$CRS_DIR/tests/regression/tests`, `CRS_DIR` defaulting to
/// `../shared/crs`.
pub fn default_tests_dir() -> PathBuf {
    let crs =
        std::env::var_os("CRS_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new("../shared/crs").to_path_buf());
    crs.join("tests/regression/tests")
}
