//! `shield`: the five wasm-shield filters as stages of one Proxy-Wasm module.
//!
//! Each filter in Envoy's V8 costs a VM (memory per worker) and a fixed price per request before
//! it does any work; a chain of five modules pays both five times. `shield` links the filters'
//! stages ([`shield_kit::stage`]) and runs the ones its configuration names, in order, with
//! [`shield_kit::pipeline`]: the same glue a standalone filter runs with one stage, so the
//! behaviour is that of the chain of standalone filters in the same order, with one header read
//! and one header write per request.
//!
//! [`config`] parses the stage list; each stage's configuration is exactly the standalone
//! filter's.

pub mod config;

#[cfg(all(feature = "module", target_arch = "wasm32"))]
shield_kit::module_entry!(config::build_stages);
