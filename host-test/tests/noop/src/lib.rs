//! A Proxy-Wasm module that does nothing: a root context and an HTTP context whose callbacks all
//! keep the SDK's defaults (`Continue`, no hostcalls). `scripts/bench` runs it in Envoy to measure
//! what any Wasm filter costs before it does any work, so each filter's own cost is its time over
//! this module's.
//!
//! With the plugin configuration `read-request-headers` it reads the request headers once per
//! request (one `proxy_get_header_map_pairs`) and still does nothing else: the floor of any
//! filter that looks at a request at all, since that one call already returns data into the VM
//! (the host calls back into the module to allocate it).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot::default()) });
}}

/// The configuration that turns on the one header read.
const READ_REQUEST_HEADERS: &[u8] = b"read-request-headers";

#[derive(Default)]
struct NoopRoot {
    read_request_headers: bool,
}

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.read_request_headers =
            self.get_plugin_configuration().is_some_and(|bytes| bytes.trim_ascii() == READ_REQUEST_HEADERS);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NoopHttp { read_request_headers: self.read_request_headers }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct NoopHttp {
    read_request_headers: bool,
}

impl Context for NoopHttp {}

impl HttpContext for NoopHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.read_request_headers {
            std::hint::black_box(self.get_http_request_headers_bytes());
        }
        Action::Continue
    }
}
