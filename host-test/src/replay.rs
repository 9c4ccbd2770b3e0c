//! Replays fixture cases: each case on fresh VMs, its steps in order, every mismatch recorded.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::expect::{check_logs, check_step};
use crate::fixture::LoadedCase;
use crate::host::Host;
use crate::runner::{Runner, StepOutcome};

/// The result of one step.
#[derive(Debug, Serialize)]
pub struct StepResult {
    /// Position in the case (0-based).
    pub index: usize,
    /// The step's label.
    pub name: Option<String>,
    /// What it produced.
    pub outcome: StepOutcome,
    /// How it differed from the expectation.
    pub mismatches: Vec<String>,
}

/// The result of one case.
#[derive(Debug, Serialize)]
pub struct CaseResult {
    /// The fixture file.
    pub file: String,
    /// The case's position in its file.
    pub index: usize,
    /// The case name.
    pub name: String,
    /// Whether every expectation held.
    pub passed: bool,
    /// A failure before any step could run (module, start).
    pub error: Option<String>,
    /// Step results.
    pub steps: Vec<StepResult>,
    /// The filters' log lines of the whole case, for failure reports.
    pub logs: Vec<String>,
    /// Wall time of the case in milliseconds.
    pub millis: f64,
    /// Why the case does not run in real Envoy, when it does not.
    pub envoy_skip: Option<String>,
}

impl CaseResult {
    /// `file::name`.
    pub fn label(&self) -> String {
        format!("{}::{}", self.file, self.name)
    }
}

/// Runs one case on fresh VMs.
pub fn run_case(host: &mut Host, loaded: &LoadedCase) -> CaseResult {
    let started = Instant::now();
    let case = &loaded.case;
    let mut result = CaseResult {
        file: loaded.file.display().to_string(),
        index: loaded.index,
        name: case.name.clone(),
        passed: false,
        error: None,
        steps: Vec::new(),
        logs: Vec::new(),
        millis: 0.0,
        envoy_skip: case.envoy.as_ref().and_then(|e| e.skip.clone()),
    };
    let mut runner = match Runner::new(host, case, &loaded.file) {
        Ok(runner) => runner,
        Err(error) => {
            result.error = Some(format!("{error:#}"));
            result.millis = started.elapsed().as_secs_f64() * 1e3;
            return result;
        }
    };
    let start = runner.start();
    let start_logs = runner.world.borrow().logs.clone();
    let mut failures = Vec::new();
    match (&case.expect_start, start) {
        (Some(expect), outcome) => {
            match (expect.fails, &outcome) {
                (true, Ok(())) => {
                    failures.push("expect_start.fails: the plugin started, but it was expected to refuse".into())
                }
                (false, Err(reason)) => failures.push(format!("plugin failed to start: {reason}")),
                _ => {}
            }
            if let Some(logs) = &expect.logs {
                check_logs("expect_start.logs", &start_logs, logs, &mut failures);
            }
            if outcome.is_err() {
                result.error = (!failures.is_empty()).then(|| failures.join("; "));
                result.passed = failures.is_empty();
                result.logs = start_logs.iter().map(ToString::to_string).collect();
                result.millis = started.elapsed().as_secs_f64() * 1e3;
                return result;
            }
        }
        (None, Err(reason)) => failures.push(format!("plugin failed to start: {reason}")),
        (None, Ok(())) => {}
    }
    if !failures.is_empty() {
        result.error = Some(failures.join("; "));
        result.logs = start_logs.iter().map(ToString::to_string).collect();
        result.millis = started.elapsed().as_secs_f64() * 1e3;
        return result;
    }
    for (index, step) in case.steps.iter().enumerate() {
        let outcome = runner.step(step);
        let mismatches = check_step(&outcome, step.expect.as_ref());
        result.steps.push(StepResult { index, name: step.name.clone(), outcome, mismatches });
    }
    result.passed = result.steps.iter().all(|s| s.mismatches.is_empty());
    result.logs = runner.world.borrow().logs.iter().map(ToString::to_string).collect();
    result.millis = started.elapsed().as_secs_f64() * 1e3;
    result
}

/// Loads and runs every case of the given files; a file that does not parse is one failed case.
pub fn run_files(host: &mut Host, files: &[std::path::PathBuf]) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for file in files {
        match crate::fixture::load_file(file) {
            Ok(cases) => results.extend(cases.iter().map(|case| run_case(host, case))),
            Err(error) => results.push(load_failure(file, error)),
        }
    }
    results
}

/// Replays the chain cases of `files` with each chain merged into one `module` (`shield`), see
/// [`crate::merge`]; also returns how many cases were not chains of shield stages (not run).
pub fn run_files_as_shield(host: &mut Host, files: &[std::path::PathBuf], module: &str) -> (Vec<CaseResult>, usize) {
    let mut results = Vec::new();
    let mut not_chains = 0;
    for file in files {
        match crate::fixture::load_file(file) {
            Ok(cases) => {
                for case in cases {
                    match crate::merge::into_shield(case, module) {
                        Ok(merged) => results.push(run_case(host, &merged)),
                        Err(_) => not_chains += 1,
                    }
                }
            }
            Err(error) => results.push(load_failure(file, error)),
        }
    }
    (results, not_chains)
}

fn load_failure(file: &Path, error: String) -> CaseResult {
    CaseResult {
        file: file.display().to_string(),
        index: 0,
        name: "(fixture file)".into(),
        passed: false,
        error: Some(error),
        steps: Vec::new(),
        logs: Vec::new(),
        millis: 0.0,
        envoy_skip: None,
    }
}
