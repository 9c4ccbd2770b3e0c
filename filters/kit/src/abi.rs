//! Raw Proxy-Wasm calls that return the host's status instead of panicking.
//!
//! The SDK's `proxy_wasm::hostcalls` wrappers panic on any status they do not expect, and a panic
//! kills the VM for every request on the worker. Envoy does answer unexpected statuses in real
//! traffic: request-header reads once the headers went upstream, `set_property` on a property
//! already set in the stream, shared-data calls under contention. Every call the filters make
//! per request goes through here; the caller decides what a refusal means.

use std::ptr::null_mut;

/// Status `Ok`.
pub const OK: u32 = 0;
/// Status `NotFound`.
pub const NOT_FOUND: u32 = 1;
/// Status `CasMismatch`.
pub const CAS_MISMATCH: u32 = 8;

/// The header maps of the ABI (`proxy_wasm::types::MapType` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Map {
    /// Request headers of the current stream.
    RequestHeaders = 0,
    /// Response headers of the current stream.
    ResponseHeaders = 2,
    /// Headers of the answer to an HTTP call being delivered.
    HttpCallResponseHeaders = 6,
}

/// Buffers of the ABI (`proxy_wasm::types::BufferType` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    /// The request body buffered so far.
    RequestBody = 0,
    /// The body of the answer to an HTTP call being delivered.
    HttpCallResponseBody = 4,
    /// The plugin configuration.
    PluginConfiguration = 7,
}

/// Declares the host functions: imports from the host in a Wasm build; natively (the filters'
/// unit tests) stand-ins that answer `Unimplemented`, since there is no host.
macro_rules! host_functions {
    ($(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> u32;)*) => {
        #[cfg(target_arch = "wasm32")]
        #[link(wasm_import_module = "env")]
        unsafe extern "C" {
            $(fn $name($($arg: $ty),*) -> u32;)*
        }
        $(
            #[cfg(not(target_arch = "wasm32"))]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $name($(_: $ty),*) -> u32 {
                UNIMPLEMENTED
            }
        )*
    };
}

/// Status `Unimplemented` (what the native stand-ins answer).
#[cfg(not(target_arch = "wasm32"))]
const UNIMPLEMENTED: u32 = 12;

host_functions! {
    fn proxy_get_header_map_pairs(map_type: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(path_data: *const u8, path_size: usize, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
}

/// Takes ownership of a buffer the host returned with status Ok (`Some(empty)` for a null one).
fn take_host_buffer(status: u32, data: *mut u8, size: usize) -> Result<Option<Vec<u8>>, u32> {
    match status {
        OK if data.is_null() => Ok(Some(Vec::new())),
        // SAFETY: the host allocated `size` bytes at `data` through this module's exported
        // `proxy_on_memory_allocate` (the global allocator) and handed over ownership; this is
        // how the SDK itself takes such buffers.
        OK => Ok(Some(unsafe { Vec::from_raw_parts(data, size, size) })),
        NOT_FOUND => Ok(None),
        status => Err(status),
    }
}

/// A header map, serialized by the host (see [`crate::headers::parse_pairs`]); one host call.
pub fn header_map_bytes(map: Map) -> Result<Vec<u8>, u32> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: the host writes the out parameters; see `take_host_buffer` for the buffer.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    take_host_buffer(status, data, size).map(Option::unwrap_or_default)
}

/// The first value of header `name` (lowercase); `Ok(None)` when absent.
pub fn header_value(map: Map, name: &str) -> Result<Option<Vec<u8>>, u32> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: a live name slice with its length; see `take_host_buffer` for the buffer.
    let status = unsafe { proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size) };
    take_host_buffer(status, data, size)
}

/// Replaces every occurrence of `name` with one `value` (Envoy's `setCopy`); the status.
pub fn replace_header(map: Map, name: &str, value: &[u8]) -> u32 {
    // SAFETY: live slices with their exact lengths, only read during the call.
    unsafe { proxy_replace_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len()) }
}

/// Appends one `name: value`; the status.
pub fn add_header(map: Map, name: &str, value: &[u8]) -> u32 {
    // SAFETY: as in `replace_header`.
    unsafe { proxy_add_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len()) }
}

