//! Constants and encodings of the Proxy-Wasm ABI v0.2.1 (also what v0.2.0 modules use).
//!
//! Numbers here are the ABI's, not ours: see the spec's "Types" and "Serialization" sections.

/// `proxy_status_t`: what every host function returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

/// `proxy_log_level_t`, ordered from the most to the least verbose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    /// The level a module passed to `proxy_log`; out-of-range values are clamped to `critical`.
    pub fn from_abi(level: i32) -> LogLevel {
        match level {
            i32::MIN..=0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            _ => LogLevel::Critical,
        }
    }

    /// The lowercase name Envoy prints.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        }
    }
}

/// `proxy_action_t` as returned by the HTTP stream callbacks.
pub const ACTION_CONTINUE: i32 = 0;

/// `proxy_buffer_type_t`.
pub mod buffer {
    pub const HTTP_REQUEST_BODY: i32 = 0;
    pub const HTTP_RESPONSE_BODY: i32 = 1;
    pub const DOWNSTREAM_DATA: i32 = 2;
    pub const UPSTREAM_DATA: i32 = 3;
    pub const HTTP_CALL_RESPONSE_BODY: i32 = 4;
    pub const GRPC_RECEIVE_BUFFER: i32 = 5;
    pub const VM_CONFIGURATION: i32 = 6;
    pub const PLUGIN_CONFIGURATION: i32 = 7;
    pub const FOREIGN_FUNCTION_ARGUMENTS: i32 = 8;
}

/// `proxy_map_type_t`.
pub mod map {
    pub const HTTP_REQUEST_HEADERS: i32 = 0;
    pub const HTTP_REQUEST_TRAILERS: i32 = 1;
    pub const HTTP_RESPONSE_HEADERS: i32 = 2;
    pub const HTTP_RESPONSE_TRAILERS: i32 = 3;
    pub const GRPC_RECEIVE_INITIAL_METADATA: i32 = 4;
    pub const GRPC_RECEIVE_TRAILING_METADATA: i32 = 5;
    pub const HTTP_CALL_RESPONSE_HEADERS: i32 = 6;
    pub const HTTP_CALL_RESPONSE_TRAILERS: i32 = 7;
}

/// `proxy_stream_type_t`.
pub mod stream {
    pub const HTTP_REQUEST: i32 = 0;
    pub const HTTP_RESPONSE: i32 = 1;
}

/// `proxy_metric_type_t`; Envoy keeps the type in the low bits of a metric id.
pub mod metric {
    pub const COUNTER: i32 = 0;
    pub const GAUGE: i32 = 1;
    pub const HISTOGRAM: i32 = 2;
    pub const TYPE_MASK: u32 = 0x3;
}

/// WASI preview1 `errno` values the host returns.
pub mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const INVAL: i32 = 28;
    pub const NOSYS: i32 = 52;
}

/// A header map or gRPC metadata: ordered, repeatable, names and values as raw bytes.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Serializes pairs the way the ABI specifies: a count, the key and value lengths, then each
/// key and value followed by a NUL byte. An empty map serializes to no bytes, as Envoy does.
pub fn encode_pairs<'a, I>(pairs: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut count = 0u32;
    let mut payload = 0usize;
    for (key, value) in pairs.clone() {
        count += 1;
        payload += key.len() + value.len() + 2;
    }
    if count == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(4 + count as usize * 8 + payload);
    out.extend_from_slice(&count.to_le_bytes());
    for (key, value) in pairs.clone() {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// Parses the ABI's pairs serialization; `None` when the bytes are not a well-formed map.
pub fn decode_pairs(bytes: &[u8]) -> Option<Pairs> {
    if bytes.is_empty() || bytes == [0] {
        return Some(Vec::new());
    }
    let read_u32 = |at: usize| -> Option<usize> {
        let word = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([word[0], word[1], word[2], word[3]]) as usize)
    };
    let count = read_u32(0)?;
    let mut sizes = Vec::with_capacity(count.min(1024));
    for index in 0..count {
        let at = 4 + index * 8;
        sizes.push((read_u32(at)?, read_u32(at + 4)?));
    }
    let mut cursor = 4 + count * 8;
    let mut pairs = Vec::with_capacity(sizes.len());
    let mut take = |len: usize| -> Option<Vec<u8>> {
        let value = bytes.get(cursor..cursor + len)?.to_vec();
        if bytes.get(cursor + len) != Some(&0) {
            return None;
        }
        cursor += len + 1;
        Some(value)
    };
    for (key_len, value_len) in sizes {
        let key = take(key_len)?;
        let value = take(value_len)?;
        pairs.push((key, value));
    }
    Some(pairs)
}

/// Splits a property path as the SDKs send it: segments separated by NUL bytes.
pub fn split_property_path(path: &[u8]) -> Vec<&[u8]> {
    if path.is_empty() {
        return Vec::new();
    }
    path.split(|byte| *byte == 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_matches_the_spec_example() {
        let pairs: Pairs = vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"22".to_vec())];
        let bytes = encode_pairs(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
        let expected: Vec<u8> = [
            &2u32.to_le_bytes()[..],
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &2u32.to_le_bytes(),
            b"a\x001\x00b\x0022\x00",
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(decode_pairs(&bytes), Some(pairs));
    }

    #[test]
    fn empty_and_truncated_maps() {
        assert_eq!(encode_pairs(std::iter::empty::<(&[u8], &[u8])>()), Vec::<u8>::new());
        assert_eq!(decode_pairs(&[]), Some(vec![]));
        assert_eq!(decode_pairs(&[0]), Some(vec![]));
        assert_eq!(decode_pairs(&[5, 0, 0, 0, 1]), None);
        let mut bytes = encode_pairs([(&b"k"[..], &b"v"[..])]);
        bytes.pop();
        assert_eq!(decode_pairs(&bytes), None);
    }

    #[test]
    fn property_paths_split_on_nul() {
        assert_eq!(split_property_path(b"source\0address"), vec![&b"source"[..], b"address"]);
        assert!(split_property_path(b"").is_empty());
    }
}
