//! The Proxy-Wasm shell: reads the request head once, asks the core for a verdict, buffers the
//! body when rules need it, and answers blocked requests; counts and logs each decision.
//!
//! Host calls go through `proxy_wasm::hostcalls` with their errors handled: the SDK's trait
//! helpers panic on an unexpected status, and a panic kills the VM for the whole worker.

use crate::audit;
use crate::config::{Mode, OverLimit, Policy};
use crate::inspect::{HeadersOutcome, Inspection, Report, Verdict};
use crate::request::RequestHead;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};
use shield_kit::metrics::Counter;
use shield_kit::request_id::{DEFAULT_REQUEST_ID_HEADER, REQUEST_ID_PROPERTY, format_for_log, request_id_for_log};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

/// The counters of the filter (see the crate README).
#[derive(Debug, Clone, Default)]
struct Metrics {
    /// Requests the rules ran on.
    inspected: Counter,
    /// Requests rejected (rules or body over the limit).
    blocked: Counter,
    /// Requests over the threshold that detect mode let through.
    detected: Counter,
    /// Requests whose body was over the limit.
    body_over_limit: Counter,
    /// Per rule ID: how often it matched.
    rule_hits: Rc<HashMap<u32, Counter>>,
}

impl Metrics {
    fn define(policy: &Policy) -> Self {
        let rule_hits = policy
            .ruleset
            .rule_ids()
            .map(|id| (id, Counter::define(&format!("wasm_shield.waf.rule_hits.{id}"))))
            .collect();
        Self {
            inspected: Counter::define("wasm_shield.waf.requests_inspected"),
            blocked: Counter::define("wasm_shield.waf.requests_blocked"),
            detected: Counter::define("wasm_shield.waf.requests_detected"),
            body_over_limit: Counter::define("wasm_shield.waf.body_over_limit"),
            rule_hits: Rc::new(rule_hits),
        }
    }
}

/// One per plugin and worker: holds the policy compiled in `on_configure`.
#[derive(Default)]
pub struct WafRoot {
    /// `None` until configured: a stream created before a successful configuration is refused.
    policy: Option<Rc<Policy>>,
    metrics: Metrics,
}

impl Context for WafRoot {}

