//! `waf`: a web application firewall with OWASP CRS semantics. Rules (built-in, native JSON
//! custom rules, and later SecLang) compile once into multi-pattern automata; each request value
//! is transformed once per distinct pipeline and scanned once per pipeline.
//!
//! Pure core: [`request`] and [`body`] (the collections), [`transform`], [`operator`],
//! [`macros`], [`rule`] (the model), [`engine`] (compile + evaluate), [`native`] and [`builtin`]
//! (rule sources), [`config`] (the policy), [`inspect`] (per-request verdicts), [`audit`] (log
//! lines). [`stage`] is the glue (the filter as a `shield_kit` stage, run alone or inside `shield`).

pub mod audit;
pub mod automaton;
pub mod body;
pub mod builtin;
pub mod config;
pub mod crs;
pub mod engine;
pub mod inspect;
pub mod macros;
pub mod native;
pub mod operator;
pub mod request;
pub mod rule;
pub mod seclang;
pub mod sha1;
pub mod stage;
pub mod transform;

#[cfg(all(feature = "module", target_arch = "wasm32"))]
shield_kit::standalone_module!(stage::build);
