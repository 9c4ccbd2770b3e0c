//! `host-test envoy`: runs the same fixtures through a real Envoy (V8 runtime) and checks that
//! Envoy meets each step's `expect` block and agrees with the harness.
//!
//! Per case: the harness runs it twice (the second time with another seed and clock, so that
//! headers depending on randomness or time are known and compared by presence only), then a
//! fresh Envoy runs it with `--concurrency` = `workers`, behind mock servers on 127.0.0.1.

pub(crate) mod bootstrap;
mod client;
mod compare;
pub(crate) mod http1;
pub(crate) mod mock;
pub(crate) mod process;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::abi::LogLevel;
use crate::expect::{check_logs, check_step};
use crate::fixture::{Case, LoadedCase};
use crate::host::Host;
use crate::runner::{CallRecord, LocalReplyRecord, Message, Runner, StepOutcome};
use crate::vm::LocalReply;
use crate::world::LogLine;
use mock::{Behaviour, MockServer};
use process::{Envoy, free_port};

/// The longest clock jump a step may make and still be replayed in Envoy by waiting.
pub const MAX_REAL_WAIT: Duration = Duration::from_secs(2);

/// How a case fared in Envoy.
#[derive(Debug, Serialize)]
#[serde(tag = "verdict", content = "detail", rename_all = "snake_case")]
pub enum Verdict {
    /// Envoy met the expectations and agreed with the harness.
    Passed,
    /// What went wrong.
    Failed(Vec<String>),
    /// Why the case cannot run in Envoy.
    Skipped(String),
}

/// The result of one case in Envoy.
#[derive(Debug, Serialize)]
pub struct EnvoyCaseResult {
    /// The fixture file.
    pub file: String,
    /// The case name.
    pub name: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Envoy's log, kept for a failed case.
    pub envoy_log: Vec<String>,
    /// Wall time in milliseconds.
    pub millis: f64,
}

/// Runs the chain cases of `files` with each chain merged into one `module` (`shield`), as
/// `host-test replay --as-shield` does in the harness; other cases are not run.
pub fn run_files_as_shield(
    host: &mut Host,
    files: &[PathBuf],
    binary: &Path,
    module: &str,
    jobs: usize,
) -> Vec<EnvoyCaseResult> {
    let mut work = Vec::new();
    for file in files {
        let Ok(cases) = crate::fixture::load_file(file) else { continue };
        for loaded in cases.into_iter().filter_map(|case| crate::merge::into_shield(case, module).ok()) {
            work.push(Work::Case(file.clone(), Box::new(loaded)));
        }
    }
    run_parallel(host, &work, binary, jobs)
}

/// Runs one case in Envoy and times it.
fn run_loaded(host: &mut Host, file: &Path, loaded: &crate::fixture::LoadedCase, binary: &Path) -> EnvoyCaseResult {
    let started = Instant::now();
    let (verdict, envoy_log) = match run_case(host, loaded, binary) {
        Ok(outcome) => outcome,
        Err(error) => (Verdict::Failed(vec![format!("{error:#}")]), Vec::new()),
    };
    let envoy_log = if matches!(verdict, Verdict::Failed(_)) { envoy_log } else { Vec::new() };
    EnvoyCaseResult {
        file: file.display().to_string(),
        name: loaded.case.name.clone(),
        verdict,
        envoy_log,
        millis: started.elapsed().as_secs_f64() * 1e3,
    }
}

/// Runs every case of `files` through Envoy at `binary`, `jobs` cases (each its own Envoy) at once.
pub fn run_files(host: &mut Host, files: &[PathBuf], binary: &Path, jobs: usize) -> Vec<EnvoyCaseResult> {
    let mut work = Vec::new();
    for file in files {
        match crate::fixture::load_file(file) {
            Ok(cases) => work.extend(cases.into_iter().map(|loaded| Work::Case(file.clone(), Box::new(loaded)))),
            Err(error) => work.push(Work::Unreadable(file.clone(), error)),
        }
    }
    run_parallel(host, &work, binary, jobs)
}

/// A case to run, or a fixture file that could not be read (reported as a failed case).
enum Work {
    Case(PathBuf, Box<LoadedCase>),
    Unreadable(PathBuf, String),
}

