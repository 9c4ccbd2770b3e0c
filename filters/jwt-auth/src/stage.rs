//! The filter as a stage (see `shield_kit::stage`): asks the core for a decision over the request
//! headers and performs it (header changes, or the refusal); the stage fetches remote JWKS (at
//! start, on its tick) and a request that waits for keys is asked again by the module after each
//! fetch and tick.

use crate::config::KeySource;
use crate::decision::{Allow, Authenticator, Decision, Denial, Moment, Pass, RequestView};
use crate::reason::Failure;
use crate::remote::FetchOutcome;
use crate::reply::reply;
use proxy_wasm::hostcalls;
use shield_kit::abi::{self, Buffer, Map};
use shield_kit::config::ConfigError;
use shield_kit::headers::HeaderNeeds;
use shield_kit::log_escape::escape_quoted;
use shield_kit::metrics::Counter;
use shield_kit::stage::{Flow, LocalReply, Needs, Request, Stage, StageStream, now_ns};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// Tick period while requests wait or keys are missing: bounds how late a wait times out.
const FAST_TICK: Duration = Duration::from_millis(100);
/// Tick period otherwise: refreshes and unknown-`kid` refetches start within it.
const SLOW_TICK: Duration = Duration::from_secs(1);

/// The counters of the filter (see the crate README).
#[derive(Debug, Default)]
struct Metrics {
    allowed: Counter,
    allowed_unverified: Counter,
    bypassed: Counter,
    denied: Counter,
    denied_by_reason: Vec<(Failure, Counter)>,
    jwks_fetches: Counter,
    jwks_fetch_failures: Counter,
}

impl Metrics {
    fn define() -> Self {
        let name = |metric: &str| format!("wasm_shield.jwt_auth.{metric}");
        Self {
            allowed: Counter::define(&name("allowed")),
            allowed_unverified: Counter::define(&name("allowed_unverified")),
            bypassed: Counter::define(&name("bypassed")),
            denied: Counter::define(&name("denied")),
            denied_by_reason: Failure::ALL
                .iter()
                .map(|failure| (*failure, Counter::define(&name(&format!("denied_{}", failure.as_str())))))
                .collect(),
            jwks_fetches: Counter::define(&name("jwks_fetches")),
            jwks_fetch_failures: Counter::define(&name("jwks_fetch_failures")),
        }
    }

    /// Counts an allowed request (and logs the passes that need a line).
    fn allowed(&self, allow: &Allow, request: &mut Request) {
        match allow.pass {
            Pass::Verified => self.allowed.increment(1),
            Pass::NoRequirement | Pass::CorsPreflight => self.bypassed.increment(1),
            Pass::Unverified(failure) => {
                self.allowed_unverified.increment(1);
                if let Some(failure) = failure {
                    log::info!(
                        "jwt failed, allowed by allow_missing_or_failed request_id={} reason={failure}",
                        request.request_id_for_log()
                    );
                }
            }
            Pass::FailOpen => {
                self.allowed_unverified.increment(1);
                log::warn!(
                    "jwt not verified, jwks unavailable, failing open request_id={}",
                    request.request_id_for_log()
                );
            }
        }
    }

    fn denied(&self, failure: Failure) {
        self.denied.increment(1);
        if let Some((_, counter)) = self.denied_by_reason.iter().find(|(f, _)| *f == failure) {
            counter.increment(1);
        }
    }
}

/// What the stage and its streams share (one per plugin and worker).
struct Core {
    auth: Authenticator,
    metrics: Metrics,
}

/// The stage built from a configuration (defines the metrics, logs the `configured` line).
pub fn build(configuration: &[u8]) -> Result<Box<dyn Stage>, ConfigError> {
    let policy = crate::config::Policy::from_json(configuration)?;
    let remote = policy.providers.iter().filter(|p| matches!(p.keys, KeySource::Remote(_))).count();
    log::info!(
        "configured providers={} remote_providers={remote} rules={} bypass_cors_preflight={}",
        policy.providers.len(),
        policy.rules.len(),
        policy.bypass_cors_preflight
    );
    let core = Core { auth: Authenticator::new(policy), metrics: Metrics::define() };
    Ok(Box::new(JwtAuthStage { core: Rc::new(RefCell::new(core)), fetches: HashMap::new(), has_remote: remote > 0 }))
}

