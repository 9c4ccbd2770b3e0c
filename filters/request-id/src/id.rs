//! Request IDs: which incoming values are accepted, and how new ones are made.
//!
//! Accepted: 1 to `max_length` bytes of ASCII letters, digits and `-_.:+/=@` ([`is_id_byte`]).
//! That covers UUIDs, ULIDs, base64/base64url tokens, `service:123` and `name@host` styles, and
//! excludes everything that could break a log line or a header (spaces, CR/LF, controls, quotes,
//! commas, semicolons, non-ASCII).

use std::fmt;

/// Length of a generated UUID v4 (`8-4-4-4-12` lowercase hex).
pub const UUID_LENGTH: usize = 36;

/// Length of a generated ULID (Crockford base32).
pub const ULID_LENGTH: usize = 26;

/// Punctuation accepted in a request ID besides ASCII letters and digits.
pub const ID_PUNCTUATION: &[u8] = b"-_.:+/=@";

/// Crockford's base32 alphabet (no I, L, O, U), as used by ULID.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Why an incoming request ID was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The header was present with an empty value.
    Empty,
    /// Longer than `max_length`.
    TooLong,
    /// Holds a byte outside the accepted set.
    IllegalCharacter,
    /// The header appeared more than once: which one would a service use?
    Repeated,
}

impl Rejection {
    /// The `reason=` value of the audit line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong => "too_long",
            Self::IllegalCharacter => "illegal_character",
            Self::Repeated => "repeated",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `byte` may appear in a request ID.
pub fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || ID_PUNCTUATION.contains(&byte)
}

/// Accepts `value` as a request ID, or says why not.
pub fn validate(value: &[u8], max_length: usize) -> Result<(), Rejection> {
    if value.is_empty() {
        return Err(Rejection::Empty);
    }
    if value.len() > max_length {
        return Err(Rejection::TooLong);
    }
    if !value.iter().copied().all(is_id_byte) {
        return Err(Rejection::IllegalCharacter);
    }
    Ok(())
}

