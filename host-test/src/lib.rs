//! `host-test`: a wasmtime Proxy-Wasm host that runs filters the way Envoy does, and replays
//! request fixtures (YAML) through them.
//!
//! It implements every host function of Proxy-Wasm ABI v0.2.1 (and accepts v0.2.0 modules),
//! the WASI calls a Rust module imports, Envoy's stream lifecycle and filter-chain semantics,
//! several workers sharing shared data and metrics, and a virtual clock. See `README.md`.

pub mod abi;
pub mod bench;
pub mod crs;
pub mod envoy;
pub mod expect;
pub mod fixture;
pub mod host;
mod hostcalls;
pub mod merge;
pub mod properties;
pub mod replay;
pub mod report;
pub mod runner;
pub mod stream;
pub mod vm;
mod wasi;
pub mod world;

pub use host::Host;

/// The directories searched for `<name>.wasm` when neither `--modules` nor
/// `HOST_TEST_MODULE_PATH` says otherwise: built filters, then test modules.
pub const DEFAULT_MODULE_PATH: &[&str] = &["target/filters", "target/test-modules"];