/// One per plugin and worker: fetches remote JWKS (at start, on its tick) from the root context,
/// so a fetch outlives any stream.
struct JwtAuthStage {
    core: Rc<RefCell<Core>>,
    /// Outstanding JWKS fetches: call token → provider index.
    fetches: HashMap<u32, usize>,
    has_remote: bool,
}

impl Stage for JwtAuthStage {
    fn name(&self) -> &'static str {
        "jwt-auth"
    }

    fn needs(&self) -> Needs {
        Needs { request_headers: HeaderNeeds::All, response_headers: HeaderNeeds::None }
    }

    fn stream(&self, _context_id: u32) -> Box<dyn StageStream> {
        Box::new(JwtAuthStream { core: Rc::clone(&self.core) })
    }

    fn start(&mut self) {
        self.start_due_fetches();
    }

    /// Fast while requests wait or keys are missing (bounds how late a wait times out), slow
    /// otherwise (refreshes and unknown-`kid` refetches start within it); none without remote keys.
    fn tick_period(&self, requests_waiting: bool) -> Option<Duration> {
        if !self.has_remote {
            return None;
        }
        let awaiting = self.core.try_borrow().is_ok_and(|core| core.auth.awaiting_keys());
        Some(if requests_waiting || awaiting { FAST_TICK } else { SLOW_TICK })
    }

    fn on_tick(&mut self) {
        self.start_due_fetches();
    }

    fn on_http_call_response(&mut self, token: u32, _num_headers: usize, body_size: usize) {
        let Some(provider) = self.fetches.remove(&token) else { return };
        let now = now_ns();
        let status = abi::header_value(Map::HttpCallResponseHeaders, ":status").ok().flatten();
        let result = match status.as_deref() {
            Some(b"200") => match abi::buffer_bytes(Buffer::HttpCallResponseBody, 0, body_size) {
                Ok(body) => Ok(body.unwrap_or_default()),
                Err(status) => Err(format!("body unreadable status={status}")),
            },
            Some(status) => Err(format!("http status {}", String::from_utf8_lossy(status))),
            None => Err("no response (reset or timeout)".to_string()),
        };
        let Ok(mut core) = self.core.try_borrow_mut() else { return };
        let core = &mut *core;
        let name = core.auth.policy.providers.get(provider).map_or("-", |p| p.name.as_str()).to_owned();
        let Some(remote) = core.auth.remote(provider) else { return };
        let had_keys = remote.keys.is_some();
        let outcome = match &result {
            Ok(body) => remote.finished(now, Ok(body)),
            Err(why) => remote.finished(now, Err(why.clone())),
        };
        match outcome {
            FetchOutcome::Updated { keys, skipped } => {
                log::info!("jwks fetched provider={name} keys={keys} skipped={}", skipped.len());
                for why in skipped {
                    log::warn!("jwks key skipped provider={name} reason={}", escape_quoted(why.as_bytes()));
                }
            }
            FetchOutcome::Unchanged => log::debug!("jwks unchanged provider={name}"),
            FetchOutcome::Failed(why) => {
                core.metrics.jwks_fetch_failures.increment(1);
                log::warn!(
                    "jwks fetch failed provider={name} reason={} keeping_last_keys={had_keys}",
                    escape_quoted(why.as_bytes())
                );
            }
        }
    }
}

