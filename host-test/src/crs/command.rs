//! The `host-test crs` command: run, print, write JSON, and decide the exit status.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::deviations::Deviations;
use super::{Options, TestResult, Verdict, envoy, report};
use crate::host::Host;

/// The deviations file read when `--deviations` is not given (if it exists).
pub const DEFAULT_DEVIATIONS: &str = "filters/waf/crs-deviations.yaml";

/// The command's arguments.
pub struct Args {
    /// The go-ftw tests directory.
    pub tests: Option<PathBuf>,
    /// The module.
    pub module: String,
    /// The configuration (JSON text, or `@file`).
    pub config: Option<String>,
    /// JSON report path.
    pub json: Option<PathBuf>,
    /// Rule IDs or test titles.
    pub only: Vec<String>,
    /// Also through Envoy, with this binary.
    pub envoy: Option<PathBuf>,
    /// Parallel Envoys.
    pub jobs: usize,
    /// The deviations file.
    pub deviations: Option<PathBuf>,
    /// Fail under this pass rate in the harness (percent of all selected request-side tests).
    pub min_pass_rate: Option<f64>,
    /// Fail under this pass rate in Envoy (default: `min_pass_rate`).
    pub min_envoy_pass_rate: Option<f64>,
    /// Failures not in the deviations file that are tolerated (default 0). For a CI gate while
    /// an engine gap is being closed: the run still lists every one of them, and fails when there
    /// are more (a regression).
    pub max_unexplained: usize,
    /// Print only the summary and failures.
    pub quiet: bool,
}

fn load_config(text: Option<&str>) -> Result<serde_json::Value, String> {
    match text {
        None => Ok(super::default_config()),
        Some(text) => {
            let text = match text.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).map_err(|e| format!("--config {path}: {e}"))?,
                None => text.to_string(),
            };
            serde_json::from_str(&text).map_err(|e| format!("--config: not JSON: {e}"))
        }
    }
}

fn summary_json(results: &[TestResult], seconds: f64) -> serde_json::Value {
    let (families, total) = report::counts(results);
    json!({
        "seconds": seconds,
        "total": total,
        "pass_rate": total.pass_rate(),
        "families": families.iter().map(|(f, c)| (f.to_string(), json!(c))).collect::<serde_json::Map<_, _>>(),
        "results": results,
    })
}

fn print_results(label: &str, results: &[TestResult], seconds: f64, quiet: bool) {
    println!("== {label}: {} tests in {seconds:.1} s", results.len());
    print!("{}", report::table(results));
    let failures = report::failures(results);
    if !failures.is_empty() {
        println!("-- failures ({label}):");
        print!("{failures}");
    }
    if !quiet {
        let skips = report::skip_reasons(results);
        if !skips.is_empty() {
            println!("-- skipped ({label}):");
            print!("{skips}");
        }
    }
}

/// Whether `results` make the run fail: more unexplained failures than `tolerated`, or a pass
/// rate under `minimum`.
fn failed(label: &str, results: &[TestResult], minimum: Option<f64>, tolerated: usize) -> bool {
    let unexplained = results.iter().filter(|r| r.unexplained_failure()).count();
    let (_, total) = report::counts(results);
    let mut failed = false;
    if unexplained > 0 {
        println!("{label}: {unexplained} failures not listed in the deviations file ({tolerated} tolerated)");
        failed = unexplained > tolerated;
    }
    if let Some(minimum) = minimum
        && total.pass_rate() < minimum
    {
        println!("{label}: pass rate {:.2}% is under the required {minimum:.2}%", total.pass_rate());
        failed = true;
    }
    failed
}

/// Runs the command; the process exit status (0 ok, 1 failures, 2 could not run).
pub fn run(host: &mut Host, args: Args) -> u8 {
    let config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("host-test crs: {error}");
            return 2;
        }
    };
    let deviations = match &args.deviations {
        Some(path) => Deviations::load(path),
        None if Path::new(DEFAULT_DEVIATIONS).is_file() => Deviations::load(Path::new(DEFAULT_DEVIATIONS)),
        None => Ok(Deviations::default()),
    };
    let deviations = match deviations {
        Ok(deviations) => deviations,
        Err(error) => {
            eprintln!("host-test crs: {error}");
            return 2;
        }
    };
    let tests_dir = args.tests.clone().unwrap_or_else(super::default_tests_dir);
    let options =
        Options { tests: tests_dir.clone(), module: args.module.clone(), config, only: args.only.clone(), deviations };
    let prepared = match super::prepare(&options) {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("host-test crs: {error}");
            return 2;
        }
    };
    if prepared.is_empty() {
        eprintln!("host-test crs: no tests selected under {}", tests_dir.display());
        return 2;
    }
    let started = Instant::now();
    let (harness, restarts, nolog) = match super::run_harness(host, &options, &prepared) {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("host-test crs: {error:#}");
            return 2;
        }
    };
    let harness_seconds = started.elapsed().as_secs_f64();
    print_results("harness", &harness, harness_seconds, args.quiet);
    if restarts > 0 {
        println!("harness: the plugin trapped and was restarted {restarts} times");
    }
    let mut report = json!({
        "module": options.module,
        "config": options.config,
        "tests": tests_dir.display().to_string(),
        "deviations_listed": options.deviations.len(),
        "harness": summary_json(&harness, harness_seconds),
    });
    let mut status = u8::from(failed("harness", &harness, args.min_pass_rate, args.max_unexplained));
    if let Some(binary) = &args.envoy {
        let started = Instant::now();
        match envoy::run(host, &options, &prepared, binary, args.jobs) {
            Ok(seen) => {
                let (results, differences) = envoy::evaluate(&options, &prepared, &harness, &seen, &nolog);
                let seconds = started.elapsed().as_secs_f64();
                print_results("envoy", &results, seconds, args.quiet);
                let unexplained = differences.iter().filter(|d| d.explained_by.is_none()).count();
                println!(
                    "-- Envoy and the harness differ on {} stages ({unexplained} not explained by what Envoy does \
                     differently):",
                    differences.len()
                );
                for difference in &differences {
                    println!("DIFF {} stage {}: {}", difference.title, difference.stage, difference.detail);
                    match &difference.explained_by {
                        Some(reason) => println!("     because {reason}"),
                        None => println!("     UNEXPLAINED"),
                    }
                }
                report["envoy"] = summary_json(&results, seconds);
                report["differences"] = json!(differences);
                report["differences_unexplained"] = json!(unexplained);
                let rejected = results
                    .iter()
                    .filter(
                        |r| matches!(&r.verdict, Verdict::Skipped { reason } if reason.starts_with("Envoy answered")),
                    )
                    .count();
                report["envoy"]["answered_by_envoy"] = json!(rejected);
                if failed("envoy", &results, args.min_envoy_pass_rate.or(args.min_pass_rate), args.max_unexplained) {
                    status = 1;
                }
            }
            Err(error) => {
                eprintln!("host-test crs: envoy: {error:#}");
                status = 2;
            }
        }
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(error) = std::fs::write(path, text) {
            eprintln!("host-test crs: writing {}: {error}", path.display());
            return 2;
        }
    }
    status
}
