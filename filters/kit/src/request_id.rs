//! The stream's request ID: published once by the `request-id` filter, read by every log line.
//!
//! `request-id` stores the ID in the property [`REQUEST_ID_PROPERTY`]. Envoy keeps an unknown
//! top-level property as filter state `wasm.<name>` for the whole stream, so any Wasm filter of
//! the same stream can read it, including filters that run before `request-id` (they read it in
//! `on_log`, at stream end). Without `request-id` in the chain, log lines fall back to the
//! `x-request-id` request header, escaped, since a client may have written it.

use crate::abi::{self, Map};
use crate::log_escape::escape_bare;

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
    let from_property = abi::property(REQUEST_ID_PROPERTY.as_bytes()).filter(|value| !value.is_empty());
    let value =
        from_property.or_else(|| abi::header_value(Map::RequestHeaders, DEFAULT_REQUEST_ID_HEADER).ok().flatten());
    format_for_log(value.as_deref())
}

/// The log form of a request ID that may come from a client: escaped, bounded, `-` if missing.
pub fn format_for_log(value: Option<&[u8]>) -> String {
    match value {
        Some(bytes) if !bytes.is_empty() => escape_bare(bytes),
        _ => UNKNOWN_REQUEST_ID.to_owned(),
    }
}

/// Publishes `id` as [`REQUEST_ID_PROPERTY`] for later filters and log lines.
///
/// Returns the host status code when the host refused (1 = not found, 2 = bad argument, e.g.
/// already set in this stream).
pub fn publish_request_id(id: &str) -> Result<(), u32> {
    // A one-segment property path is just the name (segments are NUL-separated). Envoy answers
    // BadArgument when the property was already set in this stream (such filter state is
    // read-only), e.g. by a second `request-id` instance.
    let status = abi::set_property(REQUEST_ID_PROPERTY.as_bytes(), id.as_bytes());
    if status == abi::OK { Ok(()) } else { Err(status) }
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
