//! `rate-limit`: layered token-bucket limits keyed by client IP, API key, authenticated user,
//! path or route, or a global ceiling; counted per worker or shared across workers.
//!
//! The pure core ([`config`], [`bucket`], [`address`], [`request`], [`matcher`], [`key`],
//! [`store`], [`shared`], [`limiter`], [`response`]) decides everything and is unit tested
//! natively; [`stage`] is the glue (the filter as a `shield_kit` stage, run alone or inside `shield`).

pub mod address;
pub mod bucket;
pub mod config;
pub mod key;
pub mod limiter;
pub mod matcher;
pub mod request;
pub mod response;
pub mod shared;
pub mod stage;
pub mod store;

#[cfg(all(feature = "module", target_arch = "wasm32"))]
shield_kit::standalone_module!(stage::build);
