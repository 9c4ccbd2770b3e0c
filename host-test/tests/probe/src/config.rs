//! The plugin configuration: which actions to run in which callback.
//!
//! Every action is an externally tagged value, `{"name": argument}` (or just `"name"` for actions
//! without an argument). Unknown fields and actions are refused, and the error names them.

use serde::Deserialize;
use std::collections::BTreeMap;

pub type Actions = Vec<Action>;

/// The whole plugin configuration. The stream callbacks (`on_request_headers` … `on_log`) may
/// also be given per request path under `routes`; a route's list replaces the top-level one.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Prefix of every log line (`<tag>: <message>`), so two probes in one chain can be told
    /// apart. Default `probe`.
    pub tag: Option<String>,
    /// `on_configure` refuses the configuration (returns false) after parsing it.
    pub fail_configure: bool,
    /// Tick period set in `on_configure`.
    pub tick_ms: Option<u32>,
    pub on_configure: Actions,
    pub on_tick: Actions,
    pub on_queue_ready: Actions,

    pub on_request_headers: Option<Actions>,
    pub on_request_body: Option<Actions>,
    pub on_request_trailers: Option<Actions>,
    pub on_response_headers: Option<Actions>,
    pub on_response_body: Option<Actions>,
    pub on_response_trailers: Option<Actions>,
    /// Run when an HTTP call without its own `then` list answers (or fails).
    pub on_http_call_response: Option<Actions>,
    /// Run when a gRPC call without its own `then` list answers (message or close).
    pub on_grpc_call_response: Option<Actions>,
    /// Run for every message received on a gRPC stream.
    pub on_grpc_stream_message: Option<Actions>,
    /// Run when a gRPC stream closes.
    pub on_grpc_close: Option<Actions>,
    pub on_done: Option<Actions>,
    pub on_log: Option<Actions>,
    /// `on_done` of stream contexts returns false; some later action must call `done`.
    pub done_later: Option<bool>,

    /// Per request path (`:path` without its query): stream callbacks for matching requests.
    pub routes: BTreeMap<String, Config>,
}

/// What the VM configuration may hold: actions for `on_vm_start`, the only callback that runs
/// before the plugin configuration is known.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct VmConfig {
    pub on_vm_start: Actions,
}

/// The stream callbacks whose actions come from the configuration.
#[derive(Clone, Copy, Debug)]
pub enum Hook {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    HttpCallResponse,
    GrpcCallResponse,
    GrpcStreamMessage,
    GrpcClose,
    Done,
    Log,
}

