//! A stream's header map as the stages of one module see it: read from the host at most once,
//! changed in place (so a later stage sees an earlier stage's changes, as in a chain of filters),
//! and written back once, only the names that changed.
//!
//! The values live in one byte arena (the host's serialized map, then appended changes), so
//! reading a map costs one host call and two allocations, not two per header.

use crate::abi::{self, Map};
use std::ops::Range;

/// One header: lowercase name, raw value.
pub type Header<'a> = (&'a str, &'a [u8]);

/// What a stage reads of a header map; the module reads the union once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HeaderNeeds {
    /// Nothing.
    #[default]
    None,
    /// These names (lowercase) only: one lookup each.
    Names(Vec<String>),
    /// The whole map: one call.
    All,
}

impl HeaderNeeds {
    /// What two stages need together.
    pub fn union(self, other: HeaderNeeds) -> HeaderNeeds {
        match (self, other) {
            (HeaderNeeds::All, _) | (_, HeaderNeeds::All) => HeaderNeeds::All,
            (HeaderNeeds::None, other) | (other, HeaderNeeds::None) => other,
            (HeaderNeeds::Names(mut names), HeaderNeeds::Names(more)) => {
                for name in more {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                HeaderNeeds::Names(names)
            }
        }
    }
}

/// Up to this many needed names are looked up one by one; more read the whole map in one call.
const SINGLE_LOOKUPS_UP_TO: usize = 3;

/// Where a map's original values come from.
trait Source {
    fn all(&mut self) -> Vec<u8>;
    fn one(&mut self, name: &str) -> Option<Vec<u8>>;
}

/// The host's map of the current stream. A refused read counts as an empty map (the
/// callbacks where Envoy refuses one never see a map that matters).
struct HostSource(Map);

impl Source for HostSource {
    fn all(&mut self) -> Vec<u8> {
        abi::header_map_bytes(self.0).unwrap_or_default()
    }
    fn one(&mut self, name: &str) -> Option<Vec<u8>> {
        abi::header_value(self.0, name).ok().flatten()
    }
}

/// A header map of the current stream, read lazily, written back with [`HeaderMap::flush`].
pub struct HeaderMap {
    map: Map,
    arena: Vec<u8>,
    /// (name, value) ranges into `arena`, in map order.
    entries: Vec<(Range<usize>, Range<usize>)>,
    /// `entries` hold the whole map (else only `looked_up` names).
    complete: bool,
    looked_up: Vec<String>,
    changed: Vec<String>,
}

impl HeaderMap {
    /// An unread map of the current stream.
    pub fn new(map: Map) -> Self {
        Self {
            map,
            arena: Vec::new(),
            entries: Vec::new(),
            complete: false,
            looked_up: Vec::new(),
            changed: Vec::new(),
        }
    }

