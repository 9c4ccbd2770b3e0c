//! Raw Proxy-Wasm calls that return the host's status instead of panicking.
//!
//! The SDK's `hostcalls` wrappers panic on any status they do not expect, and a panic kills the
//! VM for every request of the worker. The calls the filter makes per request or while
//! completing paused requests go through here; a refused call is ignored (or reported) instead.

use crate::header_map::{Header, serialize_pairs};
use proxy_wasm::types::MapType;

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    #[link_name = "proxy_get_header_map_pairs"]
    fn get_header_map_pairs(map_type: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    #[link_name = "proxy_get_header_map_value"]
    fn get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    #[link_name = "proxy_replace_header_map_value"]
    fn replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    #[link_name = "proxy_remove_header_map_value"]
    fn remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    #[link_name = "proxy_send_local_response"]
    fn send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    #[link_name = "proxy_continue_stream"]
    fn continue_stream(stream_type: u32) -> u32;
    #[link_name = "proxy_set_effective_context"]
    fn set_effective_context_raw(context_id: u32) -> u32;
}

/// `StreamType::HttpRequest` of the ABI.
const HTTP_REQUEST_STREAM: u32 = 0;

/// The request headers, serialized by the host (see [`crate::header_map`]); empty if the host
/// has none to give. One host call; parsed in place by the caller.
pub fn request_header_bytes() -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer to `size` bytes it allocated through this module's
    // `proxy_on_memory_allocate` (the global allocator), handing over ownership, exactly as the
    // SDK's own `get_map_bytes` relies on.
    let status = unsafe { get_header_map_pairs(MapType::HttpRequestHeaders as u32, &mut data, &mut size) };
    if status != 0 || data.is_null() {
        return Vec::new();
    }
    // SAFETY: see above; `size` is the allocation's length and capacity.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// The `:status` of the http call answer being delivered; `None` when there is none (a reset
/// or a timeout has no headers).
pub fn http_call_status() -> Option<Vec<u8>> {
    let key = ":status";
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `request_header_bytes`: the host hands over a buffer it allocated with the
    // module's allocator.
    let status = unsafe {
        get_header_map_value(MapType::HttpCallResponseHeaders as u32, key.as_ptr(), key.len(), &mut data, &mut size)
    };
    if status != 0 || data.is_null() {
        return None;
    }
    // SAFETY: see above.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Replaces every occurrence of request header `name` with one `value`; returns the status.
pub fn replace_request_header(name: &str, value: &str) -> u32 {
    // SAFETY: pointers and lengths of live slices, read by the host during the call only.
    unsafe {
        replace_header_map_value(
            MapType::HttpRequestHeaders as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    }
}

/// Removes every occurrence of request header `name`; returns the status.
pub fn remove_request_header(name: &str) -> u32 {
    // SAFETY: as above.
    unsafe { remove_header_map_value(MapType::HttpRequestHeaders as u32, name.as_ptr(), name.len()) }
}

/// Answers the current stream locally; returns the status.
pub fn send_response(status: u32, headers: &[Header<'_>], body: &[u8]) -> u32 {
    let headers = serialize_pairs(headers);
    // SAFETY: as above; no details string (null, 0), no gRPC status (-1).
    unsafe {
        send_local_response(status, std::ptr::null(), 0, body.as_ptr(), body.len(), headers.as_ptr(), headers.len(), -1)
    }
}

/// Resumes the current (paused) request; returns the status.
pub fn resume_request() -> u32 {
    // SAFETY: no pointers.
    unsafe { continue_stream(HTTP_REQUEST_STREAM) }
}

/// Makes `context_id` the stream later calls act on; false when the host refuses (gone).
pub fn set_effective_context(context_id: u32) -> bool {
    // SAFETY: no pointers.
    unsafe { set_effective_context_raw(context_id) == 0 }
}