impl Config {
    /// Parses and checks the plugin configuration; an absent or empty one is the default.
    pub fn parse(bytes: &[u8]) -> Result<Config, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Config::default());
        }
        let config: Config = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        config.check_routes()?;
        Ok(config)
    }

    fn check_routes(&self) -> Result<(), String> {
        for (path, route) in &self.routes {
            if !path.starts_with('/') {
                return Err(format!("routes.{path}: a route is a request path starting with '/'"));
            }
            let top_level_only = [
                ("tag", route.tag.is_some()),
                ("fail_configure", route.fail_configure),
                ("tick_ms", route.tick_ms.is_some()),
                ("on_configure", !route.on_configure.is_empty()),
                ("on_tick", !route.on_tick.is_empty()),
                ("on_queue_ready", !route.on_queue_ready.is_empty()),
                ("routes", !route.routes.is_empty()),
            ];
            if let Some((field, _)) = top_level_only.iter().find(|(_, set)| *set) {
                return Err(format!("routes.{path}: `{field}` is only allowed at the top level"));
            }
        }
        Ok(())
    }

    fn hook(&self, hook: Hook) -> Option<&Actions> {
        match hook {
            Hook::RequestHeaders => self.on_request_headers.as_ref(),
            Hook::RequestBody => self.on_request_body.as_ref(),
            Hook::RequestTrailers => self.on_request_trailers.as_ref(),
            Hook::ResponseHeaders => self.on_response_headers.as_ref(),
            Hook::ResponseBody => self.on_response_body.as_ref(),
            Hook::ResponseTrailers => self.on_response_trailers.as_ref(),
            Hook::HttpCallResponse => self.on_http_call_response.as_ref(),
            Hook::GrpcCallResponse => self.on_grpc_call_response.as_ref(),
            Hook::GrpcStreamMessage => self.on_grpc_stream_message.as_ref(),
            Hook::GrpcClose => self.on_grpc_close.as_ref(),
            Hook::Done => self.on_done.as_ref(),
            Hook::Log => self.on_log.as_ref(),
        }
    }

    fn route(&self, route: Option<&str>) -> Option<&Config> {
        route.and_then(|path| self.routes.get(path))
    }

    /// The actions of a stream callback: the route's list if it has one, else the top-level one.
    pub fn actions(&self, route: Option<&str>, hook: Hook) -> &[Action] {
        self.route(route).and_then(|r| r.hook(hook)).or_else(|| self.hook(hook)).map_or(&[], Vec::as_slice)
    }

    pub fn done_later(&self, route: Option<&str>) -> bool {
        self.route(route).and_then(|r| r.done_later).or(self.done_later).unwrap_or(false)
    }

    /// Number of action lists configured, for the `on_configure` summary line.
    pub fn lists(&self) -> usize {
        let hooks = [
            Hook::RequestHeaders,
            Hook::RequestBody,
            Hook::RequestTrailers,
            Hook::ResponseHeaders,
            Hook::ResponseBody,
            Hook::ResponseTrailers,
            Hook::HttpCallResponse,
            Hook::GrpcCallResponse,
            Hook::GrpcStreamMessage,
            Hook::GrpcClose,
            Hook::Done,
            Hook::Log,
        ];
        let root = [&self.on_configure, &self.on_tick, &self.on_queue_ready];
        root.iter().filter(|l| !l.is_empty()).count() + hooks.iter().filter(|h| self.hook(**h).is_some()).count()
    }
}

/// One step of a callback. See the README for what each one logs.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    // Logging.
    /// Logs the text at info.
    Log(String),
    /// `["warn", "text"]`: logs the text through `proxy_log` at that level.
    LogAt(Level, String),
    /// Logs `proxy_get_log_level`.
    LogLevel,
    /// Re-logs, prefixed `startup:`, what this VM logged before its first request or tick.
    StartupLog,

    // Clocks, timers, WASI.
    /// Logs proxy time, WASI realtime, and whether they agree within 1 ms.
    Time,
    /// `proxy_set_tick_period_milliseconds`.
    TickPeriod(u32),
    /// Logs that many bytes from WASI `random_get`, in hex.
    Random(usize),
    /// Prints the text to stdout (WASI `fd_write` on fd 1).
    Stdout(String),
    /// Prints the text to stderr (WASI `fd_write` on fd 2).
    Stderr(String),
    /// Logs one environment variable, or all of them for `null`.
    Env(Option<String>),
    /// Logs the WASI arguments.
    Args,

    // Header and trailer maps; without a `map`, the callback's own map (see `Probe::default_map`).
    GetHeader(HeaderName),
    #[serde(alias = "replace_header")]
    SetHeader(HeaderValue),
    AddHeader(HeaderValue),
    RemoveHeader(HeaderName),
    /// Logs every pair of the map, in order.
    DumpHeaders(Option<MapName>),
    /// Replaces the whole map (`proxy_set_header_map_pairs`).
    SetHeaders(HeaderPairs),

    // Buffers; the body actions work on the callback's own body.
    GetBody,
    SetBody(String),
    AppendBody(String),
    PrependBody(String),
    /// Before the body's last chunk: stop here and return Pause, so the host buffers.
    BufferBody,
    /// Logs a whole buffer by name.
    GetBuffer(BufferName),

    // Stream control.
    /// The callback returns Pause.
    Pause,
    ContinueRequest,
    ContinueResponse,
    /// `proxy_close_stream(HTTP_REQUEST)`; the callback returns Pause.
    CloseStream,
    /// `proxy_close_stream(HTTP_RESPONSE)`; the callback returns Pause.
    CloseResponse,
    /// `proxy_send_local_response`; the callback returns Pause.
    LocalReply(Box<LocalReply>),

    // Properties.
    Property(PropertyPath),
    SetProperty(PropertyPath, String),

    // Shared data and queues.
    SharedGet(String),
    SharedSet(SharedSet),
    QueueRegister(String),
    /// `[vm_id, name]`.
    QueueResolve(String, String),
    /// `[name, value]`; the queue must be registered or resolved in this VM.
    QueueEnqueue(String, String),
    QueueDequeue(String),
    /// Dequeues until the queue is empty.
    QueueDrain(String),

    // Metrics, by name; `metric_define` must have run in this VM.
    MetricDefine(MetricDefine),
    MetricIncrement(String, i64),
    MetricRecord(String, u64),
    MetricGet(String),

    // Callouts.
    HttpCall(Box<HttpCall>),
    GrpcCall(Box<GrpcCall>),
    GrpcStream(Box<GrpcStream>),
    GrpcSend(GrpcSend),
    /// `proxy_grpc_cancel` of a named call or stream.
    GrpcCancel(String),
    /// `proxy_grpc_close` of a named call or stream.
    GrpcClose(String),
    /// Logs `proxy_get_status`.
    GetStatus,

    // Contexts, FFI, failure.
    /// `"root"`, `"self"` or a context id.
    EffectiveContext(ContextRef),
    /// Calls a foreign function by name, without arguments.
    Foreign(String),
    /// `proxy_done`.
    Done,
    /// Panics with the message: a trap.
    Panic(String),
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// `proxy_map_type_t`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MapName {
    RequestHeaders = 0,
    RequestTrailers = 1,
    ResponseHeaders = 2,
    ResponseTrailers = 3,
    GrpcInitialMetadata = 4,
    GrpcTrailingMetadata = 5,
    HttpCallResponseHeaders = 6,
    HttpCallResponseTrailers = 7,
}