/// Runs `work` with `jobs` threads, each with its own harness host (the first one is `host`) and
/// one Envoy at a time: cases are independent (each starts its own Envoy on free ports), and
/// while one Envoy compiles its modules another case can send requests. Results keep the order
/// of `work`.
fn run_parallel(host: &mut Host, work: &[Work], binary: &Path, jobs: usize) -> Vec<EnvoyCaseResult> {
    let jobs = jobs.clamp(1, work.len().max(1));
    let run_share = |host: &mut Host, job: usize| -> Vec<(usize, EnvoyCaseResult)> {
        let mut done = Vec::new();
        for (index, item) in work.iter().enumerate().filter(|(index, _)| index % jobs == job) {
            let result = match item {
                Work::Case(file, loaded) => run_loaded(host, file, loaded, binary),
                Work::Unreadable(file, error) => EnvoyCaseResult {
                    file: file.display().to_string(),
                    name: "(fixture file)".into(),
                    verdict: Verdict::Failed(vec![error.clone()]),
                    envoy_log: Vec::new(),
                    millis: 0.0,
                },
            };
            done.push((index, result));
        }
        done
    };
    let module_path = host.module_path.clone();
    let mut results: Vec<(usize, EnvoyCaseResult)> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..jobs)
            .map(|job| {
                let module_path = module_path.clone();
                let run_share = &run_share;
                scope.spawn(move || match Host::new(module_path) {
                    Ok(mut host) => run_share(&mut host, job),
                    Err(error) => work
                        .iter()
                        .enumerate()
                        .filter(|(index, _)| index % jobs == job)
                        .map(|(index, _)| {
                            let result = EnvoyCaseResult {
                                file: String::new(),
                                name: format!("(job {job})"),
                                verdict: Verdict::Failed(vec![format!("creating the harness host: {error:#}")]),
                                envoy_log: Vec::new(),
                                millis: 0.0,
                            };
                            (index, result)
                        })
                        .collect(),
                })
            })
            .collect();
        let mut all = run_share(host, 0);
        for handle in others {
            match handle.join() {
                Ok(done) => all.extend(done),
                Err(_) => all.push((
                    usize::MAX,
                    EnvoyCaseResult {
                        file: String::new(),
                        name: "(a job thread)".into(),
                        verdict: Verdict::Failed(vec!["a job thread panicked".into()]),
                        envoy_log: Vec::new(),
                        millis: 0.0,
                    },
                )),
            }
        }
        all
    });
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Why a case cannot be replayed in Envoy as written, if it cannot.
fn unreproducible(case: &Case) -> Option<String> {
    for (index, step) in case.steps.iter().enumerate() {
        if let Some(advance) = step.advance
            && advance.0 > MAX_REAL_WAIT
        {
            return Some(format!(
                "step {} advances the clock by {:?}, more than the {:?} the runner waits for real; \
                 give the case `envoy: {{skip: \"reason\"}}`",
                index + 1,
                advance.0,
                MAX_REAL_WAIT
            ));
        }
    }
    None
}

/// The harness outcomes of a case's steps (or the reason its start failed).
fn harness_run(
    host: &mut Host,
    loaded: &LoadedCase,
    seed_delta: u64,
    clock_shift: Duration,
) -> Result<Result<Vec<StepOutcome>, String>> {
    let mut runner = Runner::with_variation(host, &loaded.case, &loaded.file, seed_delta, clock_shift)?;
    if let Err(reason) = runner.start() {
        return Ok(Err(reason));
    }
    Ok(Ok(loaded.case.steps.iter().map(|step| runner.step(step)).collect()))
}