impl JwtAuthStage {
    /// Dispatches every fetch that is due.
    fn start_due_fetches(&mut self) {
        let now = now_ns();
        let Ok(mut core) = self.core.try_borrow_mut() else { return };
        let core = &mut *core;
        let names: Vec<String> = core.auth.policy.providers.iter().map(|p| p.name.clone()).collect();
        for (index, remote) in core.auth.remotes() {
            if !remote.is_due(now) {
                continue;
            }
            let config = remote.config.clone();
            let headers =
                vec![(":method", "GET"), (":path", config.path.as_str()), (":authority", config.authority.as_str())];
            match hostcalls::dispatch_http_call(&config.cluster, headers, None, vec![], config.timeout) {
                Ok(token) => {
                    remote.started(now);
                    self.fetches.insert(token, index);
                    core.metrics.jwks_fetches.increment(1);
                }
                Err(status) => {
                    remote.start_failed(now);
                    core.metrics.jwks_fetch_failures.increment(1);
                    log::warn!(
                        "jwks fetch not dispatched provider={} cluster={} status={}",
                        names.get(index).map_or("-", String::as_str),
                        config.cluster,
                        status as u32
                    );
                }
            }
        }
    }
}

/// One per request.
struct JwtAuthStream {
    core: Rc<RefCell<Core>>,
}

impl JwtAuthStream {
    /// Decides, and performs an answer: the allowed request's header changes, or the refusal.
    fn decide(&mut self, request: &mut Request, wait_over: bool) -> Flow {
        let now = now_ns();
        let Ok(mut core) = self.core.try_borrow_mut() else { return closed_reply() };
        let decision = core.auth.decide(&request.headers.pairs(), Moment { now_ns: now, wait_over });
        match decision {
            Decision::Wait => Flow::Wait { deadline_ns: now.saturating_add(core.auth.wait_timeout()) },
            Decision::Allow(allow) => {
                core.metrics.allowed(&allow, request);
                write_headers(&allow, request);
                Flow::Continue
            }
            Decision::Deny(denial) => {
                let provider = denial.provider.and_then(|index| core.auth.policy.providers.get(index));
                let provider = provider.map_or("-", |p| p.name.as_str()).to_owned();
                Flow::Reply(deny(&core.metrics, &denial, &provider, request))
            }
        }
    }
}

impl StageStream for JwtAuthStream {
    fn on_request_headers(&mut self, request: &mut Request, _end_of_stream: bool) -> Flow {
        self.decide(request, false)
    }

    fn on_resume(&mut self, request: &mut Request, wait_over: bool) -> Flow {
        self.decide(request, wait_over)
    }
}

/// The answer when the stage's state is unavailable (unreachable: one callback at a time).
fn closed_reply() -> Flow {
    Flow::Reply(LocalReply {
        status: 503,
        headers: Vec::new(),
        body: b"jwt-auth unavailable".to_vec(),
        details: "wasm_shield_jwt_unavailable",
    })
}

fn write_headers(allow: &Allow, request: &mut Request) {
    for name in &allow.remove {
        request.headers.remove(name);
    }
    for verified in &allow.verified {
        for (name, value) in &verified.headers {
            request.headers.set(name, value.as_bytes());
        }
        if let Some((name, value)) = &verified.payload_header {
            request.headers.set(name, value.as_bytes());
        }
    }
}

fn deny(metrics: &Metrics, denial: &Denial, provider: &str, request: &mut Request) -> LocalReply {
    let request_id = request.request_id_for_log();
    let headers = request.headers.pairs();
    let view = RequestView::new(&headers);
    let answer = reply(denial.failure, &view);
    metrics.denied(denial.failure);
    log::info!(
        "jwt denied request_id={request_id} status={} reason={} provider={} detail={} path={}",
        answer.status,
        denial.failure,
        provider,
        escape_quoted(denial.detail.as_bytes()),
        escape_quoted(view.path.as_bytes()),
    );
    LocalReply {
        status: u16::try_from(answer.status).unwrap_or(500),
        headers: answer.headers.into_iter().map(|(name, value)| (name.to_owned(), value)).collect(),
        body: answer.body.into_bytes(),
        details: "wasm_shield_jwt_denied",
    }
}
