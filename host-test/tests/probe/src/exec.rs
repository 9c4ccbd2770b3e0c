//! The action executor: one [`Probe`] per context runs action lists and logs what the host
//! answered, one line per hostcall.

use crate::config::{
    Action, Actions, BufferName, CasMode, Config, ContextName, ContextRef, GrpcCall, GrpcStream, Hook, HttpCall,
    LocalReply, MapName, SharedSet,
};
use crate::host::{self, Status};
use crate::vm::{self, error, quote, say, warn};
use proxy_wasm::hostcalls;
use std::collections::BTreeMap;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The callback an action list runs in: it decides the default header map and body.
#[derive(Clone, Copy, Debug)]
pub enum Phase {
    VmStart,
    Configure,
    Tick,
    QueueReady,
    RequestHeaders,
    RequestBody { size: usize, end_of_stream: bool },
    RequestTrailers,
    ResponseHeaders,
    ResponseBody { size: usize, end_of_stream: bool },
    ResponseTrailers,
    HttpCallResponse { body_size: usize },
    GrpcMessage { size: usize },
    GrpcClose,
    Done,
    Log,
}

/// What an action asks of the callback that runs it.
enum Step {
    Next,
    /// Keep going, but the callback returns Pause.
    Pause,
    /// Skip the rest of the list and return Pause (`buffer_body` before the last chunk).
    Stop,
}

/// A callout waiting for its answer.
struct Pending {
    label: String,
    then: Option<Actions>,
}

/// Properties Envoy serializes as 8-byte little-endian integers.
const SIGNED_PROPERTIES: &[&str] = &[
    "source.port",
    "destination.port",
    "upstream.port",
    "upstream.local_port",
    "response.code",
    "request.size",
    "request.total_size",
    "response.size",
    "response.total_size",
    "request.duration",
    "request.time",
];
const UNSIGNED_PROPERTIES: &[&str] = &["connection.id"];
const BOOL_PROPERTIES: &[&str] = &["connection.mtls"];
/// Properties serialized as maps (the header-map pairs format).
const MAP_PROPERTIES: &[&str] = &["request.headers", "request.trailers", "response.headers", "response.trailers"];

/// The state of one context (the root context, or one HTTP stream).
pub struct Probe {
    pub id: u32,
    pub root_id: u32,
    pub is_root: bool,
    pub config: Rc<Config>,
    /// The `routes` entry this stream matched.
    pub route: Option<String>,
    /// The response headers have arrived: callouts then default to the response maps.
    pub response_started: bool,
    /// `proxy_done` answered Ok for this context.
    pub done_called: bool,
    http_calls: BTreeMap<u32, Pending>,
    grpc_calls: BTreeMap<u32, Pending>,
    /// Named gRPC calls and streams, for `grpc_send`/`grpc_cancel`/`grpc_close`.
    grpc_names: BTreeMap<String, u32>,
    grpc_streams: BTreeMap<u32, String>,
}

/// Logs at info when the host answered Ok, else at warn.
fn report(status: Status, message: String) {
    if status.is_ok() { say(message) } else { warn(message) }
}

fn level_name(level: u32) -> String {
    match level {
        0 => "trace".to_owned(),
        1 => "debug".to_owned(),
        2 => "info".to_owned(),
        3 => "warn".to_owned(),
        4 => "error".to_owned(),
        5 => "critical".to_owned(),
        other => format!("level({other})"),
    }
}

/// A property value in a log line: integers, booleans and maps decoded for the well-known paths
/// that hold them, anything else quoted.
fn render_property(name: &str, value: &[u8]) -> String {
    if let Ok(word) = <[u8; 8]>::try_from(value) {
        if SIGNED_PROPERTIES.contains(&name) {
            return i64::from_le_bytes(word).to_string();
        }
        if UNSIGNED_PROPERTIES.contains(&name) {
            return u64::from_le_bytes(word).to_string();
        }
    }
    if BOOL_PROPERTIES.contains(&name) && value.len() == 1 {
        return (value[0] != 0).to_string();
    }
    if MAP_PROPERTIES.contains(&name)
        && let Some(pairs) = host::deserialize_pairs(value)
    {
        return vm::pairs(&pairs);
    }
    quote(value)
}

fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
}

impl Probe {
    pub fn new(id: u32, root_id: u32, config: Rc<Config>) -> Probe {
        Probe {
            id,
            root_id,
            is_root: id == root_id,
            config,
            route: None,
            response_started: false,
            done_called: false,
            http_calls: BTreeMap::new(),
            grpc_calls: BTreeMap::new(),
            grpc_names: BTreeMap::new(),
            grpc_streams: BTreeMap::new(),
        }
    }

    /// Runs the configured actions of a stream callback; true when the callback must pause.
    pub fn run_hook(&mut self, phase: Phase, hook: Hook) -> bool {
        let config = Rc::clone(&self.config);
        self.run(phase, config.actions(self.route.as_deref(), hook))
    }

    /// Runs actions in order; true when the callback must pause.
    pub fn run(&mut self, phase: Phase, actions: &[Action]) -> bool {
        let mut pause = false;
        for action in actions {
            match self.exec(phase, action) {
                Step::Next => {}
                Step::Pause => pause = true,
                Step::Stop => return true,
            }
        }
        pause
    }

    fn exec(&mut self, phase: Phase, action: &Action) -> Step {
        match action {
            Action::Log(text) => say(text),
            Action::LogAt(level, text) => {
                let status = host::log(*level as u32, &vm::prefixed(text));
                if !status.is_ok() {
                    warn(format!("log_at {level:?} status={status}"));
                }
            }
            Action::LogLevel => match host::get_log_level() {
                // Logged at the level the host reports, so the host's own filter lets it through.
                (Status::OK, level) => {
                    let line = vm::prefixed(&format!("log_level={}", level_name(level)));
                    let status = host::log(level.min(5), &line);
                    if !status.is_ok() {
                        warn(format!("log_level log status={status}"));
                    }
                }
                (status, _) => warn(format!("log_level status={status}")),
            },
            Action::StartupLog => {
                for line in vm::startup_lines() {
                    say(format!("startup: {line}"));
                }
            }
            Action::Time => time(),
            Action::TickPeriod(millis) => {
                let status = host::set_tick_period(*millis);
                report(status, format!("tick_period {millis}ms status={status}"));
            }
            Action::Random(len) => random(*len),
            Action::Stdout(text) => {
                let mut out = std::io::stdout();
                if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
                    warn(format!("stdout write failed: {e}"));
                }
            }
            Action::Stderr(text) => {
                if let Err(e) = writeln!(std::io::stderr(), "{text}") {
                    warn(format!("stderr write failed: {e}"));
                }
            }
            Action::Env(name) => env(name.as_deref()),
            Action::Args => {
                let args: Vec<String> = std::env::args_os().map(|a| quote(a.as_encoded_bytes())).collect();
                say(format!("args count={} [{}]", args.len(), args.join(", ")));
            }

            Action::GetHeader(header) => {
                let (map, name) = header.parts();
                if let Some(map) = self.map(phase, map, "get_header") {
                    get_header(map, name);
                }
            }
            Action::SetHeader(header) => {
                let (map, name, value) = header.parts();
                if let Some(map) = self.map(phase, map, "set_header") {
                    let status = host::replace_map_value(map.id(), name, value);
                    let value = quote(value.as_bytes());
                    report(status, format!("{} replace {name}={value} status={status}", map.name()));
                }
            }
            Action::AddHeader(header) => {
                let (map, name, value) = header.parts();
                if let Some(map) = self.map(phase, map, "add_header") {
                    let status = host::add_map_value(map.id(), name, value);
                    let value = quote(value.as_bytes());
                    report(status, format!("{} add {name}={value} status={status}", map.name()));
                }
            }
            Action::RemoveHeader(header) => {
                let (map, name) = header.parts();
                if let Some(map) = self.map(phase, map, "remove_header") {
                    let status = host::remove_map_value(map.id(), name);
                    report(status, format!("{} remove {name} status={status}", map.name()));
                }
            }
            Action::DumpHeaders(map) => {
                if let Some(map) = self.map(phase, *map, "dump_headers") {
                    dump(map);
                }
            }
            Action::SetHeaders(pairs) => {
                let (map, pairs) = pairs.parts();
                if let Some(map) = self.map(phase, map, "set_headers") {
                    let status = host::set_map_pairs(map.id(), pairs);
                    let count = pairs.len();
                    report(status, format!("{} set_pairs count={count} status={status}", map.name()));
                }
            }

            Action::GetBody => {
                if let Some((buffer, size, _)) = body(phase, "get_body") {
                    get_buffer(buffer, size);
                }
            }
            Action::SetBody(text) => {
                if let Some((buffer, size, _)) = body(phase, "set_body") {
                    set_buffer(buffer, "replace", 0, size, text);
                }
            }
            Action::AppendBody(text) => {
                if let Some((buffer, size, _)) = body(phase, "append_body") {
                    set_buffer(buffer, "append", size, 0, text);
                }
            }
            Action::PrependBody(text) => {
                if let Some((buffer, _, _)) = body(phase, "prepend_body") {
                    set_buffer(buffer, "prepend", 0, 0, text);
                }
            }
            Action::BufferBody => {
                if let Some((buffer, size, end_of_stream)) = body(phase, "buffer_body") {
                    if !end_of_stream {
                        say(format!("{} buffering size={size}", buffer.name()));
                        return Step::Stop;
                    }
                    say(format!("{} complete size={size}", buffer.name()));
                }
            }
            Action::GetBuffer(buffer) => get_buffer(*buffer, usize::MAX),

            Action::Pause => {
                say("pause");
                return Step::Pause;
            }
            Action::ContinueRequest => {
                let status = host::continue_stream(0);
                report(status, format!("continue_request status={status}"));
            }
            Action::ContinueResponse => {
                let status = host::continue_stream(1);
                report(status, format!("continue_response status={status}"));
            }
            Action::CloseStream => {
                let status = host::close_stream(0);
                report(status, format!("close_stream request status={status}"));
                return Step::Pause;
            }
            Action::CloseResponse => {
                let status = host::close_stream(1);
                report(status, format!("close_stream response status={status}"));
                return Step::Pause;
            }
            Action::LocalReply(reply) => {
                local_reply(reply);
                return Step::Pause;
            }

            Action::Property(path) => {
                let path = path.segments();
                let name = path.join(".");
                match host::get_property(&path) {
                    (Status::OK, value) => {
                        let value = render_property(&name, value.as_deref().unwrap_or_default());
                        say(format!("property {name}={value}"));
                    }
                    (Status::NOT_FOUND, _) => say(format!("property {name} missing")),
                    (status, _) => warn(format!("property {name} status={status}")),
                }
            }
            Action::SetProperty(path, value) => {
                let path = path.segments();
                let status = host::set_property(&path, value.as_bytes());
                let (name, value) = (path.join("."), quote(value.as_bytes()));
                report(status, format!("set_property {name}={value} status={status}"));
            }

            Action::SharedGet(key) => shared_get(key),
            Action::SharedSet(set) => shared_set(set),
            Action::QueueRegister(name) => {
                let (status, id) = host::register_shared_queue(name);
                if status.is_ok() {
                    vm::with(|vm| vm.queues.insert(name.clone(), id));
                }
                report(status, format!("queue_register {name} status={status}"));
            }
            Action::QueueResolve(vm_id, name) => {
                let (status, id) = host::resolve_shared_queue(vm_id, name);
                if status.is_ok() {
                    vm::with(|vm| vm.queues.insert(name.clone(), id));
                }
                let vm_id = quote(vm_id.as_bytes());
                report(status, format!("queue_resolve vm_id={vm_id} name={name} status={status}"));
            }
            Action::QueueEnqueue(name, value) => {
                if let Some(id) = queue(name, "queue_enqueue") {
                    let status = host::enqueue_shared_queue(id, value.as_bytes());
                    let value = quote(value.as_bytes());
                    report(status, format!("queue_enqueue {name}={value} status={status}"));
                }
            }
            Action::QueueDequeue(name) => {
                if let Some(id) = queue(name, "queue_dequeue") {
                    dequeue(name, id);
                }
            }
            Action::QueueDrain(name) => {
                if let Some(id) = queue(name, "queue_drain") {
                    for _ in 0..1000 {
                        if !dequeue(name, id) {
                            break;
                        }
                    }
                }
            }

            Action::MetricDefine(define) => {
                let name = &define.name;
                let (status, id) = host::define_metric(define.kind as u32, name);
                if status.is_ok() {
                    vm::with(|vm| vm.metrics.insert(name.clone(), id));
                }
                let kind = format!("{:?}", define.kind).to_lowercase();
                report(status, format!("metric_define {name} kind={kind} status={status}"));
            }
            Action::MetricIncrement(name, by) => {
                if let Some(id) = metric(name, "metric_increment") {
                    let status = host::increment_metric(id, *by);
                    report(status, format!("metric_increment {name} by={by} status={status}"));
                }
            }
            Action::MetricRecord(name, value) => {
                if let Some(id) = metric(name, "metric_record") {
                    let status = host::record_metric(id, *value);
                    report(status, format!("metric_record {name} value={value} status={status}"));
                }
            }
            Action::MetricGet(name) => {
                if let Some(id) = metric(name, "metric_get") {
                    match host::get_metric(id) {
                        (Status::OK, value) => say(format!("metric_get {name} value={value}")),
                        (status, _) => warn(format!("metric_get {name} status={status}")),
                    }
                }
            }

            Action::HttpCall(call) => self.http_call(call),
            Action::GrpcCall(call) => self.grpc_call(call),
            Action::GrpcStream(stream) => self.grpc_stream(stream),
            Action::GrpcSend(send) => {
                if let Some(token) = self.grpc_token(&send.stream, "grpc_send") {
                    let status = host::grpc_send(token, send.message.as_bytes(), send.end_stream);
                    let (name, end) = (&send.stream, send.end_stream);
                    let message = quote(send.message.as_bytes());
                    let line = format!("grpc_send {name} {message} end_stream={end}");
                    report(status, format!("{line} status={status}"));
                }
            }
            Action::GrpcCancel(name) => {
                if let Some(token) = self.grpc_token(name, "grpc_cancel") {
                    let status = host::grpc_cancel(token);
                    report(status, format!("grpc_cancel {name} status={status}"));
                }
            }
            Action::GrpcClose(name) => {
                if let Some(token) = self.grpc_token(name, "grpc_close") {
                    let status = host::grpc_close(token);
                    report(status, format!("grpc_close {name} status={status}"));
                }
            }
            Action::GetStatus => log_status("get_status"),

            Action::EffectiveContext(target) => {
                let (id, label) = match target {
                    ContextRef::Named(ContextName::Root) => (self.root_id, "root".to_owned()),
                    ContextRef::Named(ContextName::Current) => (self.id, "self".to_owned()),
                    ContextRef::Id(id) => (*id, id.to_string()),
                };
                let status = host::set_effective_context(id);
                report(status, format!("effective_context {label} status={status}"));
            }
            Action::Foreign(name) => match host::call_foreign_function(name, &[]) {
                (Status::OK, result) => {
                    let result = quote(result.as_deref().unwrap_or_default());
                    say(format!("foreign {name} status=Ok result={result}"));
                }
                (status, _) => warn(format!("foreign {name} status={status}")),
            },
            Action::Done => {
                let status = host::done();
                self.done_called |= status.is_ok();
                report(status, format!("done status={status}"));
            }
            Action::Panic(message) => {
                error(format!("panicking: {message}"));
                panic!("{message}");
            }
        }
        Step::Next
    }

    /// The map header actions use when they name none: the callback's own map; after a pause,
    /// in callouts, `on_done` and `on_log`, the request headers until the response headers came,
    /// then the response headers. Root contexts have none.
    fn default_map(&self, phase: Phase) -> Option<MapName> {
        match phase {
            Phase::RequestHeaders | Phase::RequestBody { .. } => Some(MapName::RequestHeaders),
            Phase::RequestTrailers => Some(MapName::RequestTrailers),
            Phase::ResponseHeaders | Phase::ResponseBody { .. } => Some(MapName::ResponseHeaders),
            Phase::ResponseTrailers => Some(MapName::ResponseTrailers),
            _ if self.is_root => None,
            _ if self.response_started => Some(MapName::ResponseHeaders),
            _ => Some(MapName::RequestHeaders),
        }
    }

    fn map(&self, phase: Phase, explicit: Option<MapName>, action: &str) -> Option<MapName> {
        let map = explicit.or_else(|| self.default_map(phase));
        if map.is_none() {
            error(format!("{action}: no header map in {phase:?}; name one with `map`"));
        }
        map
    }

    fn http_call(&mut self, call: &HttpCall) {
        let authority = call.authority.as_deref().unwrap_or(&call.cluster);
        let mut headers = Vec::new();
        if call.pseudo_headers {
            headers.push((":method", call.method.as_str()));
            headers.push((":path", call.path.as_str()));
            headers.push((":authority", authority));
        }
        headers.extend(borrowed(&call.headers));
        let body = (!call.body.is_empty()).then_some(call.body.as_bytes());
        let timeout = Duration::from_millis(call.timeout_ms);
        let line = format!("http_call cluster={} path={}", call.cluster, call.path);
        let trailers = borrowed(&call.trailers);
        if call.untracked {
            let timeout_ms = u32::try_from(call.timeout_ms).unwrap_or(u32::MAX);
            let (status, _) =
                host::http_call_untracked(&call.cluster, &headers, body.unwrap_or_default(), &trailers, timeout_ms);
            report(status, format!("{line} untracked status={status}"));
            return;
        }
        match hostcalls::dispatch_http_call(&call.cluster, headers, body, trailers, timeout) {
            Ok(token) => {
                let label = format!("{}{}", call.cluster, call.path);
                let then = call.then.clone();
                self.http_calls.insert(token, Pending { label, then });
                say(format!("{line} status=Ok"));
            }
            Err(status) => warn(format!("{line} status={status:?}")),
        }
    }

    fn grpc_call(&mut self, call: &GrpcCall) {
        let label = call.name.clone().unwrap_or_else(|| format!("{}/{}", call.service, call.method));
        let metadata: Vec<(&str, &[u8])> = call.metadata.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        let message = Some(call.message.as_bytes());
        let timeout = Duration::from_millis(call.timeout_ms);
        let line = format!("grpc_call {label} cluster={}", call.cluster);
        let (cluster, service, method) = (&call.cluster, &call.service, &call.method);
        match hostcalls::dispatch_grpc_call(cluster, service, method, metadata, message, timeout) {
            Ok(token) => {
                if let Some(name) = &call.name {
                    self.grpc_names.insert(name.clone(), token);
                }
                let then = call.then.clone();
                self.grpc_calls.insert(token, Pending { label, then });
                say(format!("{line} status=Ok"));
            }
            Err(status) => warn(format!("{line} status={status:?}")),
        }
    }

    fn grpc_stream(&mut self, stream: &GrpcStream) {
        let metadata: Vec<(&str, &[u8])> = stream.metadata.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        let (cluster, service, method) = (&stream.cluster, &stream.service, &stream.method);
        let name = &stream.name;
        match hostcalls::open_grpc_stream(cluster, service, method, metadata) {
            Ok(token) => {
                self.grpc_names.insert(name.clone(), token);
                self.grpc_streams.insert(token, name.clone());
                say(format!("grpc_stream {name} open cluster={cluster} status=Ok"));
            }
            Err(status) => warn(format!("grpc_stream {name} open cluster={cluster} status={status:?}")),
        }
    }

    fn grpc_token(&self, name: &str, action: &str) -> Option<u32> {
        let token = self.grpc_names.get(name).copied();
        if token.is_none() {
            error(format!("{action} {name}: no gRPC call or stream of that name in this context"));
        }
        token
    }

    fn stream_label(&self, token: u32) -> String {
        self.grpc_streams.get(&token).cloned().unwrap_or_else(|| format!("#{token}"))
    }

    /// `proxy_on_http_call_response`: logs the answer, then runs the call's `then` actions or
    /// `on_http_call_response`.
    pub fn http_call_answered(&mut self, token: u32, headers: usize, body_size: usize, trailers: usize) {
        let pending = self.http_calls.remove(&token);
        let label = pending.as_ref().map_or_else(|| format!("#{token}"), |p| p.label.clone());
        say(format!("on_http_call_response call={label} headers={headers} body_size={body_size} trailers={trailers}"));
        if headers > 0 {
            dump(MapName::HttpCallResponseHeaders);
        }
        if body_size > 0 {
            get_buffer(BufferName::HttpCallResponseBody, body_size);
        }
        if trailers > 0 {
            dump(MapName::HttpCallResponseTrailers);
        }
        let phase = Phase::HttpCallResponse { body_size };
        match pending.and_then(|p| p.then) {
            Some(then) => self.run(phase, &then),
            None => self.run_hook(phase, Hook::HttpCallResponse),
        };
    }

    /// The SDK's `on_grpc_call_response`: a message (`size` > 0, status 0) or a close without
    /// one (the status, with `proxy_get_status` logged).
    pub fn grpc_call_answered(&mut self, token: u32, status_code: u32, size: usize) {
        let pending = self.grpc_calls.remove(&token);
        let label = pending.as_ref().map_or_else(|| format!("#{token}"), |p| p.label.clone());
        say(format!("on_grpc_call_response call={label} status={status_code} size={size}"));
        if size > 0 {
            get_buffer(BufferName::GrpcReceiveBuffer, size);
        } else {
            log_status("grpc_status");
        }
        let phase = Phase::GrpcMessage { size };
        match pending.and_then(|p| p.then) {
            Some(then) => self.run(phase, &then),
            None => self.run_hook(phase, Hook::GrpcCallResponse),
        };
    }

    pub fn grpc_stream_metadata(&mut self, token: u32, elements: u32, map: MapName) {
        let label = self.stream_label(token);
        let callback = match map {
            MapName::GrpcInitialMetadata => "on_grpc_stream_initial_metadata",
            _ => "on_grpc_stream_trailing_metadata",
        };
        say(format!("{callback} stream={label} elements={elements}"));
        dump(map);
    }

    pub fn grpc_stream_message(&mut self, token: u32, size: usize) {
        let label = self.stream_label(token);
        say(format!("on_grpc_stream_message stream={label} size={size}"));
        get_buffer(BufferName::GrpcReceiveBuffer, size);
        self.run_hook(Phase::GrpcMessage { size }, Hook::GrpcStreamMessage);
    }

    pub fn grpc_stream_closed(&mut self, token: u32, status_code: u32) {
        let label = self.stream_label(token);
        say(format!("on_grpc_stream_close stream={label} status={status_code}"));
        log_status("grpc_status");
        self.run_hook(Phase::GrpcClose, Hook::GrpcClose);
    }
}

