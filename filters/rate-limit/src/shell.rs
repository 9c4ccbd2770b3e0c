//! The Proxy-Wasm shell: reads only what the rules need (the headers they name, the source
//! address when a key uses it, the clock when a rule matches), asks the core, answers 429 or
//! lets the request through, and runs the eviction tick.

use crate::abi;
use crate::address::parse_source_address;
use crate::config::Policy;
use crate::key::RequestFacts;
use crate::limiter::{Budget, Host, LimitedEvent, Limiter, Metric, SharedRead, SharedWrite, Verdict};
use crate::request::Request;
use crate::response::{budget_headers, rejection_headers};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};
use shield_kit::metrics::Counter;
use shield_kit::request_id::request_id_for_log;
use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;

/// Envoy property holding the downstream peer as `IP:port` (serialized path).
const SOURCE_ADDRESS: &[u8] = b"source\0address";
/// Envoy property holding the route name (serialized path).
const ROUTE_NAME: &[u8] = b"xds\0route_name";
/// Envoy property holding the plugin name (namespaces shared data).
const PLUGIN_NAME: [&str; 1] = ["plugin_name"];
/// Up to this many needed headers are read one by one (one small hostcall each); more are
/// read as the whole map in one call.
const SINGLE_LOOKUPS_UP_TO: usize = 3;
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

/// One per plugin and worker: the limiter and its buckets (local mode), built in
/// `on_configure`.
#[derive(Default)]
pub struct RateLimitRoot {
    limiter: Option<Rc<RefCell<Limiter>>>,
    metrics: Rc<Vec<RuleMetrics>>,
    /// `allowed` counts not yet added to the metric (with `batch_allowed_metric`), per rule.
    pending_allowed: Option<Rc<Vec<Cell<u64>>>>,
}

impl Context for RateLimitRoot {}

impl RootContext for RateLimitRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let Some(policy) = shield_kit::config::load(plugin_configuration_size, Policy::from_json) else {
            return false;
        };
        let plugin = hostcalls::get_property(PLUGIN_NAME.to_vec()).ok().flatten().unwrap_or_default();
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
        if hostcalls::set_tick_period(policy.eviction_interval).is_err() {
            log::warn!("eviction tick not set: idle keys are only dropped when a rule is full");
        }
        self.pending_allowed =
            policy.batch_allowed_metric.then(|| Rc::new(policy.rules.iter().map(|_| Cell::new(0)).collect()));
        self.limiter = Some(Rc::new(RefCell::new(Limiter::new(Rc::new(policy), namespace, seed()))));
        self.metrics = Rc::new(metrics);
        true
    }

    fn on_tick(&mut self) {
        if let Some(pending) = &self.pending_allowed {
            for (count, metrics) in pending.iter().zip(self.metrics.iter()) {
                metrics.allowed.increment(count.take());
            }
        }
        let Some(limiter) = &self.limiter else { return };
        let Ok(mut limiter) = limiter.try_borrow_mut() else { return };
        let mut host = ShellHost::new(&self.metrics, None);
        limiter.evict_idle(&mut host);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RateLimitStream {
            limiter: self.limiter.clone(),
            metrics: Rc::clone(&self.metrics),
            pending_allowed: self.pending_allowed.clone(),
            budget: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
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
    limiter: Option<Rc<RefCell<Limiter>>>,
    metrics: Rc<Vec<RuleMetrics>>,
    pending_allowed: Option<Rc<Vec<Cell<u64>>>>,
    /// The budget to report on the response (only with `headers_on_allowed`).
    budget: Option<Budget>,
}

impl Context for RateLimitStream {}

impl HttpContext for RateLimitStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(limiter) = &self.limiter else { return Action::Continue };
        let Ok(mut limiter) = limiter.try_borrow_mut() else { return Action::Continue };
        let policy = Rc::clone(limiter.policy());
        let fetched = read_needed_headers(&policy.needed_headers);
        let pairs: Vec<(&str, &[u8])> = fetched.iter().map(|(name, value)| (name.as_str(), value.as_slice())).collect();
        let request = Request::new(&pairs);
        let mut host = ShellHost::new(&self.metrics, self.pending_allowed.as_deref().map(Vec::as_slice));
        match limiter.check(&request, &mut host) {
            Verdict::Allow(budget) => {
                self.budget = budget;
                Action::Continue
            }
            Verdict::Reject { budget, retry_after } => {
                let headers = rejection_headers(&policy, budget.as_ref(), retry_after);
                let status =
                    abi::send_local_response(policy.status, &headers, policy.body.as_bytes(), RESPONSE_DETAILS);
                if status != abi::OK {
                    // The reply could not be sent: the request must still not pass.
                    log::error!("rate limit reply not sent request_id={} status={status}", host.request_id());
                }
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (Some(budget), Some(limiter)) = (self.budget.take(), &self.limiter) else { return Action::Continue };
        let Ok(limiter) = limiter.try_borrow() else { return Action::Continue };
        for (name, value) in budget_headers(limiter.policy(), &budget) {
            self.set_http_response_header(name, Some(&value));
        }
        Action::Continue
    }
}

/// The headers some rule reads: nothing when none does, a lookup per name for a few, else the
/// whole map in one call.
fn read_needed_headers(names: &[String]) -> Vec<(String, Vec<u8>)> {
    if names.is_empty() {
        return Vec::new();
    }
    if names.len() <= SINGLE_LOOKUPS_UP_TO {
        return names
            .iter()
            .filter_map(|name| {
                let value = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name).ok().flatten()?;
                Some((name.clone(), value))
            })
            .collect();
    }
    hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default()
}

/// The core's view of the host: hostcalls, made only when the core asks.
struct ShellHost<'a> {
    metrics: &'a [RuleMetrics],
    /// Where `allowed` goes when it is batched.
    pending_allowed: Option<&'a [Cell<u64>]>,
    source_address: Option<Option<IpAddr>>,
    request_id: Option<String>,
}

impl<'a> ShellHost<'a> {
    fn new(metrics: &'a [RuleMetrics], pending_allowed: Option<&'a [Cell<u64>]>) -> Self {
        Self { metrics, pending_allowed, source_address: None, request_id: None }
    }

    /// The request ID for log lines, read once per stream and only when a line is logged.
    fn request_id(&mut self) -> &str {
        self.request_id.get_or_insert_with(request_id_for_log)
    }
}

impl RequestFacts for ShellHost<'_> {
    fn source_address(&mut self) -> Option<IpAddr> {
        *self.source_address.get_or_insert_with(|| {
            let value = abi::get_property(SOURCE_ADDRESS)?;
            parse_source_address(&value)
        })
    }

    fn route_name(&mut self) -> Option<Vec<u8>> {
        abi::get_property(ROUTE_NAME)
    }
}

impl Host for ShellHost<'_> {
    fn now(&mut self) -> u64 {
        abi::now_nanos().unwrap_or(0)
    }

    fn shared_get(&mut self, key: &str) -> SharedRead {
        match abi::get_shared_data(key) {
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
            self.request_id(),
            event.rule_name,
            event.reason.as_str(),
            event.key,
            event.suppressed,
        );
    }
}
