//! `rate-limit`: layered token-bucket limits keyed by client IP, API key, authenticated user,
//! path or route, or a global ceiling; counted per worker or shared across workers.
//!
//! The pure core ([`config`], [`bucket`], [`address`], [`request`], [`matcher`], [`key`],
//! [`store`], [`shared`], [`limiter`], [`response`]) decides everything and is unit tested
//! natively; [`shell`] and [`abi`] only move bytes between Envoy and the core.

pub mod abi;
pub mod address;
pub mod bucket;
pub mod config;
pub mod key;
pub mod limiter;
pub mod matcher;
pub mod request;
pub mod response;
pub mod shared;
pub mod shell;
pub mod store;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(shell::RateLimitRoot::default())
    });
}}
