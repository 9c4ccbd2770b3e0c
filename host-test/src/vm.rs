//! One Proxy-Wasm VM: a module instance in its own wasmtime store, its contexts, and what its
//! host calls asked the proxy to do once the current callback returns.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use anyhow::{Context as _, Result, anyhow, bail};
use wasmtime::{Caller, Extern, InstancePre, Memory, Store, TypedFunc, WasmParams, WasmResults};

use crate::abi::{LogLevel, Pairs, Status};
use crate::stream::Stream;
use crate::world::{LogLine, SeededRandom, VmId, World};

/// The context id of every VM's plugin (root) context; stream contexts count up from it.
pub const ROOT_CONTEXT_ID: u32 = 1;

/// How a filter's plugin is configured, as in Envoy's `envoy.filters.http.wasm` config.
#[derive(Clone, Debug)]
pub struct PluginSpec {
    /// `plugin_name`: the name log lines and properties carry.
    pub name: String,
    /// `root_id`.
    pub root_id: String,
    /// `vm_id`: also the scope of shared data and queues.
    pub vm_id: String,
    /// The plugin configuration bytes (`proxy_on_configure`).
    pub configuration: Vec<u8>,
    /// The VM configuration bytes (`proxy_on_vm_start`).
    pub vm_configuration: Vec<u8>,
    /// Environment variables the VM sees through WASI.
    pub env: Vec<(String, String)>,
    /// Envoy's `failure_policy: FAIL_OPEN`: a dead VM is skipped instead of failing requests.
    pub fail_open: bool,
    /// The level `proxy_get_log_level` reports; lines below it are dropped as Envoy does.
    pub log_level: LogLevel,
}

/// A reply the filter asked for with `proxy_send_local_response`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u32,
    /// Envoy's response code details.
    pub details: String,
    /// Body bytes (lossy text in reports).
    #[serde(serialize_with = "crate::report::lossy")]
    pub body: Vec<u8>,
    /// Extra headers.
    #[serde(serialize_with = "crate::report::lossy_pairs")]
    pub headers: Pairs,
}

/// An outgoing `proxy_http_call`.
#[derive(Clone, Debug)]
pub struct HttpCallRequest {
    /// Token returned to the module.
    pub token: u32,
    /// Context that dispatched it (its callback receives the answer).
    pub context: u32,
    /// Envoy cluster name.
    pub cluster: String,
    /// Request headers, pseudo-headers included.
    pub headers: Pairs,
    /// Request body.
    pub body: Vec<u8>,
    /// Request trailers.
    pub trailers: Pairs,
    /// Timeout in milliseconds (0: none).
    pub timeout_ms: u32,
}

/// An outgoing gRPC call or stream.
#[derive(Clone, Debug)]
pub struct GrpcCallRequest {
    /// Token returned to the module (odd for calls, even for streams, as Envoy hands them out).
    pub token: u32,
    /// Dispatching context.
    pub context: u32,
    /// The cluster (the SDK passes the cluster name as the service argument).
    pub cluster: String,
    /// Fully-qualified service name.
    pub service: String,
    /// Method name.
    pub method: String,
    /// Messages sent (one for a unary call).
    pub messages: Vec<Vec<u8>>,
    /// Timeout in milliseconds (0: none).
    pub timeout_ms: u32,
}

/// What a host call asks the proxy to do after the current callback.
#[derive(Clone, Debug)]
pub enum Effect {
    /// `proxy_continue_stream` (or v0.2.0 `proxy_continue_request/response`).
    Continue { context: u32, response: bool },
    /// `proxy_close_stream`: reset the stream.
    Close { context: u32 },
    /// `proxy_send_local_response`.
    LocalReply { context: u32, reply: LocalReply },
    /// `proxy_http_call`.
    HttpCall(HttpCallRequest),
    /// `proxy_grpc_call` / `proxy_grpc_stream`.
    GrpcCall(GrpcCallRequest),
    /// `proxy_grpc_send` on a stream: the answer configured for the stream comes back.
    GrpcSend { token: u32, context: u32, message: Vec<u8>, end_stream: bool },
    /// `proxy_grpc_cancel`/`proxy_grpc_close`: drop a gRPC call.
    GrpcCancel { token: u32 },
}

