//! Request headers as borrowed `(name, value)` pairs over the host's serialized map, so the
//! per-request path allocates one vector instead of two buffers per header.
//!
//! The Proxy-Wasm serialization: `u32` count, then `count` pairs of `u32` name and value lengths,
//! then each name and value followed by a NUL byte (all little-endian).

/// One header: lowercase name, raw value.
pub type Header<'a> = (&'a str, &'a [u8]);

/// The pairs of a serialized header map. A malformed map yields the pairs read before the
/// fault; a name that is not UTF-8 is skipped (Envoy never hands one over).
pub fn parse_pairs(bytes: &[u8]) -> Vec<Header<'_>> {
    let read_u32 = |at: usize| -> Option<usize> {
        let word: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(word)).ok()
    };
    let Some(count) = read_u32(0) else { return Vec::new() };
    let Some(mut data) = count.checked_mul(8).and_then(|sizes| sizes.checked_add(4)) else { return Vec::new() };
    let mut pairs = Vec::with_capacity(count.min(bytes.len() / 10 + 1));
    for index in 0..count {
        let sizes = 4 + index * 8;
        let (Some(name_len), Some(value_len)) = (read_u32(sizes), read_u32(sizes + 4)) else { break };
        let Some(name_end) = data.checked_add(name_len) else { break };
        let Some(value_start) = name_end.checked_add(1) else { break };
        let Some(value_end) = value_start.checked_add(value_len) else { break };
        let (Some(name), Some(value)) = (bytes.get(data..name_end), bytes.get(value_start..value_end)) else { break };
        data = value_end + 1;
        if let Ok(name) = std::str::from_utf8(name) {
            pairs.push((name, value));
        }
    }
    pairs
}

/// Serializes pairs the way the host does (for tests and for keeping a paused request's
/// headers in one buffer).
pub fn serialize_pairs(pairs: &[Header<'_>]) -> Vec<u8> {
    let size = 4 + pairs.iter().map(|(n, v)| 10 + n.len() + v.len()).sum::<usize>();
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (name, value) in pairs {
        bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(value);
        bytes.push(0);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs: Vec<Header<'_>> = vec![(":path", b"/a"), ("authorization", b"Bearer x"), ("empty", b"")];
        let bytes = serialize_pairs(&pairs);
        assert_eq!(parse_pairs(&bytes), pairs);
    }

    #[test]
    fn empty_and_truncated_maps_do_not_panic() {
        assert!(parse_pairs(b"").is_empty());
        assert!(parse_pairs(&[1, 0]).is_empty());
        let bytes = serialize_pairs(&[("a", b"1"), ("b", b"2")]);
        for cut in 0..bytes.len() {
            let pairs = parse_pairs(&bytes[..cut]);
            assert!(pairs.len() <= 2);
        }
        // A count far larger than the data.
        let mut huge = vec![0xff, 0xff, 0xff, 0x7f];
        huge.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]);
        assert!(parse_pairs(&huge).is_empty());
    }

    #[test]
    fn non_utf8_names_are_skipped() {
        let bytes = serialize_pairs(&[("ok", b"1")]);
        let mut bad = bytes.clone();
        // Corrupt the name byte.
        let name_at = 4 + 8;
        bad[name_at] = 0xff;
        assert!(parse_pairs(&bad).is_empty());
        assert_eq!(parse_pairs(&bytes), vec![("ok", &b"1"[..])]);
    }
}
