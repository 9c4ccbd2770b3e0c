//! Shared mode: buckets in Proxy-Wasm shared data, one table of slots per rule.
//!
//! Every worker of the Envoy process sees the same shared data (per `vm_id`), so buckets kept
//! there are counted by all workers together. A rule owns `max_keys` slots named
//! `<namespace><rule>/<slot>`; a key lives in one of [`PROBES`] slots starting at
//! `hash % max_keys`. The number of shared-data entries is therefore bounded by `max_keys`
//! per rule whatever the number of distinct keys: Envoy cannot delete a shared-data key, so
//! naming entries by the key itself would grow Envoy's memory with every new source address.
//!
//! A slot's value is 32 bytes, little-endian: key hash, tokens, last fill, last seen (all u64);
//! an empty value is a free slot (what the eviction tick writes).

use crate::bucket::{Bucket, BucketSpec};

/// Slots looked at for one key.
pub const PROBES: u32 = 4;

/// Length of an encoded slot.
pub const SLOT_VALUE_LENGTH: usize = 32;

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotValue {
    /// Hash of the key whose bucket this is.
    pub key: u64,
    /// The bucket.
    pub bucket: Bucket,
    /// When any worker last used it, ns since the Unix epoch.
    pub last_seen: u64,
}

impl SlotValue {
    /// The 32-byte form.
    pub fn encode(&self) -> [u8; SLOT_VALUE_LENGTH] {
        let mut out = [0u8; SLOT_VALUE_LENGTH];
        for (chunk, word) in
            out.chunks_exact_mut(8).zip([self.key, self.bucket.tokens, self.bucket.last_fill, self.last_seen])
        {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// The slot in `bytes`; `None` for a free slot (empty) or anything not 32 bytes long
    /// (which is then overwritten like a free slot).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != SLOT_VALUE_LENGTH {
            return None;
        }
        let mut words = bytes.chunks_exact(8).map(|chunk| {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            u64::from_le_bytes(word)
        });
        let mut next = || words.next().unwrap_or_default();
        let (key, tokens, last_fill, last_seen) = (next(), next(), next(), next());
        Some(Self { key, bucket: Bucket { tokens, last_fill }, last_seen })
    }

    /// Whether another key may take the slot without loss: unused for the time its bucket needs
    /// to fill up again.
    pub fn is_idle(&self, spec: &BucketSpec, now: u64) -> bool {
        now.saturating_sub(self.last_seen) >= spec.idle_nanos()
    }
}

/// The `probe`-th slot of a key in a table of `slots`.
pub fn slot_of(key: u64, probe: u32, slots: u32) -> u32 {
    let slots = u64::from(slots.max(1));
    u32::try_from((key % slots + u64::from(probe)) % slots).unwrap_or(0)
}

/// Writes the shared-data name of `slot` of a rule into `out` (reused between calls).
pub fn slot_name(out: &mut String, namespace: &str, rule: &str, slot: u32) {
    out.clear();
    out.push_str(namespace);
    out.push_str(rule);
    out.push('/');
    // Decimal digits without the formatting machinery (this runs on every shared-mode request).
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    let mut rest = slot;
    loop {
        start -= 1;
        if let Some(digit) = digits.get_mut(start) {
            *digit = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 || start == 0 {
            break;
        }
    }
    for digit in digits.iter().skip(start) {
        out.push(char::from(*digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let value = SlotValue { key: u64::MAX - 3, bucket: Bucket { tokens: 7, last_fill: 1 << 60 }, last_seen: 42 };
        let bytes = value.encode();
        assert_eq!(bytes.len(), SLOT_VALUE_LENGTH);
        assert_eq!(SlotValue::decode(&bytes), Some(value));
        assert_eq!(SlotValue::decode(&[]), None, "empty is free");
        assert_eq!(SlotValue::decode(&bytes[..31]), None, "foreign value is free");
    }

    #[test]
    fn slots_wrap_around_the_table() {
        assert_eq!(slot_of(10, 0, 8), 2);
        assert_eq!(slot_of(15, 1, 8), 0);
        assert_eq!(slot_of(u64::MAX, 3, 1), 0);
        for probe in 0..PROBES {
            assert!(slot_of(u64::MAX, probe, 5) < 5);
        }
    }

    #[test]
    fn slot_names_are_namespaced() {
        let mut name = String::from("garbage");
        slot_name(&mut name, "wasm_shield.rate_limit/gateway/", "per-ip", 12);
        assert_eq!(name, "wasm_shield.rate_limit/gateway/per-ip/12");
        for slot in [0, 7, 10, 999_999, u32::MAX] {
            slot_name(&mut name, "n/", "r", slot);
            assert_eq!(name, format!("n/r/{slot}"));
        }
    }

    #[test]
    fn idle_means_refilled() {
        let spec = BucketSpec::new(10, 5, 1_000);
        let value = SlotValue { key: 1, bucket: Bucket { tokens: 0, last_fill: 0 }, last_seen: 100 };
        assert!(!value.is_idle(&spec, 2_099));
        assert!(value.is_idle(&spec, 2_100));
    }
}
