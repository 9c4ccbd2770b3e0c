//! The stream's request ID: published once by the `request-id` filter, read by every log line.
//!
//! `request-id` stores the ID in the property [`REQUEST_ID_PROPERTY`]. Envoy keeps an unknown
//! top-level property as filter state `wasm.<name>` for the whole stream, so any Wasm filter of
//! the same stream can read it, including filters that run before `request-id` (they read it in
//! `on_log`, at stream end). Without `request-id` in the chain, log lines fall back to the
//! `x-request-id` request header, escaped, since a client may have written it.

use crate::log_escape::escape_bare;
use proxy_wasm::types::MapType;

/// Property (filter state `wasm.wasm_shield.request_id` in Envoy) holding the request ID.
pub const REQUEST_ID_PROPERTY: &str = "wasm_shield.request_id";

/// Request header read when the property is absent, and the default header of `request-id`.
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-request-id";

/// Logged when the stream has no request ID at all.
pub const UNKNOWN_REQUEST_ID: &str = "-";

/// The request ID to put in a log line about the current stream: the property, else the
/// `x-request-id` request header, else `-`. Always one escaped, bounded token.
///
/// Safe in every callback: the reads go through raw ABI calls that turn any status the host
/// answers into "absent" (Envoy answers an error status for the request headers in some
/// callbacks, e.g. once the request has gone upstream in a body callback, and the SDK's
/// wrappers panic on that, which would kill the VM for the whole worker).
pub fn request_id_for_log() -> String {
    let from_property = read_property(REQUEST_ID_PROPERTY).filter(|value| !value.is_empty());
    let value = from_property.or_else(|| read_request_header(DEFAULT_REQUEST_ID_HEADER));
    format_for_log(value.as_deref())
}

/// A one-segment property, or `None` for any status but Ok.
fn read_property(name: &str) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the path is a live slice passed with its length; on Ok the host hands over a buffer
    // it allocated through this module's allocator (`proxy_on_memory_allocate`), owned from now on.
    let status = unsafe { proxy_get_property_status(name.as_ptr(), name.len(), &mut data, &mut size) };
    take_host_buffer(status, data, size)
}

/// A request header's value, or `None` for any status but Ok.
fn read_request_header(name: &str) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `read_property`.
    let status = unsafe {
        proxy_get_header_map_value_status(
            MapType::HttpRequestHeaders as u32,
            name.as_ptr(),
            name.len(),
            &mut data,
            &mut size,
        )
    };
    take_host_buffer(status, data, size)
}

/// Takes ownership of a buffer the host returned with status Ok.
fn take_host_buffer(status: u32, data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if status != 0 {
        return None;
    }
    if data.is_null() {
        return Some(Vec::new());
    }
    // SAFETY: the host allocated `size` bytes at `data` with this module's allocator and gave
    // up ownership; this is how the SDK itself takes such buffers.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// The log form of a request ID that may come from a client: escaped, bounded, `-` if missing.
pub fn format_for_log(value: Option<&[u8]>) -> String {
    match value {
        Some(bytes) if !bytes.is_empty() => escape_bare(bytes),
        _ => UNKNOWN_REQUEST_ID.to_owned(),
    }
}

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    /// `proxy_get_property`, returning the host's status (see [`request_id_for_log`]).
    #[link_name = "proxy_get_property"]
    fn proxy_get_property_status(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;

    /// `proxy_get_header_map_value`, returning the host's status (see [`request_id_for_log`]).
    #[link_name = "proxy_get_header_map_value"]
    fn proxy_get_header_map_value_status(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;

    /// The raw ABI call behind `proxy_wasm::hostcalls::set_property`. That wrapper panics on
    /// any status but Ok, and Envoy answers BadArgument when the property was already set in
    /// this stream (filter state created this way is read-only), e.g. by a second `request-id`
    /// instance. A panic would kill the VM for every request on the worker, so the status is
    /// returned instead.
    #[link_name = "proxy_set_property"]
    fn proxy_set_property_status(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
}

/// Publishes `id` as [`REQUEST_ID_PROPERTY`] for later filters and log lines.
///
/// Returns the host status code when the host refused (1 = not found, 2 = bad argument, e.g.
/// already set in this stream).
pub fn publish_request_id(id: &str) -> Result<(), u32> {
    // A one-segment property path is just the name (segments are NUL-separated).
    let path = REQUEST_ID_PROPERTY.as_bytes();
    // SAFETY: both pointers come from live slices and are passed with their exact lengths; the
    // host only reads them during the call.
    let status = unsafe { proxy_set_property_status(path.as_ptr(), path.len(), id.as_ptr(), id.len()) };
    if status == 0 { Ok(()) } else { Err(status) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_is_a_dash() {
        assert_eq!(format_for_log(None), "-");
        assert_eq!(format_for_log(Some(b"")), "-");
    }

    #[test]
    fn plain_ids_are_unchanged() {
        assert_eq!(
            format_for_log(Some(b"4bf92f35-77b3-4da6-a3ce-929d0e0e4736")),
            "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
        );
    }

    #[test]
    fn client_ids_cannot_forge_log_fields() {
        let logged = format_for_log(Some(b"abc status=200\r\nfake line"));
        assert_eq!(logged, r"abc\x20status=200\r\nfake\x20line");
        assert!(!logged.contains(' ') && !logged.contains('\n'));
    }

    #[test]
    fn property_name_is_namespaced() {
        assert!(REQUEST_ID_PROPERTY.starts_with("wasm_shield."));
        assert!(!REQUEST_ID_PROPERTY.contains('\0'));
    }
}
