//! The filter as a stage (see `shield_kit::stage`): reads only what the rules need (the headers
//! they name, the source address when a key uses it, the clock when a rule matches), asks the
//! core, answers 429 or lets the request through, and runs the eviction tick.

use crate::address::parse_source_address;
use crate::config::Policy;
use crate::key::RequestFacts;
use crate::limiter::{Budget, Host, LimitedEvent, Limiter, Metric, SharedRead, SharedWrite, Verdict};
use crate::request::Request as KeyRequest;
use crate::response::{budget_headers, rejection_headers};
use shield_kit::abi;
use shield_kit::config::ConfigError;
use shield_kit::headers::{HeaderMap, HeaderNeeds};
use shield_kit::metrics::Counter;
use shield_kit::stage::{Flow, LocalReply, Needs, Request, Stage, StageStream};
use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

/// Envoy property holding the route name (serialized path).
const ROUTE_NAME: &[u8] = b"xds\0route_name";
/// Envoy property holding the plugin name (namespaces shared data).
const PLUGIN_NAME: &[u8] = b"plugin_name";
/// Response details Envoy records for a rejection (`%RESPONSE_CODE_DETAILS%`).
const RESPONSE_DETAILS: &str = "wasm_shield_rate_limited";

/// The counters of one rule (see the crate README).
#[derive(Debug, Clone, Copy, Default)]
struct RuleMetrics {
    allowed: Counter,
    limited: Counter,
    shadow_limited: Counter,
    missing_key: Counter,
    cas_retries: Counter,
    contention: Counter,
    evictions: Counter,
}

impl RuleMetrics {
    fn define(rule: &str) -> Self {
        let define = |metric: &str| Counter::define(&format!("wasm_shield.rate_limit.{rule}.{metric}"));
        Self {
            allowed: define("allowed"),
            limited: define("limited"),
            shadow_limited: define("shadow_limited"),
            missing_key: define("missing_key"),
            cas_retries: define("cas_retries"),
            contention: define("contention"),
            evictions: define("evictions"),
        }
    }

    fn get(&self, metric: Metric) -> &Counter {
        match metric {
            Metric::Allowed => &self.allowed,
            Metric::Limited => &self.limited,
            Metric::ShadowLimited => &self.shadow_limited,
            Metric::MissingKey => &self.missing_key,
            Metric::CasRetries => &self.cas_retries,
            Metric::Contention => &self.contention,
            Metric::Evictions => &self.evictions,
        }
    }
}

/// The stage built from a configuration (defines the metrics, logs the `configured` line).
pub fn build(configuration: &[u8]) -> Result<Box<dyn Stage>, ConfigError> {
    let policy = Policy::from_json(configuration)?;
    let plugin = abi::property(PLUGIN_NAME).unwrap_or_default();
    let plugin = String::from_utf8_lossy(&plugin).replace('/', "_");
    let namespace = format!("wasm_shield.rate_limit/{plugin}/");
    let metrics = policy.rules.iter().map(|rule| RuleMetrics::define(&rule.name)).collect();
    log::info!(
        "configured mode={} rules={} response_headers={:?} headers_on_allowed={} on_contention={:?} eviction_interval={:?}",
        policy.mode,
        policy.rules.len(),
        policy.response_headers,
        policy.headers_on_allowed,
        policy.on_contention,
        policy.eviction_interval,
    );
    let pending_allowed =
        policy.batch_allowed_metric.then(|| Rc::new(policy.rules.iter().map(|_| Cell::new(0)).collect()));
    let needs = HeaderNeeds::Names(policy.needed_headers.clone());
    let eviction_interval = policy.eviction_interval;
    Ok(Box::new(RateLimitStage {
        limiter: Rc::new(RefCell::new(Limiter::new(Rc::new(policy), namespace, seed()))),
        metrics: Rc::new(metrics),
        pending_allowed,
        needs,
        eviction_interval,
    }))
}

/// One per plugin and worker: the limiter and its buckets (local mode).
struct RateLimitStage {
    limiter: Rc<RefCell<Limiter>>,
    metrics: Rc<Vec<RuleMetrics>>,
    /// `allowed` counts not yet added to the metric (with `batch_allowed_metric`), per rule.
    pending_allowed: Option<Rc<Vec<Cell<u64>>>>,
    needs: HeaderNeeds,
    eviction_interval: Duration,
}

impl Stage for RateLimitStage {
    fn name(&self) -> &'static str {
        "rate-limit"
    }

    fn needs(&self) -> Needs {
        Needs { request_headers: self.needs.clone(), response_headers: HeaderNeeds::None }
    }

    fn stream(&self, _context_id: u32) -> Box<dyn StageStream> {
        Box::new(RateLimitStream {
            limiter: Rc::clone(&self.limiter),
            metrics: Rc::clone(&self.metrics),
            pending_allowed: self.pending_allowed.clone(),
            budget: None,
        })
    }

    /// The eviction tick (idle keys dropped, batched metrics flushed).
    fn tick_period(&self, _requests_waiting: bool) -> Option<Duration> {
        Some(self.eviction_interval)
    }

    fn on_tick(&mut self) {
        if let Some(pending) = &self.pending_allowed {
            for (count, metrics) in pending.iter().zip(self.metrics.iter()) {
                metrics.allowed.increment(count.take());
            }
        }
        let Ok(mut limiter) = self.limiter.try_borrow_mut() else { return };
        let mut request = Request::new(0);
        let mut host = ShellHost::new(&self.metrics, None, &mut request);
        limiter.evict_idle(&mut host);
    }
}