impl MapName {
    pub fn id(self) -> u32 {
        self as u32
    }

    pub fn name(self) -> &'static str {
        match self {
            MapName::RequestHeaders => "request_headers",
            MapName::RequestTrailers => "request_trailers",
            MapName::ResponseHeaders => "response_headers",
            MapName::ResponseTrailers => "response_trailers",
            MapName::GrpcInitialMetadata => "grpc_initial_metadata",
            MapName::GrpcTrailingMetadata => "grpc_trailing_metadata",
            MapName::HttpCallResponseHeaders => "http_call_response_headers",
            MapName::HttpCallResponseTrailers => "http_call_response_trailers",
        }
    }
}

/// `proxy_buffer_type_t`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BufferName {
    RequestBody = 0,
    ResponseBody = 1,
    DownstreamData = 2,
    UpstreamData = 3,
    HttpCallResponseBody = 4,
    GrpcReceiveBuffer = 5,
    VmConfiguration = 6,
    PluginConfiguration = 7,
    ForeignFunctionArguments = 8,
}

impl BufferName {
    pub fn id(self) -> u32 {
        self as u32
    }

    pub fn name(self) -> &'static str {
        match self {
            BufferName::RequestBody => "request_body",
            BufferName::ResponseBody => "response_body",
            BufferName::DownstreamData => "downstream_data",
            BufferName::UpstreamData => "upstream_data",
            BufferName::HttpCallResponseBody => "http_call_response_body",
            BufferName::GrpcReceiveBuffer => "grpc_receive_buffer",
            BufferName::VmConfiguration => "vm_configuration",
            BufferName::PluginConfiguration => "plugin_configuration",
            BufferName::ForeignFunctionArguments => "foreign_function_arguments",
        }
    }
}

/// `"name"` (the callback's map) or `{map, name}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum HeaderName {
    Name(String),
    In(HeaderNameIn),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderNameIn {
    pub map: MapName,
    pub name: String,
}

impl HeaderName {
    pub fn parts(&self) -> (Option<MapName>, &str) {
        match self {
            HeaderName::Name(name) => (None, name),
            HeaderName::In(h) => (Some(h.map), &h.name),
        }
    }
}

