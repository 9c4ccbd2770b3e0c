//! W3C Trace Context `traceparent`: validation, and a new one derived from the request ID.
//!
//! Valid (version 00, <https://www.w3.org/TR/trace-context/#traceparent-header>): exactly
//! `00-<32 lowercase hex>-<16 lowercase hex>-<2 lowercase hex>`, trace ID and parent ID not all
//! zeros. Other versions are treated as invalid: this filter only vouches for what it parses.
//!
//! A created traceparent's trace ID is the request ID's own 128 bits when it is a UUID or a ULID
//! (so `trace_id` and `x-request-id` are visibly the same value), otherwise the FNV-1a 128-bit
//! hash of its bytes; the parent ID is the FNV-1a 64-bit hash. Both are deterministic, so every
//! hop that derives them from the same request ID agrees, and never all zeros.

use crate::id::{parse_ulid, parse_uuid};

/// Name of the W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// Name of the vendor trace state header that belongs to a traceparent.
pub const TRACESTATE: &str = "tracestate";

/// Length of a version 00 traceparent.
pub const TRACEPARENT_LENGTH: usize = 55;

/// Whether `value` is a valid version 00 traceparent.
pub fn is_valid(value: &[u8]) -> bool {
    // Fixed layout: 00-<trace id: 3..35>-<parent id: 36..52>-<flags: 53..55>.
    if value.len() != TRACEPARENT_LENGTH
        || value.get(..3) != Some(&b"00-"[..])
        || value.get(35) != Some(&b'-')
        || value.get(52) != Some(&b'-')
    {
        return false;
    }
    let (Some(trace_id), Some(parent_id), Some(flags)) = (value.get(3..35), value.get(36..52), value.get(53..55))
    else {
        return false;
    };
    is_lower_hex(trace_id)
        && is_lower_hex(parent_id)
        && is_lower_hex(flags)
        && trace_id.iter().any(|b| *b != b'0')
        && parent_id.iter().any(|b| *b != b'0')
}

/// A new sampled traceparent for `request_id`: `00-<trace id>-<parent id>-01`.
pub fn derive(request_id: &str) -> String {
    format!("00-{:032x}-{:016x}-01", trace_id_for(request_id), parent_id_for(request_id))
}

/// The trace ID for `request_id`: its UUID/ULID value if it is one and not zero, else a hash.
pub fn trace_id_for(request_id: &str) -> u128 {
    let embedded = parse_uuid(request_id).or_else(|| parse_ulid(request_id));
    match embedded {
        Some(value) if value != 0 => value,
        _ => non_zero_u128(fnv1a_128(request_id.as_bytes())),
    }
}

/// The parent (span) ID for `request_id`: a 64-bit hash, never zero.
pub fn parent_id_for(request_id: &str) -> u64 {
    let hash = fnv1a_64(request_id.as_bytes());
    if hash == 0 { 1 } else { hash }
}

fn non_zero_u128(value: u128) -> u128 {
    if value == 0 { 1 } else { value }
}

fn is_lower_hex(field: &[u8]) -> bool {
    field.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// FNV-1a, 128-bit (offset basis and prime from the FNV specification).
pub fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| (hash ^ u128::from(*byte)).wrapping_mul(PRIME))
}

/// FNV-1a, 64-bit.
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn accepts_the_spec_example() {
        assert!(is_valid(VALID.as_bytes()));
        assert!(is_valid(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            "",
            // uppercase hex
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            // all-zero trace id / parent id
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // other versions, including the forbidden ff
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // wrong lengths / separators
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701",
            // non-hex
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n",
        ] {
            assert!(!is_valid(bad.as_bytes()), "{bad:?} accepted");
        }
        assert!(!is_valid(b"\xff\xfe"));
    }

    #[test]
    fn uuid_request_ids_become_the_trace_id() {
        let traceparent = derive("4bf92f35-77b3-4da6-a3ce-929d0e0e4736");
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(traceparent.ends_with("-01"));
        assert!(is_valid(traceparent.as_bytes()), "{traceparent}");
        // Uppercase UUIDs give the same (lowercase) trace ID.
        assert_eq!(trace_id_for("4BF92F35-77B3-4DA6-A3CE-929D0E0E4736"), 0x4bf92f3577b34da6a3ce929d0e0e4736);
    }

    #[test]
    fn ulid_request_ids_become_the_trace_id() {
        let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let expected = crate::id::parse_ulid(id).unwrap();
        assert_eq!(trace_id_for(id), expected);
        assert!(derive(id).starts_with(&format!("00-{expected:032x}-")));
    }

    #[test]
    fn other_request_ids_are_hashed() {
        let traceparent = derive("svc:orders:42");
        assert!(is_valid(traceparent.as_bytes()), "{traceparent}");
        assert_eq!(trace_id_for("svc:orders:42"), fnv1a_128(b"svc:orders:42"));
        assert_ne!(trace_id_for("svc:orders:42"), trace_id_for("svc:orders:43"));
    }

    #[test]
    fn zero_ids_never_give_a_zero_trace_id() {
        let traceparent = derive("00000000-0000-0000-0000-000000000000");
        assert!(is_valid(traceparent.as_bytes()), "{traceparent}");
        assert_ne!(trace_id_for("00000000000000000000000000"), 0);
    }

    #[test]
    fn derived_values_used_by_the_fixtures() {
        // fixtures/traceparent.yaml expects these exact headers.
        assert_eq!(
            derive("4bf92f35-77b3-4da6-a3ce-929d0e0e4736"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-9a4380b0301062dc-01"
        );
        assert_eq!(derive("svc:orders:42"), "00-fe3873a5fabbda7557523588c730ae18-2744fc32ce83fb60-01");
        assert_eq!(derive("01ARZ3NDEKTSV4RRFFQ69G5FAV"), "00-01563e3ab5d3d6764c61efb99302bd5b-4b321ae683d5ab40-01");
    }

    #[test]
    fn derivation_is_deterministic() {
        assert_eq!(derive("abc"), derive("abc"));
        assert_eq!(derive("abc").len(), TRACEPARENT_LENGTH);
    }

    #[test]
    fn fnv_reference_values() {
        // Published FNV-1a test vectors.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a_128(b""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
        assert_eq!(fnv1a_128(b"foobar"), 0x343e_1662_793c_64bf_6f0d_3597_ba44_6f18);
    }

    #[test]
    fn parent_id_is_never_zero() {
        assert_ne!(parent_id_for(""), 0);
        assert_eq!(parent_id_for("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
