//! The host functions the probe calls directly, each returning the host's status.
//!
//! The SDK's wrappers panic on any status they do not expect (`proxy_done` answering NotFound,
//! `proxy_grpc_cancel` answering BadArgument, a header call from a root context…), and a panic is
//! a trap. A probe must report what the host answered instead, so everything goes through these
//! thin wrappers except the calls that open a callout (`proxy_http_call`, `proxy_grpc_call`,
//! `proxy_grpc_stream`): those stay with the SDK, whose dispatcher must learn each token to route
//! the answer to its context (an `untracked` http_call alone bypasses it on purpose).
//!
//! The declarations match the SDK's own: same names, and parameter types with the same LLVM types
//! (`#[repr(u32)]` enums as `u32`, `bool` as `bool`), so LTO merges them into one import each
//! instead of wrapping a mismatched call.

use std::fmt;
use std::ptr::{null, null_mut};

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(buffer_type: u32, start: usize, size: usize, data: *const u8, data_size: usize) -> u32;
    fn proxy_get_header_map_pairs(map_type: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    fn proxy_set_header_map_pairs(map_type: u32, data: *const u8, size: usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
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
        return_data: *mut *mut u8,
        return_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_register_shared_queue(name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_resolve_shared_queue(
        vm_id_data: *const u8,
        vm_id_size: usize,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(queue_id: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_get_status(
        return_code: *mut u32,
        return_message_data: *mut *mut u8,
        return_message_size: *mut usize,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_call_foreign_function(
        name_data: *const u8,
        name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_done() -> u32;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout: u32,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_grpc_send(token: u32, message_data: *const u8, message_size: usize, end_stream: bool) -> u32;
    fn proxy_grpc_cancel(token: u32) -> u32;
    fn proxy_grpc_close(token: u32) -> u32;
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_get_metric(metric_id: u32, return_value: *mut u64) -> u32;
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    // Same signature as the `wasi` crate std uses.
    fn random_get(buf: i32, buf_len: i32) -> i32;
}

/// A `proxy_status_t` as the host returned it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

impl Status {
    pub const OK: Status = Status(0);
    pub const NOT_FOUND: Status = Status(1);
    pub const EMPTY: Status = Status(7);

    pub fn is_ok(self) -> bool {
        self == Status::OK
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "Ok",
            1 => "NotFound",
            2 => "BadArgument",
            3 => "SerializationFailure",
            4 => "ParseFailure",
            5 => "BadExpression",
            6 => "InvalidMemoryAccess",
            7 => "Empty",
            8 => "CasMismatch",
            9 => "ResultMismatch",
            10 => "InternalFailure",
            11 => "BrokenConnection",
            12 => "Unimplemented",
            other => return write!(f, "Status({other})"),
        };
        f.write_str(name)
    }
}

/// Takes ownership of memory the host allocated through `proxy_on_memory_allocate`.
///
/// # Safety
/// `data` is null or was returned by the host with `size` bytes allocated by the SDK allocator.
unsafe fn take(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        None
    } else {
        // SAFETY: the SDK's `proxy_on_memory_allocate` hands out `Vec<u8>` buffers of `size`.
        Some(unsafe { Vec::from_raw_parts(data, size, size) })
    }
}

/// A value-returning call: its status and the bytes (None when the host wrote a null pointer).
pub type Answer = (Status, Option<Vec<u8>>);

/// A header map or gRPC metadata, in order.
pub type Pairs = Vec<(String, Vec<u8>)>;

pub fn log(level: u32, message: &str) -> Status {
    Status(unsafe { proxy_log(level, message.as_ptr(), message.len()) })
}

pub fn get_log_level() -> (Status, u32) {
    let mut level = 0;
    let status = unsafe { proxy_get_log_level(&mut level) };
    (Status(status), level)
}

pub fn current_time_nanos() -> (Status, u64) {
    let mut nanos = 0;
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    (Status(status), nanos)
}

pub fn set_tick_period(millis: u32) -> Status {
    Status(unsafe { proxy_set_tick_period_milliseconds(millis) })
}

pub fn get_buffer(buffer: u32, start: usize, max_size: usize) -> Answer {
    let (mut data, mut size) = (null_mut(), 0);
    let status = unsafe { proxy_get_buffer_bytes(buffer, start, max_size, &mut data, &mut size) };
    (Status(status), unsafe { take(data, size) })
}

pub fn set_buffer(buffer: u32, start: usize, size: usize, value: &[u8]) -> Status {
    Status(unsafe { proxy_set_buffer_bytes(buffer, start, size, value.as_ptr(), value.len()) })
}

pub fn get_map_pairs(map: u32) -> (Status, Option<Pairs>) {
    let (mut data, mut size) = (null_mut(), 0);
    let status = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
    let bytes = unsafe { take(data, size) };
    let pairs = match bytes {
        Some(bytes) => deserialize_pairs(&bytes),
        None => Some(Vec::new()),
    };
    (Status(status), pairs)
}

pub fn set_map_pairs(map: u32, pairs: &[(String, String)]) -> Status {
    let bytes = serialize_pairs(pairs);
    Status(unsafe { proxy_set_header_map_pairs(map, bytes.as_ptr(), bytes.len()) })
}

pub fn get_map_value(map: u32, key: &str) -> Answer {
    let (mut data, mut size) = (null_mut(), 0);
    let status = unsafe { proxy_get_header_map_value(map, key.as_ptr(), key.len(), &mut data, &mut size) };
    (Status(status), unsafe { take(data, size) })
}

pub fn add_map_value(map: u32, key: &str, value: &str) -> Status {
    Status(unsafe { proxy_add_header_map_value(map, key.as_ptr(), key.len(), value.as_ptr(), value.len()) })
}

pub fn replace_map_value(map: u32, key: &str, value: &str) -> Status {
    Status(unsafe { proxy_replace_header_map_value(map, key.as_ptr(), key.len(), value.as_ptr(), value.len()) })
}

pub fn remove_map_value(map: u32, key: &str) -> Status {
    Status(unsafe { proxy_remove_header_map_value(map, key.as_ptr(), key.len()) })
}

/// Property paths are their segments joined by NUL bytes.
fn serialize_path(path: &[String]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

pub fn get_property(path: &[String]) -> Answer {
    let path = serialize_path(path);
    let (mut data, mut size) = (null_mut(), 0);
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    (Status(status), unsafe { take(data, size) })
}

pub fn set_property(path: &[String], value: &[u8]) -> Status {
    let path = serialize_path(path);
    Status(unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) })
}

/// Status, value and the compare-and-swap token (0 when the host gave none).
pub fn get_shared_data(key: &str) -> (Status, Option<Vec<u8>>, u32) {
    let (mut data, mut size, mut cas) = (null_mut(), 0, 0);
    let status = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    (Status(status), unsafe { take(data, size) }, cas)
}

pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Status {
    Status(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
}

pub fn register_shared_queue(name: &str) -> (Status, u32) {
    let mut id = 0;
    let status = unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) };
    (Status(status), id)
}

pub fn resolve_shared_queue(vm_id: &str, name: &str) -> (Status, u32) {
    let mut id = 0;
    let status = unsafe { proxy_resolve_shared_queue(vm_id.as_ptr(), vm_id.len(), name.as_ptr(), name.len(), &mut id) };
    (Status(status), id)
}

pub fn enqueue_shared_queue(queue: u32, value: &[u8]) -> Status {
    Status(unsafe { proxy_enqueue_shared_queue(queue, value.as_ptr(), value.len()) })
}

pub fn dequeue_shared_queue(queue: u32) -> Answer {
    let (mut data, mut size) = (null_mut(), 0);
    let status = unsafe { proxy_dequeue_shared_queue(queue, &mut data, &mut size) };
    (Status(status), unsafe { take(data, size) })
}

/// `proxy_stream_type_t`: 0 HTTP request, 1 HTTP response.
pub fn continue_stream(stream: u32) -> Status {
    Status(unsafe { proxy_continue_stream(stream) })
}

pub fn close_stream(stream: u32) -> Status {
    Status(unsafe { proxy_close_stream(stream) })
}

pub fn send_local_response(
    status_code: u32,
    details: &str,
    body: &[u8],
    headers: &[(String, String)],
    grpc_status: i32,
) -> Status {
    let headers = serialize_pairs(headers);
    let (body_data, body_size) = if body.is_empty() { (null(), 0) } else { (body.as_ptr(), body.len()) };
    Status(unsafe {
        proxy_send_local_response(
            status_code,
            details.as_ptr(),
            details.len(),
            body_data,
            body_size,
            headers.as_ptr(),
            headers.len(),
            grpc_status,
        )
    })
}

pub fn grpc_send(token: u32, message: &[u8], end_stream: bool) -> Status {
    Status(unsafe { proxy_grpc_send(token, message.as_ptr(), message.len(), end_stream) })
}

pub fn grpc_cancel(token: u32) -> Status {
    Status(unsafe { proxy_grpc_cancel(token) })
}

pub fn grpc_close(token: u32) -> Status {
    Status(unsafe { proxy_grpc_close(token) })
}

/// Status of the call, then the code and message the host reported.
pub fn get_status() -> (Status, u32, Option<Vec<u8>>) {
    let (mut code, mut data, mut size) = (0, null_mut(), 0);
    let status = unsafe { proxy_get_status(&mut code, &mut data, &mut size) };
    (Status(status), code, unsafe { take(data, size) })
}

pub fn set_effective_context(context_id: u32) -> Status {
    Status(unsafe { proxy_set_effective_context(context_id) })
}

pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Answer {
    let (mut data, mut size) = (null_mut(), 0);
    let status = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    };
    (Status(status), unsafe { take(data, size) })
}

pub fn done() -> Status {
    Status(unsafe { proxy_done() })
}

/// `proxy_http_call` behind the SDK's back: its dispatcher never learns the token, so an answer
/// delivered for it makes the SDK panic ("invalid token_id"). Only the `untracked` http_call
/// uses this, to show that an answer is delivered at all.
pub fn http_call_untracked(
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    trailers: &[(&str, &str)],
    timeout_ms: u32,
) -> (Status, u32) {
    let headers = serialize_pairs(headers);
    let trailers = serialize_pairs(trailers);
    let mut token = 0;
    let status = unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            if body.is_empty() { null() } else { body.as_ptr() },
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            timeout_ms,
            &mut token,
        )
    };
    (Status(status), token)
}

