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
//! [`shell`] (with [`host`], the raw host calls) only moves bytes between Envoy and the core.

pub mod cache;
pub mod claims;
pub mod config;
pub mod decision;
pub mod duration;
pub mod header_map;
pub mod host;
pub mod jwks;
pub mod matcher;
pub mod montgomery;
pub mod reason;
pub mod remote;
pub mod reply;
pub mod rsa_pkcs1;
pub mod shell;
pub mod token;
pub mod verify;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(shell::JwtAuthRoot::default())
    });
}}