fn get_header(map: MapName, name: &str) {
    match host::get_map_value(map.id(), name) {
        (Status::OK, value) => {
            let value = quote(value.as_deref().unwrap_or_default());
            say(format!("{} get {name}={value}", map.name()));
        }
        (Status::NOT_FOUND, _) => say(format!("{} get {name} missing", map.name())),
        (status, _) => warn(format!("{} get {name} status={status}", map.name())),
    }
}

/// Logs every pair of a map: `<map> [name="value", …]`.
fn dump(map: MapName) {
    match host::get_map_pairs(map.id()) {
        (Status::OK, Some(pairs)) => say(format!("{} {}", map.name(), vm::pairs(&pairs))),
        (Status::OK, None) => warn(format!("{} pairs are malformed", map.name())),
        (status, _) => warn(format!("{} status={status}", map.name())),
    }
}

/// The body of a body callback (or callout answer): buffer, size, whether it is the last chunk.
fn body(phase: Phase, action: &str) -> Option<(BufferName, usize, bool)> {
    let body = match phase {
        Phase::RequestBody { size, end_of_stream } => (BufferName::RequestBody, size, end_of_stream),
        Phase::ResponseBody { size, end_of_stream } => (BufferName::ResponseBody, size, end_of_stream),
        Phase::HttpCallResponse { body_size } => (BufferName::HttpCallResponseBody, body_size, true),
        Phase::GrpcMessage { size } => (BufferName::GrpcReceiveBuffer, size, true),
        _ => {
            error(format!("{action}: no body in {phase:?}"));
            return None;
        }
    };
    Some(body)
}

