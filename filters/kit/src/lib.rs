//! What every wasm-shield filter shares.
//!
//! The kit stays small on purpose: it holds only what several filters need, so a fix lands in one
//! place. It has no cdylib target, so `scripts/build-filters` does not build it as a module.
//!
//! - [`config`]: plugin configuration bytes → typed configuration, with errors naming the field.
//! - [`header_name`]: header names from configuration (RFC 9110 tokens, lowercased).
//! - [`log_escape`]: client-supplied bytes made safe and bounded for a log line.
//! - [`request_id`]: the stream's request ID, published by `request-id`, read by every log line.
//! - [`metrics`]: counters that never fail a request.
//! - [`log_level`]: log only what the host keeps, so dropped lines cost nothing.
//! - [`abi`]: raw host calls that return the host's status instead of panicking.
//! - [`headers`]: a stream's header map, read once, changed in place, written once.
//! - [`stage`]: the stage interface every filter implements (one filter's logic per request).
//! - [`pipeline`]: the Proxy-Wasm glue that runs a list of stages: one for a standalone filter,
//!   several for `shield`.

pub mod abi;
pub mod config;
pub mod header_name;
pub mod headers;
pub mod log_escape;
pub mod log_level;
pub mod metrics;
pub mod pipeline;
pub mod request_id;
pub mod stage;
