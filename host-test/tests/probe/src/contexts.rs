//! The SDK callbacks: every one logs that it ran (with its arguments), then runs its actions.
//!
//! One type serves both kinds of context: the root context (`is_root`) and each HTTP stream.

use crate::config::{BufferName, Config, Hook, MapName, VmConfig};
use crate::exec::{Phase, Probe};
use crate::host::{self, Status};
use crate::vm::{self, error, quote, say};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;

impl Probe {
    pub fn root(context_id: u32) -> Probe {
        Probe::new(context_id, context_id, Rc::new(Config::default()))
    }

    /// Every callback starts here: its log lines carry this plugin's tag, and its start-up lines
    /// are this plugin's, even when Envoy runs several plugins in one VM.
    fn enter(&self) -> vm::Scope {
        vm::enter(self.root_id, self.config.tag.as_deref())
    }

    /// Picks the `routes` entry for this request's `:path` (query string dropped).
    fn select_route(&mut self) {
        let (status, path) = host::get_map_value(MapName::RequestHeaders.id(), ":path");
        if !status.is_ok() {
            return;
        }
        let path = String::from_utf8_lossy(path.as_deref().unwrap_or_default()).into_owned();
        let path = path.split('?').next().unwrap_or_default();
        if self.config.routes.contains_key(path) {
            say(format!("route {path}"));
            self.route = Some(path.to_owned());
        }
    }

    /// Runs a stream callback's actions and turns the outcome into the callback's answer.
    fn stream_callback(&mut self, callback: &str, phase: Phase, hook: Hook) -> Action {
        if self.run_hook(phase, hook) {
            say(format!("{callback} returns Pause"));
            Action::Pause
        } else {
            Action::Continue
        }
    }
}

impl Context for Probe {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        let _scope = self.enter();
        self.http_call_answered(token, headers, body, trailers);
    }

    fn on_grpc_call_response(&mut self, token: u32, status_code: u32, size: usize) {
        let _scope = self.enter();
        self.grpc_call_answered(token, status_code, size);
    }

    fn on_grpc_stream_initial_metadata(&mut self, token: u32, elements: u32) {
        let _scope = self.enter();
        self.grpc_stream_metadata(token, elements, MapName::GrpcInitialMetadata);
    }

    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        let _scope = self.enter();
        self.grpc_stream_message(token, size);
    }

    fn on_grpc_stream_trailing_metadata(&mut self, token: u32, elements: u32) {
        let _scope = self.enter();
        self.grpc_stream_metadata(token, elements, MapName::GrpcTrailingMetadata);
    }

    fn on_grpc_stream_close(&mut self, token: u32, status_code: u32) {
        let _scope = self.enter();
        self.grpc_stream_closed(token, status_code);
    }

    fn on_done(&mut self) -> bool {
        let _scope = self.enter();
        if self.is_root {
            say("root on_done");
            return true;
        }
        say("on_done");
        self.run_hook(Phase::Done, Hook::Done);
        if self.config.done_later(self.route.as_deref()) {
            say("on_done returns false (done later)");
            return false;
        }
        true
    }
}

