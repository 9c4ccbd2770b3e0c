//! `host-test crs --envoy`: the same stages through real Envoy. Each job starts one Envoy (one
//! worker) with the WAF module and a recording backend on 127.0.0.1, sends every stage's bytes
//! raw over a fresh TCP connection (malformed requests arrive as written), and reads the rules
//! that fired from the deltas of the module's counters on the admin `/stats` endpoint; a request
//! that did not move `requests_inspected` never reached the filter (Envoy answered it itself).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;
use serde_json::json;

use super::check::{self, Observation};
use super::harness::{INSPECTED_METRIC, RULE_HITS_PREFIX, chain_case, fired_between, rule_hits};
use super::{Options, PreparedTest, StageResult, TestResult, verdict_of};
use crate::abi::LogLevel;
use crate::envoy::http1::{read_message, reader};
use crate::envoy::mock::{Behaviour, MockServer};
use crate::envoy::process::{Envoy, free_port};
use crate::host::Host;

/// How long a client waits for Envoy's answer to one request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What Envoy did with one stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnvoyStage {
    /// The filter ran (its `requests_inspected` counter moved).
    pub filter_ran: bool,
    /// Rules that fired, and the status the client got.
    #[serde(flatten)]
    pub observed: Observation,
    /// A client-side problem (connect, write, read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The bootstrap: one loopback listener with the WAF and the router to the backend; HTTP/1.0
/// accepted (with `localhost` as the host of a request without one), short timeouts.
pub fn bootstrap(
    filter: serde_json::Value,
    listen_port: u16,
    admin_port: u16,
    upstream_port: u16,
) -> serde_json::Value {
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "crs",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "crs",
                        "generate_request_id": false,
                        "request_headers_timeout": "2s",
                        "stream_idle_timeout": "5s",
                        "http_protocol_options": {
                            "accept_http_10": true,
                            "default_host_for_http_10": super::translate::DEFAULT_HOST_FOR_HTTP_10
                        },
                        "route_config": {"name": "crs", "virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "5s"}}]}]},
                        "http_filters": [filter, {"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                    }
                }]}]
            }],
            "clusters": [{
                "name": "upstream",
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}]}]}
            }]
        }
    })
}

/// The module's counters: per-rule hits and requests inspected (Envoy files Wasm metrics under
/// `wasmcustom.`; `usedonly` keeps the answer small).
fn counters(envoy: &Envoy) -> Result<(BTreeMap<u32, i64>, i64)> {
    let (status, body) = envoy.admin("/stats?usedonly&filter=wasm_shield.waf.")?;
    if status != 200 {
        return Err(anyhow!("/stats answered {status}"));
    }
    let mut all = BTreeMap::new();
    for line in body.lines() {
        let Some((name, value)) = line.split_once(": ") else { continue };
        let name = name.trim();
        let name = name.strip_prefix("wasmcustom.").unwrap_or(name);
        if let Ok(value) = value.trim().parse::<i64>() {
            all.insert(name.to_string(), value);
        }
    }
    let inspected = all.get(INSPECTED_METRIC).copied().unwrap_or(0);
    Ok((rule_hits(&all, RULE_HITS_PREFIX), inspected))
}

/// Sends `raw` on a fresh connection; the status of the response, if one came.
fn send_raw(port: u16, raw: &[u8], head: bool) -> Result<Option<u16>, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    // Envoy may answer and close before reading everything (a 400): a failed write is not an error.
    let _ = stream.write_all(raw);
    let mut input = reader(&stream).map_err(|e| format!("{e:#}"))?;
    match read_message(&mut input, true, head) {
        Ok(Some(message)) => Ok(message.start_line.split_whitespace().nth(1).and_then(|s| s.parse().ok())),
        Ok(None) => Ok(None),
        Err(error) => {
            let text = format!("{error:#}");
            if text.contains("timed out") || text.contains("Resource temporarily unavailable") {
                Err(format!("no response within {READ_TIMEOUT:?}"))
            } else {
                Ok(None)
            }
        }
    }
}