/// The response of an http call or a gRPC delivery being handed to the module right now.
#[derive(Debug, Default)]
pub struct Delivery {
    /// HTTP call response headers / gRPC initial metadata.
    pub headers: Pairs,
    /// HTTP call response body / gRPC message.
    pub body: Vec<u8>,
    /// HTTP call response trailers / gRPC trailing metadata.
    pub trailers: Pairs,
}

/// The data of one VM's store: everything its host calls read and write.
pub struct VmState {
    /// The plugin this VM runs.
    pub plugin: Rc<PluginSpec>,
    /// Where it runs.
    pub vm: VmId,
    /// State shared with every other VM of the case.
    pub world: Rc<RefCell<World>>,
    pub(crate) memory: Option<Memory>,
    pub(crate) allocator: Option<TypedFunc<i32, i32>>,
    /// The context host calls act on (`proxy_set_effective_context` changes it).
    pub active_context: u32,
    /// Stream contexts and their streams.
    pub streams: HashMap<u32, Rc<RefCell<Stream>>>,
    /// Whether the plugin/VM configuration buffers are readable (during configure/start).
    pub(crate) configuring: bool,
    pub(crate) starting: bool,
    /// An http call response or gRPC message under delivery.
    pub(crate) delivery: Option<Delivery>,
    /// Effects the current callback asked for.
    pub effects: Vec<Effect>,
    /// `proxy_set_tick_period_milliseconds`.
    pub tick_period_ms: u32,
    /// When the next tick is due (virtual ns).
    pub next_tick_ns: Option<u64>,
    pub(crate) next_http_token: u32,
    pub(crate) next_grpc_token: u32,
    /// Status code and message `proxy_get_status` reports (set at gRPC close).
    pub(crate) last_status: (u32, Vec<u8>),
    pub(crate) stdout_line: Vec<u8>,
    pub(crate) stderr_line: Vec<u8>,
    pub(crate) random: SeededRandom,
    /// gRPC calls and streams still open (tokens), so that cancel/close/send of a finished one
    /// answers `NotFound` as Envoy does.
    pub open_grpc: HashSet<u32>,
    next_context_id: u32,
}

impl VmState {
    /// Fresh state for a VM.
    pub fn new(plugin: Rc<PluginSpec>, vm: VmId, world: Rc<RefCell<World>>, seed: u64) -> VmState {
        VmState {
            plugin,
            vm,
            world,
            memory: None,
            allocator: None,
            active_context: ROOT_CONTEXT_ID,
            streams: HashMap::new(),
            configuring: false,
            starting: false,
            delivery: None,
            effects: Vec::new(),
            tick_period_ms: 0,
            next_tick_ns: None,
            next_http_token: 1,
            next_grpc_token: 1,
            last_status: (0, Vec::new()),
            stdout_line: Vec::new(),
            stderr_line: Vec::new(),
            random: SeededRandom::new(seed, vm),
            open_grpc: HashSet::new(),
            next_context_id: ROOT_CONTEXT_ID + 1,
        }
    }

    /// The stream of the effective context, if it is a stream context.
    pub fn active_stream(&self) -> Option<&Rc<RefCell<Stream>>> {
        self.streams.get(&self.active_context)
    }

    /// Records a log line if the plugin's level lets it through.
    pub fn log(&self, level: LogLevel, message: &[u8]) {
        if level < self.plugin.log_level {
            return;
        }
        let mut world = self.world.borrow_mut();
        if world.keep_logs {
            let line = LogLine {
                worker: self.vm.worker,
                filter: self.plugin.name.clone(),
                level,
                message: String::from_utf8_lossy(message).into_owned(),
            };
            world.logs.push(line);
        }
    }
}

/// Reads `len` bytes of guest memory at `ptr`.
pub fn read_bytes(caller: &mut Caller<'_, VmState>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let memory = caller.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    memory.data(&caller).get(start..start.saturating_add(len)).map(<[u8]>::to_vec).ok_or(Status::InvalidMemoryAccess)
}