/// A per-VM random seed for the in-memory key index (so clients cannot aim at its buckets).
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    abi::now_nanos().unwrap_or(0x5eed)
}

/// One per request.
struct RateLimitStream {
    limiter: Rc<RefCell<Limiter>>,
    metrics: Rc<Vec<RuleMetrics>>,
    pending_allowed: Option<Rc<Vec<Cell<u64>>>>,
    /// The budget to report on the response (only with `headers_on_allowed`).
    budget: Option<Budget>,
}

impl StageStream for RateLimitStream {
    fn on_request_headers(&mut self, request: &mut Request, _end_of_stream: bool) -> Flow {
        let Ok(mut limiter) = self.limiter.try_borrow_mut() else { return Flow::Continue };
        let policy = Rc::clone(limiter.policy());
        // Only the headers some rule reads (already fetched by the module, as one batch).
        let fetched: Vec<(&str, Vec<u8>)> = policy
            .needed_headers
            .iter()
            .filter_map(|name| Some((name.as_str(), request.headers.get(name)?.to_vec())))
            .collect();
        let pairs: Vec<(&str, &[u8])> = fetched.iter().map(|(name, value)| (*name, value.as_slice())).collect();
        let facts = KeyRequest::new(&pairs);
        let mut host = ShellHost::new(&self.metrics, self.pending_allowed.as_deref().map(Vec::as_slice), request);
        match limiter.check(&facts, &mut host) {
            Verdict::Allow(budget) => {
                self.budget = budget;
                Flow::Continue
            }
            Verdict::Reject { budget, retry_after } => {
                let headers = rejection_headers(&policy, budget.as_ref(), retry_after);
                Flow::Reply(LocalReply {
                    status: policy.status,
                    headers: headers.into_iter().map(|(name, value)| (name.to_owned(), value)).collect(),
                    body: policy.body.as_bytes().to_vec(),
                    details: RESPONSE_DETAILS,
                })
            }
        }
    }

    fn on_response_headers(&mut self, _request: &mut Request, response: &mut HeaderMap) {
        let Some(budget) = self.budget.take() else { return };
        let Ok(limiter) = self.limiter.try_borrow() else { return };
        for (name, value) in budget_headers(limiter.policy(), &budget) {
            response.set(name, value.as_bytes());
        }
    }
}

/// The core's view of the host: hostcalls, made only when the core asks.
struct ShellHost<'a> {
    metrics: &'a [RuleMetrics],
    /// Where `allowed` goes when it is batched.
    pending_allowed: Option<&'a [Cell<u64>]>,
    request: &'a mut Request,
}

impl<'a> ShellHost<'a> {
    fn new(metrics: &'a [RuleMetrics], pending_allowed: Option<&'a [Cell<u64>]>, request: &'a mut Request) -> Self {
        Self { metrics, pending_allowed, request }
    }
}

impl RequestFacts for ShellHost<'_> {
    fn source_address(&mut self) -> Option<IpAddr> {
        self.request.source_address().and_then(parse_source_address)
    }

    fn route_name(&mut self) -> Option<Vec<u8>> {
        abi::property(ROUTE_NAME)
    }
}

impl Host for ShellHost<'_> {
    fn now(&mut self) -> u64 {
        abi::now_nanos().unwrap_or(0)
    }

    fn shared_get(&mut self, key: &str) -> SharedRead {
        match abi::shared_data(key) {
            Ok(Some((value, cas))) => SharedRead::Found { value, cas },
            Ok(None) => SharedRead::NotFound,
            Err(status) => SharedRead::Failed(status),
        }
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> SharedWrite {
        match abi::set_shared_data(key, value, cas) {
            abi::OK => SharedWrite::Done,
            abi::CAS_MISMATCH => SharedWrite::CasMismatch,
            status => SharedWrite::Failed(status),
        }
    }

    fn count(&mut self, rule: usize, metric: Metric, by: u64) {
        if metric == Metric::Allowed
            && let Some(pending) = self.pending_allowed.and_then(|pending| pending.get(rule))
        {
            pending.set(pending.get().saturating_add(by));
            return;
        }
        if let Some(metrics) = self.metrics.get(rule) {
            metrics.get(metric).increment(by);
        }
    }

    fn log_limited(&mut self, event: &LimitedEvent) {
        let retry_after = event.retry_after.map_or_else(|| "-".to_owned(), |seconds| seconds.to_string());
        let verb = if event.shadow { "shadow limited" } else { "rate limited" };
        log::info!(
            "{verb} request_id={} rule={} reason={} key={} retry_after={retry_after} suppressed={}",
            self.request.request_id_for_log(),
            event.rule_name,
            event.reason.as_str(),
            event.key,
            event.suppressed,
        );
    }
}
