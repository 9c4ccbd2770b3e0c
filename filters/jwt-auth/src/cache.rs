//! A bounded cache of verified tokens per provider, so a repeated token costs one hash lookup
//! instead of a signature check.
//!
//! Only tokens that passed every provider check are inserted, so an attacker cannot fill it
//! without valid tokens. An entry is used only while its time window holds (checked on every
//! hit) and while the provider's keys are the ones it was verified with (`generation`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

/// What a verified token gives every later request that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Usable until this second (`exp` + skew; `i64::MAX` without `exp`).
    pub valid_until: i64,
    /// Usable from this second (`nbf` - skew; `i64::MIN` without `nbf`).
    pub valid_from: i64,
    /// `aud` values, checked per requirement.
    pub audiences: Vec<String>,
    /// `claim_to_headers` results: (lowercase header, value).
    pub headers: Vec<(String, String)>,
    /// `forward_payload_header` (header, base64url payload).
    pub payload_header: Option<(String, String)>,
    /// The key generation it was verified with.
    pub generation: u64,
}

impl Verified {
    /// Whether the time window holds at `now` (seconds).
    pub fn is_current(&self, now: i64) -> bool {
        self.valid_from <= now && now <= self.valid_until
    }
}

/// Bytes of a token's end that key the cache: the signature, effectively random. Hashing only
/// them keeps the lookup cost independent of the token's length; the whole token is compared on
/// a hit, so a colliding token is a miss, never a wrong hit. Collisions cannot be provoked to
/// any effect: only verified tokens are inserted.
pub const HASHED_TAIL: usize = 32;

/// The cache key of `token`: its length and last [`HASHED_TAIL`] bytes, mixed.
pub fn token_hash(token: &str) -> u64 {
    let bytes = token.as_bytes();
    let tail = bytes.get(bytes.len().saturating_sub(HASHED_TAIL)..).unwrap_or(bytes);
    let mut hash = (bytes.len() as u64).wrapping_mul(SEED);
    for chunk in tail.chunks(8) {
        let mut word = [0u8; 8];
        word.get_mut(..chunk.len()).unwrap_or_default().copy_from_slice(chunk);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
    }
    hash
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Hasher for keys that already are hashes.
#[derive(Default)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (keys are `u64`); anything else is folded in, not lost.
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(SEED);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Debug)]
struct Entry {
    token: Box<str>,
    verified: Rc<Verified>,
}

/// The cache of one provider.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: HashMap<u64, Entry, BuildHasherDefault<PassThroughHasher>>,
    capacity: usize,
}

impl TokenCache {
    /// A cache holding at most `capacity` tokens (0: disabled).
    pub fn new(capacity: usize) -> Self {
        Self { entries: HashMap::default(), capacity }
    }

    /// The entry for `token`, if any (the caller checks time and generation).
    pub fn get(&self, token: &str) -> Option<&Rc<Verified>> {
        if self.entries.is_empty() {
            return None;
        }
        self.entries.get(&token_hash(token)).filter(|entry| &*entry.token == token).map(|entry| &entry.verified)
    }

    /// Caches `token`; when full, drops entries whose window is over at `now`, then (still full)
    /// one arbitrary entry. A token with the same key as another replaces it.
    pub fn insert(&mut self, token: &str, verified: Rc<Verified>, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let key = token_hash(token);
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, entry| entry.verified.valid_until >= now);
            if self.entries.len() >= self.capacity {
                let victim = self.entries.keys().next().copied();
                if let Some(victim) = victim {
                    self.entries.remove(&victim);
                }
            }
        }
        self.entries.insert(key, Entry { token: token.into(), verified });
    }

    /// Forgets `token` (its window is over or its keys changed).
    pub fn remove(&mut self, token: &str) {
        let key = token_hash(token);
        if self.entries.get(&key).is_some_and(|entry| &*entry.token == token) {
            self.entries.remove(&key);
        }
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(valid_until: i64) -> Rc<Verified> {
        Rc::new(Verified {
            valid_until,
            valid_from: i64::MIN,
            audiences: Vec::new(),
            headers: vec![("x-user".into(), "u".into())],
            payload_header: None,
            generation: 1,
        })
    }

    #[test]
    fn hit_and_miss() {
        let mut cache = TokenCache::new(4);
        cache.insert("a.b.c", verified(100), 0);
        assert_eq!(cache.get("a.b.c").unwrap().headers[0].1, "u");
        assert!(cache.get("a.b.d").is_none());
        cache.remove("a.b.c");
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded_evicting_expired_first() {
        let mut cache = TokenCache::new(2);
        cache.insert("old", verified(10), 0);
        cache.insert("fresh", verified(1000), 0);
        cache.insert("new", verified(1000), 50);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("old").is_none(), "the expired entry goes first");
        assert!(cache.get("fresh").is_some() && cache.get("new").is_some());
        cache.insert("newer", verified(1000), 50);
        assert_eq!(cache.len(), 2, "still bounded when nothing expired");
        assert!(cache.get("newer").is_some());
    }

    #[test]
    fn disabled_cache_keeps_nothing() {
        let mut cache = TokenCache::new(0);
        cache.insert("a", verified(10), 0);
        assert!(cache.is_empty());
    }

    #[test]
    fn time_window() {
        let entry = Verified { valid_from: 10, ..(*verified(20)).clone() };
        assert!(!entry.is_current(9));
        assert!(entry.is_current(10) && entry.is_current(20));
        assert!(!entry.is_current(21));
    }

    #[test]
    fn key_depends_on_length_and_tail() {
        assert_ne!(token_hash("abcdefgh"), token_hash("abcdefgh\0"));
        assert_ne!(token_hash("abcdefghi"), token_hash("abcdefghj"));
        assert_eq!(token_hash("same"), token_hash("same"));
        let long = "x".repeat(100);
        assert_eq!(token_hash(&format!("a{long}")), token_hash(&format!("b{long}")), "only the tail is hashed");
    }

    #[test]
    fn same_key_other_token_is_a_miss() {
        let long = "x".repeat(100);
        let (first, second) = (format!("a{long}"), format!("b{long}"));
        let mut cache = TokenCache::new(4);
        cache.insert(&first, verified(100), 0);
        assert!(cache.get(&first).is_some());
        assert!(cache.get(&second).is_none(), "same key, different token: a miss");
        cache.remove(&second);
        assert!(cache.get(&first).is_some(), "removing another token keeps this one");
        cache.insert(&second, verified(100), 0);
        assert!(cache.get(&first).is_none() && cache.get(&second).is_some());
    }
}
