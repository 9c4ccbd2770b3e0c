//! The Proxy-Wasm shell: reads the request headers once, asks the core for a decision and
//! performs it; the root context fetches remote JWKS (at start, on its tick) and completes
//! requests that paused for them.

use crate::decision::{Allow, Authenticator, Decision, Denial, Moment, Pass, RequestView};
use crate::header_map::{Header, parse_pairs};
use crate::host;
use crate::reason::Failure;
use crate::remote::FetchOutcome;
use crate::reply::reply;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType};
use shield_kit::log_escape::escape_quoted;
use shield_kit::metrics::Counter;
use shield_kit::request_id::request_id_for_log;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

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

    fn denied(&self, failure: Failure) {
        self.denied.increment(1);
        if let Some((_, counter)) = self.denied_by_reason.iter().find(|(f, _)| *f == failure) {
            counter.increment(1);
        }
    }
}

/// A request paused until remote keys arrive.
struct Waiter {
    context_id: u32,
    /// The request headers as the host serialized them.
    header_bytes: Vec<u8>,
    deadline_ns: u64,
}

/// What the root and its streams share (one per plugin and worker).
struct Core {
    auth: Authenticator,
    metrics: Metrics,
    waiters: Vec<Waiter>,
}

/// One per plugin and worker.
#[derive(Default)]
pub struct JwtAuthRoot {
    core: Option<Rc<RefCell<Core>>>,
    /// Outstanding JWKS fetches: call token → provider index.
    fetches: HashMap<u32, usize>,
    tick: Option<Duration>,
}

impl Context for JwtAuthRoot {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some(provider) = self.fetches.remove(&token_id) else { return };
        let Some(core) = self.core.clone() else { return };
        let now = now_ns();
        let status = host::http_call_status();
        let result = match status.as_deref() {
            Some(b"200") => match hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size) {
                Ok(body) => Ok(body.unwrap_or_default()),
                Err(status) => Err(format!("body unreadable status={}", status as u32)),
            },
            Some(status) => Err(format!("http status {}", String::from_utf8_lossy(status))),
            None => Err("no response (reset or timeout)".to_string()),
        };
        {
            let mut core = core.borrow_mut();
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
        complete_waiters(&core, now, false);
        self.reschedule();
    }
}

