//! A bounded key store with least-recently-used order: at most `capacity` keys, the least
//! recently used one dropped first, idle keys popped from the old end on a tick.
//!
//! Memory is allocated as keys arrive and never exceeds `capacity` entries, whatever the
//! number of distinct keys seen: a flood of new source addresses only recycles entries.
//! Entries live in one `Vec` linked into a list by index (no per-key allocation); the index map
//! hashes the (already hashed) key with a per-VM random seed, so keys chosen by a client cannot
//! be crafted to collide in it.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Node<V> {
    key: u64,
    last_seen: u64,
    prev: u32,
    next: u32,
    value: V,
}

/// A key dropped from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evicted<V> {
    /// Its key hash.
    pub key: u64,
    /// When it was last used.
    pub last_seen: u64,
    /// Its value.
    pub value: V,
}

/// Keys to values, bounded, in least-recently-used order.
#[derive(Debug, Clone)]
pub struct KeyStore<V> {
    index: HashMap<u64, u32, SeededBuild>,
    nodes: Vec<Node<V>>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    /// Unused node slots (after removals), reused before the vector grows.
    free: Vec<u32>,
    capacity: usize,
}

impl<V: Copy> KeyStore<V> {
    /// An empty store for at most `capacity` keys (at least 1), hashing with `seed`.
    pub fn new(capacity: u32, seed: u64) -> Self {
        let capacity = usize::try_from(capacity.max(1)).unwrap_or(usize::MAX);
        Self {
            index: HashMap::with_capacity_and_hasher(capacity.min(1024), SeededBuild { seed }),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            free: Vec::new(),
            capacity,
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Entries allocated (held or free): never more than the capacity.
    pub fn allocated(&self) -> usize {
        self.nodes.len()
    }

    /// The value of `key`, marked as used at `now`.
    pub fn get_mut(&mut self, key: u64, now: u64) -> Option<&mut V> {
        let slot = *self.index.get(&key)?;
        self.touch(slot, now);
        self.nodes.get_mut(slot as usize).map(|node| &mut node.value)
    }

    /// The value of `key` (marked as used at `now`), created with `make` if absent. Creating a
    /// key in a full store drops the least recently used one first, returned as evicted.
    pub fn get_or_insert_with(
        &mut self,
        key: u64,
        now: u64,
        make: impl FnOnce() -> V,
    ) -> (Option<&mut V>, Option<Evicted<V>>) {
        if let Some(&slot) = self.index.get(&key) {
            self.touch(slot, now);
            return (self.nodes.get_mut(slot as usize).map(|node| &mut node.value), None);
        }
        let evicted = if self.index.len() >= self.capacity { self.pop_oldest() } else { None };
        let node = Node { key, last_seen: now, prev: NIL, next: self.head, value: make() };
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(existing) = self.nodes.get_mut(slot as usize) {
                    *existing = node;
                }
                slot
            }
            None => {
                let Ok(slot) = u32::try_from(self.nodes.len()) else { return (None, evicted) };
                self.nodes.push(node);
                slot
            }
        };
        if let Some(old_head) = self.nodes.get_mut(self.head as usize) {
            old_head.prev = slot;
        }
        self.head = slot;
        if self.tail == NIL {
            self.tail = slot;
        }
        self.index.insert(key, slot);
        (self.nodes.get_mut(slot as usize).map(|node| &mut node.value), evicted)
    }

    /// Drops the least recently used key if it was last used at or before `now - idle`.
    pub fn pop_idle(&mut self, now: u64, idle: u64) -> Option<Evicted<V>> {
        let oldest = self.nodes.get(self.tail as usize)?;
        if now.saturating_sub(oldest.last_seen) < idle {
            return None;
        }
        self.pop_oldest()
    }

    /// Drops the least recently used key.
    fn pop_oldest(&mut self) -> Option<Evicted<V>> {
        let slot = self.tail;
        self.unlink(slot);
        let node = self.nodes.get(slot as usize)?;
        let key = node.key;
        self.index.remove(&key);
        self.free.push(slot);
        // The node stays in place (stale) until the slot is reused.
        Some(Evicted { key, last_seen: node.last_seen, value: node.value })
    }

    /// Moves `slot` to the most recently used end.
    fn touch(&mut self, slot: u32, now: u64) {
        if let Some(node) = self.nodes.get_mut(slot as usize) {
            node.last_seen = now;
        }
        if self.head == slot {
            return;
        }
        self.unlink(slot);
        let old_head = self.head;
        if let Some(node) = self.nodes.get_mut(slot as usize) {
            node.prev = NIL;
            node.next = old_head;
        }
        if let Some(node) = self.nodes.get_mut(old_head as usize) {
            node.prev = slot;
        }
        self.head = slot;
        if self.tail == NIL {
            self.tail = slot;
        }
    }

    /// Takes `slot` out of the list.
    fn unlink(&mut self, slot: u32) {
        let Some(node) = self.nodes.get(slot as usize) else { return };
        let (prev, next) = (node.prev, node.next);
        match self.nodes.get_mut(prev as usize) {
            Some(previous) => previous.next = next,
            None => self.head = next,
        }
        match self.nodes.get_mut(next as usize) {
            Some(following) => following.prev = prev,
            None => self.tail = prev,
        }
        if let Some(node) = self.nodes.get_mut(slot as usize) {
            node.prev = NIL;
            node.next = NIL;
        }
    }
}

/// Builds [`SeededHasher`]s.
#[derive(Debug, Clone, Copy)]
struct SeededBuild {
    seed: u64,
}

impl BuildHasher for SeededBuild {
    type Hasher = SeededHasher;