/// Logs `<buffer> data="…"` (up to `max_size` bytes from the start).
fn get_buffer(buffer: BufferName, max_size: usize) {
    match host::get_buffer(buffer.id(), 0, max_size) {
        (Status::OK, data) => {
            let data = quote(data.as_deref().unwrap_or_default());
            say(format!("{} data={data}", buffer.name()));
        }
        (Status::NOT_FOUND, _) => say(format!("{} missing", buffer.name())),
        (status, _) => warn(format!("{} get status={status}", buffer.name())),
    }
}

fn set_buffer(buffer: BufferName, how: &str, start: usize, size: usize, text: &str) {
    let status = host::set_buffer(buffer.id(), start, size, text.as_bytes());
    let text = quote(text.as_bytes());
    report(status, format!("{} {how} {text} status={status}", buffer.name()));
}

fn local_reply(reply: &LocalReply) {
    let details = reply.details.as_deref().unwrap_or("probe_local_reply");
    let grpc_status = reply.grpc_status.unwrap_or(-1);
    let body = reply.body.as_bytes();
    let status = host::send_local_response(reply.status, details, body, &reply.headers, grpc_status);
    report(status, format!("local_reply {} status={status}", reply.status));
}

/// Logs `proxy_get_status`: `<label> code=… message="…"`.
fn log_status(label: &str) {
    match host::get_status() {
        (Status::OK, code, message) => {
            let message = quote(message.as_deref().unwrap_or_default());
            say(format!("{label} code={code} message={message}"));
        }
        (status, _, _) => warn(format!("{label} status={status}")),
    }
}

