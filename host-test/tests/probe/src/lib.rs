//! A Proxy-Wasm test module for `host-test`: the probe.
//!
//! Its plugin configuration lists, per callback, actions that each make one hostcall (or a few)
//! and log what the host answered, one line each, prefixed with the configured `tag`. Fixtures
//! then assert on those lines, on the headers and bodies the actions changed, on metrics and on
//! local replies, so every host function of Proxy-Wasm ABI v0.2.1 is exercised through the
//! harness the way a filter would use it. See `README.md` for the configuration and the list of
//! actions.
//!
//! - [`config`]: the configuration and the action vocabulary.
//! - [`exec`]: runs actions, one context at a time.
//! - [`contexts`]: the SDK callbacks.
//! - [`host`]: the raw hostcalls, returning the host's status instead of panicking.
//! - [`vm`]: per-VM state, log helpers, value formatting.

mod config;
mod contexts;
mod exec;
mod host;
mod vm;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(exec::Probe::root(context_id))
    });
}}