impl RootContext for Probe {
    fn on_vm_start(&mut self, vm_configuration_size: usize) -> bool {
        let _scope = self.enter();
        say(format!("on_vm_start vm_configuration_size={vm_configuration_size}"));
        if vm_configuration_size == 0 {
            return true;
        }
        let buffer = BufferName::VmConfiguration.id();
        let bytes = match host::get_buffer(buffer, 0, vm_configuration_size) {
            (Status::OK, bytes) => bytes.unwrap_or_default(),
            (status, _) => {
                error(format!("vm_configuration status={status}"));
                return true;
            }
        };
        say(format!("vm_configuration data={}", quote(&bytes)));
        match serde_json::from_slice::<VmConfig>(&bytes) {
            Ok(vm_config) => {
                self.run(Phase::VmStart, &vm_config.on_vm_start);
            }
            Err(_) => say("vm_configuration holds no on_vm_start actions"),
        }
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let _scope = self.enter();
        say(format!("on_configure plugin_configuration_size={plugin_configuration_size}"));
        let bytes = if plugin_configuration_size == 0 {
            Vec::new()
        } else {
            let buffer = BufferName::PluginConfiguration.id();
            match host::get_buffer(buffer, 0, plugin_configuration_size) {
                (Status::OK, bytes) => bytes.unwrap_or_default(),
                (status, _) => {
                    error(format!("plugin_configuration status={status}"));
                    return false;
                }
            }
        };
        let config = match Config::parse(&bytes) {
            Ok(config) => config,
            Err(e) => {
                error(format!("configuration error: {e}"));
                return false;
            }
        };
        let _configured = vm::enter(self.root_id, config.tag.as_deref());
        if config.fail_configure {
            error("on_configure refuses the configuration (fail_configure)");
            return false;
        }
        if let Some(millis) = config.tick_ms {
            let status = host::set_tick_period(millis);
            say(format!("tick_period {millis}ms status={status}"));
        }
        self.config = Rc::new(config);
        let config = Rc::clone(&self.config);
        self.run(Phase::Configure, &config.on_configure);
        say(format!("on_configure ok lists={}", config.lists()));
        true
    }

    fn on_tick(&mut self) {
        let _scope = self.enter();
        vm::started();
        let tick = vm::with(|vm| {
            vm.ticks += 1;
            vm.ticks
        });
        say(format!("on_tick n={tick}"));
        let config = Rc::clone(&self.config);
        self.run(Phase::Tick, &config.on_tick);
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        let _scope = self.enter();
        vm::started();
        let name = vm::with(|vm| {
            let name = vm.queues.iter().find(|(_, id)| **id == queue_id);
            name.map(|(name, _)| name.clone())
        });
        let name = name.unwrap_or_else(|| format!("#{queue_id}"));
        say(format!("on_queue_ready queue={name}"));
        let config = Rc::clone(&self.config);
        self.run(Phase::QueueReady, &config.on_queue_ready);
    }

    fn on_log(&mut self) {
        let _scope = self.enter();
        say("root on_log");
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let _scope = self.enter();
        vm::started();
        let config = Rc::clone(&self.config);
        Some(Box::new(Probe::new(context_id, self.id, config)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, headers: usize, end_of_stream: bool) -> Action {
        let _scope = self.enter();
        self.select_route();
        say(format!("on_request_headers headers={headers} end_of_stream={end_of_stream}"));
        self.stream_callback("on_request_headers", Phase::RequestHeaders, Hook::RequestHeaders)
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let _scope = self.enter();
        say(format!("on_request_body size={size} end_of_stream={end_of_stream}"));
        let phase = Phase::RequestBody { size, end_of_stream };
        self.stream_callback("on_request_body", phase, Hook::RequestBody)
    }

    fn on_http_request_trailers(&mut self, trailers: usize) -> Action {
        let _scope = self.enter();
        say(format!("on_request_trailers trailers={trailers}"));
        self.stream_callback("on_request_trailers", Phase::RequestTrailers, Hook::RequestTrailers)
    }

    fn on_http_response_headers(&mut self, headers: usize, end_of_stream: bool) -> Action {
        let _scope = self.enter();
        self.response_started = true;
        say(format!("on_response_headers headers={headers} end_of_stream={end_of_stream}"));
        self.stream_callback("on_response_headers", Phase::ResponseHeaders, Hook::ResponseHeaders)
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let _scope = self.enter();
        say(format!("on_response_body size={size} end_of_stream={end_of_stream}"));
        let phase = Phase::ResponseBody { size, end_of_stream };
        self.stream_callback("on_response_body", phase, Hook::ResponseBody)
    }

    fn on_http_response_trailers(&mut self, trailers: usize) -> Action {
        let _scope = self.enter();
        say(format!("on_response_trailers trailers={trailers}"));
        let phase = Phase::ResponseTrailers;
        self.stream_callback("on_response_trailers", phase, Hook::ResponseTrailers)
    }

    fn on_log(&mut self) {
        let _scope = self.enter();
        say(format!("on_log done_called={}", self.done_called));
        self.run_hook(Phase::Log, Hook::Log);
    }
}
