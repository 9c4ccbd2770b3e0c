//! The filter as a stage (see `shield_kit::stage`): asks the core for a plan over the request
//! headers, changes only what the plan changes, publishes the ID (for later filters and every
//! later stage's log lines), and echoes it on the response.

use crate::audit;
use crate::config::Policy;
use crate::decision::{self, IdOutcome, IdSource, Plan, TraceOutcome};
use crate::entropy::EntropyPool;
use crate::id::fallback_entropy;
use crate::traceparent::{TRACEPARENT, TRACESTATE};
use shield_kit::config::ConfigError;
use shield_kit::headers::{HeaderMap, HeaderNeeds};
use shield_kit::metrics::Counter;
use shield_kit::request_id::publish_request_id;
use shield_kit::stage::{Flow, Needs, Request, Stage, StageStream};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// The stage built from a configuration (defines the metrics, logs the `configured` line).
pub fn build(configuration: &[u8]) -> Result<Box<dyn Stage>, ConfigError> {
    let policy = Policy::from_json(configuration)?;
    log::info!(
        "configured header={} format={} max_length={} echo_header={} traceparent={}",
        policy.header,
        policy.format,
        policy.max_length,
        policy.echo_header.as_deref().unwrap_or("-"),
        policy.traceparent,
    );
    Ok(Box::new(RequestIdStage {
        policy: Rc::new(policy),
        metrics: Metrics::define(),
        entropy: Rc::new(RefCell::new(EntropyPool::default())),
    }))
}

/// One per plugin and worker.
struct RequestIdStage {
    policy: Rc<Policy>,
    metrics: Metrics,
    /// Host randomness fetched in batches, shared by the streams of this worker.
    entropy: Rc<RefCell<EntropyPool>>,
}

impl Stage for RequestIdStage {
    fn name(&self) -> &'static str {
        "request-id"
    }

    fn needs(&self) -> Needs {
        Needs { request_headers: HeaderNeeds::All, response_headers: HeaderNeeds::None }
    }

    fn stream(&self, context_id: u32) -> Box<dyn StageStream> {
        Box::new(RequestIdStream {
            context_id,
            policy: Rc::clone(&self.policy),
            metrics: self.metrics,
            entropy: Rc::clone(&self.entropy),
            request_id: None,
        })
    }
}

/// One per request.
struct RequestIdStream {
    context_id: u32,
    policy: Rc<Policy>,
    metrics: Metrics,
    entropy: Rc<RefCell<EntropyPool>>,
    /// Set with the request headers, echoed on the response.
    request_id: Option<String>,
}

impl StageStream for RequestIdStream {
    fn on_request_headers(&mut self, request: &mut Request, _end_of_stream: bool) -> Flow {
        let Ok(mut pool) = self.entropy.try_borrow_mut() else { return Flow::Continue };
        let mut source = HostIdSource { context_id: self.context_id, pool: &mut pool, used_fallback: false };
        let plan = decision::decide(&self.policy, &request.headers.pairs(), &mut source);
        let used_fallback = source.used_fallback;
        drop(pool);
        let id = plan.request_id.as_str();

        // Writes: only what changed.
        if plan.id != IdOutcome::Kept {
            // Replaces every occurrence, so a repeated header becomes one.
            request.headers.set(&self.policy.header, id.as_bytes());
        }
        if let TraceOutcome::Created(traceparent) | TraceOutcome::Replaced { traceparent, .. } = &plan.trace {
            request.headers.set(TRACEPARENT, traceparent.as_bytes());
        }
        if plan.drop_tracestate {
            request.headers.remove(TRACESTATE);
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
        // Later stages of this module log it without asking the host.
        request.set_request_id(id);
        self.metrics.record(&plan);
        self.request_id = Some(plan.request_id);
        Flow::Continue
    }

    fn on_response_headers(&mut self, _request: &mut Request, response: &mut HeaderMap) {
        if let (Some(header), Some(id)) = (&self.policy.echo_header, &self.request_id) {
            response.set(header, id.as_bytes());
        }
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
    shield_kit::stage::now_ns()
}
