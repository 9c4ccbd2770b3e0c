//! The filter as a stage (see `shield_kit::stage`): removes the planned request headers from the
//! stream's header map, counts them, and writes the audit line at stream end (when the request ID
//! is known: `request-id` usually runs after this filter).

use crate::audit;
use crate::cidr::{is_trusted, parse_source_address};
use crate::config::Policy;
use crate::rules::Stripped;
use shield_kit::config::ConfigError;
use shield_kit::headers::{HeaderMap, HeaderNeeds};
use shield_kit::metrics::Counter;
use shield_kit::stage::{Flow, Needs, Request, Stage, StageStream};
use std::rc::Rc;

/// The counters of the filter (see the crate README).
#[derive(Debug, Clone, Copy, Default)]
struct Metrics {
    /// Request header lines removed (a repeated header counts once per line).
    headers_stripped: Counter,
    /// Requests that lost at least one header.
    requests_stripped: Counter,
    /// Requests left untouched because they came from a trusted source.
    requests_trusted: Counter,
    /// Response header lines removed.
    response_headers_stripped: Counter,
}

impl Metrics {
    fn define() -> Self {
        Self {
            headers_stripped: Counter::define("wasm_shield.header_strip.headers_stripped"),
            requests_stripped: Counter::define("wasm_shield.header_strip.requests_stripped"),
            requests_trusted: Counter::define("wasm_shield.header_strip.requests_trusted"),
            response_headers_stripped: Counter::define("wasm_shield.header_strip.response_headers_stripped"),
        }
    }
}

/// The stage built from a configuration (defines the metrics, logs the `configured` line).
pub fn build(configuration: &[u8]) -> Result<Box<dyn Stage>, ConfigError> {
    let policy = Policy::from_json(configuration)?;
    log::info!(
        "configured trusted_sources={} log_values={} response_stripping={}",
        policy.trusted_sources.len(),
        policy.log_values,
        !policy.response.is_empty(),
    );
    Ok(Box::new(HeaderStripStage { policy: Rc::new(policy), metrics: Metrics::define() }))
}

/// One per plugin and worker.
struct HeaderStripStage {
    policy: Rc<Policy>,
    metrics: Metrics,
}

impl Stage for HeaderStripStage {
    fn name(&self) -> &'static str {
        "header-strip"
    }

    fn needs(&self) -> Needs {
        let all_if = |wanted: bool| if wanted { HeaderNeeds::All } else { HeaderNeeds::None };
        Needs {
            request_headers: all_if(!self.policy.request.is_empty()),
            response_headers: all_if(!self.policy.response.is_empty()),
        }
    }

    fn stream(&self, _context_id: u32) -> Box<dyn StageStream> {
        Box::new(HeaderStripStream {
            policy: Rc::clone(&self.policy),
            metrics: self.metrics,
            stripped: Stripped::default(),
        })
    }
}

/// One per request.
struct HeaderStripStream {
    policy: Rc<Policy>,
    metrics: Metrics,
    /// What was removed from the request, logged in `on_log` once the request ID is known.
    stripped: Stripped,
}

impl StageStream for HeaderStripStream {
    fn on_request_headers(&mut self, request: &mut Request, _end_of_stream: bool) -> Flow {
        if self.policy.request.is_empty() {
            return Flow::Continue;
        }
        // The source address is only read when someone can be trusted at all; anything missing
        // or unparsable is untrusted.
        if !self.policy.trusted_sources.is_empty()
            && request
                .source_address()
                .and_then(parse_source_address)
                .is_some_and(|address| is_trusted(&self.policy.trusted_sources, address))
        {
            self.metrics.requests_trusted.increment(1);
            return Flow::Continue;
        }
        let stripped = self.policy.request.plan(&request.headers.pairs(), self.policy.log_values);
        if stripped.is_empty() {
            return Flow::Continue;
        }
        for name in &stripped.names {
            // Removing a name removes every occurrence of it.
            request.headers.remove(name);
        }
        self.metrics.headers_stripped.increment(stripped.occurrences as u64);
        self.metrics.requests_stripped.increment(1);
        self.stripped = stripped;
        Flow::Continue
    }

    fn on_response_headers(&mut self, _request: &mut Request, response: &mut HeaderMap) {
        if self.policy.response.is_empty() {
            return;
        }
        let stripped = self.policy.response.plan(&response.pairs(), false);
        for name in &stripped.names {
            response.remove(name);
        }
        self.metrics.response_headers_stripped.increment(stripped.occurrences as u64);
    }

    fn on_log(&mut self, request: &mut Request) {
        if self.stripped.is_empty() {
            return;
        }
        log::info!("{}", audit::request_line(&request.request_id_for_log(), &self.stripped));
    }
}
