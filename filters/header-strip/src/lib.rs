//! `header-strip`: removes request headers a client could forge (`x-user-email`,
//! `x-forwarded-groups`, `x-tenant-id`, ...) before any later filter writes verified values, and
//! optionally removes internal response headers before they reach the client.
//!
//! The pure core ([`config`], [`cidr`], [`rules`], [`audit`]) decides everything and is unit
//! tested natively; [`stage`] is the filter's glue as a `shield_kit` stage (the module runs it with
//! `shield_kit::pipeline`, alone or inside `shield`).

pub mod audit;
pub mod cidr;
pub mod config;
pub mod rules;
pub mod stage;

#[cfg(all(feature = "module", target_arch = "wasm32"))]
shield_kit::standalone_module!(stage::build);