/// `proxy_metric_type_t`: 0 counter, 1 gauge, 2 histogram.
pub fn define_metric(kind: u32, name: &str) -> (Status, u32) {
    let mut id = 0;
    let status = unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) };
    (Status(status), id)
}

pub fn record_metric(id: u32, value: u64) -> Status {
    Status(unsafe { proxy_record_metric(id, value) })
}

pub fn increment_metric(id: u32, offset: i64) -> Status {
    Status(unsafe { proxy_increment_metric(id, offset) })
}

pub fn get_metric(id: u32) -> (Status, u64) {
    let mut value = 0;
    let status = unsafe { proxy_get_metric(id, &mut value) };
    (Status(status), value)
}

/// WASI `random_get`; returns the errno (0 on success).
pub fn wasi_random(buf: &mut [u8]) -> i32 {
    // wasm32: pointers and lengths are 32-bit.
    unsafe { random_get(buf.as_mut_ptr() as i32, buf.len() as i32) }
}

/// The Proxy-Wasm map serialization: count, (name size, value size) per pair, then each name and
/// value followed by a NUL byte; integers are 32-bit little-endian.
pub fn serialize_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (name, value) in pairs {
        bytes.extend_from_slice(&(name.as_ref().len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(value.as_ref().len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        bytes.extend_from_slice(name.as_ref());
        bytes.push(0);
        bytes.extend_from_slice(value.as_ref());
        bytes.push(0);
    }
    bytes
}

/// The inverse of [`serialize_pairs`]; None when the bytes are not a well-formed map.
pub fn deserialize_pairs(bytes: &[u8]) -> Option<Pairs> {
    fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
        let word = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes(word.try_into().ok()?) as usize)
    }
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = u32_at(bytes, 0)?;
    let mut pairs = Vec::with_capacity(count.min(1024));
    let mut at = 4usize.checked_add(count.checked_mul(8)?)?;
    for index in 0..count {
        let name_size = u32_at(bytes, 4 + index * 8)?;
        let value_size = u32_at(bytes, 8 + index * 8)?;
        let name = bytes.get(at..at + name_size)?;
        at += name_size + 1;
        let value = bytes.get(at..at + value_size)?;
        at += value_size + 1;
        pairs.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
    }
    Some(pairs)
}
