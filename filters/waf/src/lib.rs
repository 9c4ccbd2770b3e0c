//! `waf`: a web application firewall with OWASP CRS semantics. Rules (built-in, native JSON
//! custom rules, and later SecLang) compile once into multi-pattern automata; each request value
//! is transformed once per distinct pipeline and scanned once per pipeline.
//!
//! Pure core: [`request`] and [`body`] (the collections), [`transform`], [`operator`],
//! [`macros`], [`rule`] (the model), [`engine`] (compile + evaluate), [`native`] and [`builtin`]
//! (rule sources), [`config`] (the policy), [`inspect`] (per-request verdicts), [`audit`] (log
//! lines). [`shell`] only moves bytes between Envoy and the core.

pub mod audit;
pub mod body;
pub mod builtin;
pub mod config;
pub mod engine;
pub mod inspect;
pub mod macros;
pub mod native;
pub mod operator;
pub mod request;
pub mod rule;
pub mod shell;
pub mod transform;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(shell::WafRoot::default())
    });
}}
