//! Runs a case the way Envoy runs a filter chain: VM start and configure, a context per stream
//! on every filter, request frames through the filters in order and response frames in reverse,
//! pauses that hold a stream until the filter continues it, local replies, http/gRPC calls
//! answered from the fixture, ticks and timeouts from the virtual clock, and traps that kill a VM.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::Serialize;

use crate::abi::{ACTION_CONTINUE, LogLevel, Pairs};
use crate::fixture::{self, Case, FailurePolicy, GrpcCallAnswer, HttpCallAnswer, Request, Upstream};
use crate::host::Host;
use crate::stream::{Connection, HeaderMap, Stream};
use crate::vm::{
    Delivery, Effect, GrpcCallRequest, HttpCallRequest, LocalReply, PluginSpec, ROOT_CONTEXT_ID, Vm, VmState,
};
use crate::world::{LogLine, VmId, World};

/// 2026-01-01T00:00:00Z: where the virtual clock starts unless a case sets `clock`.
pub const DEFAULT_CLOCK_NS: u64 = 1_767_225_600 * 1_000_000_000;
/// The seed of WASI `random_get` unless a case sets `seed`.
pub const DEFAULT_SEED: u64 = 0x5eed_0f5e_ed00_0001;
/// How long a paused stream may wait for timers unless a step sets `max_wait`.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);

/// A request or response as it was recorded at one end of the chain.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Message {
    /// Headers, pseudo-headers included, in order.
    pub headers: Vec<(String, String)>,
    /// The body (lossy text).
    pub body: String,
    /// Trailers.
    pub trailers: Vec<(String, String)>,
}

impl Message {
    /// The `:status` of a response.
    pub fn status(&self) -> Option<u16> {
        self.headers.iter().find(|(k, _)| k == ":status").and_then(|(_, v)| v.parse().ok())
    }
}

/// A local reply and the filter that sent it.
#[derive(Clone, Debug, Serialize)]
pub struct LocalReplyRecord {
    /// The plugin name of the filter.
    pub filter: String,
    /// What it sent.
    pub reply: LocalReply,
    /// The headers the reply started with (`:status`, its headers, and what Envoy adds).
    pub headers: Vec<(String, String)>,
}

/// An http call a filter dispatched.
#[derive(Clone, Debug, Serialize)]
pub struct CallRecord {
    /// The filter.
    pub filter: String,
    /// The cluster.
    pub cluster: String,
    /// `:method`.
    pub method: String,
    /// `:path`.
    pub path: String,
}

/// Everything a step produced.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StepOutcome {
    /// The worker that served the request.
    pub worker: Option<usize>,
    /// The local reply, if a filter (or a dead VM) answered.
    pub local_reply: Option<LocalReplyRecord>,
    /// What the backend received.
    pub upstream_request: Option<Message>,
    /// What the client received (absent if the stream stalled or was reset).
    pub response: Option<Message>,
    /// The stream was reset by `proxy_close_stream`.
    pub reset: bool,
    /// The stream was still paused when `max_wait` ran out.
    pub stalled: bool,
    /// Traps during the step, with the filter's last log lines.
    pub traps: Vec<String>,
    /// Http calls dispatched during the step.
    pub http_calls: Vec<CallRecord>,
    /// Log lines of the step.
    pub logs: Vec<LogLine>,
    /// All metrics after the step.
    pub metrics: BTreeMap<String, i64>,
}

/// One filter of one worker.
struct Slot {
    vm: Option<Vm>,
    spec: Rc<PluginSpec>,
}

impl Slot {
    fn alive(&mut self) -> Option<&mut Vm> {
        self.vm.as_mut().filter(|vm| vm.failed.is_none())
    }
}

/// Frames of a stream, as they travel through the chain.
#[derive(Clone, Debug)]
enum Frame {
    Headers { end_of_stream: bool },
    Data { bytes: Vec<u8>, end_of_stream: bool },
    Trailers,
}

/// What a filter holds back in one direction while it pauses. Envoy maps a Wasm `Pause` from a
/// headers callback to "stop all iteration": body and trailers that arrive meanwhile are
/// buffered without calling the filter (`pending`), and handed to it in one piece once it
/// continues. A `Pause` from a body callback buffers what the filter has seen (`body`).
#[derive(Default, Debug)]
struct Gate {
    headers: Option<bool>,
    pending: Vec<u8>,
    pending_end: bool,
    pending_trailers: bool,
    body: Vec<u8>,
    end_seen: bool,
    end_forwarded: bool,
    trailers_seen: bool,
    trailers_forwarded: bool,
}

/// The request in flight.
struct Flight {
    worker: usize,
    stream: Rc<RefCell<Stream>>,
    contexts: Vec<Option<u32>>,
    decode: Vec<Gate>,
    encode: Vec<Gate>,
    upstream: Option<Message>,
    upstream_answer: Option<UpstreamAnswer>,
    responded: bool,
    client: Option<Message>,
    client_complete: bool,
    local_reply: Option<LocalReplyRecord>,
    reset: bool,
    /// Counts local replies: a response frame from before a local reply is dropped.
    generation: u32,
}

#[derive(Clone)]
struct UpstreamAnswer {
    status: u16,
    headers: Pairs,
    body: Vec<u8>,
    trailers: Pairs,
}

/// How an http call ends.
enum CallResult {
    /// The fixture's answer.
    Answered(fixture::CallResponse),
    /// The connection was reset (`fail: true`).
    Reset,
    /// Its timeout passed first.
    TimedOut,
}

/// The response Envoy's async client makes up for a call that got none.
fn async_client_reply(status: u16, body: &str) -> Delivery {
    Delivery {
        headers: vec![
            (b":status".to_vec(), status.to_string().into_bytes()),
            (b"content-length".to_vec(), body.len().to_string().into_bytes()),
            (b"content-type".to_vec(), b"text/plain".to_vec()),
        ],
        body: body.as_bytes().to_vec(),
        trailers: Vec::new(),
    }
}

enum Event {
    HttpResponse { vm: VmId, call: HttpCallRequest, answer: CallResult },
    Grpc { vm: VmId, call: GrpcCallRequest, answer: GrpcCallAnswer, close: bool },
    GrpcFailure { vm: VmId, context: u32, token: u32, status: u32 },
    QueueReady { vm: VmId, queue: u32 },
}

struct PendingHttp {
    vm: VmId,
    call: HttpCallRequest,
    timeout_at: Option<u64>,
    answer_at: Option<(u64, CallResult)>,
}

struct PendingGrpc {
    vm: VmId,
    call: GrpcCallRequest,
    timeout_at: Option<u64>,
}

/// A case being run: its VMs, the shared world, and what is in flight.
pub struct Runner {
    /// State shared by all VMs.
    pub world: Rc<RefCell<World>>,
    workers: Vec<Vec<Slot>>,
    case_http: Vec<HttpCallAnswer>,
    case_grpc: Vec<GrpcCallAnswer>,
    step_http: Vec<HttpCallAnswer>,
    step_grpc: Vec<GrpcCallAnswer>,
    pending_http: Vec<PendingHttp>,
    pending_grpc: Vec<PendingGrpc>,
    events: VecDeque<Event>,
    flight: Option<Flight>,
    next_connection_id: u64,
    next_worker: usize,
    traps: Vec<String>,
    calls: Vec<CallRecord>,
}