    /// A map holding exactly `pairs` (tests, and maps that are not the host's).
    pub fn from_pairs(map: Map, pairs: &[Header<'_>]) -> Self {
        let mut headers = Self::new(map);
        headers.complete = true;
        for (name, value) in pairs {
            headers.push(name, value);
        }
        headers
    }

    /// Reads what `needs` names, in as few host calls as possible.
    pub fn prefetch(&mut self, needs: &HeaderNeeds) {
        match needs {
            HeaderNeeds::None => {}
            HeaderNeeds::Names(names) if names.len() <= SINGLE_LOOKUPS_UP_TO => {
                for name in names {
                    self.look_up(&mut HostSource(self.map), name);
                }
            }
            HeaderNeeds::Names(_) | HeaderNeeds::All => self.load_all(&mut HostSource(self.map)),
        }
    }

    fn push(&mut self, name: &str, value: &[u8]) {
        let name_start = self.arena.len();
        self.arena.extend_from_slice(name.as_bytes());
        let value_start = self.arena.len();
        self.arena.extend_from_slice(value);
        self.entries.push((name_start..value_start, value_start..self.arena.len()));
    }

    fn name_at(&self, range: &Range<usize>) -> &[u8] {
        self.arena.get(range.clone()).unwrap_or_default()
    }

    fn look_up(&mut self, source: &mut dyn Source, name: &str) {
        if self.complete || self.looked_up.iter().any(|known| known == name) {
            return;
        }
        self.looked_up.push(name.to_owned());
        if let Some(value) = source.one(name) {
            self.push(name, &value);
        }
    }

    /// Loads the whole map, keeping the values of names already changed here.
    fn load_all(&mut self, source: &mut dyn Source) {
        if self.complete {
            return;
        }
        let kept: Vec<(String, Vec<u8>)> = self
            .pairs_unchecked()
            .into_iter()
            .filter(|(name, _)| self.changed.iter().any(|changed| changed == name))
            .map(|(name, value)| (name.to_owned(), value.to_vec()))
            .collect();
        let bytes = source.all();
        self.entries.clear();
        self.arena.clear();
        for (name, value) in parse_pairs(&bytes) {
            if !self.changed.iter().any(|changed| changed == name) {
                self.push(name, value);
            }
        }
        for (name, value) in &kept {
            self.push(name, value);
        }
        self.complete = true;
    }

    fn pairs_unchecked(&self) -> Vec<Header<'_>> {
        self.entries
            .iter()
            .filter_map(|(name, value)| {
                let name = std::str::from_utf8(self.arena.get(name.clone())?).ok()?;
                Some((name, self.arena.get(value.clone())?))
            })
            .collect()
    }

    /// Every header, in map order (reads the whole map once if needed).
    pub fn pairs(&mut self) -> Vec<Header<'_>> {
        self.load_all(&mut HostSource(self.map));
        self.pairs_unchecked()
    }

    /// The first value of `name` (lowercase).
    pub fn get(&mut self, name: &str) -> Option<&[u8]> {
        self.look_up(&mut HostSource(self.map), name);
        let (_, value) = self.entries.iter().find(|(entry, _)| self.name_at(entry) == name.as_bytes())?;
        self.arena.get(value.clone())
    }

    fn mark_changed(&mut self, name: &str) {
        if !self.changed.iter().any(|changed| changed == name) {
            self.changed.push(name.to_owned());
        }
        if !self.complete && !self.looked_up.iter().any(|known| known == name) {
            self.looked_up.push(name.to_owned());
        }
    }

    /// Removes every occurrence of `name`.
    pub fn remove(&mut self, name: &str) {
        let arena = &self.arena;
        self.entries.retain(|(entry, _)| arena.get(entry.clone()).unwrap_or_default() != name.as_bytes());
        self.mark_changed(name);
    }

    /// Replaces every occurrence of `name` with one `value` at the end (Envoy's `setCopy`).
    pub fn set(&mut self, name: &str, value: &[u8]) {
        self.remove(name);
        self.push(name, value);
    }

    /// Appends one `name: value`.
    pub fn add(&mut self, name: &str, value: &[u8]) {
        self.mark_changed(name);
        self.push(name, value);
    }

    /// Whether anything changed since the last flush.
    pub fn is_changed(&self) -> bool {
        !self.changed.is_empty()
    }

    /// Writes the changed names to the host: one call per name (and per extra value). Errors
    /// are ignored: a header that cannot be written must not kill the VM.
    pub fn flush(&mut self) {
        for name in std::mem::take(&mut self.changed) {
            let values: Vec<&[u8]> = self
                .entries
                .iter()
                .filter(|(entry, _)| self.name_at(entry) == name.as_bytes())
                .filter_map(|(_, value)| self.arena.get(value.clone()))
                .collect();
            match values.split_first() {
                None => {
                    let _ = abi::remove_header(self.map, &name);
                }
                Some((first, rest)) => {
                    let _ = abi::replace_header(self.map, &name, first);
                    for value in rest {
                        let _ = abi::add_header(self.map, &name, value);
                    }
                }
            }
        }
    }
}

/// The pairs of a map serialized the Proxy-Wasm way: `u32` count, then `count` pairs of `u32`
/// name and value lengths, then each name and value followed by a NUL byte (little-endian). A
/// malformed map yields the pairs read before the fault; a name that is not UTF-8 is skipped
/// (Envoy never hands one over).
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

