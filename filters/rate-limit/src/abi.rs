//! Raw Proxy-Wasm calls whose SDK wrappers panic on statuses Envoy can return.
//!
//! `proxy_wasm::hostcalls::{get_shared_data, set_shared_data, get_current_time,
//! send_http_response}` panic on any status they do not expect (a panic kills the VM for every
//! request of the worker). These return the status instead, so the shell can apply the
//! configured policy.

use std::ptr::null_mut;

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    #[link_name = "proxy_get_shared_data"]
    fn proxy_get_shared_data_status(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;

    #[link_name = "proxy_set_shared_data"]
    fn proxy_set_shared_data_status(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;

    #[link_name = "proxy_get_property"]
    fn proxy_get_property_status(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;

    #[link_name = "proxy_get_current_time_nanoseconds"]
    fn proxy_get_current_time_status(return_time: *mut u64) -> u32;

    #[link_name = "proxy_send_local_response"]
    fn proxy_send_local_response_status(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

/// Status `Ok`.
pub const OK: u32 = 0;
/// Status `NotFound`.
pub const NOT_FOUND: u32 = 1;
/// Status `CasMismatch`.
pub const CAS_MISMATCH: u32 = 8;

/// Reads shared data `key`: `Ok(Some((value, cas)))`, `Ok(None)` when never written, or the
/// host status.
pub fn get_shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, u32> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: the key pointer and length come from a live &str; the host writes the out
    // parameters, and the value buffer it returns was allocated through the SDK's exported
    // `proxy_on_memory_allocate` (a Vec of exactly `size` bytes), which we now own.
    let status = unsafe { proxy_get_shared_data_status(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match status {
        OK => {
            let value = if data.is_null() { Vec::new() } else { unsafe { Vec::from_raw_parts(data, size, size) } };
            Ok(Some((value, cas)))
        }
        NOT_FOUND => Ok(None),
        status => Err(status),
    }
}

/// Writes shared data `key` if its CAS token is still `cas` (0: unconditionally); the host
/// status (`OK`, `CAS_MISMATCH`, other failures).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> u32 {
    // SAFETY: both pointers come from live slices passed with their exact lengths; the host
    // only reads them during the call.
    unsafe { proxy_set_shared_data_status(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) }
}

/// Reads a property by its serialized path (segments joined by NUL, e.g. `b"source\0address"`),
/// written once as a constant: the SDK wrapper builds the path in two allocations per call.
/// `None` when absent or the host refuses.
pub fn get_property(serialized_path: &[u8]) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `get_shared_data`: a live input slice, host-written out parameters, and a
    // returned buffer allocated through the SDK's `proxy_on_memory_allocate`, now ours.
    let status =
        unsafe { proxy_get_property_status(serialized_path.as_ptr(), serialized_path.len(), &mut data, &mut size) };
    if status != OK || data.is_null() {
        return None;
    }
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// The host clock in nanoseconds since the Unix epoch, or `None` if the host cannot tell.
pub fn now_nanos() -> Option<u64> {
    let mut now: u64 = 0;
    // SAFETY: the host writes one u64 to a live local.
    let status = unsafe { proxy_get_current_time_status(&mut now) };
    (status == OK).then_some(now)
}

/// Sends a local reply; the host status.
pub fn send_local_response(status: u16, headers: &[(&str, String)], body: &[u8], details: &str) -> u32 {
    let serialized = serialize_headers(headers);
    // SAFETY: every pointer comes from a live buffer passed with its exact length; the host
    // copies them during the call.
    unsafe {
        proxy_send_local_response_status(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            serialized.as_ptr(),
            serialized.len(),
            -1,
        )
    }
}

/// The Proxy-Wasm header-map pairs format: count, then (name length, value length) pairs, then
/// each name and value NUL-terminated; lengths little-endian u32.
fn serialize_headers(headers: &[(&str, String)]) -> Vec<u8> {
    let size = 4 + headers.iter().map(|(name, value)| name.len() + value.len() + 10).sum::<usize>();
    let mut bytes = Vec::with_capacity(size);
    let length = |value: usize| u32::try_from(value).unwrap_or(u32::MAX).to_le_bytes();
    bytes.extend_from_slice(&length(headers.len()));
    for (name, value) in headers {
        bytes.extend_from_slice(&length(name.len()));
        bytes.extend_from_slice(&length(value.len()));
    }
    for (name, value) in headers {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_serialize_in_the_pairs_format() {
        let bytes = serialize_headers(&[("retry-after", "30".to_owned()), ("a", String::new())]);
        let mut expected = vec![2, 0, 0, 0, 11, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"retry-after\x0030\x00a\x00\x00");
        assert_eq!(bytes, expected);
    }
}
