//! The `host-test` command: `replay` fixtures through filters, `bench` a chain.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use host_test::{DEFAULT_MODULE_PATH, Host, bench, crs, fixture, replay, report};

#[derive(Parser)]
#[command(
    name = "host-test",
    version,
    about = "Replays Proxy-Wasm filters through request fixtures, the way Envoy runs them"
)]
struct Cli {
    /// Directories searched for `<filter>.wasm`, separated by ':' (also HOST_TEST_MODULE_PATH).
    #[arg(long, global = true, env = "HOST_TEST_MODULE_PATH")]
    modules: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replays fixture files (or directories of them); exit status 1 if any case fails.
    Replay {
        /// Fixture files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write the results as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Print only failures and the summary.
        #[arg(long, short)]
        quiet: bool,
        /// Also print a table of results per fixture file.
        #[arg(long)]
        table: bool,
        /// Replay only the chains of wasm-shield filters, each merged into one module of this
        /// name (its stages in chain order): `shield` must behave exactly as the chain.
        #[arg(long, value_name = "MODULE")]
        as_shield: Option<String>,
    },
    /// Replays fixtures through a real Envoy as well, and checks that it agrees with the harness.
    Envoy {
        /// Fixture files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The Envoy binary.
        #[arg(long, env = "ENVOY_BIN", default_value = ".venv/bin/envoy")]
        envoy: PathBuf,
        /// Fail unless at least this percentage of cases ran in both (skipped cases do not).
        #[arg(long, default_value_t = 80.0)]
        min_coverage: f64,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Cases run at once, each with its own Envoy (default 2).
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Run only the chains of wasm-shield filters, each merged into one module of this name
        /// (as `replay --as-shield`).
        #[arg(long, value_name = "MODULE")]
        as_shield: Option<String>,
    },
    /// Runs CRS's go-ftw regression tests through the WAF module (and, with --envoy, real Envoy).
    Crs {
        /// The go-ftw tests directory (default: $CRS_DIR/tests/regression/tests, CRS_DIR
        /// defaulting to ../shared/crs).
        #[arg(long)]
        tests: Option<PathBuf>,
        /// The WAF module: a name in the module path, or a .wasm file.
        #[arg(long, default_value = "waf-crs")]
        module: String,
        /// The plugin configuration as JSON (or @FILE); default: CRS's test setup (paranoia
        /// level 4, detect mode, CRS's test tx settings).
        #[arg(long)]
        config: Option<String>,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only these rule families (942), rule IDs (942100) or test titles (942100-3).
        #[arg(long, num_args = 1..)]
        only: Vec<String>,
        /// Also run every test through real Envoy and compare.
        #[arg(long = "envoy")]
        through_envoy: bool,
        /// The Envoy binary for --envoy.
        #[arg(long, env = "ENVOY_BIN", default_value = ".venv/bin/envoy")]
        envoy_bin: PathBuf,
        /// Envoys run in parallel for --envoy.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// The reviewed deviations file (default: filters/waf/crs-deviations.yaml if present).
        #[arg(long)]
        deviations: Option<PathBuf>,
        /// Fail when fewer than this percentage of the selected request-side tests pass.
        #[arg(long)]
        min_pass_rate: Option<f64>,
        /// The same for the Envoy run (default: --min-pass-rate).
        #[arg(long)]
        min_envoy_pass_rate: Option<f64>,
        /// Failures not in the deviations file that do not fail the run (each is still listed);
        /// a CI gate against regressions while an engine gap is open.
        #[arg(long, default_value_t = 0)]
        max_unexplained: usize,
        /// Print only the tables and the failures.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Measures requests/s and ns/request through the chain of a fixture case.
    Bench {
        /// The fixture file.
        file: PathBuf,
        /// The case to run (default: the first).
        #[arg(long)]
        case: Option<String>,
        /// Requests to measure.
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
        /// Requests to run before measuring.
        #[arg(long, default_value_t = 1_000)]
        warmup: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let module_path: Vec<PathBuf> = match &cli.modules {
        Some(list) => list.split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect(),
        None => DEFAULT_MODULE_PATH.iter().map(PathBuf::from).collect(),
    };
    let mut host = match Host::new(module_path) {
        Ok(host) => host,
        Err(error) => {
            eprintln!("host-test: {error:#}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Replay { paths, json, junit, quiet, table, as_shield } => {
            let files = match fixture::discover(&paths) {
                Ok(files) => files,
                Err(error) => {
                    eprintln!("host-test: {error}");
                    return ExitCode::from(2);
                }
            };
            let results = match &as_shield {
                None => replay::run_files(&mut host, &files),
                Some(module) => {
                    let (results, not_chains) = replay::run_files_as_shield(&mut host, &files, module);
                    println!("{} chain cases replayed as {module} ({not_chains} other cases not run)", results.len());
                    results
                }
            };
            let text = report::text(&results);
            for line in text.lines() {
                if !quiet || !line.starts_with("PASS ") {
                    println!("{line}");
                }
            }
            if table {
                println!();
                print!("{}", report::table(&results));
            }
            if let Some(path) = json {
                let written = report::json(&results)
                    .map_err(|e| e.to_string())
                    .and_then(|t| std::fs::write(&path, t).map_err(|e| e.to_string()));
                if let Err(error) = written {
                    eprintln!("host-test: writing {}: {error}", path.display());
                    return ExitCode::from(2);
                }
            }
            if let Some(path) = junit
                && let Err(error) = std::fs::write(&path, report::junit(&results))
            {
                eprintln!("host-test: writing {}: {error}", path.display());
                return ExitCode::from(2);
            }
            if results.iter().all(|r| r.passed) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::Envoy { paths, envoy, min_coverage, json, as_shield, jobs } => {
            let files = match fixture::discover(&paths) {
                Ok(files) => files,
                Err(error) => {
                    eprintln!("host-test: {error}");
                    return ExitCode::from(2);
                }
            };
            let results = match &as_shield {
                None => host_test::envoy::run_files(&mut host, &files, &envoy, jobs),
                Some(module) => host_test::envoy::run_files_as_shield(&mut host, &files, &envoy, module, jobs),
            };
            print!("{}", host_test::envoy::report(&results, min_coverage));
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&results).unwrap_or_default();
                if let Err(error) = std::fs::write(&path, text) {
                    eprintln!("host-test: writing {}: {error}", path.display());
                    return ExitCode::from(2);
                }
            }
            if host_test::envoy::succeeded(&results, min_coverage) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::Crs {
            tests,
            module,
            config,
            json,
            only,
            through_envoy,
            envoy_bin,
            jobs,
            deviations,
            min_pass_rate,
            min_envoy_pass_rate,
            max_unexplained,
            quiet,
        } => {
            let args = crs::command::Args {
                tests,
                module,
                config,
                json,
                only,
                envoy: through_envoy.then_some(envoy_bin),
                jobs,
                deviations,
                min_pass_rate,
                min_envoy_pass_rate,
                max_unexplained,
                quiet,
            };
            ExitCode::from(crs::command::run(&mut host, args))
        }
        Command::Bench { file, case, requests, warmup, json } => {
            match bench::run(&mut host, &file, case.as_deref(), requests, warmup) {
                Ok(report) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
                    } else {
                        println!(
                            "{}: {} -> {:.0} requests/s, {:.0} ns/request ({:.0} ns the harness alone, {:.0} ns the \
                             filters) over {} requests; linear memory {:?} bytes",
                            report.case,
                            report.filters.join(" -> "),
                            report.requests_per_second,
                            report.ns_per_request,
                            report.baseline_ns_per_request,
                            report.filter_ns_per_request,
                            report.requests,
                            report.memory_bytes
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("host-test: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
