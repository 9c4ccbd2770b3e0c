//! The filter as a stage (see `shield_kit::stage`): inspects the request head, asks for the body
//! when rules need it, and answers blocked requests; counts and logs each decision.

use crate::audit;
use crate::config::{Mode, OverLimit, Policy};
use crate::inspect::{HeadersOutcome, Inspection, Report, Verdict};
use crate::request::RequestHead;
use shield_kit::abi;
use shield_kit::config::ConfigError;
use shield_kit::headers::HeaderNeeds;
use shield_kit::metrics::Counter;
use shield_kit::stage::{Flow, LocalReply, Needs, Request, Stage, StageStream};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

/// Envoy property holding the request's protocol (`HTTP/1.1`), serialized path.
const PROTOCOL: &[u8] = b"request\0protocol";
/// Envoy's response code details for a block.
const BLOCK_DETAILS: &str = "wasm_shield_waf_blocked";

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

    fn count_hits(&self, report: &Report) {
        for id in report.rule_ids() {
            if let Some(counter) = self.rule_hits.get(&id) {
                counter.increment(1);
            }
        }
    }
}

/// The stage built from a configuration: parses and compiles every rule (defines the metrics, logs
/// the `configured` line with the compile time).
pub fn build(configuration: &[u8]) -> Result<Box<dyn Stage>, ConfigError> {
    let started = Instant::now();
    let policy = Policy::from_json(configuration)?;
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
    let metrics = Metrics::define(&policy);
    Ok(Box::new(WafStage { policy: Rc::new(policy), metrics }))
}

/// One per plugin and worker: the compiled policy.
struct WafStage {
    policy: Rc<Policy>,
    metrics: Metrics,
}

impl Stage for WafStage {
    fn name(&self) -> &'static str {
        "waf"
    }

    fn needs(&self) -> Needs {
        Needs { request_headers: HeaderNeeds::All, response_headers: HeaderNeeds::None }
    }

    fn stream(&self, _context_id: u32) -> Box<dyn StageStream> {
        Box::new(WafStream { policy: Rc::clone(&self.policy), metrics: self.metrics.clone(), pending: None })
    }
}

/// One per request.
struct WafStream {
    policy: Rc<Policy>,
    metrics: Metrics,
    /// Phase 1 done, waiting for the body.
    pending: Option<Box<Inspection>>,
}

impl WafStream {
    /// Applies a verdict: counts, logs, and answers a block.
    fn enforce(&self, verdict: Verdict, request: &mut Request) -> Flow {
        match verdict {
            Verdict::Allow => Flow::Continue,
            Verdict::Pass(report) => {
                self.metrics.count_hits(&report);
                if report.over_threshold {
                    self.metrics.detected.increment(1);
                }
                log::info!("{}", audit::decision_line(&request.request_id_for_log(), &report, None));
                Flow::Continue
            }
            Verdict::Block { status, report } => {
                self.metrics.count_hits(&report);
                self.metrics.blocked.increment(1);
                let request_id = request.request_id_for_log();
                log::info!("{}", audit::decision_line(&request_id, &report, Some(status)));
                Flow::Reply(block_reply(status, &request_id))
            }
        }
    }
}

/// The block reply: the status and a JSON body with the request ID, nothing about the rules.
fn block_reply(status: u16, request_id: &str) -> LocalReply {
    LocalReply {
        status,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: audit::block_body(request_id),
        details: BLOCK_DETAILS,
    }
}

impl StageStream for WafStream {
    fn on_request_headers(&mut self, request: &mut Request, end_of_stream: bool) -> Flow {
        self.metrics.inspected.increment(1);
        let policy = Rc::clone(&self.policy);
        let headers: Vec<(String, Vec<u8>)> =
            request.headers.pairs().into_iter().map(|(name, value)| (name.to_owned(), value.to_vec())).collect();
        let protocol =
            if policy.ruleset.uses_protocol() { abi::property(PROTOCOL).unwrap_or_default() } else { Vec::new() };
        let remote_addr = if policy.ruleset.uses_remote_addr() {
            request.source_address().map(<[u8]>::to_vec).unwrap_or_default()
        } else {
            Vec::new()
        };
        let head = RequestHead { headers: &headers, protocol: &protocol, remote_addr: &remote_addr };
        match policy.inspect_headers(&head, end_of_stream) {
            HeadersOutcome::Done(verdict) => self.enforce(verdict, request),
            HeadersOutcome::ReadBody(inspection) => {
                self.pending = Some(inspection);
                // Headers go on; the body is held until inspected.
                Flow::ReadBody { limit: policy.body.limit }
            }
        }
    }

    fn on_request_body(&mut self, request: &mut Request, body: &[u8], body_size: usize, _end_of_stream: bool) -> Flow {
        let Some(inspection) = self.pending.take() else { return Flow::Continue };
        let policy = Rc::clone(&self.policy);
        let mode = inspection.mode();
        if body_size > policy.body.limit {
            self.metrics.body_over_limit.increment(1);
            if policy.body.over_limit == OverLimit::Reject {
                let request_id = request.request_id_for_log();
                if mode == Mode::Block {
                    self.metrics.blocked.increment(1);
                    log::info!("{}", audit::over_limit_line(&request_id, mode.as_str(), policy.body.limit, "blocked"));
                    return Flow::Reply(block_reply(413, &request_id));
                }
                log::info!("{}", audit::over_limit_line(&request_id, mode.as_str(), policy.body.limit, "detected"));
            }
        }
        let verdict = inspection.finish_with_body(&policy, body);
        self.enforce(verdict, request)
    }
}