impl RootContext for WafRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let started = Instant::now();
        let Some(policy) = shield_kit::config::load(plugin_configuration_size, Policy::from_json) else {
            return false;
        };
        log::info!(
            "configured mode={} paranoia_level={} inbound_threshold={} rules={} automata={} pipelines={} body_limit={} compile_us={}",
            policy.mode.as_str(),
            policy.paranoia,
            policy.threshold,
            policy.ruleset.rule_count(),
            policy.ruleset.automaton_count(),
            policy.ruleset.pipeline_count(),
            policy.body.limit,
            started.elapsed().as_micros(),
        );
        self.metrics = Metrics::define(&policy);
        self.policy = Some(Rc::new(policy));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(WafStream {
            policy: self.policy.clone(),
            metrics: self.metrics.clone(),
            pending: None,
            request_id_header: None,
            reading_body: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per request.
struct WafStream {
    policy: Option<Rc<Policy>>,
    metrics: Metrics,
    /// Phase 1 done, waiting for the body.
    pending: Option<Box<Inspection>>,
    /// The `x-request-id` request header, kept from the head for log lines written in body
    /// callbacks: Envoy refuses request-header reads once the headers went upstream, and the
    /// SDK's wrapper panics on that status (so `request_id_for_log` cannot be used there).
    request_id_header: Option<Vec<u8>>,
    /// Past the headers callback with a body to inspect.
    reading_body: bool,
}

impl WafStream {
    /// Applies a verdict: counts, logs, and answers a block. Returns the action for the host.
    fn enforce(&self, verdict: Verdict) -> Action {
        match verdict {
            Verdict::Allow => Action::Continue,
            Verdict::Pass(report) => {
                self.count_hits(&report);
                if report.over_threshold {
                    self.metrics.detected.increment(1);
                }
                log::info!("{}", audit::decision_line(&self.request_id(), &report, None));
                Action::Continue
            }
            Verdict::Block { status, report } => {
                self.count_hits(&report);
                self.metrics.blocked.increment(1);
                let request_id = self.request_id();
                log::info!("{}", audit::decision_line(&request_id, &report, Some(status)));
                self.reply(status, &request_id);
                Action::Pause
            }
        }
    }

    /// The request ID for a log line: read from the host in the headers callback, from the
    /// property or the kept header once the body is being inspected.
    fn request_id(&self) -> String {
        if !self.reading_body {
            return request_id_for_log();
        }
        let property = hostcalls::get_property(vec![REQUEST_ID_PROPERTY]).ok().flatten().filter(|id| !id.is_empty());
        format_for_log(property.as_deref().or(self.request_id_header.as_deref()))
    }

    fn count_hits(&self, report: &Report) {
        for id in report.rule_ids() {
            if let Some(counter) = self.metrics.rule_hits.get(&id) {
                counter.increment(1);
            }
        }
    }

    fn reply(&self, status: u16, request_id: &str) {
        let body = audit::block_body(request_id);
        let headers = vec![("content-type", "application/json")];
        if let Err(status_code) = hostcalls::send_http_response(u32::from(status), headers, Some(&body)) {
            log::error!("cannot send the block reply request_id={request_id} status={}", status_code as u32);
        }
    }

    /// Phase 2 over the body bytes buffered so far (at most `limit` of them).
    fn finish(&mut self, policy: &Policy, body_size: usize) -> Action {
        let Some(inspection) = self.pending.take() else { return Action::Continue };
        let length = body_size.min(policy.body.limit);
        let body = if length == 0 {
            Vec::new()
        } else {
            match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, length) {
                Ok(bytes) => bytes.unwrap_or_default(),
                Err(status) => {
                    // Fail closed: a body the filter cannot read is not let through unread.
                    log::error!(
                        "cannot read the request body request_id={} status={}",
                        self.request_id(),
                        status as u32
                    );
                    self.metrics.blocked.increment(1);
                    self.reply(500, &self.request_id());
                    return Action::Pause;
                }
            }
        };
        let verdict = inspection.finish_with_body(policy, &body);
        self.enforce(verdict)
    }
}

impl Context for WafStream {}

impl HttpContext for WafStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(policy) = self.policy.clone() else {
            // Not configured: closed.
            self.reply(503, &request_id_for_log());
            return Action::Pause;
        };
        self.metrics.inspected.increment(1);
        let headers = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(headers) => headers,
            Err(status) => {
                log::error!("cannot read request headers request_id={} status={}", request_id_for_log(), status as u32);
                self.reply(500, &request_id_for_log());
                return Action::Pause;
            }
        };
        let protocol = if policy.ruleset.uses_protocol() { property(&["request", "protocol"]) } else { Vec::new() };
        let remote_addr = if policy.ruleset.uses_remote_addr() { property(&["source", "address"]) } else { Vec::new() };
        let head = RequestHead { headers: &headers, protocol: &protocol, remote_addr: &remote_addr };
        match policy.inspect_headers(&head, end_of_stream) {
            HeadersOutcome::Done(verdict) => self.enforce(verdict),
            HeadersOutcome::ReadBody(inspection) => {
                self.pending = Some(inspection);
                self.reading_body = true;
                self.request_id_header =
                    headers.iter().find(|(name, _)| name == DEFAULT_REQUEST_ID_HEADER).map(|(_, value)| value.clone());
                // Headers go on; the body is held (Pause in the body callbacks) until inspected.
                Action::Continue
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(policy) = self.policy.clone() else { return Action::Continue };
        let Some(mode) = self.pending.as_ref().map(|inspection| inspection.mode()) else { return Action::Continue };
        if body_size > policy.body.limit {
            self.metrics.body_over_limit.increment(1);
            match policy.body.over_limit {
                OverLimit::Reject if mode == Mode::Block => {
                    self.pending = None;
                    self.metrics.blocked.increment(1);
                    let request_id = self.request_id();
                    log::info!("{}", audit::over_limit_line(&request_id, mode.as_str(), policy.body.limit, "blocked"));
                    self.reply(413, &request_id);
                    return Action::Pause;
                }
                OverLimit::Reject => {
                    log::info!(
                        "{}",
                        audit::over_limit_line(&self.request_id(), mode.as_str(), policy.body.limit, "detected")
                    );
                    return self.finish(&policy, body_size);
                }
                OverLimit::InspectFirstPart => return self.finish(&policy, body_size),
            }
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.finish(&policy, body_size)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let Some(policy) = self.policy.clone() else { return Action::Continue };
        if self.pending.is_none() {
            return Action::Continue;
        }
        // The body ended without end_of_stream on data: its size is what the host buffered.
        let size = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, policy.body.limit) {
            Ok(bytes) => bytes.map_or(0, |bytes| bytes.len()),
            Err(_) => 0,
        };
        self.finish(&policy, size)
    }
}

/// A property's bytes, empty when absent or unreadable.
fn property(path: &[&str]) -> Vec<u8> {
    hostcalls::get_property(path.to_vec()).ok().flatten().unwrap_or_default()
}
