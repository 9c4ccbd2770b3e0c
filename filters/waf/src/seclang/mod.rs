//! SecLang (ModSecurity's rule language) import: the directives OWASP CRS v4 uses, translated
//! into the engine's rule model — no second engine.
//!
//! [`lexer`] splits text into directives (comments, `\` continuations, quoting), [`actions`]
//! reads action lists, [`translate`] turns directives into rules and collects every unsupported
//! feature as an [`Issue`] naming the rule ID and the feature.

pub mod actions;
pub mod lexer;
pub mod translate;

pub use translate::{Issue, Loaded, Loader, TargetUpdate, apply_exclusions};