/// A random (version 4, RFC 9562) UUID from 16 random bytes, lowercase `8-4-4-4-12`.
pub fn uuid4(random: [u8; 16]) -> String {
    let mut bytes = random;
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant 10xx (RFC 9562)
    let mut out = String::with_capacity(UUID_LENGTH);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// A ULID: 48-bit Unix time in milliseconds then 80 random bits (the first 10 bytes of
/// `random`), as 26 Crockford base32 characters. IDs of later milliseconds sort after earlier
/// ones; within one millisecond the order is random (the spec's optional monotonic mode would
/// need state shared across workers, which Wasm filters do not have).
pub fn ulid(unix_millis: u64, random: [u8; 16]) -> String {
    let time = u128::from(unix_millis.min(MAX_ULID_MILLIS));
    let mut randomness = 0u128;
    for byte in random.iter().take(10) {
        randomness = (randomness << 8) | u128::from(*byte);
    }
    let value = (time << 80) | randomness;
    let mut out = String::with_capacity(ULID_LENGTH);
    // 26 characters × 5 bits = 130 bits: the first character carries the top 3 bits.
    for index in (0..ULID_LENGTH).rev() {
        let digit = (value >> (index * 5)) & 0x1f;
        out.push(char::from(CROCKFORD[digit as usize]));
    }
    out
}

/// The largest timestamp a ULID can hold (year 10889).
pub const MAX_ULID_MILLIS: u64 = (1 << 48) - 1;

/// The 128-bit value of a ULID (Crockford base32, either case), if `text` is one.
pub fn parse_ulid(text: &str) -> Option<u128> {
    if text.len() != ULID_LENGTH {
        return None;
    }
    let mut value = 0u128;
    for (index, byte) in text.bytes().enumerate() {
        let upper = byte.to_ascii_uppercase();
        let digit = CROCKFORD.iter().position(|c| *c == upper)?;
        // The first character may only carry 3 bits, or the value would exceed 128 bits.
        if index == 0 && digit > 7 {
            return None;
        }
        value = (value << 5) | digit as u128;
    }
    Some(value)
}

/// The 128-bit value of a UUID written `8-4-4-4-12` in hex (either case), if `text` is one.
pub fn parse_uuid(text: &str) -> Option<u128> {
    if text.len() != UUID_LENGTH {
        return None;
    }
    let mut value = 0u128;
    for (index, byte) in text.bytes().enumerate() {
        if matches!(index, 8 | 13 | 18 | 23) {
            if byte != b'-' {
                return None;
            }
            continue;
        }
        let digit = char::from(byte).to_digit(16)?;
        value = (value << 4) | u128::from(digit);
    }
    Some(value)
}

/// 16 bytes derived from `seed` and `counter` with SplitMix64, for when the host's random source
/// fails: IDs stay unique (the counter never repeats within a VM, the seed is the clock) though
/// no longer unpredictable. Request IDs correlate; they do not authenticate.
pub fn fallback_entropy(seed: u64, counter: u64) -> [u8; 16] {
    let mut state = seed ^ counter.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let high = splitmix64(&mut state);
    let low = splitmix64(&mut state);
    ((u128::from(high) << 64) | u128::from(low)).to_be_bytes()
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_lower_hex(text: &str) -> bool {
        text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    #[test]
    fn accepts_common_id_styles() {
        for id in [
            "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "abc123",
            "a",
            "svc:orders:42",
            "dGVzdA==",
            "a/b+c",
            "user@host",
            "A_B.C",
        ] {
            assert_eq!(validate(id.as_bytes(), 128), Ok(()), "{id}");
        }
    }

    #[test]
    fn refuses_empty() {
        assert_eq!(validate(b"", 128), Err(Rejection::Empty));
    }

    #[test]
    fn exact_max_length_is_accepted_one_more_is_not() {
        let at_limit = vec![b'a'; 128];
        assert_eq!(validate(&at_limit, 128), Ok(()));
        let over = vec![b'a'; 129];
        assert_eq!(validate(&over, 128), Err(Rejection::TooLong));
        assert_eq!(validate(b"ab", 1), Err(Rejection::TooLong));
        assert_eq!(validate(b"a", 1), Ok(()));
    }

    #[test]
    fn refuses_four_kilobytes() {
        let huge = vec![b'a'; 4096];
        assert_eq!(validate(&huge, 128), Err(Rejection::TooLong));
        assert_eq!(validate(&huge, 1024), Err(Rejection::TooLong));
    }

    #[test]
    fn refuses_injection_characters() {
        for bad in [
            &b"abc\r\nX-Injected: 1"[..],
            b"abc\n",
            b"abc\r",
            b"a b",
            b"a\tb",
            b"a\"b",
            b"a'b",
            b"a,b",
            b"a;b",
            b"a<b>",
            b"a\\b",
            b"a\x00b",
            b"a\x7fb",
            "ä".as_bytes(),
            b"\xff",
            b"a%0d%0a",
        ] {
            assert_eq!(validate(bad, 128), Err(Rejection::IllegalCharacter), "{bad:?}");
        }
    }

    #[test]
    fn length_is_checked_before_characters() {
        // A 4 KB value of garbage is reported as too long, without scanning it.
        let mut huge = vec![b'\n'; 4096];
        huge[0] = b'a';
        assert_eq!(validate(&huge, 128), Err(Rejection::TooLong));
    }

    #[test]
    fn uuid4_has_version_and_variant() {
        for random in [[0u8; 16], [0xff; 16], *b"0123456789abcdef"] {
            let id = uuid4(random);
            assert_eq!(id.len(), UUID_LENGTH);
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
            assert!(groups.iter().all(|g| is_lower_hex(g)), "{id}");
            assert_eq!(&id[14..15], "4", "version nibble of {id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "variant nibble of {id}");
            assert_eq!(validate(id.as_bytes(), UUID_LENGTH), Ok(()));
        }
    }

    #[test]
    fn uuid4_keeps_the_random_bits() {
        assert_eq!(uuid4([0; 16]), "00000000-0000-4000-8000-000000000000");
        assert_eq!(uuid4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let bytes: [u8; 16] =
            [0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36];
        assert_eq!(uuid4(bytes), "4bf92f35-77b3-4da6-a3ce-929d0e0e4736");
    }

    #[test]
    fn ulid_matches_the_spec_examples() {
        // Timestamps from the ULID specification's examples.
        assert!(ulid(1_469_922_850_259, [0; 16]).starts_with("01ARZ3NDEK"));
        assert!(ulid(1_469_918_176_385, [0; 16]).starts_with("01ARYZ6S41"));
        assert_eq!(ulid(0, [0; 16]), "00000000000000000000000000");
        assert_eq!(ulid(MAX_ULID_MILLIS, [0xff; 16]), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    }

    #[test]
    fn ulid_format() {
        let id = ulid(1_700_000_000_000, *b"0123456789abcdef");
        assert_eq!(id.len(), ULID_LENGTH);
        assert!(id.bytes().all(|b| CROCKFORD.contains(&b)), "{id}");
        assert!(id.as_bytes()[0] <= b'7');
        assert_eq!(validate(id.as_bytes(), ULID_LENGTH), Ok(()));
    }

    #[test]
    fn ulid_uses_only_ten_random_bytes() {
        let mut a = [0x11; 16];
        let mut b = a;
        a[10..].fill(0x00);
        b[10..].fill(0xff);
        assert_eq!(ulid(5, a), ulid(5, b));
        b[9] = 0x12;
        assert_ne!(ulid(5, a), ulid(5, b));
    }

    #[test]
    fn ulids_sort_by_time() {
        // The largest randomness of an earlier millisecond still sorts first.
        let earlier = ulid(1_700_000_000_000, [0xff; 16]);
        let later = ulid(1_700_000_000_001, [0x00; 16]);
        assert!(earlier < later, "{earlier} !< {later}");
        let mut ids: Vec<String> =
            (0..50u64).rev().map(|ms| ulid(1_700_000_000_000 + ms * 997, [(ms * 37) as u8; 16])).collect();
        let by_time: Vec<String> = ids.iter().rev().cloned().collect();
        ids.sort();
        assert_eq!(ids, by_time);
    }

    #[test]
    fn ulid_time_saturates() {
        assert_eq!(ulid(u64::MAX, [0; 16]), ulid(MAX_ULID_MILLIS, [0; 16]));
    }

    #[test]
    fn ulid_round_trips() {
        let random = *b"0123456789abcdef";
        let id = ulid(1_469_922_850_259, random);
        let value = parse_ulid(&id).unwrap();
        assert_eq!(value >> 80, 1_469_922_850_259);
        assert_eq!(parse_ulid(&id.to_ascii_lowercase()), Some(value));
        assert_eq!(parse_ulid("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"), None);
        assert_eq!(parse_ulid("01ARZ3NDEKTSV4RRFFQ69G5FAU"), None); // U is not Crockford
        assert_eq!(parse_ulid("01ARZ3NDEK"), None);
    }

    #[test]
    fn uuid_parsing() {
        assert_eq!(parse_uuid("4BF92F35-77B3-4DA6-A3CE-929D0E0E4736"), Some(0x4bf92f3577b34da6a3ce929d0e0e4736));
        assert_eq!(parse_uuid("4bf92f35-77b3-4da6-a3ce-929d0e0e473"), None);
        assert_eq!(parse_uuid("4bf92f35a77b3-4da6-a3ce-929d0e0e4736"), None);
        assert_eq!(parse_uuid("4bf92f35-77b3-4da6-a3ce-929d0e0e473g"), None);
        assert_eq!(parse_uuid("+bf92f35-77b3-4da6-a3ce-929d0e0e4736"), None);
    }

    #[test]
    fn fallback_entropy_differs_per_counter_and_seed() {
        let a = fallback_entropy(1, 1);
        let b = fallback_entropy(1, 2);
        let c = fallback_entropy(2, 1);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, [0; 16]);
        assert_eq!(a, fallback_entropy(1, 1));
    }

    #[test]
    fn rejection_reasons() {
        assert_eq!(Rejection::TooLong.to_string(), "too_long");
        assert_eq!(Rejection::IllegalCharacter.as_str(), "illegal_character");
        assert_eq!(Rejection::Empty.as_str(), "empty");
        assert_eq!(Rejection::Repeated.as_str(), "repeated");
    }
}
