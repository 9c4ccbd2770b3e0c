//! Counters defined once in `on_configure` and bumped per request without ever failing one.

use crate::abi;

/// A host counter such as `wasm_shield.header_strip.headers_stripped`.
///
/// `Counter::default()` is a counter that was never defined (no configuration yet, or the host
/// refused the definition): incrementing it does nothing, so metrics can never break traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    id: Option<u32>,
}

impl Counter {
    /// Defines the counter `name` with the host (Envoy exposes it as `wasmcustom.<name>`).
    pub fn define(name: &str) -> Self {
        match abi::define_counter(name) {
            Ok(id) => Self { id: Some(id) },
            Err(status) => {
                log::warn!("metric not defined name={name} status={status}");
                Self::default()
            }
        }
    }

    /// Adds `by` to the counter; zero is skipped so no hostcall is spent on it.
    pub fn increment(&self, by: u64) {
        let Some(id) = self.id else { return };
        if by == 0 {
            return;
        }
        let offset = i64::try_from(by).unwrap_or(i64::MAX);
        // A failed increment loses one sample; that must not affect the request.
        let _ = abi::increment_metric(id, offset);
    }
}
