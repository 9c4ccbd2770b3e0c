//! The Proxy-Wasm shell: reads headers and the source address from Envoy, asks the core what to
//! remove, removes it, counts it, and writes the audit line at stream end.

use crate::audit;
use crate::cidr::{is_trusted, parse_source_address};
use crate::config::Policy;
use crate::rules::Stripped;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use shield_kit::metrics::Counter;
use shield_kit::request_id::request_id_for_log;
use std::rc::Rc;

/// Envoy property holding the downstream peer as `IP:port`.
const SOURCE_ADDRESS: [&str; 2] = ["source", "address"];

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

/// One per plugin and worker: holds the policy built in `on_configure`.
#[derive(Default)]
pub struct HeaderStripRoot {
    /// Starts as the default (closed) policy, so a stream created before configuration is
    /// still stripped; replaced by the configured one in `on_configure`.
    policy: Rc<Policy>,
    metrics: Metrics,
}

impl Context for HeaderStripRoot {}

impl RootContext for HeaderStripRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        shield_kit::log_level::follow_host_log_level();
        let Some(policy) = shield_kit::config::load(plugin_configuration_size, Policy::from_json) else {
            return false;
        };
        log::info!(
            "configured trusted_sources={} log_values={} response_stripping={}",
            policy.trusted_sources.len(),
            policy.log_values,
            !policy.response.is_empty(),
        );
        self.policy = Rc::new(policy);
        self.metrics = Metrics::define();
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HeaderStripStream {
            policy: Rc::clone(&self.policy),
            metrics: self.metrics,
            stripped: Stripped::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per request.
struct HeaderStripStream {
    policy: Rc<Policy>,
    metrics: Metrics,
    /// What was removed from the request, logged in `on_log` once the request ID is known
    /// (`request-id` usually runs after this filter).
    stripped: Stripped,
}

impl HeaderStripStream {
    /// Trusted only with a readable source address inside a trusted range; anything missing or
    /// unparsable is untrusted.
    fn source_is_trusted(&self) -> bool {
        let Ok(Some(address)) = hostcalls::get_property(SOURCE_ADDRESS.to_vec()) else {
            return false;
        };
        parse_source_address(&address).is_some_and(|address| is_trusted(&self.policy.trusted_sources, address))
    }
}

impl Context for HeaderStripStream {}

impl HttpContext for HeaderStripStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.policy.request.is_empty() {
            return Action::Continue;
        }
        // The property is only read when someone can be trusted at all.
        if !self.policy.trusted_sources.is_empty() && self.source_is_trusted() {
            self.metrics.requests_trusted.increment(1);
            return Action::Continue;
        }
        let headers = self.get_http_request_headers_bytes();
        let stripped = self.policy.request.plan(&headers, self.policy.log_values);
        if stripped.is_empty() {
            return Action::Continue;
        }
        for name in &stripped.names {
            // Removing a name removes every occurrence of it.
            self.set_http_request_header(name, None);
        }
        self.metrics.headers_stripped.increment(stripped.occurrences as u64);
        self.metrics.requests_stripped.increment(1);
        self.stripped = stripped;
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.policy.response.is_empty() {
            return Action::Continue;
        }
        let headers = self.get_http_response_headers_bytes();
        let stripped = self.policy.response.plan(&headers, false);
        for name in &stripped.names {
            self.set_http_response_header(name, None);
        }
        self.metrics.response_headers_stripped.increment(stripped.occurrences as u64);
        Action::Continue
    }

    fn on_log(&mut self) {
        if self.stripped.is_empty() {
            return;
        }
        log::info!("{}", audit::request_line(&request_id_for_log(), &self.stripped));
    }
}