    fn build_hasher(&self) -> SeededHasher {
        SeededHasher { state: self.seed }
    }
}

/// Mixes a u64 with a secret seed (folded 128-bit multiply, as foldhash does): cheap, and the
/// bucket a key lands in cannot be predicted without the seed.
struct SeededHasher {
    state: u64,
}

const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for SeededHasher {
    fn finish(&self) -> u64 {
        self.state
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (target, source) in word.iter_mut().zip(chunk) {
                *target = *source;
            }
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        let product = u128::from(value ^ self.state).wrapping_mul(u128::from(MULTIPLIER ^ self.state.rotate_left(32)));
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<V: Copy>(store: &KeyStore<V>) -> Vec<u64> {
        // Walk from most to least recently used.
        let mut out = Vec::new();
        let mut slot = store.head;
        while let Some(node) = store.nodes.get(slot as usize) {
            out.push(node.key);
            slot = node.next;
        }
        out
    }

    #[test]
    fn get_or_insert_then_get() {
        let mut store = KeyStore::new(4, 7);
        let (value, evicted) = store.get_or_insert_with(10, 1, || 100u32);
        assert_eq!(value.copied(), Some(100));
        assert!(evicted.is_none());
        *store.get_mut(10, 2).unwrap() += 1;
        assert_eq!(store.get_or_insert_with(10, 3, || 0).0.copied(), Some(101));
        assert_eq!(store.get_mut(11, 3), None);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn full_store_drops_the_least_recently_used() {
        let mut store = KeyStore::new(3, 7);
        for key in 1..=3u64 {
            store.get_or_insert_with(key, key, || key);
        }
        store.get_mut(1, 10); // 1 is now the most recent; 2 the least.
        assert_eq!(keys(&store), [1, 3, 2]);
        let (_, evicted) = store.get_or_insert_with(4, 11, || 4);
        assert_eq!(evicted, Some(Evicted { key: 2, last_seen: 2, value: 2 }));
        assert_eq!(keys(&store), [4, 1, 3]);
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn idle_keys_pop_oldest_first_and_stop_at_a_recent_one() {
        let mut store = KeyStore::new(10, 7);
        for key in 1..=5u64 {
            store.get_or_insert_with(key, key * 100, || key);
        }
        store.get_mut(1, 900);
        // At 1000 with idle 600: keys last seen at or before 400 go, oldest first.
        let mut popped = Vec::new();
        while let Some(evicted) = store.pop_idle(1000, 600) {
            popped.push(evicted.key);
        }
        assert_eq!(popped, [2, 3, 4]);
        assert_eq!(keys(&store), [1, 5]);
        // Freed slots are reused before the vector grows.
        store.get_or_insert_with(6, 1001, || 6);
        assert_eq!(store.allocated(), 5);
    }

    #[test]
    fn single_entry_store_and_empty_pops() {
        let mut store: KeyStore<u8> = KeyStore::new(1, 0);
        assert!(store.pop_idle(10, 0).is_none());
        store.get_or_insert_with(1, 0, || 1);
        let (_, evicted) = store.get_or_insert_with(2, 1, || 2);
        assert_eq!(evicted.map(|e| e.key), Some(1));
        assert_eq!(store.pop_idle(100, 10).map(|e| e.key), Some(2));
        assert!(store.is_empty());
        assert_eq!(keys(&store), Vec::<u64>::new());
        store.get_or_insert_with(3, 101, || 3);
        assert_eq!(keys(&store), [3]);
    }

    #[test]
    fn a_flood_of_distinct_keys_keeps_memory_flat() {
        let mut store = KeyStore::new(1_000, 42);
        let mut evictions = 0u64;
        let mut after_warm_up = None;
        let mut index_capacity_first_half = 0;
        let mut index_capacity_second_half = 0;
        for key in 0..100_000u64 {
            if store.get_or_insert_with(key.wrapping_mul(0x9e37_79b9), key, || key).1.is_some() {
                evictions += 1;
            }
            if key.is_multiple_of(7) {
                // Interleave idle pops, as ticks would.
                while store.pop_idle(key, 900).is_some() {
                    evictions += 1;
                }
            }
            if key == 10_000 {
                after_warm_up = Some(store.allocated());
            }
            let capacity = store.index.capacity();
            if key < 50_000 {
                index_capacity_first_half = index_capacity_first_half.max(capacity);
            } else {
                index_capacity_second_half = index_capacity_second_half.max(capacity);
            }
        }
        let allocated = after_warm_up.unwrap();
        assert!(allocated <= 1_000, "entries stop at the capacity: {allocated}");
        assert_eq!(store.allocated(), allocated, "no entry beyond the capacity after 90,000 more keys");
        // The index may double once (tombstones of removed keys), then rehashes in place.
        assert!(index_capacity_second_half <= index_capacity_first_half, "the index stopped growing");
        assert!(index_capacity_first_half <= 4 * 1_000, "index capacity {index_capacity_first_half}");
        assert!(store.len() <= 1_000);
        assert_eq!(evictions + store.len() as u64, 100_000, "every key is held or was evicted");
    }

    #[test]
    fn list_stays_consistent_under_random_use() {
        let mut store = KeyStore::new(16, 3);
        let mut state = 12345u64;
        for step in 0..10_000u64 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = (state >> 33) % 40;
            if state.is_multiple_of(5) {
                store.get_mut(key, step);
            } else {
                store.get_or_insert_with(key, step, || key);
            }
            if step.is_multiple_of(97) {
                while store.pop_idle(step, 30).is_some() {}
            }
            let walked = keys(&store);
            assert_eq!(walked.len(), store.len(), "list and index agree at step {step}");
        }
    }
}