fn bytes_pairs(list: &fixture::HeaderList) -> Pairs {
    list.0.iter().map(|(k, v)| (k.as_bytes().to_ascii_lowercase(), v.as_bytes().to_vec())).collect()
}

/// Request headers Envoy keeps in fixed ("inline") slots of its header map: a repeated one is
/// joined into its first occurrence with a comma, whichever codec it arrived on.
const INLINE_REQUEST_HEADERS: &[&[u8]] = &[
    b"connection",
    b"content-type",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-status",
    b"x-request-id",
    b"transfer-encoding",
    b"upgrade",
    b"via",
    b"x-client-trace-id",
    b"expect",
    b"x-forwarded-client-cert",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"grpc-timeout",
    b"te",
    b"user-agent",
    b"content-length",
    b"x-envoy-decorator-operation",
    b"x-envoy-downstream-service-cluster",
    b"x-envoy-downstream-service-node",
    b"x-envoy-external-address",
    b"x-envoy-force-trace",
    b"x-envoy-hedge-on-per-try-timeout",
    b"x-envoy-internal",
    b"x-envoy-ip-tags",
    b"x-envoy-retry-on",
    b"x-envoy-retry-grpc-on",
    b"x-envoy-retriable-status-codes",
    b"x-envoy-retriable-header-names",
    b"x-envoy-original-path",
    b"x-envoy-original-url",
    b"x-envoy-upstream-alt-stat-name",
    b"x-envoy-upstream-rq-timeout-alt-response",
    b"x-envoy-attempt-count",
    b"x-envoy-expected-rq-timeout-ms",
    b"x-envoy-max-retries",
    b"x-envoy-upstream-rq-timeout-ms",
    b"x-envoy-upstream-rq-per-try-timeout-ms",
    b"x-envoy-upstream-stream-duration-ms",
];

/// Adds a header the client sent, as Envoy's codec fills the map.
/// The downstream address Envoy's connection manager derives from `x-forwarded-for` when it does
/// not use the peer's (`use_remote_address: false`, no trusted hops: the runner's and Envoy's
/// default): the right-most entry if it is a bare IP, with port 0; otherwise the peer stays.
/// This is what `source.address` then reports to filters, so a client can choose it unless the
/// edge sets `use_remote_address: true`.
fn address_from_forwarded_for(headers: &Pairs) -> Option<std::net::SocketAddr> {
    let (_, value) = headers.iter().find(|(k, _)| k == b"x-forwarded-for")?;
    let last = std::str::from_utf8(value).ok()?.rsplit(',').next()?.trim();
    let ip: std::net::IpAddr = last.parse().ok()?;
    Some(std::net::SocketAddr::new(ip, 0))
}

/// Adds a client header as Envoy's codec hands it on: leading and trailing spaces and tabs of the
/// value trimmed, inline headers (such as `x-forwarded-for`) joined with `,`.
fn add_client_header(headers: &mut Pairs, name: Vec<u8>, value: Vec<u8>) {
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_blank(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !is_blank(b)).map_or(start, |last| last + 1);
    let value = value.get(start..end).unwrap_or_default().to_vec();
    if INLINE_REQUEST_HEADERS.contains(&name.as_slice())
        && let Some((_, existing)) = headers.iter_mut().find(|(k, _)| *k == name)
    {
        existing.push(b',');
        existing.extend_from_slice(&value);
        return;
    }
    headers.push((name, value));
}

/// Response headers as Envoy hands them to filters (and to an http call's callback) from an
/// HTTP/1.1 upstream: `:status`, the upstream's headers with the framing it sent, and the
/// `x-envoy-upstream-service-time` the router sets.
fn upstream_response_headers(
    status: u16,
    headers: Pairs,
    body_length: usize,
    trailers: bool,
    elapsed_ms: u64,
) -> HeaderMap {
    let framed = headers.iter().any(|(k, _)| k == b"content-length" || k == b"transfer-encoding");
    let mut all = vec![(b":status".to_vec(), status.to_string().into_bytes())];
    all.extend(headers);
    // Envoy drops the content-length of a 204 (the test backend frames every other response).
    let bodiless = status == 204;
    if !framed && trailers {
        all.push((b"transfer-encoding".to_vec(), b"chunked".to_vec()));
    } else if !framed && !bodiless {
        all.push((b"content-length".to_vec(), body_length.to_string().into_bytes()));
    }
    let mut map = HeaderMap::from_pairs(all);
    map.replace(b"x-envoy-upstream-service-time", elapsed_ms.to_string().as_bytes());
    map
}

impl Runner {
    /// Instantiates every filter of the case on every worker (not yet started).
    pub fn new(host: &mut Host, case: &Case, fixture_file: &Path) -> Result<Runner> {
        Runner::with_variation(host, case, fixture_file, 0, Duration::ZERO)
    }