fn time() {
    let (status, proxy) = host::current_time_nanos();
    if !status.is_ok() {
        warn(format!("time status={status}"));
        return;
    }
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(wasi) => {
            let wasi = u64::try_from(wasi.as_nanos()).unwrap_or(u64::MAX);
            let agree = proxy.abs_diff(wasi) < 1_000_000;
            say(format!("time proxy_ns={proxy} wasi_ns={wasi} time_agree={agree}"));
        }
        Err(_) => warn(format!("time proxy_ns={proxy} wasi clock before 1970")),
    }
}

/// Logs `random len=… hex=… fresh=…`; `fresh=false` when the bytes equal this VM's previous draw.
fn random(len: usize) {
    let mut bytes = vec![0; len];
    match host::wasi_random(&mut bytes) {
        0 => {
            let hex = vm::hex(&bytes);
            let fresh = vm::with(|vm| vm.last_random.replace(bytes.clone())) != Some(bytes);
            say(format!("random len={len} hex={hex} fresh={fresh}"));
        }
        errno => warn(format!("random len={len} errno={errno}")),
    }
}

fn env(name: Option<&str>) {
    match name {
        Some(name) => match std::env::var_os(name) {
            Some(value) => say(format!("env {name}={}", quote(value.as_encoded_bytes()))),
            None => say(format!("env {name} missing")),
        },
        None => {
            // Sorted by name: Envoy hands the VM its environment_variables map in no set order.
            let mut vars: Vec<(String, String)> = std::env::vars_os()
                .map(|(name, value)| (name.to_string_lossy().into_owned(), quote(value.as_encoded_bytes())))
                .collect();
            vars.sort();
            let vars: Vec<String> = vars.into_iter().map(|(name, value)| format!("{name}={value}")).collect();
            say(format!("env [{}]", vars.join(", ")));
        }
    }
}

