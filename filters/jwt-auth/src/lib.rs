//! `jwt-auth`: verifies bearer tokens at the gateway and hands services verified identity.
//!
//! Configuration mirrors Envoy's `jwt_authn` (`providers`, `rules`, `claim_to_headers`, …).
//! Keys come inline (`local_jwks`) or from an Envoy cluster (`remote_jwks`, fetched at start and
//! refreshed); signatures are checked by `jwt-simple` with pure-Rust crypto, the algorithm always
//! chosen by the key. Verified tokens are cached so a repeated token costs a hash lookup.
//!
//! The pure core ([`config`], [`jwks`], [`token`], [`verify`], [`claims`], [`cache`],
//! [`decision`], [`remote`], [`reply`], [`rsa_pkcs1`], [`montgomery`]) decides everything and is
//! unit tested natively;
//! [`stage`] is the glue: the filter as a `shield_kit` stage (the module runs it alone or inside
//! `shield`).

pub mod cache;
pub mod claims;
pub mod config;
pub mod decision;
pub mod duration;
pub mod jwks;
pub mod matcher;
pub mod montgomery;
pub mod reason;
pub mod remote;
pub mod reply;
pub mod rsa_pkcs1;
pub mod stage;
pub mod token;
pub mod verify;

#[cfg(all(feature = "module", target_arch = "wasm32"))]
shield_kit::standalone_module!(stage::build);