    /// Like `new`, with the seed moved by `seed_delta` and the clock by `clock_shift`: what differs
    /// between two such runs depends on randomness or time.
    pub fn with_variation(
        host: &mut Host,
        case: &Case,
        fixture_file: &Path,
        seed_delta: u64,
        clock_shift: Duration,
    ) -> Result<Runner> {
        let start_ns = clock_shift.as_nanos() as u64
            + match &case.clock {
                Some(clock) => humantime::parse_rfc3339(clock)
                    .map_err(|e| anyhow!("clock: {e}"))?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| anyhow!("clock: {e}"))?
                    .as_nanos() as u64,
                None => DEFAULT_CLOCK_NS,
            };
        let world = Rc::new(RefCell::new(World::new(start_ns)));
        world.borrow_mut().clusters = case.cluster_names().into_iter().collect();
        let seed = case.seed.unwrap_or(DEFAULT_SEED).wrapping_add(seed_delta);
        let fixture_dir = fixture_file.parent().unwrap_or(Path::new("."));
        let mut modules = Vec::new();
        let mut specs = Vec::new();
        for (position, filter) in case.filters.iter().enumerate() {
            let path = host
                .resolve(&filter.name, filter.wasm.as_deref(), fixture_dir)
                .map_err(|e| anyhow!("filters[{position}] ({}): {e}", filter.name))?;
            modules.push(host.module(&path).map_err(|e| anyhow!("filters[{position}] ({}): {e:#}", filter.name))?);
            let configuration = match (&filter.config_raw, &filter.config) {
                (Some(raw), _) => raw.clone().into_bytes(),
                (None, Some(value)) => serde_json::to_vec(value)?,
                (None, None) => Vec::new(),
            };
            specs.push(Rc::new(PluginSpec {
                name: filter.plugin_name.clone().unwrap_or_else(|| filter.name.clone()),
                root_id: filter.root_id.clone().unwrap_or_default(),
                vm_id: filter.vm_id.clone().unwrap_or_default(),
                configuration,
                vm_configuration: match &filter.vm_config {
                    Some(value) => serde_json::to_vec(value)?,
                    None => Vec::new(),
                },
                env: filter.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                fail_open: filter.failure_policy == FailurePolicy::FailOpen,
                log_level: filter.log_level.unwrap_or(LogLevel::Trace),
            }));
        }
        let mut workers = Vec::new();
        for worker in 0..case.workers {
            let mut slots = Vec::new();
            for (filter, (pre, spec)) in modules.iter().zip(&specs).enumerate() {
                let vm_id = VmId { worker, filter };
                let state = VmState::new(spec.clone(), vm_id, world.clone(), seed);
                let vm =
                    Vm::instantiate(pre, state).map_err(|e| anyhow!("filters[{filter}] ({}): {e:#}", spec.name))?;
                slots.push(Slot { vm: Some(vm), spec: spec.clone() });
            }
            workers.push(slots);
        }
        Ok(Runner {
            world,
            workers,
            case_http: case.http_calls.clone(),
            case_grpc: case.grpc_calls.clone(),
            step_http: Vec::new(),
            step_grpc: Vec::new(),
            pending_http: Vec::new(),
            pending_grpc: Vec::new(),
            events: VecDeque::new(),
            flight: None,
            next_connection_id: 1,
            next_worker: 0,
            traps: Vec::new(),
            calls: Vec::new(),
        })
    }

    /// Number of workers.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Starts every plugin as Envoy does: root context, `proxy_on_vm_start`, `proxy_on_configure`.
    /// An error is the reason the plugin refused to start.
    pub fn start(&mut self) -> Result<(), String> {
        for worker in 0..self.workers.len() {
            for filter in 0..self.workers[worker].len() {
                let slot = &mut self.workers[worker][filter];
                let name = slot.spec.name.clone();
                let config_len = slot.spec.configuration.len() as i32;
                let vm_config_len = slot.spec.vm_configuration.len() as i32;
                let Some(vm) = slot.alive() else { continue };
                let result = (|| -> Result<(), String> {
                    vm.call(|c| &c.on_context_create, (ROOT_CONTEXT_ID as i32, 0)).map_err(|e| e.to_string())?;
                    vm.store.data_mut().starting = true;
                    let started = vm.call(|c| &c.on_vm_start, (ROOT_CONTEXT_ID as i32, vm_config_len));
                    vm.store.data_mut().starting = false;
                    if started.map_err(|e| e.to_string())? == Some(0) {
                        return Err(format!("{name}: proxy_on_vm_start returned false: the VM refused to start"));
                    }
                    vm.store.data_mut().configuring = true;
                    let configured = vm.call(|c| &c.on_configure, (ROOT_CONTEXT_ID as i32, config_len));
                    vm.store.data_mut().configuring = false;
                    if configured.map_err(|e| e.to_string())? == Some(0) {
                        return Err(format!(
                            "{name}: proxy_on_configure returned false: the plugin refused its configuration"
                        ));
                    }
                    Ok(())
                })();
                if let Err(reason) = result {
                    self.world.borrow_mut().logs.push(LogLine {
                        worker,
                        filter: name,
                        level: LogLevel::Critical,
                        message: format!("Wasm plugin failed to start: {reason}"),
                    });
                    return Err(reason);
                }
                self.after_callback(VmId { worker, filter });
            }
        }
        self.pump();
        Ok(())
    }

    /// Runs one step of a case.
    pub fn step(&mut self, step: &fixture::Step) -> StepOutcome {
        let log_start = self.world.borrow().logs.len();
        self.traps.clear();
        self.calls.clear();
        self.step_http = step.http_calls.clone();
        self.step_grpc = step.grpc_calls.clone();
        if let Some(advance) = step.advance {
            let target = self.now() + advance.0.as_nanos() as u64;
            self.advance_to(target);
        }
        self.answer_pending();
        self.pump();
        let mut outcome = StepOutcome::default();
        if let Some(request) = &step.request {
            let worker = step.worker.unwrap_or_else(|| {
                let worker = self.next_worker % self.workers.len();
                self.next_worker += 1;
                worker
            });
            let max_wait = step.max_wait.map(|d| d.0).unwrap_or(DEFAULT_MAX_WAIT);
            self.run_request(worker, request, step.upstream.as_ref(), max_wait, &mut outcome);
        }
        self.step_http.clear();
        self.step_grpc.clear();
        let world = self.world.borrow();
        outcome.logs = world.logs[log_start.min(world.logs.len())..].to_vec();
        outcome.metrics = world.metrics.snapshot();
        outcome.traps = self.traps.clone();
        outcome.http_calls = self.calls.clone();
        outcome
    }

    fn now(&self) -> u64 {
        self.world.borrow().now_ns
    }

    /// Sends `request` on `worker` and runs it to its end (or until it stalls).
    pub fn run_request(
        &mut self,
        worker: usize,
        request: &Request,
        upstream: Option<&Upstream>,
        max_wait: Duration,
        outcome: &mut StepOutcome,
    ) {
        let mut connection = Connection {
            source: request.source.as_deref().unwrap_or(fixture::DEFAULT_SOURCE).parse().unwrap_or_else(|_| {
                fixture::DEFAULT_SOURCE.parse().unwrap_or(std::net::SocketAddr::from(([203, 0, 113, 1], 40000)))
            }),
            destination: request
                .destination
                .as_deref()
                .unwrap_or(fixture::DEFAULT_DESTINATION)
                .parse()
                .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 10000))),
            id: self.next_connection_id,
            protocol: request.protocol.clone().unwrap_or_else(|| "HTTP/1.1".into()),
        };
        self.next_connection_id += 1;
        // The map Envoy's connection manager hands the filters: the pseudo-headers, the client's
        // headers in order (with the framing an HTTP/1.1 client adds to a body), then the
        // x-forwarded-proto it appends.
        let mut headers: Pairs = vec![
            (b":authority".to_vec(), request.authority.as_bytes().to_vec()),
            (b":path".to_vec(), request.path.as_bytes().to_vec()),
            (b":method".to_vec(), request.method.as_bytes().to_vec()),
            (b":scheme".to_vec(), request.scheme.as_bytes().to_vec()),
        ];
        for (name, value) in bytes_pairs(&request.headers) {
            add_client_header(&mut headers, name, value);
        }
        let chunks = request.body.byte_chunks();
        let body_length: usize = chunks.iter().map(|c| c.len()).sum();
        let framed = headers.iter().any(|(k, _)| k == b"content-length" || k == b"transfer-encoding");
        // A chunked request's transfer-encoding never reaches the filters' map in Envoy.
        let chunked = !request.trailers.0.is_empty() || chunks.len() > 1;
        let http1 = request.protocol.as_deref() != Some("HTTP/2");
        if http1 && !framed && !chunked && body_length > 0 {
            headers.push((b"content-length".to_vec(), body_length.to_string().into_bytes()));
        }
        if !headers.iter().any(|(k, _)| k == b"x-forwarded-proto") {
            headers.push((b"x-forwarded-proto".to_vec(), request.scheme.as_bytes().to_vec()));
        }
        if let Some(address) = address_from_forwarded_for(&headers) {
            connection.source = address;
        }
        let stream = Rc::new(RefCell::new(Stream::new(HeaderMap::from_pairs(headers), connection, self.now())));
        let filters = self.workers[worker].len();
        let answer = upstream.map_or(
            UpstreamAnswer { status: 200, headers: Vec::new(), body: Vec::new(), trailers: Vec::new() },
            |u| UpstreamAnswer {
                status: u.status,
                headers: bytes_pairs(&u.headers),
                body: u.body.chunks().concat().into_bytes(),
                trailers: bytes_pairs(&u.trailers),
            },
        );
        self.flight = Some(Flight {
            worker,
            stream: stream.clone(),
            contexts: vec![None; filters],
            decode: (0..filters).map(|_| Gate::default()).collect(),
            encode: (0..filters).map(|_| Gate::default()).collect(),
            upstream: None,
            upstream_answer: Some(answer),
            responded: false,
            client: None,
            client_complete: false,
            local_reply: None,
            reset: false,
            generation: 0,
        });
        for filter in 0..filters {
            let Some(vm) = self.workers[worker][filter].alive() else {
                continue;
            };
            let context = vm.new_context_id();
            vm.store.data_mut().streams.insert(context, stream.clone());
            let created = vm.call(|c| &c.on_context_create, (context as i32, ROOT_CONTEXT_ID as i32));
            if let Some(flight) = self.flight.as_mut() {
                flight.contexts[filter] = Some(context);
            }
            if let Err(error) = created {
                self.record_trap(VmId { worker, filter }, &error.to_string());
            }
        }

        let chunks: Vec<Vec<u8>> = request.body.byte_chunks().iter().map(|c| c.to_vec()).collect();
        let trailers = bytes_pairs(&request.trailers);
        // Envoy's HTTP/1 codec ends a body with an empty data frame; HTTP/2 ends it on the last one.
        self.decode(0, Frame::Headers { end_of_stream: chunks.is_empty() && trailers.is_empty() });
        let last = chunks.len();
        for (index, chunk) in chunks.into_iter().enumerate() {
            let end_of_stream = !http1 && index + 1 == last && trailers.is_empty();
            self.decode(0, Frame::Data { bytes: chunk, end_of_stream });
        }
        if http1 && last > 0 && trailers.is_empty() {
            self.decode(0, Frame::Data { bytes: Vec::new(), end_of_stream: true });
        }
        if !trailers.is_empty() {
            stream.borrow_mut().request_trailers = HeaderMap::from_pairs(trailers);
            self.decode(0, Frame::Trailers);
        }

        // Let calls, continues and timers play out, as the event loop would.
        let deadline = self.now() + max_wait.as_nanos() as u64;
        let mut stalled = false;
        loop {
            self.pump();
            if self.flight_finished() {
                break;
            }
            match self.next_timer() {
                Some(at) if at <= deadline => self.advance_to(at),
                _ => {
                    stalled = true;
                    break;
                }
            }
        }

        let Some(flight) = self.flight.take() else {
            return;
        };
        outcome.worker = Some(worker);
        outcome.stalled = stalled && !flight.reset;
        outcome.reset = flight.reset;
        outcome.local_reply = flight.local_reply.clone();
        // The backend has a request only once all of it reached the router: a stream answered
        // or reset while its body was still held never completes upstream (Envoy resets it).
        outcome.upstream_request = if flight.responded { flight.upstream.clone() } else { None };
        outcome.response = if flight.client_complete { flight.client.clone() } else { None };
        flight.stream.borrow_mut().logging = true;
        self.finish_contexts(worker, &flight.contexts);
        // Calls made while finishing (in proxy_on_done or proxy_on_log) are answered now.
        self.pump();
    }

    /// The end of a stream as Envoy 1.40 runs it: `proxy_on_log` on every filter's context
    /// (access logging), then per filter `proxy_on_done` and `proxy_on_delete`.
    fn finish_contexts(&mut self, worker: usize, contexts: &[Option<u32>]) {
        for (filter, context) in contexts.iter().enumerate() {
            if let Some(context) = *context {
                self.log_and_delete(VmId { worker, filter }, context, false);
            }
        }
        for (filter, context) in contexts.iter().enumerate() {
            let Some(context) = *context else { continue };
            let id = VmId { worker, filter };
            let Some(vm) = self.workers[worker][filter].alive() else {
                continue;
            };
            vm.store.data_mut().active_context = context;
            match vm.call(|c| &c.on_done, context as i32) {
                // Envoy 1.40 deletes an HTTP context right after `proxy_on_done`, even when it
                // returns false (which asks the host to wait for `proxy_done`).
                Ok(_) => {
                    self.after_callback(id);
                    self.log_and_delete(id, context, true);
                }
                Err(error) => {
                    self.record_trap(id, &error.to_string());
                    self.after_callback(id);
                }
            }
        }
    }

    fn log_and_delete(&mut self, id: VmId, context: u32, delete: bool) {
        let Some(vm) = self.workers[id.worker][id.filter].alive() else {
            return;
        };
        vm.store.data_mut().active_context = context;
        let result =
            if delete { vm.call(|c| &c.on_delete, context as i32) } else { vm.call(|c| &c.on_log, context as i32) };
        if delete {
            vm.store.data_mut().streams.remove(&context);
            vm.store.data_mut().active_context = ROOT_CONTEXT_ID;
        }
        if let Err(error) = result {
            self.record_trap(id, &error.to_string());
        }
        self.after_callback(id);
    }

    fn flight_finished(&self) -> bool {
        self.flight.as_ref().is_none_or(|f| f.reset || f.client_complete)
    }

    fn stream_ended(&self) -> bool {
        self.flight.as_ref().is_none_or(|f| f.reset || f.local_reply.is_some())
    }

    /// Calls a stream callback of filter `filter` on the flight's worker. `Some(true)`: continue.
    fn stream_callback(
        &mut self,
        filter: usize,
        call: impl FnOnce(&mut Vm, i32) -> Result<Option<i32>>,
    ) -> Option<bool> {
        let flight = self.flight.as_ref()?;
        let worker = flight.worker;
        let context = flight.contexts[filter]?;
        let vm = self.workers[worker][filter].alive()?;
        vm.store.data_mut().active_context = context;
        let result = call(vm, context as i32);
        let id = VmId { worker, filter };
        match result {
            Ok(action) => {
                self.after_callback(id);
                Some(action.is_none_or(|a| a == ACTION_CONTINUE))
            }
            Err(error) => {
                self.record_trap(id, &error.to_string());
                self.after_callback(id);
                self.fail_stream(filter);
                None
            }
        }
    }

    /// A dead VM's answer to the stream at its position: 503.
    fn fail_stream(&mut self, filter: usize) {
        let Some(flight) = self.flight.as_ref() else {
            return;
        };
        let _ = flight;
        // Even a fail-open filter fails the request its trap interrupted; later ones skip it.
        let reply =
            LocalReply { status: 503, details: "wasm_fail_stream".into(), body: Vec::new(), headers: Vec::new() };
        self.local_reply(filter, reply, false);
    }

    fn is_dead(&self, worker: usize, filter: usize) -> bool {
        self.workers[worker][filter].vm.as_ref().is_none_or(|vm| vm.failed.is_some())
    }

    /// Request frames at filter `filter` (the router after the last).
    fn decode(&mut self, filter: usize, frame: Frame) {
        if self.stream_ended() {
            return;
        }
        let Some(flight) = self.flight.as_ref() else {
            return;
        };
        let worker = flight.worker;
        if filter == self.workers[worker].len() {
            self.router(frame);
            return;
        }
        if self.is_dead(worker, filter) || flight.contexts[filter].is_none() {
            if self.workers[worker][filter].spec.fail_open {
                self.decode(filter + 1, frame);
            } else if matches!(frame, Frame::Headers { .. }) {
                self.fail_stream(filter);
            }
            return;
        }
        let stream = flight.stream.clone();
        let proceed = self.absorb(filter, frame, false, &stream);
        if proceed == Some(true) {
            self.release(filter, false);
        }
    }

    /// Response frames at filter `filter` (counting down; the client after filter 0).
    fn encode(&mut self, filter: Option<usize>, frame: Frame) {
        let Some(flight) = self.flight.as_mut() else {
            return;
        };
        if flight.reset {
            return;
        }
        let Some(filter) = filter else {
            let stream = flight.stream.borrow();
            let client = flight.client.get_or_insert_with(Message::default);
            match frame {
                Frame::Headers { end_of_stream } => {
                    client.headers = stream.response_headers.to_strings();
                    flight.client_complete = end_of_stream;
                }
                Frame::Data { bytes, end_of_stream } => {
                    client.body.push_str(&String::from_utf8_lossy(&bytes));
                    flight.client_complete = end_of_stream;
                }
                Frame::Trailers => {
                    client.trailers = stream.response_trailers.to_strings();
                    flight.client_complete = true;
                }
            }
            return;
        };
        let worker = flight.worker;
        let no_context = flight.contexts[filter].is_none();
        let stream = flight.stream.clone();
        if self.is_dead(worker, filter) || no_context {
            self.encode(filter.checked_sub(1), frame);
            return;
        }
        let proceed = self.absorb(filter, frame, true, &stream);
        if proceed == Some(true) {
            self.release(filter, true);
        }
    }

    /// Hands a frame to a filter's callback; what it does not pass on stays in its gate.
    /// `Some(true)`: the callback continued; `Some(false)`: it paused or the frame was held.
    fn absorb(&mut self, filter: usize, frame: Frame, response: bool, stream: &Rc<RefCell<Stream>>) -> Option<bool> {
        // A local reply during the callback replaces the response: the frame is then void.
        let generation = self.flight.as_ref()?.generation;
        let current = |runner: &Runner| runner.flight.as_ref().is_some_and(|f| f.generation == generation);
        match frame {
            Frame::Headers { end_of_stream } => {
                let count = if response {
                    stream.borrow().response_headers.len()
                } else {
                    stream.borrow().request_headers.len()
                };
                let eos = end_of_stream as i32;
                let proceed = self.stream_callback(filter, |vm, ctx| {
                    vm.call(
                        |c| if response { &c.on_response_headers } else { &c.on_request_headers },
                        (ctx, count as i32, eos),
                    )
                });
                if !current(self) {
                    return None;
                }
                let g = self.gate(filter, response)?;
                g.headers = Some(end_of_stream);
                if end_of_stream {
                    g.end_seen = true;
                    g.end_forwarded = true;
                }
                proceed
            }
            Frame::Data { bytes, end_of_stream } => {
                {
                    let mut s = stream.borrow_mut();
                    if response {
                        s.response_body_size += bytes.len() as u64;
                    } else {
                        s.request_body_size += bytes.len() as u64;
                    }
                }
                let g = self.gate(filter, response)?;
                if g.headers.is_some() {
                    // Headers are paused: Envoy holds the data without calling the filter.
                    g.pending.extend_from_slice(&bytes);
                    g.pending_end |= end_of_stream;
                    return Some(false);
                }
                self.body_callback(filter, response, stream, bytes, end_of_stream, current)
            }
            Frame::Trailers => {
                let g = self.gate(filter, response)?;
                if g.headers.is_some() {
                    g.pending_trailers = true;
                    return Some(false);
                }
                let count = if response {
                    stream.borrow().response_trailers.len()
                } else {
                    stream.borrow().request_trailers.len()
                };
                let proceed = self.stream_callback(filter, |vm, ctx| {
                    vm.call(
                        |c| if response { &c.on_response_trailers } else { &c.on_request_trailers },
                        (ctx, count as i32),
                    )
                });
                if !current(self) {
                    return None;
                }
                let g = self.gate(filter, response)?;
                g.trailers_seen = true;
                g.end_seen = true;
                proceed
            }
        }
    }

    /// A body callback: the filter sees everything it buffered so far plus `bytes`.
    fn body_callback(
        &mut self,
        filter: usize,
        response: bool,
        stream: &Rc<RefCell<Stream>>,
        bytes: Vec<u8>,
        end_of_stream: bool,
        current: impl Fn(&Runner) -> bool,
    ) -> Option<bool> {
        let flight = self.flight.as_mut()?;
        let g = if response { &mut flight.encode[filter] } else { &mut flight.decode[filter] };
        g.body.extend_from_slice(&bytes);
        g.end_seen |= end_of_stream;
        let buffered = std::mem::take(&mut g.body);
        let size = buffered.len() as i32;
        {
            let mut s = stream.borrow_mut();
            *(if response { &mut s.response_body } else { &mut s.request_body }) = buffered;
        }
        let eos = end_of_stream as i32;
        let proceed = self.stream_callback(filter, |vm, ctx| {
            vm.call(|c| if response { &c.on_response_body } else { &c.on_request_body }, (ctx, size, eos))
        });
        let body = {
            let mut s = stream.borrow_mut();
            std::mem::take(if response { &mut s.response_body } else { &mut s.request_body })
        };
        if !current(self) {
            return None;
        }
        let flight = self.flight.as_mut()?;
        let g = if response { &mut flight.encode[filter] } else { &mut flight.decode[filter] };
        // Whatever was released meanwhile (a continue inside the callback) went first.
        g.body.splice(0..0, body);
        proceed
    }

    /// Passes on everything filter `filter` holds in one direction — as Envoy does when a
    /// filter continues: its headers, then the data and trailers that waited behind them (given
    /// to this filter first, in one piece), or the body it buffered and its trailers.
    fn release(&mut self, filter: usize, response: bool) {
        loop {
            if !response && self.stream_ended() {
                return;
            }
            let Some(flight) = self.flight.as_mut() else {
                return;
            };
            let stream = flight.stream.clone();
            let g = if response { &mut flight.encode[filter] } else { &mut flight.decode[filter] };
            if let Some(end_of_stream) = g.headers.take() {
                let waiting = (std::mem::take(&mut g.pending), g.pending_end, g.pending_trailers);
                g.pending_end = false;
                g.pending_trailers = false;
                self.forward(filter, response, Frame::Headers { end_of_stream });
                let (data, end, trailers) = waiting;
                if !data.is_empty() || end {
                    // The data that waited reaches this filter now, with the end of stream
                    // unless trailers follow.
                    let generation = self.flight.as_ref().map(|f| f.generation);
                    let current = move |runner: &Runner| runner.flight.as_ref().map(|f| f.generation) == generation;
                    if self.body_callback(filter, response, &stream, data, end && !trailers, current) != Some(true) {
                        if trailers {
                            self.hold_trailers(filter, response);
                        }
                        return;
                    }
                }
                if trailers && self.absorb(filter, Frame::Trailers, response, &stream) != Some(true) {
                    return;
                }
                continue;
            }
            let frame = if !g.body.is_empty() || (g.end_seen && !g.end_forwarded && !g.trailers_seen) {
                let end_of_stream = g.end_seen && !g.trailers_seen;
                g.end_forwarded |= end_of_stream;
                Frame::Data { bytes: std::mem::take(&mut g.body), end_of_stream }
            } else if g.trailers_seen && !g.trailers_forwarded {
                g.trailers_forwarded = true;
                Frame::Trailers
            } else {
                return;
            };
            self.forward(filter, response, frame);
        }
    }

    /// Trailers that arrived while a filter paused, kept for when it continues its body.
    fn hold_trailers(&mut self, filter: usize, response: bool) {
        if let Some(flight) = self.flight.as_mut() {
            let g = if response { &mut flight.encode[filter] } else { &mut flight.decode[filter] };
            g.pending_trailers = true;
        }
    }

    fn gate(&mut self, filter: usize, response: bool) -> Option<&mut Gate> {
        let flight = self.flight.as_mut()?;
        Some(if response { &mut flight.encode[filter] } else { &mut flight.decode[filter] })
    }

    fn forward(&mut self, filter: usize, response: bool, frame: Frame) {
        if response {
            self.encode(filter.checked_sub(1), frame);
        } else {
            self.decode(filter + 1, frame);
        }
    }

    /// The router: records what the backend receives and, at the end of the request, sends the
    /// fixture's upstream response back through the filters.
    fn router(&mut self, frame: Frame) {
        let Some(flight) = self.flight.as_mut() else {
            return;
        };
        let stream = flight.stream.clone();
        let upstream = flight.upstream.get_or_insert_with(Message::default);
        let complete = match frame {
            Frame::Headers { end_of_stream } => {
                upstream.headers = stream.borrow().request_headers.to_strings();
                end_of_stream
            }
            Frame::Data { bytes, end_of_stream } => {
                upstream.body.push_str(&String::from_utf8_lossy(&bytes));
                end_of_stream
            }
            Frame::Trailers => {
                upstream.trailers = stream.borrow().request_trailers.to_strings();
                true
            }
        };
        if !complete || flight.responded {
            return;
        }
        flight.responded = true;
        let Some(answer) = flight.upstream_answer.take() else {
            return;
        };
        let last = flight.contexts.len().checked_sub(1);
        {
            let mut s = stream.borrow_mut();
            let elapsed_ms = (self.world.borrow().now_ns.saturating_sub(s.start_ns)) / 1_000_000;
            s.response_headers = upstream_response_headers(
                answer.status,
                answer.headers,
                answer.body.len(),
                !answer.trailers.is_empty(),
                elapsed_ms,
            );
            s.response_started = true;
        }
        let body_follows = !answer.body.is_empty();
        let trailers_follow = !answer.trailers.is_empty();
        self.encode(last, Frame::Headers { end_of_stream: !body_follows && !trailers_follow });
        if body_follows {
            // The upstream speaks HTTP/1.1: the body ends with an empty data frame.
            self.encode(last, Frame::Data { bytes: answer.body, end_of_stream: false });
            if !trailers_follow {
                self.encode(last, Frame::Data { bytes: Vec::new(), end_of_stream: true });
            }
        }
        if trailers_follow {
            stream.borrow_mut().response_trailers = HeaderMap::from_pairs(answer.trailers);
            self.encode(last, Frame::Trailers);
        }
    }

    /// Filter `filter` answers the request itself. The reply runs through the response
    /// callbacks of that filter (when it is alive and the reply comes while decoding) and of
    /// every filter before it, as in Envoy.
    fn local_reply(&mut self, filter: usize, reply: LocalReply, sender_alive: bool) {
        let Some(flight) = self.flight.as_mut() else {
            return;
        };
        if flight.reset || flight.local_reply.is_some() {
            return;
        }
        let stream = flight.stream.clone();
        let during_response = stream.borrow().response_started;
        let mut headers: Pairs = vec![(b":status".to_vec(), reply.status.to_string().into_bytes())];
        headers.extend(reply.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())));
        if !reply.body.is_empty() && !headers.iter().any(|(k, _)| k == b"content-type") {
            headers.push((b"content-type".to_vec(), b"text/plain".to_vec()));
        }
        if !reply.body.is_empty() {
            headers.push((b"content-length".to_vec(), reply.body.len().to_string().into_bytes()));
        }
        let header_map = HeaderMap::from_pairs(headers);
        flight.local_reply = Some(LocalReplyRecord {
            filter: self.workers[flight.worker][filter].spec.name.clone(),
            reply: reply.clone(),
            headers: header_map.to_strings(),
        });
        flight.client = None;
        flight.client_complete = false;
        flight.generation += 1;
        for gate in &mut flight.encode {
            *gate = Gate::default();
        }
        {
            let mut s = stream.borrow_mut();
            s.response_headers = header_map;
            s.response_trailers = HeaderMap::default();
            s.response_started = true;
        }
        let first = if sender_alive && !during_response { Some(filter) } else { filter.checked_sub(1) };
        let body = reply.body;
        self.encode(first, Frame::Headers { end_of_stream: body.is_empty() });
        if !body.is_empty() {
            self.encode(first, Frame::Data { bytes: body, end_of_stream: true });
        }
    }

    fn record_trap(&mut self, id: VmId, error: &str) {
        let name = self.workers[id.worker][id.filter].spec.name.clone();
        let world = self.world.borrow();
        let panic_line = world
            .logs
            .iter()
            .rev()
            .take(8)
            .find(|l| {
                l.filter == name
                    && l.worker == id.worker
                    && l.level >= LogLevel::Error
                    && !l.message.starts_with("Wasm VM failed")
            })
            .map(|l| format!(" (last error: {})", l.message))
            .unwrap_or_default();
        self.traps.push(format!("{name} on worker {} trapped: {error}{panic_line}", id.worker));
    }

    /// Carries out what the last callback of VM `id` asked for.
    fn after_callback(&mut self, id: VmId) {
        let ready: Vec<(VmId, u32)> = std::mem::take(&mut self.world.borrow_mut().ready_queues);
        for (vm, queue) in ready {
            self.events.push_back(Event::QueueReady { vm, queue });
        }
        let effects = match self.workers[id.worker][id.filter].vm.as_mut() {
            Some(vm) => vm.take_effects(),
            None => return,
        };
        for effect in effects {
            self.apply(id, effect);
        }
    }

    /// The filter position of `context` in the flight, if it is a context of the flight.
    fn flight_filter(&self, id: VmId, context: u32) -> Option<usize> {
        let flight = self.flight.as_ref()?;
        (flight.worker == id.worker && flight.contexts.get(id.filter).copied().flatten() == Some(context))
            .then_some(id.filter)
    }

    fn apply(&mut self, id: VmId, effect: Effect) {
        match effect {
            Effect::Continue { context, response } => {
                if let Some(filter) = self.flight_filter(id, context) {
                    self.release(filter, response);
                }
            }
            Effect::Close { context } => {
                if self.flight_filter(id, context).is_some()
                    && let Some(flight) = self.flight.as_mut()
                {
                    flight.reset = true;
                }
            }
            Effect::LocalReply { context, reply } => {
                if let Some(filter) = self.flight_filter(id, context) {
                    self.local_reply(filter, reply, true);
                }
            }
            Effect::HttpCall(call) => {
                let header = |name: &[u8]| {
                    call.headers
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                };
                self.calls.push(CallRecord {
                    filter: self.workers[id.worker][id.filter].spec.name.clone(),
                    cluster: call.cluster.clone(),
                    method: header(b":method"),
                    path: header(b":path"),
                });
                let timeout_at = (call.timeout_ms > 0).then(|| self.now() + u64::from(call.timeout_ms) * 1_000_000);
                self.pending_http.push(PendingHttp { vm: id, call, timeout_at, answer_at: None });
                self.answer_pending();
            }
            Effect::GrpcCall(call) => {
                let timeout_at = (call.timeout_ms > 0).then(|| self.now() + u64::from(call.timeout_ms) * 1_000_000);
                let unary = call.token % 2 == 1;
                self.pending_grpc.push(PendingGrpc { vm: id, call, timeout_at });
                if unary {
                    self.answer_pending();
                }
            }
            Effect::GrpcSend { token, context, message, end_stream } => {
                let found = self
                    .pending_grpc
                    .iter()
                    .position(|p| p.vm == id && p.call.token == token && p.call.context == context);
                if let Some(position) = found {
                    let mut call = self.pending_grpc[position].call.clone();
                    call.messages = vec![message];
                    if end_stream {
                        // The client half-closed: the stream's answer ends it.
                        self.pending_grpc.remove(position);
                    }
                    if let Some(answer) = self.grpc_answer(&call) {
                        self.events.push_back(Event::Grpc { vm: id, call, answer, close: end_stream });
                    }
                }
            }
            Effect::GrpcCancel { token } => {
                self.pending_grpc.retain(|p| !(p.vm == id && p.call.token == token));
            }
        }
    }

    fn http_answer(&self, call: &HttpCallRequest) -> Option<HttpCallAnswer> {
        let header = |name: &[u8]| call.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice());
        self.step_http
            .iter()
            .chain(&self.case_http)
            .find(|answer| {
                let m = &answer.matcher;
                m.cluster.as_deref().is_none_or(|c| c == call.cluster)
                    && m.path.as_deref().is_none_or(|p| header(b":path") == Some(p.as_bytes()))
                    && m.method.as_deref().is_none_or(|x| header(b":method") == Some(x.as_bytes()))
            })
            .cloned()
    }

    fn grpc_answer(&self, call: &GrpcCallRequest) -> Option<GrpcCallAnswer> {
        self.step_grpc
            .iter()
            .chain(&self.case_grpc)
            .find(|answer| {
                let m = &answer.matcher;
                m.cluster.as_deref().is_none_or(|c| c == call.cluster)
                    && m.service.as_deref().is_none_or(|s| s == call.service)
                    && m.method.as_deref().is_none_or(|x| x == call.method)
            })
            .cloned()
    }

    /// Schedules answers for pending calls that the fixture can now answer.
    fn answer_pending(&mut self) {
        let now = self.now();
        let mut position = 0;
        while position < self.pending_http.len() {
            let pending = &self.pending_http[position];
            if pending.answer_at.is_some() {
                position += 1;
                continue;
            }
            let Some(answer) = self.http_answer(&pending.call) else {
                position += 1;
                continue;
            };
            let response = if answer.fail {
                CallResult::Reset
            } else {
                CallResult::Answered(answer.response.clone().unwrap_or(fixture::CallResponse {
                    status: 200,
                    headers: Default::default(),
                    body: String::new(),
                    trailers: Default::default(),
                }))
            };
            match answer.delay {
                Some(delay) if !delay.0.is_zero() => {
                    self.pending_http[position].answer_at = Some((now + delay.0.as_nanos() as u64, response));
                    position += 1;
                }
                _ => {
                    let pending = self.pending_http.remove(position);
                    self.events.push_back(Event::HttpResponse { vm: pending.vm, call: pending.call, answer: response });
                }
            }
        }
        let mut position = 0;
        while position < self.pending_grpc.len() {
            let call = &self.pending_grpc[position].call;
            match (call.token % 2 == 1, self.grpc_answer(call)) {
                (true, Some(answer)) => {
                    let pending = self.pending_grpc.remove(position);
                    self.events.push_back(Event::Grpc { vm: pending.vm, call: pending.call, answer, close: true });
                }
                _ => position += 1,
            }
        }
    }

    /// Delivers queued events until none are left.
    fn pump(&mut self) {
        while let Some(event) = self.events.pop_front() {
            self.deliver(event);
        }
    }

    fn deliver(&mut self, event: Event) {
        let (id, context) = match &event {
            Event::HttpResponse { vm, call, .. } => (*vm, call.context),
            Event::Grpc { vm, call, .. } => (*vm, call.context),
            Event::GrpcFailure { vm, context, .. } => (*vm, *context),
            Event::QueueReady { vm, .. } => (*vm, ROOT_CONTEXT_ID),
        };
        let Some(vm) = self.workers[id.worker][id.filter].alive() else {
            return;
        };
        // An answer for a context that is gone reaches the plugin's root context, as in Envoy.
        let context = if vm.store.data().streams.contains_key(&context) { context } else { ROOT_CONTEXT_ID };
        vm.store.data_mut().active_context = context;
        let ctx = context as i32;
        let result = match event {
            Event::HttpResponse { call, answer, .. } => {
                let delivery = match answer {
                    CallResult::Answered(response) => {
                        let headers = upstream_response_headers(
                            response.status,
                            bytes_pairs(&response.headers),
                            response.body.len(),
                            !response.trailers.0.is_empty(),
                            0,
                        );
                        Delivery {
                            headers: headers.entries().clone(),
                            body: response.body.into_bytes(),
                            trailers: bytes_pairs(&response.trailers),
                        }
                    }
                    // Envoy's async client turns a reset or a timeout into a local reply.
                    CallResult::Reset => async_client_reply(
                        503,
                        "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
                    ),
                    CallResult::TimedOut => async_client_reply(504, "upstream request timeout"),
                };
                let sizes = (delivery.headers.len() as i32, delivery.body.len() as i32, delivery.trailers.len() as i32);
                vm.store.data_mut().delivery = Some(delivery);
                let result = vm.call(|c| &c.on_http_call_response, (ctx, call.token as i32, sizes.0, sizes.1, sizes.2));
                vm.store.data_mut().delivery = None;
                result.map(|_| ())
            }
            Event::Grpc { call, answer, close, .. } => (|| -> Result<()> {
                let token = call.token as i32;
                let response = answer.response;
                let initial = bytes_pairs(&response.initial_metadata);
                if !initial.is_empty() {
                    let count = initial.len() as i32;
                    vm.store.data_mut().delivery = Some(Delivery { headers: initial, ..Delivery::default() });
                    vm.call(|c| &c.on_grpc_receive_initial_metadata, (ctx, token, count))?;
                }
                if response.status == 0 && !response.message.is_empty() {
                    let size = response.message.len() as i32;
                    vm.store.data_mut().delivery =
                        Some(Delivery { body: response.message.into_bytes(), ..Delivery::default() });
                    vm.call(|c| &c.on_grpc_receive, (ctx, token, size))?;
                }
                if close {
                    let trailing = bytes_pairs(&response.trailing_metadata);
                    if !trailing.is_empty() {
                        let count = trailing.len() as i32;
                        vm.store.data_mut().delivery = Some(Delivery { trailers: trailing, ..Delivery::default() });
                        vm.call(|c| &c.on_grpc_receive_trailing_metadata, (ctx, token, count))?;
                    }
                    vm.store.data_mut().delivery = None;
                    vm.store.data_mut().open_grpc.remove(&call.token);
                    vm.store.data_mut().last_status = (response.status, response.status_message.into_bytes());
                    vm.call(|c| &c.on_grpc_close, (ctx, token, response.status as i32))?;
                }
                vm.store.data_mut().delivery = None;
                Ok(())
            })(),
            Event::GrpcFailure { token, status, .. } => {
                vm.store.data_mut().open_grpc.remove(&token);
                vm.store.data_mut().last_status = (status, b"deadline exceeded".to_vec());
                vm.call(|c| &c.on_grpc_close, (ctx, token as i32, status as i32)).map(|_| ())
            }
            Event::QueueReady { queue, .. } => vm.call(|c| &c.on_queue_ready, (ctx, queue as i32)).map(|_| ()),
        };
        if let Err(error) = result {
            self.record_trap(id, &error.to_string());
            if let Some(filter) = self.flight_filter(id, context) {
                self.fail_stream(filter);
            }
        }
        self.after_callback(id);
    }

    /// The earliest timer: a tick, a call timeout, or a delayed answer.
    fn next_timer(&mut self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut consider = |at: Option<u64>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        for worker in &mut self.workers {
            for slot in worker {
                if let Some(vm) = slot.alive() {
                    consider(vm.store.data().next_tick_ns);
                }
            }
        }
        for pending in &self.pending_http {
            consider(pending.timeout_at);
            consider(pending.answer_at.as_ref().map(|(at, _)| *at));
        }
        for pending in &self.pending_grpc {
            consider(pending.timeout_at);
        }
        next
    }

    /// Moves the virtual clock to `target`, firing every timer on the way in time order.
    pub fn advance_to(&mut self, target: u64) {
        while let Some(at) = self.next_timer().filter(|at| *at <= target) {
            self.world.borrow_mut().now_ns = self.now().max(at);
            self.fire_timers(at);
            self.pump();
        }
        let mut world = self.world.borrow_mut();
        world.now_ns = world.now_ns.max(target);
    }

    fn fire_timers(&mut self, at: u64) {
        // Answers and timeouts of calls.
        let mut position = 0;
        while position < self.pending_http.len() {
            let pending = &self.pending_http[position];
            let answered = pending.answer_at.as_ref().is_some_and(|(due, _)| *due <= at);
            let timed_out = pending.timeout_at.is_some_and(|due| due <= at);
            if answered || timed_out {
                let pending = self.pending_http.remove(position);
                let answer = match pending.answer_at {
                    Some((due, answer)) if due <= at => answer,
                    _ => CallResult::TimedOut,
                };
                self.events.push_back(Event::HttpResponse { vm: pending.vm, call: pending.call, answer });
            } else {
                position += 1;
            }
        }
        let mut position = 0;
        while position < self.pending_grpc.len() {
            if self.pending_grpc[position].timeout_at.is_some_and(|due| due <= at) {
                let pending = self.pending_grpc.remove(position);
                // gRPC DEADLINE_EXCEEDED.
                self.events.push_back(Event::GrpcFailure {
                    vm: pending.vm,
                    context: pending.call.context,
                    token: pending.call.token,
                    status: 4,
                });
            } else {
                position += 1;
            }
        }
        // Ticks.
        for worker in 0..self.workers.len() {
            for filter in 0..self.workers[worker].len() {
                let Some(vm) = self.workers[worker][filter].alive() else {
                    continue;
                };
                let state = vm.store.data_mut();
                if state.next_tick_ns.is_none_or(|due| due > at) {
                    continue;
                }
                state.next_tick_ns = Some(at + u64::from(state.tick_period_ms) * 1_000_000);
                state.active_context = ROOT_CONTEXT_ID;
                let result = vm.call(|c| &c.on_tick, ROOT_CONTEXT_ID as i32);
                let id = VmId { worker, filter };
                if let Err(error) = result {
                    self.record_trap(id, &error.to_string());
                }
                self.after_callback(id);
            }
        }
    }

    /// Drops every filter: the chain becomes the router alone (the benchmark's baseline).
    pub fn remove_filters(&mut self) {
        for worker in &mut self.workers {
            worker.clear();
        }
    }

    /// Linear memory of every VM of a worker, in bytes.
    pub fn memory_bytes(&mut self, worker: usize) -> Vec<usize> {
        self.workers[worker]
            .iter_mut()
            .map(|slot| match slot.vm.as_mut() {
                Some(vm) => vm.store.data().memory.map_or(0, |m| m.data_size(&vm.store)),
                None => 0,
            })
            .collect()
    }

    /// The plugin name of every filter, in chain order.
    pub fn filter_names(&self) -> Vec<String> {
        self.workers.first().map(|w| w.iter().map(|s| s.spec.name.clone()).collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_inline_headers_are_joined_as_envoy_does() {
        let mut headers: Pairs = Vec::new();
        for (name, value) in [("x-request-id", "a"), ("x-user", "1"), ("x-request-id", "b"), ("x-user", "2")] {
            add_client_header(&mut headers, name.as_bytes().to_vec(), value.as_bytes().to_vec());
        }
        let text: Vec<(String, String)> = HeaderMap::from_pairs(headers).to_strings();
        let expected = [("x-request-id", "a,b"), ("x-user", "1"), ("x-user", "2")];
        assert_eq!(text, expected.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn upstream_framing_follows_an_http1_backend() {
        let ok = upstream_response_headers(200, vec![(b"a".to_vec(), b"1".to_vec())], 2, false, 0);
        assert_eq!(ok.get(b"content-length"), Some(&b"2"[..]));
        assert_eq!(ok.get(b"x-envoy-upstream-service-time"), Some(&b"0"[..]));
        let no_content = upstream_response_headers(204, Vec::new(), 0, false, 3);
        assert_eq!(no_content.get(b"content-length"), None);
        let trailers = upstream_response_headers(200, Vec::new(), 2, true, 0);
        assert_eq!(trailers.get(b"transfer-encoding"), Some(&b"chunked"[..]));
    }

    #[test]
    fn failed_calls_get_envoys_async_client_replies() {
        let reset = async_client_reply(503, "x");
        assert_eq!(reset.headers[0], (b":status".to_vec(), b"503".to_vec()));
        assert_eq!(reset.headers[1], (b"content-length".to_vec(), b"1".to_vec()));
        assert_eq!(reset.body, b"x");
    }
}