/// Writes `bytes` at `ptr`.
pub fn write_bytes(caller: &mut Caller<'_, VmState>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let memory = caller.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let start = ptr as u32 as usize;
    let target = memory
        .data_mut(&mut *caller)
        .get_mut(start..start.saturating_add(bytes.len()))
        .ok_or(Status::InvalidMemoryAccess)?;
    target.copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian u32 at `ptr`.
pub fn write_u32(caller: &mut Caller<'_, VmState>, ptr: i32, value: u32) -> Result<(), Status> {
    write_bytes(caller, ptr, &value.to_le_bytes())
}

/// Copies `bytes` into memory the module allocates and writes its address and size to the two
/// return pointers, as Envoy does (an empty value is returned as a null pointer and size 0).
/// The outer error is a trap inside the module's allocator.
pub fn return_bytes(
    caller: &mut Caller<'_, VmState>,
    bytes: &[u8],
    ptr_ptr: i32,
    size_ptr: i32,
) -> wasmtime::Result<Result<(), Status>> {
    let mut address = 0u32;
    if !bytes.is_empty() {
        let Some(allocator) = caller.data().allocator.clone() else {
            return Ok(Err(Status::InvalidMemoryAccess));
        };
        address = allocator.call(&mut *caller, bytes.len() as i32)? as u32;
        if address == 0 {
            return Ok(Err(Status::InvalidMemoryAccess));
        }
        if let Err(status) = write_bytes(caller, address as i32, bytes) {
            return Ok(Err(status));
        }
    }
    Ok(write_u32(caller, ptr_ptr, address).and_then(|()| write_u32(caller, size_ptr, bytes.len() as u32)))
}

/// `proxy_on_http_call_response(context, token, headers, body size, trailers)`.
pub(crate) type HttpCallResponseCallback = TypedFunc<(i32, i32, i32, i32, i32), ()>;

/// The module's callbacks, looked up once per instance. A missing export is a callback the
/// module does not implement, which the host skips.
#[derive(Clone)]
pub(crate) struct Callbacks {
    pub on_context_create: Option<TypedFunc<(i32, i32), ()>>,
    pub on_vm_start: Option<TypedFunc<(i32, i32), i32>>,
    pub on_configure: Option<TypedFunc<(i32, i32), i32>>,
    pub on_tick: Option<TypedFunc<i32, ()>>,
    pub on_queue_ready: Option<TypedFunc<(i32, i32), ()>>,
    pub on_request_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub on_request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub on_request_trailers: Option<TypedFunc<(i32, i32), i32>>,
    pub on_response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub on_response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub on_response_trailers: Option<TypedFunc<(i32, i32), i32>>,
    pub on_done: Option<TypedFunc<i32, i32>>,
    pub on_log: Option<TypedFunc<i32, ()>>,
    pub on_delete: Option<TypedFunc<i32, ()>>,
    pub on_http_call_response: Option<HttpCallResponseCallback>,
    pub on_grpc_receive_initial_metadata: Option<TypedFunc<(i32, i32, i32), ()>>,
    pub on_grpc_receive: Option<TypedFunc<(i32, i32, i32), ()>>,
    pub on_grpc_receive_trailing_metadata: Option<TypedFunc<(i32, i32, i32), ()>>,
    pub on_grpc_close: Option<TypedFunc<(i32, i32, i32), ()>>,
}

/// A running (or dead) VM.
pub struct Vm {
    /// The store holding the instance and its host state.
    pub store: Store<VmState>,
    pub(crate) callbacks: Callbacks,
    /// Set when the VM trapped: why. A dead VM is never called again.
    pub failed: Option<String>,
}

/// Wasm time a single callback may take before the host interrupts it (in epoch ticks).
pub const CALLBACK_DEADLINE_TICKS: u64 = 500;

impl Vm {
    /// Instantiates a module and runs its start function (`_initialize`, or `_start`).
    pub fn instantiate(pre: &InstancePre<VmState>, state: VmState) -> Result<Vm> {
        let mut store = Store::new(pre.module().engine(), state);
        store.set_epoch_deadline(CALLBACK_DEADLINE_TICKS);
        let instance = pre.instantiate(&mut store).map_err(anyhow::Error::from).context("instantiating the module")?;
        let memory = match instance.get_export(&mut store, "memory") {
            Some(Extern::Memory(memory)) => memory,
            _ => bail!("the module exports no memory"),
        };
        let allocator = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .or_else(|_| instance.get_typed_func::<i32, i32>(&mut store, "malloc"))
            .map_err(|_| anyhow!("the module exports neither proxy_on_memory_allocate nor malloc"))?;
        store.data_mut().memory = Some(memory);
        store.data_mut().allocator = Some(allocator);

        macro_rules! callback {
            ($name:literal) => {{
                match instance.get_export(&mut store, $name) {
                    None => None,
                    Some(_) => Some(
                        instance
                            .get_typed_func(&mut store, $name)
                            .map_err(anyhow::Error::from)
                            .with_context(|| format!("export {} has the wrong signature", $name))?,
                    ),
                }
            }};
        }
        let callbacks = Callbacks {
            on_context_create: callback!("proxy_on_context_create"),
            on_vm_start: callback!("proxy_on_vm_start"),
            on_configure: callback!("proxy_on_configure"),
            on_tick: callback!("proxy_on_tick"),
            on_queue_ready: callback!("proxy_on_queue_ready"),
            on_request_headers: callback!("proxy_on_request_headers"),
            on_request_body: callback!("proxy_on_request_body"),
            on_request_trailers: callback!("proxy_on_request_trailers"),
            on_response_headers: callback!("proxy_on_response_headers"),
            on_response_body: callback!("proxy_on_response_body"),
            on_response_trailers: callback!("proxy_on_response_trailers"),
            on_done: callback!("proxy_on_done"),
            on_log: callback!("proxy_on_log"),
            on_delete: callback!("proxy_on_delete"),
            on_http_call_response: callback!("proxy_on_http_call_response"),
            on_grpc_receive_initial_metadata: callback!("proxy_on_grpc_receive_initial_metadata"),
            on_grpc_receive: callback!("proxy_on_grpc_receive"),
            on_grpc_receive_trailing_metadata: callback!("proxy_on_grpc_receive_trailing_metadata"),
            on_grpc_close: callback!("proxy_on_grpc_close"),
        };
        let mut vm = Vm { store, callbacks, failed: None };
        let initialize = instance.get_typed_func::<(), ()>(&mut vm.store, "_initialize").ok();
        if let Some(initialize) = initialize {
            vm.invoke(Some(initialize), ())?;
            if let Ok(main) = instance.get_typed_func::<(i32, i32), i32>(&mut vm.store, "main") {
                vm.invoke(Some(main), (0, 0))?;
            }
        } else if let Ok(start) = instance.get_typed_func::<(), ()>(&mut vm.store, "_start") {
            vm.invoke(Some(start), ())?;
        }
        if let Some(reason) = &vm.failed {
            bail!("the module trapped while starting: {reason}");
        }
        Ok(vm)
    }

    /// Calls the callback `pick` selects, if the module exports it. A trap kills the VM: the
    /// error says why.
    pub(crate) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        pick: impl FnOnce(&Callbacks) -> &Option<TypedFunc<P, R>>,
        args: P,
    ) -> Result<Option<R>> {
        // Borrow the callback and the store as the two fields they are: no clone per call.
        let Vm { store, callbacks, failed } = self;
        run(store, failed, pick(callbacks).as_ref(), args)
    }

    fn invoke<P: WasmParams, R: WasmResults>(
        &mut self,
        callback: Option<TypedFunc<P, R>>,
        args: P,
    ) -> Result<Option<R>> {
        run(&mut self.store, &mut self.failed, callback.as_ref(), args)
    }

    /// Allocates a new stream context id.
    pub fn new_context_id(&mut self) -> u32 {
        let state = self.store.data_mut();
        let id = state.next_context_id;
        state.next_context_id += 1;
        id
    }

    /// Takes the effects the last callback asked for.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.store.data_mut().effects)
    }
}

/// A trap as one readable line plus the Wasm backtrace, as Envoy logs it.
pub fn describe_trap(error: &anyhow::Error) -> String {
    let mut text = format!("{error:?}");
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        text = format!("{trap}: {text}");
    }
    text.lines().take(24).collect::<Vec<_>>().join("\n")
}

/// Calls `callback` (if the module exports it) unless the VM is dead; a trap kills the VM.
fn run<P: WasmParams, R: WasmResults>(
    store: &mut Store<VmState>,
    failed: &mut Option<String>,
    callback: Option<&TypedFunc<P, R>>,
    args: P,
) -> Result<Option<R>> {
    if let Some(reason) = failed {
        bail!("VM is dead: {reason}");
    }
    let Some(callback) = callback else {
        return Ok(None);
    };
    store.set_epoch_deadline(CALLBACK_DEADLINE_TICKS);
    match callback.call(&mut *store, args) {
        Ok(result) => Ok(Some(result)),
        Err(error) => {
            let reason = describe_trap(&anyhow::Error::from(error));
            store.data().log(LogLevel::Critical, format!("Wasm VM failed: {reason}").as_bytes());
            *failed = Some(reason.clone());
            bail!(reason)
        }
    }
}
