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
    /// Linear memory of each VM after the run, in bytes.
    pub memory_bytes: Vec<usize>,
}

/// Replays the request steps of a case (the first, or the one named) round-robin on one
/// worker, `warmup` times unmeasured and then `requests` times measured.
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
    for index in 0..warmup {
        replay(&mut runner, index);
    }
    let started = Instant::now();
    for index in 0..requests {
        replay(&mut runner, index);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests_f = requests.max(1) as f64;
    Ok(BenchReport {
        case: case.name.clone(),
        filters: runner.filter_names(),
        requests,
        requests_per_second: requests_f / elapsed,
        ns_per_request: elapsed * 1e9 / requests_f,
        memory_bytes: runner.memory_bytes(0),
    })
}
