//! `request-id`: one correlation value across edge, gateway and services.
//!
//! Keeps a valid incoming request ID or generates one (UUID v4 or ULID), propagates it upstream,
//! echoes it to the client, publishes it for later filters and log lines, and creates or repairs
//! the W3C `traceparent` so traces line up with the same request.
//!
//! The pure core ([`config`], [`id`], [`traceparent`], [`decision`], [`audit`]) decides
//! everything and is unit tested natively; [`stage`] only moves bytes between the stream and the core,
//! drawing host randomness through [`entropy`].

pub mod audit;
pub mod config;
pub mod decision;
pub mod entropy;
pub mod id;
pub mod stage;
pub mod traceparent;

#[cfg(all(feature = "module", target_arch = "wasm32"))]
shield_kit::standalone_module!(stage::build);