/// The filter's decision line of the request just answered (its log line reaches Envoy's log
/// shortly after the response: waited for up to 500 ms), as the message after `wasm log …: `.
fn decision_lines(envoy: &Envoy, from: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    loop {
        let lines: Vec<String> = envoy
            .log_since(from)
            .iter()
            .filter_map(|line| line.find("waf decision ").map(|at| line[at..].to_string()))
            .collect();
        if !lines.is_empty() || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One Envoy and its backend.
struct Instance {
    envoy: Envoy,
    _upstream: MockServer,
    listen_port: u16,
    bootstrap_path: PathBuf,
}

impl Instance {
    fn start(binary: &Path, filter: &serde_json::Value, job: usize) -> Result<Instance> {
        let upstream = MockServer::start()?;
        upstream.set(Behaviour::Upstream {
            status: 200,
            headers: Default::default(),
            body: b"ok".to_vec(),
            trailers: Default::default(),
        });
        let (listen_port, admin_port) = (free_port()?, free_port()?);
        let config = bootstrap(filter.clone(), listen_port, admin_port, upstream.port);
        let dir = std::env::temp_dir().join(format!("host-test-crs-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let bootstrap_path = dir.join(format!("envoy-{job}.json"));
        std::fs::write(&bootstrap_path, serde_json::to_string_pretty(&config)?)?;
        let mut envoy = Envoy::start(binary, &bootstrap_path, 1, admin_port, LogLevel::Info)?;
        if let Err(error) = envoy.wait_ready(Duration::from_secs(120)) {
            let log = envoy.log_since(0);
            let tail: Vec<&String> = log.iter().rev().take(30).rev().collect();
            return Err(anyhow!(
                "envoy did not start: {error:#}\n{}",
                tail.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n")
            ));
        }
        Ok(Instance { envoy, _upstream: upstream, listen_port, bootstrap_path })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.bootstrap_path);
    }
}

/// Runs every prepared stage through Envoy with `jobs` Envoys in parallel; per test, per stage,
/// what Envoy did (`None` for a stage that was not sent: its bytes could not be built, or the
/// test is skipped as a whole).
pub fn run(
    host: &mut Host,
    options: &Options,
    tests: &[PreparedTest],
    binary: &Path,
    jobs: usize,
) -> Result<Vec<Vec<Option<EnvoyStage>>>> {
    let case = chain_case(&options.module, &options.config)?;
    let entry = case.filters.first().ok_or_else(|| anyhow!("no filter"))?;
    let module = host.resolve(&entry.name, entry.wasm.as_deref(), Path::new("."))?;
    let module = module.canonicalize().with_context(|| module.display().to_string())?;
    let filter = crate::envoy::bootstrap::wasm_filter(&case, 0, &module);
    let jobs = jobs.max(1);
    let mut results: Vec<Vec<Option<EnvoyStage>>> = tests.iter().map(|t| vec![None; t.stages.len()]).collect();
    let outcomes = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|job| {
                let filter = &filter;
                scope.spawn(move || -> Result<Vec<(usize, usize, EnvoyStage)>> {
                    let instance = Instance::start(binary, filter, job)?;
                    let mut done = Vec::new();
                    let (mut hits, mut inspected) = counters(&instance.envoy)?;
                    for (index, prepared) in tests.iter().enumerate().filter(|(i, _)| i % jobs == job) {
                        if prepared.skip.is_some() {
                            continue;
                        }
                        for (position, stage) in prepared.stages.iter().enumerate() {
                            let Ok(raw) = &stage.raw else { continue };
                            let head = raw.starts_with(b"HEAD ");
                            let log_start = instance.envoy.log_len();
                            let sent = send_raw(instance.listen_port, raw, head);
                            let (after_hits, after_inspected) = counters(&instance.envoy)?;
                            let moved = after_hits.iter().any(|(id, n)| hits.get(id).copied().unwrap_or(0) < *n);
                            let logs = if moved { decision_lines(&instance.envoy, log_start) } else { Vec::new() };
                            let mut result = EnvoyStage {
                                filter_ran: after_inspected > inspected,
                                observed: Observation {
                                    fired: fired_between(&hits, &after_hits),
                                    logs,
                                    ..Observation::default()
                                },
                                error: None,
                            };
                            match sent {
                                Ok(status) => result.observed.status = status,
                                Err(error) => result.error = Some(error),
                            }
                            (hits, inspected) = (after_hits, after_inspected);
                            done.push((index, position, result));
                        }
                    }
                    Ok(done)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().map_err(|_| anyhow!("an Envoy job panicked"))?).collect::<Vec<_>>()
    });
    for outcome in outcomes {
        for (index, position, stage) in outcome? {
            if let Some(slot) = results.get_mut(index).and_then(|r| r.get_mut(position)) {
                *slot = Some(stage);
            }
        }
    }
    Ok(results)
}

/// The verdicts in Envoy, and where Envoy and the harness disagree.
pub fn evaluate(
    options: &Options,
    tests: &[PreparedTest],
    harness: &[TestResult],
    envoy: &[Vec<Option<EnvoyStage>>],
    nolog: &BTreeSet<u32>,
) -> (Vec<TestResult>, Vec<Difference>) {
    let mut results = Vec::new();
    let mut differences = Vec::new();
    for ((prepared, harness_result), stages_seen) in tests.iter().zip(harness).zip(envoy) {
        let test = &prepared.test;
        let mut stages = Vec::new();
        if let Some(reason) = &prepared.skip {
            stages.push(StageResult {
                notes: Vec::new(),
                observed: None,
                failures: Vec::new(),
                skipped: Some(reason.clone()),
            });
        }
        for (position, (entry, seen)) in test.test.stages.iter().zip(stages_seen).enumerate() {
            let output = &entry.stage().output;
            let harness_stage = harness_result.stages.get(position);
            let Some(seen) = seen else {
                if prepared.skip.is_none() {
                    let reason = harness_stage.and_then(|s| s.skipped.clone()).unwrap_or_else(|| "not sent".into());
                    stages.push(StageResult {
                        notes: Vec::new(),
                        observed: None,
                        failures: Vec::new(),
                        skipped: Some(reason),
                    });
                }
                continue;
            };
            // The counters count every matched rule: keep the ones the harness saw not logging apart.
            let mut seen = seen.clone();
            let matched = std::mem::take(&mut seen.observed.fired);
            (seen.observed.fired, seen.observed.nolog) = matched.into_iter().partition(|id| !nolog.contains(id));
            let seen = &seen;
            let mut result = StageResult { notes: Vec::new(), observed: None, failures: Vec::new(), skipped: None };
            let envoy_status = seen.observed.status.map_or("no response".to_string(), |s| s.to_string());
            if !seen.filter_ran {
                let expected = match &output.status {
                    Some(e) if seen.observed.status.is_some_and(|s| e.accepts(s)) => {
                        " (the test expects that status)".into()
                    }
                    Some(e) => format!(" (the test expects status {})", e.describe()),
                    None => String::new(),
                };
                result.skipped = Some(format!("Envoy answered {envoy_status} before any filter ran{expected}"));
            } else {
                result.failures = check::check(output, &seen.observed);
                if let Some(error) = &seen.error {
                    result.failures.push(error.clone());
                }
                result.observed = Some(seen.observed.clone());
            }
            // Agreement with the harness.
            let harness_observed = harness_stage.and_then(|s| s.observed.as_ref());
            let prepared_stage = prepared.stages.get(position);
            let predicted_rejection = prepared_stage.and_then(|s| match &s.envoy {
                Some(super::translate::Translation::Rejected { status, .. }) => Some(*status),
                _ => None,
            });
            let difference = match (harness_observed, seen.filter_ran, predicted_rejection) {
                (Some(h), true, _)
                    if h.fired != seen.observed.fired
                        || h.nolog != seen.observed.nolog
                        || h.status != seen.observed.status =>
                {
                    Some(format!(
                        "harness fired [{}] (nolog [{}]) status {}, Envoy fired [{}] (nolog [{}]) status {envoy_status}",
                        check::join(&h.fired),
                        check::join(&h.nolog),
                        h.status.map_or("-".into(), |s| s.to_string()),
                        check::join(&seen.observed.fired),
                        check::join(&seen.observed.nolog)
                    ))
                }
                (Some(h), false, _) => Some(format!(
                    "the harness ran the filter (fired [{}]); Envoy answered {envoy_status} before any filter",
                    check::join(&h.fired)
                )),
                (None, false, Some(status)) if seen.observed.status == Some(status) => None,
                (None, false, Some(status)) => Some(format!(
                    "the harness predicted Envoy's {status}; Envoy answered {envoy_status} before any filter"
                )),
                (None, true, _) => Some(format!(
                    "the harness skipped it ({}); Envoy ran the filter: fired [{}] status {envoy_status}",
                    harness_stage.and_then(|s| s.skipped.clone()).unwrap_or_default(),
                    check::join(&seen.observed.fired)
                )),
                _ => None,
            };
            if let Some(detail) = difference {
                // What Envoy was expected to do differently (the translation's notes, every rule
                // observed in Envoy 1.40), else the reviewed Envoy-only deviation.
                let envoy_notes = prepared_stage.map(super::PreparedStage::envoy_notes).unwrap_or_default();
                // A prediction that Envoy answers itself explains nothing when Envoy did not, or
                // answered with another status.
                let prediction_held = match predicted_rejection {
                    Some(status) => !seen.filter_ran && seen.observed.status == Some(status),
                    None => seen.filter_ran,
                };
                let explained_by = if !prediction_held {
                    None
                } else if envoy_notes.is_empty() {
                    options.deviations.envoy_only_reason(&test.title).map(|reason| format!("deviation: {reason}"))
                } else {
                    Some(envoy_notes.join("; "))
                };
                differences.push(Difference { title: test.title.clone(), stage: position + 1, detail, explained_by });
            }
            stages.push(result);
        }
        results.push(TestResult {
            title: test.title.clone(),
            rule_id: test.rule_id,
            family: test.family(),
            verdict: verdict_of(&test.title, &stages, &options.deviations, true),
            stages,
        });
    }
    (results, differences)
}

/// A stage where Envoy and the harness disagree.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The test.
    pub title: String,
    /// The stage (1-based).
    pub stage: usize,
    /// How they differ.
    pub detail: String,
    /// What Envoy does differently with this request (its known normalisations or rejection, or
    /// an Envoy-only deviation); `None`: nothing known explains the difference.
    pub explained_by: Option<String>,
}
