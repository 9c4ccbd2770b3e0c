//! The stage interface: what one filter's logic looks like to the module that runs it.
//!
//! Every filter implements [`Stage`] (one per plugin and worker, built from the filter's JSON
//! configuration) and [`StageStream`] (one per request). A module runs a list of stages in order
//! ([`crate::pipeline`]): a standalone filter is a list of one, `shield` a list of up to five. The
//! stages never call the host for headers or replies themselves: they read and change the
//! stream's [`Request`] and answer a [`Flow`], so several stages share one header read and one
//! write per request and behave exactly as the same filters chained in Envoy would.

use crate::abi::{self, Map};
use crate::config::ConfigError;
use crate::headers::{HeaderMap, HeaderNeeds};
use crate::log_escape::escape_bare;
use crate::request_id::{DEFAULT_REQUEST_ID_HEADER, REQUEST_ID_PROPERTY, UNKNOWN_REQUEST_ID};
use std::time::Duration;

/// Builds a filter's stage from its configuration (the bytes the standalone filter takes).
pub type StageBuilder = fn(&[u8]) -> Result<Box<dyn Stage>, ConfigError>;

/// What a stage reads, decided once at configuration.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// Request headers read in `on_request_headers`.
    pub request_headers: HeaderNeeds,
    /// Response headers read in `on_response_headers`.
    pub response_headers: HeaderNeeds,
}

/// A filter's logic for one plugin on one worker: its configuration, shared state and root-level
/// work (ticks, HTTP call answers).
pub trait Stage {
    /// The filter's name (`jwt-auth`), for log lines.
    fn name(&self) -> &'static str;

    /// What the stage reads of each request.
    fn needs(&self) -> Needs;

    /// A new request.
    fn stream(&self, context_id: u32) -> Box<dyn StageStream>;

    /// Called once after every stage of the module was configured (dispatch start-up calls here).
    fn start(&mut self) {}

    /// How often the stage wants [`Stage::on_tick`]; `requests_waiting` tells whether some request
    /// waits on a stage of the module (a stage that completes waits may then tick faster).
    fn tick_period(&self, _requests_waiting: bool) -> Option<Duration> {
        None
    }

    /// The periodic work.
    fn on_tick(&mut self) {}

    /// An HTTP call answer; a stage ignores tokens it did not dispatch.
    fn on_http_call_response(&mut self, _token: u32, _num_headers: usize, _body_size: usize) {}
}

/// A local reply: the request ends here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Reply headers (`content-type` included when there is a body).
    pub headers: Vec<(String, String)>,
    /// Reply body.
    pub body: Vec<u8>,
    /// Envoy's response code details (`%RESPONSE_CODE_DETAILS%`), e.g. `wasm_shield_rate_limited`.
    pub details: &'static str,
}

/// What a stage answers for the request headers or the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// The next stage runs (then the request goes upstream).
    Continue,
    /// Answer locally; later stages do not run.
    Reply(LocalReply),
    /// The request waits (e.g. for keys being fetched) until `deadline_ns`; the module asks the
    /// stage again with [`StageStream::on_resume`] after root-level events.
    Wait {
        /// When the wait is over (host clock, ns since the epoch).
        deadline_ns: u64,
    },
    /// The stage wants the request body (at most `limit` bytes of it), through
    /// [`StageStream::on_request_body`]; the headers go on and later stages run now.
    ReadBody {
        /// Bytes the stage inspects; a larger body is handed over when `limit` is reached.
        limit: usize,
    },
}

/// A stage's view of one request.
pub trait StageStream {
    /// The request headers (changes made to `request.headers` are seen by later stages and
    /// written once when the headers go on).
    fn on_request_headers(&mut self, request: &mut Request, end_of_stream: bool) -> Flow;

    /// Asked again after answering [`Flow::Wait`]; `wait_over` when the deadline passed.
    fn on_resume(&mut self, _request: &mut Request, _wait_over: bool) -> Flow {
        Flow::Continue
    }

    /// The body the stage asked for: `body` holds at most the stage's limit, `body_size` is what
    /// arrived so far, `end_of_stream` whether that is all of it. Answers `Continue` or `Reply`.
    fn on_request_body(
        &mut self,
        _request: &mut Request,
        _body: &[u8],
        _body_size: usize,
        _end_of_stream: bool,
    ) -> Flow {
        Flow::Continue
    }

    /// The response headers (those of a local reply too, for the stages up to the one that
    /// replied, as Envoy runs the encoder filters before a replying filter).
    fn on_response_headers(&mut self, _request: &mut Request, _response: &mut HeaderMap) {}

    /// The stream ended (access-log time).
    fn on_log(&mut self, _request: &mut Request) {}
}

/// Envoy property holding the downstream peer as `IP:port` (serialized path).
pub const SOURCE_ADDRESS: &[u8] = b"source\0address";

/// What the stages of one module know about a request: the request headers (shared, changed in
/// place), the request ID once a stage set it, and host facts read at most once.
pub struct Request {
    /// The request headers as the stages so far left them.
    pub headers: HeaderMap,
    context_id: u32,
    request_id: Option<String>,
    source_address: Option<Option<Vec<u8>>>,
}

impl Request {
    /// A request of stream `context_id`, its headers not read yet.
    pub fn new(context_id: u32) -> Self {
        Self::with_headers(context_id, HeaderMap::new(Map::RequestHeaders))
    }

    /// A request over a given header map (tests).
    pub fn with_headers(context_id: u32, headers: HeaderMap) -> Self {
        Self { headers, context_id, request_id: None, source_address: None }
    }

    /// The stream's context ID.
    pub fn context_id(&self) -> u32 {
        self.context_id
    }

    /// Sets the request ID the stages log (the `request-id` stage; it also publishes it).
    pub fn set_request_id(&mut self, id: &str) {
        self.request_id = Some(id.to_owned());
    }

    /// The request ID for a log line: the one a stage set, else the published property (a
    /// `request-id` filter in front of this module), else the `x-request-id` header. Escaped,
    /// bounded, `-` when missing; read from the host at most once.
    pub fn request_id_for_log(&mut self) -> String {
        if let Some(id) = &self.request_id {
            return id.clone();
        }
        let from_property = abi::property(REQUEST_ID_PROPERTY.as_bytes()).filter(|value| !value.is_empty());
        // The header as the stages left it; a host lookup when it was not read (non-panicking:
        // Envoy refuses it in some callbacks, which reads as absent).
        let value = from_property.or_else(|| self.headers.get(DEFAULT_REQUEST_ID_HEADER).map(<[u8]>::to_vec));
        let id = match value {
            Some(bytes) if !bytes.is_empty() => escape_bare(&bytes),
            _ => UNKNOWN_REQUEST_ID.to_owned(),
        };
        self.request_id = Some(id.clone());
        id
    }

    /// The downstream peer as the host wrote it (`IP:port`), read once.
    pub fn source_address(&mut self) -> Option<&[u8]> {
        self.source_address.get_or_insert_with(|| abi::property(SOURCE_ADDRESS)).as_deref()
    }
}

/// The host clock in nanoseconds since the Unix epoch; 0 if the host cannot tell.
pub fn now_ns() -> u64 {
    abi::now_nanos().unwrap_or(0)
}
