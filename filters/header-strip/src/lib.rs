//! `header-strip`: removes request headers a client could forge (`x-user-email`,
//! `x-forwarded-groups`, `x-tenant-id`, ...) before any later filter writes verified values, and
//! optionally removes internal response headers before they reach the client.
//!
//! The pure core ([`config`], [`cidr`], [`rules`], [`audit`]) decides everything and is unit
//! tested natively; [`shell`] only moves bytes between Envoy and the core.

pub mod audit;
pub mod cidr;
pub mod config;
pub mod rules;
pub mod shell;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(shell::HeaderStripRoot::default())
    });
}}