fn shared_get(key: &str) {
    match host::get_shared_data(key) {
        (Status::OK, value, cas) => {
            vm::with(|vm| vm.cas.insert(key.to_owned(), cas));
            say(format!("shared_get {key}={}", quote(value.as_deref().unwrap_or_default())));
        }
        (Status::NOT_FOUND, _, _) => say(format!("shared_get {key} missing")),
        (status, _, _) => warn(format!("shared_get {key} status={status}")),
    }
}

fn shared_set(set: &SharedSet) {
    let (key, value) = (set.key.as_str(), set.value.as_bytes());
    let write = |cas: u32, mode: &str| {
        let status = host::set_shared_data(key, value, cas);
        let shown = quote(value);
        report(status, format!("shared_set {key}={shown} cas={mode} status={status}"));
        status
    };
    let fresh_cas = || host::get_shared_data(key).2;
    match set.cas {
        CasMode::None => {
            write(0, "none");
        }
        CasMode::Fresh => {
            write(fresh_cas(), "fresh");
        }
        CasMode::LastGet => match vm::with(|vm| vm.cas.get(key).copied()) {
            Some(cas) => {
                write(cas, "last_get");
            }
            None => error(format!("shared_set {key}: cas=last_get but this VM never read the key")),
        },
        CasMode::Stale => {
            let mut cas = fresh_cas();
            if cas == 0 {
                // A missing key has no token to go stale: create it first.
                write(0, "none");
                cas = fresh_cas();
            }
            if write(cas, "fresh").is_ok() {
                write(cas, "stale");
            }
        }
    }
}

fn queue(name: &str, action: &str) -> Option<u32> {
    let id = vm::with(|vm| vm.queues.get(name).copied());
    if id.is_none() {
        error(format!("{action} {name}: queue not registered or resolved in this VM"));
    }
    id
}

/// Dequeues one item and logs it; false when nothing more can be dequeued.
fn dequeue(name: &str, id: u32) -> bool {
    match host::dequeue_shared_queue(id) {
        (Status::OK, value) => {
            say(format!("queue_dequeue {name}={}", quote(value.as_deref().unwrap_or_default())));
            true
        }
        (Status::EMPTY, _) => {
            say(format!("queue_dequeue {name} empty"));
            false
        }
        (status, _) => {
            warn(format!("queue_dequeue {name} status={status}"));
            false
        }
    }
}

fn metric(name: &str, action: &str) -> Option<u32> {
    let id = vm::with(|vm| vm.metrics.get(name).copied());
    if id.is_none() {
        error(format!("{action} {name}: not defined in this VM (metric_define first)"));
    }
    id
}
