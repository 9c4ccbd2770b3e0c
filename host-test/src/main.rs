//! The `host-test` command: `replay` fixtures through filters, `bench` a chain.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use host_test::{DEFAULT_MODULE_PATH, Host, bench, fixture, replay, report};

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
        Command::Replay { paths, json, junit, quiet, table } => {
            let files = match fixture::discover(&paths) {
                Ok(files) => files,
                Err(error) => {
                    eprintln!("host-test: {error}");
                    return ExitCode::from(2);
                }
            };
            let results = replay::run_files(&mut host, &files);
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
        Command::Envoy { paths, envoy, min_coverage, json } => {
            let files = match fixture::discover(&paths) {
                Ok(files) => files,
                Err(error) => {
                    eprintln!("host-test: {error}");
                    return ExitCode::from(2);
                }
            };
            let results = host_test::envoy::run_files(&mut host, &files, &envoy);
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
