//! `request-id`: one correlation value across edge, gateway and services.
//!
//! Keeps a valid incoming request ID or generates one (UUID v4 or ULID), propagates it upstream,
//! echoes it to the client, publishes it for later filters and log lines, and creates or repairs
//! the W3C `traceparent` so traces line up with the same request.
//!
//! The pure core ([`config`], [`id`], [`traceparent`], [`decision`], [`audit`]) decides
//! everything and is unit tested natively; [`shell`] only moves bytes between Envoy and the core,
//! drawing host randomness through [`entropy`].

pub mod audit;
pub mod config;
pub mod decision;
pub mod entropy;
pub mod id;
pub mod shell;
pub mod traceparent;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(shell::RequestIdRoot::default())
    });
}}
