//! `host-test bench`: requests per second and nanoseconds per request through a chain, in the
//! harness (the module cost without Envoy), with each VM's linear memory.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde::Serialize;

use crate::fixture::load_file;
use crate::host::Host;
use crate::runner::{Runner, StepOutcome};

/// What a benchmark measured.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// The case.
    pub case: String,
    /// The filters of the chain.
    pub filters: Vec<String>,
    /// Requests measured (after warm-up).
    pub requests: u64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Mean wall time per request, in nanoseconds.
    pub ns_per_request: f64,
    /// The same requests through the router alone (the harness's own cost), ns per request.
    pub baseline_ns_per_request: f64,
    /// What the filters add: `ns_per_request - baseline_ns_per_request`.
    pub filter_ns_per_request: f64,
    /// Linear memory of each VM after the run, in bytes.
    pub memory_bytes: Vec<usize>,
}

/// Replays the request steps of a case (the first, or the one named) round-robin on one
/// worker, `warmup` times unmeasured and then `requests` times measured; then the same through
/// the router alone, so that what the filters add is known apart from the harness's own cost.
pub fn run(host: &mut Host, file: &Path, case_name: Option<&str>, requests: u64, warmup: u64) -> Result<BenchReport> {
    let cases = load_file(file).map_err(|e| anyhow!(e))?;
    let loaded = match case_name {
        Some(name) => cases
            .iter()
            .find(|c| c.case.name == name)
            .ok_or_else(|| anyhow!("{}: no case named {name:?}", file.display()))?,
        None => cases.first().ok_or_else(|| anyhow!("{}: no cases", file.display()))?,
    };
    let case = &loaded.case;
    let steps: Vec<_> =
        case.steps.iter().filter_map(|s| s.request.as_ref().map(|r| (r, s.upstream.as_ref()))).collect();
    if steps.is_empty() {
        bail!("case {:?} has no request to replay", case.name);
    }
    let mut runner = Runner::new(host, case, &loaded.file)?;
    runner.start().map_err(|reason| anyhow!("the plugin failed to start: {reason}"))?;
    runner.world.borrow_mut().keep_logs = false;
    let mut outcome = StepOutcome::default();
    let mut replay = |runner: &mut Runner, index: u64| {
        let (request, upstream) = steps[(index % steps.len() as u64) as usize];
        runner.run_request(0, request, upstream, Duration::from_secs(10), &mut outcome);
    };
    let mut measure = |runner: &mut Runner| {
        for index in 0..warmup {
            replay(runner, index);
        }
        let started = Instant::now();
        for index in 0..requests {
            replay(runner, index);
        }
        started.elapsed().as_secs_f64() * 1e9 / requests.max(1) as f64
    };
    let ns_per_request = measure(&mut runner);
    let memory_bytes = runner.memory_bytes(0);
    let filters = runner.filter_names();
    runner.remove_filters();
    let baseline_ns_per_request = measure(&mut runner);
    Ok(BenchReport {
        case: case.name.clone(),
        filters,
        requests,
        requests_per_second: 1e9 / ns_per_request,
        ns_per_request,
        baseline_ns_per_request,
        filter_ns_per_request: ns_per_request - baseline_ns_per_request,
        memory_bytes,
    })
}
