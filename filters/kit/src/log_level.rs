//! The filters log at the level the host logs at, so a line the host would drop is never
//! formatted nor sent across the Wasm boundary.
//!
//! Every `log::info!` that reaches the host is a hostcall, and a request-ID lookup and string
//! formatting before it; when Envoy runs its `wasm` logger at `warning` (as most production
//! gateways do), all of that is paid for a line Envoy throws away. Reading the host's level once
//! per configuration and setting the `log` crate's maximum level to it skips the whole line,
//! arguments included, inside the module.
//!
//! Envoy's level can be changed at run time (`POST /logging?wasm=info`); Proxy-Wasm ABI 0.2.1
//! has no callback for that, so the new level takes effect at the next configuration update of
//! the plugin (a listener or `EnvoyExtensionPolicy` change), when `on_configure` runs again.

use proxy_wasm::types::LogLevel;

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    /// The raw ABI call behind `proxy_wasm::hostcalls::get_log_level`, which panics on any status
    /// but Ok and trusts the host to write a valid enum value; here the status and the value are
    /// checked instead.
    #[link_name = "proxy_get_log_level"]
    fn proxy_get_log_level_status(return_level: *mut u32) -> u32;
}

/// The host's log level, or `None` when the host does not say (or says something unknown).
pub fn host_log_level() -> Option<LogLevel> {
    let mut raw = u32::MAX;
    // SAFETY: the host writes one u32 through a pointer to a live local.
    let status = unsafe { proxy_get_log_level_status(&mut raw) };
    if status != 0 {
        return None;
    }
    level_from_abi(raw)
}

/// Sets the module's maximum log level to the host's; keeps everything (trace) when the host
/// does not tell. Call it first in `on_configure`.
pub fn follow_host_log_level() {
    proxy_wasm::set_log_level(host_log_level().unwrap_or(LogLevel::Trace));
}

/// ABI 0.2.1 log levels: 0 trace, 1 debug, 2 info, 3 warn, 4 error, 5 critical.
fn level_from_abi(raw: u32) -> Option<LogLevel> {
    Some(match raw {
        0 => LogLevel::Trace,
        1 => LogLevel::Debug,
        2 => LogLevel::Info,
        3 => LogLevel::Warn,
        4 => LogLevel::Error,
        5 => LogLevel::Critical,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_levels_map_in_order() {
        let levels: Vec<_> = (0..6).map(|raw| level_from_abi(raw).map(|l| l as u32)).collect();
        assert_eq!(levels, (0..6).map(Some).collect::<Vec<_>>());
    }

    #[test]
    fn unknown_levels_are_refused() {
        assert_eq!(level_from_abi(6), None);
        assert_eq!(level_from_abi(u32::MAX), None);
    }
}