/// Removes every occurrence of `name`; the status.
pub fn remove_header(map: Map, name: &str) -> u32 {
    // SAFETY: as in `replace_header`.
    unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) }
}

/// Up to `max_size` bytes of `buffer` from `start`; `Ok(None)` when there is none.
pub fn buffer_bytes(buffer: Buffer, start: usize, max_size: usize) -> Result<Option<Vec<u8>>, u32> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: host-written out parameters; see `take_host_buffer`.
    let status = unsafe { proxy_get_buffer_bytes(buffer as u32, start, max_size, &mut data, &mut size) };
    take_host_buffer(status, data, size)
}

/// A property by its serialized path (segments joined by NUL, e.g. `b"source\0address"`, written
/// once as a constant: the SDK builds the path in two allocations per call). `None` when absent
/// or refused.
pub fn property(serialized_path: &[u8]) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: a live path slice with its length; see `take_host_buffer`.
    let status = unsafe { proxy_get_property(serialized_path.as_ptr(), serialized_path.len(), &mut data, &mut size) };
    take_host_buffer(status, data, size).ok().flatten()
}

/// Sets a property (filter state in Envoy); the status (Envoy answers BadArgument when it was
/// already set in this stream: such filter state is read-only).
pub fn set_property(serialized_path: &[u8], value: &[u8]) -> u32 {
    // SAFETY: live slices with their exact lengths, only read during the call.
    unsafe { proxy_set_property(serialized_path.as_ptr(), serialized_path.len(), value.as_ptr(), value.len()) }
}

/// Shared data `key`: `Ok(Some((value, cas)))`, `Ok(None)` when never written, or the status.
pub fn shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, u32> {
    let (mut data, mut size, mut cas) = (null_mut(), 0, 0);
    // SAFETY: a live key slice; see `take_host_buffer`.
    let status = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    Ok(take_host_buffer(status, data, size)?.map(|value| (value, cas)))
}

/// Writes shared data `key` if its CAS token is still `cas` (0: unconditionally); the status
/// (`OK`, `CAS_MISMATCH`, other failures).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> u32 {
    // SAFETY: live slices with their exact lengths, only read during the call.
    unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) }
}

/// The host clock in nanoseconds since the Unix epoch, or `None` if the host cannot tell.
pub fn now_nanos() -> Option<u64> {
    let mut now = 0;
    // SAFETY: the host writes one u64 to a live local.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut now) };
    (status == OK).then_some(now)
}

/// Answers the current stream locally with `details` as Envoy's response code details; the status.
pub fn send_local_response(status: u16, headers: &[(&str, &[u8])], body: &[u8], details: &str) -> u32 {
    let headers = crate::headers::serialize_pairs(headers);
    // SAFETY: live buffers with their exact lengths, copied by the host during the call; no gRPC
    // status (-1).
    unsafe {
        proxy_send_local_response(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    }
}

/// Resumes the current (paused) request; the status.
pub fn continue_request() -> u32 {
    // SAFETY: no pointers; 0 is `StreamType::HttpRequest`.
    unsafe { proxy_continue_stream(0) }
}

/// Makes `context_id` the stream later calls act on; false when the host refuses (it is gone).
pub fn set_effective_context(context_id: u32) -> bool {
    // SAFETY: no pointers.
    unsafe { proxy_set_effective_context(context_id) == OK }
}

/// Defines a counter named `name`; its ID, or the host's status (the SDK's `define_metric`
/// panics on any status but Ok).
pub fn define_counter(name: &str) -> Result<u32, u32> {
    /// `proxy_wasm::types::MetricType::Counter`.
    const COUNTER: u32 = 0;
    let mut id = 0;
    // SAFETY: a live name slice with its length and a live out-pointer.
    let status = unsafe { proxy_define_metric(COUNTER, name.as_ptr(), name.len(), &mut id) };
    if status == OK { Ok(id) } else { Err(status) }
}

/// Adds `offset` to metric `id`; whether the host took it.
pub fn increment_metric(id: u32, offset: i64) -> bool {
    // SAFETY: plain values.
    unsafe { proxy_increment_metric(id, offset) == OK }
}
