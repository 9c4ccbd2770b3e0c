//! Loads the embedded OWASP CRS (build with `--features crs`), prints every unsupported feature
//! by rule ID and feature, the features accepted without effect, and the load / compile times.
//! Exits 1 when a request-side rule uses anything unsupported (or the rules do not compile).
//!
//! `cargo run --release -p waf --features crs --example crs_check`

use std::process::ExitCode;

fn main() -> ExitCode {
    if !waf::crs::available() {
        eprintln!("crs_check: this build has no CRS; run with --features crs (and CRS_DIR)");
        return ExitCode::FAILURE;
    }
    let report = waf::crs::check();
    println!(
        "CRS {}: {} rule files, {} rules, {} automata ({} without a lazy DFA); parse {:?}, compile {:?}",
        waf::crs::version(),
        waf::crs::rule_files().len(),
        report.rule_count,
        report.automaton_count,
        report.automata_without_dfa,
        report.parse,
        report.compile
    );
    for ignored in &report.ignored {
        println!("ignored (no effect on the verdict): {ignored}");
    }
    for issue in &report.issues {
        println!("UNSUPPORTED: {issue}");
    }
    if let Some(error) = &report.compile_error {
        println!("COMPILE ERROR: {error}");
    }
    println!("unsupported features in request-side rules: {}", report.issues.len());
    if report.issues.is_empty() && report.compile_error.is_none() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