/// `["name", "value"]` (the callback's map) or `{map, name, value}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    Pair(String, String),
    In(HeaderValueIn),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderValueIn {
    pub map: MapName,
    pub name: String,
    pub value: String,
}

impl HeaderValue {
    pub fn parts(&self) -> (Option<MapName>, &str, &str) {
        match self {
            HeaderValue::Pair(name, value) => (None, name, value),
            HeaderValue::In(h) => (Some(h.map), &h.name, &h.value),
        }
    }
}

/// `[["name", "value"], …]` (the callback's map) or `{map, pairs}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum HeaderPairs {
    Pairs(Vec<(String, String)>),
    In(HeaderPairsIn),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderPairsIn {
    pub map: MapName,
    pub pairs: Vec<(String, String)>,
}

impl HeaderPairs {
    pub fn parts(&self) -> (Option<MapName>, &[(String, String)]) {
        match self {
            HeaderPairs::Pairs(pairs) => (None, pairs),
            HeaderPairs::In(h) => (Some(h.map), &h.pairs),
        }
    }
}

/// `["source", "address"]`, or `"source.address"` (split at dots).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum PropertyPath {
    Segments(Vec<String>),
    Dotted(String),
}

impl PropertyPath {
    pub fn segments(&self) -> Vec<String> {
        match self {
            PropertyPath::Segments(segments) => segments.clone(),
            PropertyPath::Dotted(path) => path.split('.').map(str::to_owned).collect(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalReply {
    pub status: u32,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Response code details; default `probe_local_reply`.
    pub details: Option<String>,
    /// gRPC status of the reply; none by default.
    pub grpc_status: Option<i32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedSet {
    pub key: String,
    pub value: String,
    #[serde(default)]
    pub cas: CasMode,
}

/// Which compare-and-swap token `shared_set` passes.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CasMode {
    /// 0: no check.
    #[default]
    None,
    /// The token of a `proxy_get_shared_data` made just before.
    Fresh,
    /// Read the token, write with it (succeeds), write again with the same, now stale, token.
    Stale,
    /// The token this VM's last `shared_get` of the key returned (maybe stale by now).
    LastGet,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDefine {
    pub kind: MetricKind,
    pub name: String,
}

/// `proxy_metric_type_t`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCall {
    pub cluster: String,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Default: the cluster name.
    pub authority: Option<String>,
    /// Extra headers, after the pseudo-headers.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub trailers: Vec<(String, String)>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Send `:method`, `:path` and `:authority` (false: only `headers`, which the host must
    /// refuse with BadArgument unless they carry the pseudo-headers themselves).
    #[serde(default = "yes")]
    pub pseudo_headers: bool,
    /// Actions for this call's response, instead of `on_http_call_response`.
    pub then: Option<Actions>,
    /// Dispatch with the raw hostcall, so that the SDK never learns the token: if the host
    /// delivers an answer for it (to whatever context), the SDK's dispatcher panics with
    /// "invalid token_id" — a trap that shows the answer was delivered.
    #[serde(default)]
    pub untracked: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcCall {
    /// Name for `grpc_cancel`/`grpc_close` and the log lines; default `service/method`.
    pub name: Option<String>,
    pub cluster: String,
    pub service: String,
    pub method: String,
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
    #[serde(default)]
    pub message: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Actions for this call's response, instead of `on_grpc_call_response`.
    pub then: Option<Actions>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcStream {
    /// Name for `grpc_send`/`grpc_cancel`/`grpc_close` and the log lines.
    pub name: String,
    pub cluster: String,
    pub service: String,
    pub method: String,
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcSend {
    pub stream: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub end_stream: bool,
}

/// `"root"`, `"self"`, or a context id.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum ContextRef {
    Id(u32),
    Named(ContextName),
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextName {
    Root,
    #[serde(rename = "self")]
    Current,
}

fn default_path() -> String {
    "/".to_owned()
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_timeout_ms() -> u64 {
    1000
}

fn yes() -> bool {
    true
}