impl RootContext for JwtAuthRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let Some(policy) = shield_kit::config::load(plugin_configuration_size, crate::config::Policy::from_json) else {
            return false;
        };
        let remote = policy.providers.iter().filter(|p| matches!(p.keys, crate::config::KeySource::Remote(_))).count();
        log::info!(
            "configured providers={} remote_providers={remote} rules={} bypass_cors_preflight={}",
            policy.providers.len(),
            policy.rules.len(),
            policy.bypass_cors_preflight
        );
        let core = Core { auth: Authenticator::new(policy), metrics: Metrics::define(), waiters: Vec::new() };
        self.core = Some(Rc::new(RefCell::new(core)));
        self.fetches.clear();
        self.start_due_fetches();
        self.reschedule();
        true
    }

    fn on_tick(&mut self) {
        let Some(core) = self.core.clone() else { return };
        let now = now_ns();
        self.start_due_fetches();
        complete_waiters(&core, now, true);
        self.reschedule();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(JwtAuthStream { context_id, core: self.core.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl JwtAuthRoot {
    /// Dispatches every fetch that is due (from the root context, so it outlives any stream).
    fn start_due_fetches(&mut self) {
        let Some(core) = self.core.clone() else { return };
        let now = now_ns();
        let mut core = core.borrow_mut();
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

    /// Ticks fast while something waits, slowly otherwise; only calls the host on a change.
    fn reschedule(&mut self) {
        let Some(core) = &self.core else { return };
        let core = core.borrow();
        let has_remote =
            core.auth.policy.providers.iter().any(|p| matches!(p.keys, crate::config::KeySource::Remote(_)));
        let wanted = if !has_remote {
            None
        } else if !core.waiters.is_empty() || core.auth.awaiting_keys() {
            Some(FAST_TICK)
        } else {
            Some(SLOW_TICK)
        };
        if wanted != self.tick {
            self.tick = wanted;
            let _ = hostcalls::set_tick_period(wanted.unwrap_or(Duration::ZERO));
        }
    }
}

/// Re-decides paused requests: those whose keys arrived, and (with `expire`) those whose wait
/// is over. Each is performed as its own stream (effective context).
fn complete_waiters(core: &Rc<RefCell<Core>>, now: u64, expire: bool) {
    let waiters = std::mem::take(&mut core.borrow_mut().waiters);
    let mut still_waiting = Vec::new();
    for waiter in waiters {
        let wait_over = expire && now >= waiter.deadline_ns;
        let headers = parse_pairs(&waiter.header_bytes);
        let decision = core.borrow_mut().auth.decide(&headers, Moment { now_ns: now, wait_over });
        if decision == Decision::Wait {
            still_waiting.push(waiter);
            continue;
        }
        if !host::set_effective_context(waiter.context_id) {
            // The stream is gone.
            continue;
        }
        let proceed = perform(&core.borrow(), decision, &headers);
        if proceed {
            let _ = host::resume_request();
        }
    }
    core.borrow_mut().waiters.extend(still_waiting);
}

/// Writes the allowed request's headers, or sends the refusal. Returns whether the request may
/// continue.
fn perform(core: &Core, decision: Decision, headers: &[Header<'_>]) -> bool {
    let metrics = &core.metrics;
    match decision {
        Decision::Allow(allow) => {
            write_headers(&allow);
            match allow.pass {
                Pass::Verified => metrics.allowed.increment(1),
                Pass::NoRequirement | Pass::CorsPreflight => metrics.bypassed.increment(1),
                Pass::Unverified(failure) => {
                    metrics.allowed_unverified.increment(1);
                    if let Some(failure) = failure {
                        log::info!(
                            "jwt failed, allowed by allow_missing_or_failed request_id={} reason={failure}",
                            request_id_for_log()
                        );
                    }
                }
                Pass::FailOpen => {
                    metrics.allowed_unverified.increment(1);
                    log::warn!("jwt not verified, jwks unavailable, failing open request_id={}", request_id_for_log());
                }
            }
            true
        }
        Decision::Deny(denial) => {
            let provider = denial.provider.and_then(|index| core.auth.policy.providers.get(index));
            deny(metrics, &denial, provider.map_or("-", |p| p.name.as_str()), headers);
            false
        }
        Decision::Wait => false,
    }
}

fn write_headers(allow: &Allow) {
    // Host errors are ignored: a header that cannot be written must not kill the VM, and the
    // removals that matter (spoofed output headers) are plain removes Envoy always accepts.
    for name in &allow.remove {
        let _ = host::remove_request_header(name);
    }
    for verified in &allow.verified {
        for (name, value) in &verified.headers {
            let _ = host::replace_request_header(name, value);
        }
        if let Some((name, value)) = &verified.payload_header {
            let _ = host::replace_request_header(name, value);
        }
    }
}

fn deny(metrics: &Metrics, denial: &Denial, provider: &str, headers: &[Header<'_>]) {
    let view = RequestView::new(headers);
    let answer = reply(denial.failure, &view);
    metrics.denied(denial.failure);
    log::info!(
        "jwt denied request_id={} status={} reason={} provider={} detail={} path={}",
        request_id_for_log(),
        answer.status,
        denial.failure,
        provider,
        escape_quoted(denial.detail.as_bytes()),
        escape_quoted(view.path.as_bytes()),
    );
    let reply_headers: Vec<Header<'_>> = answer.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    let _ = host::send_response(answer.status, &reply_headers, answer.body.as_bytes());
}

/// One per request.
struct JwtAuthStream {
    context_id: u32,
    /// `None` before configuration: requests pass untouched is NOT acceptable, so they are
    /// refused (see `on_http_request_headers`).
    core: Option<Rc<RefCell<Core>>>,
}

impl Context for JwtAuthStream {}

impl HttpContext for JwtAuthStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(core) = self.core.clone() else {
            // No configuration: fail closed.
            let _ = host::send_response(503, &[], b"jwt-auth is not configured");
            return Action::Pause;
        };
        let header_bytes = host::request_header_bytes();
        let headers = parse_pairs(&header_bytes);
        let now = now_ns();
        let decision = core.borrow_mut().auth.decide(&headers, Moment { now_ns: now, wait_over: false });
        if decision == Decision::Wait {
            drop(headers);
            let mut core = core.borrow_mut();
            let deadline_ns = now.saturating_add(core.auth.wait_timeout());
            core.waiters.push(Waiter { context_id: self.context_id, header_bytes, deadline_ns });
            return Action::Pause;
        }
        if perform(&core.borrow(), decision, &headers) { Action::Continue } else { Action::Pause }
    }
}

impl Drop for JwtAuthStream {
    fn drop(&mut self) {
        // A paused request whose client went away: forget it.
        if let Some(core) = &self.core
            && let Ok(mut core) = core.try_borrow_mut()
        {
            core.waiters.retain(|waiter| waiter.context_id != self.context_id);
        }
    }
}

/// Host clock in nanoseconds since the Unix epoch; 0 if the host cannot tell.
fn now_ns() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|now| now.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
}
