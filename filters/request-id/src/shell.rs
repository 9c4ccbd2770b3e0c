//! The Proxy-Wasm shell: reads the request headers once, asks the core for a plan, writes only
//! what changed, publishes the ID, and echoes it on the response.

use crate::audit;
use crate::config::Policy;
use crate::decision::{self, IdOutcome, IdSource, Plan, TraceOutcome};
use crate::entropy::EntropyPool;
use crate::id::fallback_entropy;
use crate::traceparent::{TRACEPARENT, TRACESTATE};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use shield_kit::metrics::Counter;
use shield_kit::request_id::publish_request_id;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

/// The counters of the filter (see the crate README).
#[derive(Debug, Clone, Copy, Default)]
struct Metrics {
    generated: Counter,
    kept: Counter,
    rejected: Counter,
    traceparent_created: Counter,
    traceparent_replaced: Counter,
    traceparent_kept: Counter,
}

impl Metrics {
    fn define() -> Self {
        Self {
            generated: Counter::define("wasm_shield.request_id.generated"),
            kept: Counter::define("wasm_shield.request_id.kept"),
            rejected: Counter::define("wasm_shield.request_id.rejected"),
            traceparent_created: Counter::define("wasm_shield.request_id.traceparent_created"),
            traceparent_replaced: Counter::define("wasm_shield.request_id.traceparent_replaced"),
            traceparent_kept: Counter::define("wasm_shield.request_id.traceparent_kept"),
        }
    }

    fn record(&self, plan: &Plan) {
        match plan.id {
            IdOutcome::Kept => self.kept.increment(1),
            IdOutcome::Generated => self.generated.increment(1),
            IdOutcome::Replaced { .. } => {
                self.rejected.increment(1);
                self.generated.increment(1);
            }
        }
        match plan.trace {
            TraceOutcome::Off => {}
            TraceOutcome::Kept => self.traceparent_kept.increment(1),
            TraceOutcome::Created(_) => self.traceparent_created.increment(1),
            TraceOutcome::Replaced { .. } => self.traceparent_replaced.increment(1),
        }
    }
}

/// One per plugin and worker: holds the policy built in `on_configure`.
#[derive(Default)]
pub struct RequestIdRoot {
    policy: Rc<Policy>,
    metrics: Metrics,
    /// Host randomness fetched in batches, shared by the streams of this worker.
    entropy: Rc<RefCell<EntropyPool>>,
}

impl Context for RequestIdRoot {}

impl RootContext for RequestIdRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        shield_kit::log_level::follow_host_log_level();
        let Some(policy) = shield_kit::config::load(plugin_configuration_size, Policy::from_json) else {
            return false;
        };
        log::info!(
            "configured header={} format={} max_length={} echo_header={} traceparent={}",
            policy.header,
            policy.format,
            policy.max_length,
            policy.echo_header.as_deref().unwrap_or("-"),
            policy.traceparent,
        );
        self.policy = Rc::new(policy);
        self.metrics = Metrics::define();
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RequestIdStream {
            context_id,
            policy: Rc::clone(&self.policy),
            metrics: self.metrics,
            entropy: Rc::clone(&self.entropy),
            request_id: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per request.
struct RequestIdStream {
    context_id: u32,
    policy: Rc<Policy>,
    metrics: Metrics,
    entropy: Rc<RefCell<EntropyPool>>,
    /// Set in `on_http_request_headers`, echoed in `on_http_response_headers`.
    request_id: Option<String>,
}

impl Context for RequestIdStream {}

impl HttpContext for RequestIdStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let headers = self.get_http_request_headers_bytes();
        let mut pool = self.entropy.borrow_mut();
        let mut source = HostIdSource { context_id: self.context_id, pool: &mut pool, used_fallback: false };
        let plan = decision::decide(&self.policy, &headers, &mut source);
        let used_fallback = source.used_fallback;
        drop(pool);
        let id = plan.request_id.as_str();

        // Writes: only what changed.
        if plan.id != IdOutcome::Kept {
            // Replaces every occurrence, so a repeated header becomes one.
            self.set_http_request_header(&self.policy.header, Some(id));
        }
        if let TraceOutcome::Created(traceparent) | TraceOutcome::Replaced { traceparent, .. } = &plan.trace {
            self.set_http_request_header(TRACEPARENT, Some(traceparent));
        }
        if plan.drop_tracestate {
            self.set_http_request_header(TRACESTATE, None);
        }

        // Audit: one line per replaced header, original escaped.
        if let IdOutcome::Replaced { original, reason } = &plan.id {
            log::info!("{}", audit::replaced_id_line(id, &self.policy.header, reason.as_str(), original));
        }
        if let TraceOutcome::Replaced { original, traceparent } = &plan.trace {
            log::info!("{}", audit::replaced_traceparent_line(id, original, traceparent));
        }
        if used_fallback {
            log::warn!("random source failed, generated id from fallback entropy request_id={id}");
        }

        if let Err(status) = publish_request_id(id) {
            // Already set by an earlier instance of this filter, or no stream to attach it to:
            // later filters fall back to the request header.
            log::warn!("request id property not set request_id={id} status={status}");
        }
        self.metrics.record(&plan);
        self.request_id = Some(plan.request_id);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(header), Some(id)) = (&self.policy.echo_header, &self.request_id) {
            self.set_http_response_header(header, Some(id));
        }
        Action::Continue
    }
}

/// Randomness from WASI `random_get` (through the worker's pool), time from the host clock.
struct HostIdSource<'a> {
    context_id: u32,
    pool: &'a mut EntropyPool,
    used_fallback: bool,
}

/// Distinguishes fallback draws within one VM (see [`fallback_entropy`]).
static FALLBACK_COUNTER: AtomicU64 = AtomicU64::new(0);

impl IdSource for HostIdSource<'_> {
    fn random_bytes(&mut self) -> [u8; 16] {
        if let Some(bytes) = self.pool.take16(getrandom::fill) {
            return bytes;
        }
        self.used_fallback = true;
        let counter = FALLBACK_COUNTER.fetch_add(1, Ordering::Relaxed);
        let seed = host_nanos() ^ (u64::from(self.context_id) << 32);
        fallback_entropy(seed, counter)
    }

    fn unix_millis(&mut self) -> u64 {
        host_nanos() / 1_000_000
    }
}

/// Host clock in nanoseconds since the Unix epoch; 0 if the host cannot tell.
fn host_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|now| now.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
}