fn run_case(host: &mut Host, loaded: &LoadedCase, binary: &Path) -> Result<(Verdict, Vec<String>)> {
    let case = &loaded.case;
    if let Some(reason) = case.envoy.as_ref().and_then(|e| e.skip.clone()) {
        return Ok((Verdict::Skipped(reason), Vec::new()));
    }
    if let Some(reason) = unreproducible(case) {
        return Ok((Verdict::Failed(vec![reason]), Vec::new()));
    }
    let harness = harness_run(host, loaded, 0, Duration::ZERO)?;
    let variant = harness_run(host, loaded, 1, Duration::from_secs(86_400))?;

    let fixture_dir = loaded.file.parent().unwrap_or(Path::new("."));
    let mut modules = Vec::new();
    for filter in &case.filters {
        let path = host.resolve(&filter.name, filter.wasm.as_deref(), fixture_dir)?;
        modules.push(path.canonicalize().with_context(|| format!("{}", path.display()))?);
    }
    let module_refs: Vec<&Path> = modules.iter().map(PathBuf::as_path).collect();

    let upstream = MockServer::start()?;
    let cluster_names = case.cluster_names();
    let mut clusters = BTreeMap::new();
    let mut cluster_servers = BTreeMap::new();
    for name in cluster_names {
        let server = MockServer::start()?;
        clusters.insert(name.clone(), server.port);
        cluster_servers.insert(name, server);
    }
    let (listen_port, admin_port) = (free_port()?, free_port()?);
    let layout = bootstrap::Layout {
        listen_port,
        admin_port,
        upstream_port: upstream.port,
        clusters: &clusters,
        modules: &module_refs,
    };
    let config = bootstrap::bootstrap(case, &layout);
    let dir = std::env::temp_dir().join(format!("host-test-envoy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let bootstrap_path = dir.join(format!("{}.yaml", listen_port));
    std::fs::write(&bootstrap_path, serde_json::to_string_pretty(&config)?)?;
    set_answers(case, &cluster_servers, &[]);

    // Envoy has one level for every Wasm filter: the most verbose one the case asks for.
    let wasm_log_level = case.filters.iter().map(|f| f.log_level.unwrap_or(LogLevel::Trace)).min();
    let mut envoy =
        Envoy::start(binary, &bootstrap_path, case.workers, admin_port, wasm_log_level.unwrap_or(LogLevel::Trace))?;
    let verdict = drive(case, &mut envoy, harness, variant, &upstream, &cluster_servers, listen_port);
    let _ = std::fs::remove_file(&bootstrap_path);
    verdict
}

/// Points every cluster server at the case's answers and the step's.
fn set_answers(case: &Case, servers: &BTreeMap<String, MockServer>, step_answers: &[crate::fixture::HttpCallAnswer]) {
    for (name, server) in servers {
        let answers = step_answers.iter().chain(&case.http_calls).cloned().collect();
        server.set(Behaviour::Cluster { name: name.clone(), answers });
    }
}

/// Runs the case's steps against a started Envoy.
fn drive(
    case: &Case,
    envoy: &mut Envoy,
    harness: Result<Vec<StepOutcome>, String>,
    variant: Result<Vec<StepOutcome>, String>,
    upstream: &MockServer,
    cluster_servers: &BTreeMap<String, MockServer>,
    listen_port: u16,
) -> Result<(Verdict, Vec<String>)> {
    // A plugin expected to refuse its configuration: Envoy must refuse to start (fail closed).
    if let Some(expect) = &case.expect_start
        && expect.fails
    {
        let mut problems = Vec::new();
        match envoy.wait_exit(Duration::from_secs(20))? {
            Some(status) if !status.success() => {}
            Some(status) => problems.push(format!("envoy exited with {status}, expected a failure status")),
            None => {
                if envoy.wait_ready(Duration::from_millis(10)).is_ok() {
                    problems
                        .push("envoy started serving, but the plugin configuration should have been refused".into());
                } else {
                    problems.push("envoy neither refused the configuration nor became ready within 20s".into());
                }
            }
        }
        let log = envoy.log_since(0);
        if let Some(logs) = &expect.logs {
            check_logs("envoy expect_start.logs", &wasm_log_lines(&log), logs, &mut problems);
        }
        if harness.is_ok() {
            problems.push("differs: the harness started the plugin, Envoy refused it".into());
        }
        return Ok((if problems.is_empty() { Verdict::Passed } else { Verdict::Failed(problems) }, log));
    }
    if let Err(error) = envoy.wait_ready(Duration::from_secs(30)) {
        let log = envoy.log_since(0);
        let mut problems = vec![format!("envoy did not start: {error:#}")];
        if let Err(reason) = &harness {
            problems.push(format!("(the harness refused the start too: {reason})"));
        }
        return Ok((Verdict::Failed(problems), log));
    }
    let (harness, variant) = match (harness, variant) {
        (Ok(h), Ok(v)) => (h, v),
        (Err(reason), _) | (_, Err(reason)) => {
            return Ok((
                Verdict::Failed(vec![format!("differs: Envoy started the plugin, the harness refused it: {reason}")]),
                envoy.log_since(0),
            ));
        }
    };

    // The .venv Python beside the Envoy binary runs the HTTP/2 client.
    let python = envoy.binary.with_file_name("python");
    let mut problems = Vec::new();
    // What the plugins logged while starting, checked as the harness checks it.
    if let Some(logs) = case.expect_start.as_ref().and_then(|e| e.logs.as_ref()) {
        check_logs("envoy expect_start.logs", &wasm_log_lines(&envoy.log_since(0)), logs, &mut problems);
    }
    for (index, step) in case.steps.iter().enumerate() {
        let upstream_behaviour = match &step.upstream {
            Some(u) => Behaviour::Upstream {
                status: u.status,
                headers: u.headers.clone(),
                body: u.body.chunks().concat().into_bytes(),
                trailers: u.trailers.clone(),
            },
            None => Behaviour::Upstream {
                status: 200,
                headers: Default::default(),
                body: Vec::new(),
                trailers: Default::default(),
            },
        };
        upstream.set(upstream_behaviour);
        set_answers(case, cluster_servers, &step.http_calls);
        for server in cluster_servers.values() {
            server.take_received();
        }
        let _ = upstream.take_received();
        let log_start = envoy.log_len();
        // The clock moves after the step's log and calls start counting: ticks on the way
        // belong to this step, as in the harness.
        if let Some(advance) = step.advance {
            std::thread::sleep(advance.0);
        }
        let response = match &step.request {
            Some(request) => match client::send(listen_port, request, &python) {
                Ok(response) => response,
                Err(error) => {
                    problems.push(format!("step {}: sending the request: {error:#}", index + 1));
                    break;
                }
            },
            None => None,
        };
        settle_log(envoy);
        let received = upstream.take_received();
        let log = envoy.log_since(log_start);
        let stats = envoy.stats().unwrap_or_default();
        let mut envoy_outcome =
            outcome_from_envoy(step.request.is_some(), response, received.first(), &log, &stats, &harness[index]);
        for (cluster, server) in cluster_servers {
            for call in server.take_received() {
                let mut parts = call.start_line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
                envoy_outcome.http_calls.push(CallRecord {
                    filter: String::new(),
                    cluster: cluster.clone(),
                    method,
                    path,
                });
            }
        }
        let label = format!("step {}", index + 1);
        for mismatch in check_step(&envoy_outcome, step.expect.as_ref()) {
            problems.push(format!("{label}: envoy: {mismatch}"));
        }
        let clock_dependent = case.envoy.as_ref().map(|e| e.clock_dependent_headers.as_slice()).unwrap_or_default();
        for difference in compare::differences(&harness[index], &variant[index], &envoy_outcome, clock_dependent) {
            problems.push(format!("{label}: differs: {difference}"));
        }
        if !envoy.running() {
            problems.push(format!("{label}: envoy exited"));
            break;
        }
    }
    let log = envoy.log_since(0);
    Ok((if problems.is_empty() { Verdict::Passed } else { Verdict::Failed(problems) }, log))
}

/// Waits until Envoy has logged nothing new for 60 ms (at most 600 ms): the stream's
/// `proxy_on_log` lines come after the response.
fn settle_log(envoy: &Envoy) {
    let deadline = Instant::now() + Duration::from_millis(600);
    let mut seen = envoy.log_len();
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        let now = envoy.log_len();
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_millis(60) {
            return;
        }
    }
}

/// Envoy's `wasm log` lines as log lines (the message after the prefix).
fn wasm_log_lines(log: &[String]) -> Vec<LogLine> {
    log.iter()
        .filter_map(|line| {
            let at = line.find("wasm log")?;
            let rest = &line[at..];
            let message = rest.split_once(": ").map(|(_, m)| m).unwrap_or(rest);
            let level = if line.contains("[critical]") {
                LogLevel::Critical
            } else if line.contains("[error]") {
                LogLevel::Error
            } else if line.contains("[warning]") {
                LogLevel::Warn
            } else if line.contains("[info]") {
                LogLevel::Info
            } else if line.contains("[debug]") {
                LogLevel::Debug
            } else {
                LogLevel::Trace
            };
            Some(LogLine { worker: 0, filter: String::new(), level, message: message.to_string() })
        })
        .collect()
}

fn message_of(m: &http1::Http1Message) -> Message {
    Message {
        headers: m.headers.clone(),
        body: String::from_utf8_lossy(&m.body).into_owned(),
        trailers: m.trailers.clone(),
    }
}

/// What Envoy did in a step, as a `StepOutcome` the fixture's expectations can be checked on.
fn outcome_from_envoy(
    sent: bool,
    response: Option<http1::Http1Message>,
    upstream: Option<&http1::Http1Message>,
    log: &[String],
    stats: &BTreeMap<String, i64>,
    harness: &StepOutcome,
) -> StepOutcome {
    let mut outcome = StepOutcome::default();
    outcome.upstream_request = upstream.map(|request| {
        // Give the request line and host back as the pseudo-headers the harness records.
        let mut parts = request.start_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut message = message_of(request);
        let authority = request.header("host").unwrap_or("").to_string();
        message.headers.retain(|(k, _)| k != "host");
        let mut headers =
            vec![(":authority".to_string(), authority), (":path".to_string(), path), (":method".to_string(), method)];
        headers.append(&mut message.headers);
        message.headers = headers;
        message
    });
    outcome.response = response.map(|response| {
        let status = response.start_line.split_whitespace().nth(1).unwrap_or("0").to_string();
        let mut message = message_of(&response);
        message.headers.insert(0, (":status".to_string(), status));
        message
    });
    outcome.reset = sent && outcome.response.is_none();
    if sent
        && outcome.upstream_request.is_none()
        && let Some(response) = &outcome.response
    {
        // Envoy does not say which filter answered: the client's response is the local reply.
        let status = response.status().unwrap_or(0);
        outcome.local_reply = Some(LocalReplyRecord {
            filter: harness.local_reply.as_ref().map(|r| r.filter.clone()).unwrap_or_default(),
            reply: LocalReply {
                status: u32::from(status),
                details: harness.local_reply.as_ref().map(|r| r.reply.details.clone()).unwrap_or_default(),
                body: response.body.clone().into_bytes(),
                headers: Vec::new(),
            },
            headers: response.headers.clone(),
        });
    }
    outcome.logs = wasm_log_lines(log);
    outcome.traps = log
        .iter()
        .filter(|l| {
            l.contains("wasm trap")
                || l.contains("Wasm VM failed")
                || (l.contains("Function: proxy_on_") && l.contains("failed"))
        })
        .cloned()
        .collect();
    // Envoy files Wasm-defined metrics under the `wasmcustom.` prefix.
    outcome.metrics = stats.iter().map(|(k, v)| (k.strip_prefix("wasmcustom.").unwrap_or(k).to_string(), *v)).collect();
    outcome
}

/// The share of cases that ran in both the harness and Envoy, in percent.
pub fn coverage(results: &[EnvoyCaseResult]) -> f64 {
    let ran = results.iter().filter(|r| !matches!(r.verdict, Verdict::Skipped(_))).count();
    100.0 * ran as f64 / results.len().max(1) as f64
}

/// Whether every case that ran passed and enough cases ran.
pub fn succeeded(results: &[EnvoyCaseResult], min_coverage: f64) -> bool {
    results.iter().all(|r| !matches!(r.verdict, Verdict::Failed(_))) && coverage(results) >= min_coverage
}

/// A line per case, the failures with Envoy's log, and the totals.
pub fn report(results: &[EnvoyCaseResult], min_coverage: f64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for result in results {
        match &result.verdict {
            Verdict::Passed => {
                let _ = writeln!(out, "PASS {}::{} ({:.0} ms)", result.file, result.name, result.millis);
            }
            Verdict::Skipped(reason) => {
                let _ = writeln!(out, "SKIP {}::{}: {reason}", result.file, result.name);
            }
            Verdict::Failed(problems) => {
                let _ = writeln!(out, "FAIL {}::{} ({:.0} ms)", result.file, result.name, result.millis);
                for problem in problems {
                    let _ = writeln!(out, "    {problem}");
                }
                // Envoy's start-up banner is long: show its Wasm lines and its complaints.
                let relevant: Vec<&String> = result
                    .envoy_log
                    .iter()
                    .filter(|l| {
                        l.contains("wasm")
                            || l.contains("[warning]")
                            || l.contains("[error]")
                            || l.contains("[critical]")
                    })
                    .collect();
                if !relevant.is_empty() {
                    let _ = writeln!(out, "    envoy log (Wasm lines, warnings and errors; last 60):");
                    for line in relevant.iter().rev().take(60).rev() {
                        let _ = writeln!(out, "      {line}");
                    }
                }
            }
        }
    }
    let passed = results.iter().filter(|r| matches!(r.verdict, Verdict::Passed)).count();
    let failed = results.iter().filter(|r| matches!(r.verdict, Verdict::Failed(_))).count();
    let skipped = results.len() - passed - failed;
    let share = coverage(results);
    let _ = writeln!(
        out,
        "envoy: {} of {} cases ran in both the harness and Envoy ({share:.0}%, at least {min_coverage:.0}% required); {skipped} skipped",
        passed + failed,
        results.len()
    );
    let _ = writeln!(out, "{passed} passed, {failed} failed, {skipped} skipped");
    out
}