/// Serializes pairs the way the host does.
pub fn serialize_pairs(pairs: &[Header<'_>]) -> Vec<u8> {
    let length = |value: usize| u32::try_from(value).unwrap_or(u32::MAX).to_le_bytes();
    let size = 4 + pairs.iter().map(|(n, v)| 10 + n.len() + v.len()).sum::<usize>();
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&length(pairs.len()));
    for (name, value) in pairs {
        bytes.extend_from_slice(&length(name.len()));
        bytes.extend_from_slice(&length(value.len()));
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

    /// A host map that counts the calls made to it.
    struct FakeSource {
        pairs: Vec<(&'static str, &'static [u8])>,
        calls: usize,
    }

    impl Source for FakeSource {
        fn all(&mut self) -> Vec<u8> {
            self.calls += 1;
            serialize_pairs(&self.pairs)
        }
        fn one(&mut self, name: &str) -> Option<Vec<u8>> {
            self.calls += 1;
            self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_vec())
        }
    }

    #[test]
    fn round_trip() {
        let pairs: Vec<Header<'_>> = vec![(":path", b"/a"), ("authorization", b"Bearer x"), ("empty", b"")];
        assert_eq!(parse_pairs(&serialize_pairs(&pairs)), pairs);
    }

    #[test]
    fn truncated_and_lying_maps_do_not_panic() {
        let bytes = serialize_pairs(&[("a", b"1"), ("b", b"2")]);
        for cut in 0..bytes.len() {
            assert!(parse_pairs(&bytes[..cut]).len() <= 2);
        }
        let mut huge = vec![0xff, 0xff, 0xff, 0x7f];
        huge.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]);
        assert!(parse_pairs(&huge).is_empty());
    }

    #[test]
    fn changes_are_seen_by_later_reads_and_tracked_by_name() {
        let mut map = HeaderMap::from_pairs(Map::RequestHeaders, &[("a", b"1"), ("b", b"2"), ("a", b"3")]);
        map.remove("a");
        map.set("b", b"20");
        map.add("c", b"x");
        map.add("c", b"y");
        assert_eq!(map.get("a"), None);
        assert_eq!(map.get("b"), Some(&b"20"[..]));
        assert_eq!(map.pairs(), vec![("b", &b"20"[..]), ("c", b"x"), ("c", b"y")]);
        assert_eq!(map.changed, vec!["a", "b", "c"]);
    }

    #[test]
    fn a_late_full_read_keeps_earlier_changes() {
        let mut source = FakeSource { pairs: vec![("x-user", b"mallory"), ("host", b"h"), ("x-id", b"1")], calls: 0 };
        let mut map = HeaderMap::new(Map::RequestHeaders);
        map.look_up(&mut source, "x-user");
        map.remove("x-user");
        map.set("x-id", b"2");
        map.load_all(&mut source);
        assert_eq!(source.calls, 2);
        assert_eq!(map.pairs_unchecked(), vec![("host", &b"h"[..]), ("x-id", b"2")]);
        // A second full read costs nothing.
        map.load_all(&mut source);
        assert_eq!(source.calls, 2);
    }

    #[test]
    fn lookups_are_made_once_per_name_even_when_absent() {
        let mut source = FakeSource { pairs: vec![("a", b"1")], calls: 0 };
        let mut map = HeaderMap::new(Map::RequestHeaders);
        map.look_up(&mut source, "a");
        map.look_up(&mut source, "a");
        map.look_up(&mut source, "missing");
        map.look_up(&mut source, "missing");
        assert_eq!(source.calls, 2);
        assert_eq!(map.pairs_unchecked(), vec![("a", &b"1"[..])]);
    }

    #[test]
    fn needs_union() {
        let names = |list: &[&str]| HeaderNeeds::Names(list.iter().map(|n| n.to_string()).collect());
        assert_eq!(HeaderNeeds::None.union(names(&["a"])), names(&["a"]));
        assert_eq!(names(&["a"]).union(names(&["b", "a"])), names(&["a", "b"]));
        assert_eq!(names(&["a"]).union(HeaderNeeds::All), HeaderNeeds::All);
    }
}
