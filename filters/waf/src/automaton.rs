//! One multi-pattern automaton: forward Thompson NFAs over chunks of the patterns, each searched
//! by a lazy DFA (`hybrid`), with the PikeVM on the same NFA as the fallback when the lazy DFA
//! gives up.
//!
//! Why not `meta::Regex`: the engine only asks "does any pattern match?" and "which patterns
//! match?", never where a match starts, so the reverse NFA `meta` also compiles (about half of
//! the build time for CRS's large patterns) is not needed. Start-up is what this saves.

use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::nfa::thompson::pikevm::{Cache as PikeCache, PikeVM};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::{Input, MatchKind, PatternID, PatternSet};
use std::sync::Mutex;

/// Lazy DFA cache per automaton, tried first; bounded so many automata stay within the VM's
/// memory budget (the cache grows only as states are visited). CRS's large `MatchKind::All`
/// automata thrash a 512 KiB cache (determinising on every request: 10× slower).
const CACHE_CAPACITY: usize = 2 * 1024 * 1024;
/// A larger cache for automata whose NFA needs more than [`CACHE_CAPACITY`] to work at all.
const LARGE_CACHE_CAPACITY: usize = 8 * 1024 * 1024;

/// Patterns per lazy DFA. One DFA over all of a pipeline's CRS patterns (up to ~100, searched
/// unanchored with `MatchKind::All`) has so many states that a long benign value (a 1.5 KB form
/// field) fills and clears its cache on every request: measured natively, a benign 2 KB form
/// POST through CRS at PL1 took 75–110 ms, 80 % of it determinising. Chunks of 12 patterns keep
/// each DFA's states few enough to stay cached (the same POST: 3.4–4 ms; the benign GET no
/// slower; peak RSS lower), at the price of one search per chunk — which `is_match` ends at the
/// first chunk that matches.
const PATTERNS_PER_DFA: usize = 12;

/// A compiled set of patterns, searched as lazy DFAs over chunks of [`PATTERNS_PER_DFA`].
#[derive(Debug)]
pub struct Automaton {
    /// Each chunk with the global index of its first pattern.
    chunks: Vec<(usize, Chunk)>,
    pattern_len: usize,
}

impl Automaton {
    /// Compiles `patterns` (byte-oriented syntax, see `engine::regex_syntax`).
    pub fn build(patterns: &[String]) -> Result<Self, String> {
        let chunks = patterns
            .chunks(PATTERNS_PER_DFA)
            .enumerate()
            .map(|(index, part)| Ok((index * PATTERNS_PER_DFA, Chunk::build(part)?)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self { chunks, pattern_len: patterns.len() })
    }

    /// Number of patterns.
    pub fn pattern_len(&self) -> usize {
        self.pattern_len
    }

    /// Whether every chunk has its lazy DFA (false: some use the PikeVM only, slow; reported at
    /// start-up).
    pub fn has_dfa(&self) -> bool {
        self.chunks.iter().all(|(_, chunk)| chunk.has_dfa())
    }

    /// Whether any pattern matches `haystack`.
    pub fn is_match(&self, haystack: &[u8]) -> bool {
        self.chunks.iter().any(|(_, chunk)| chunk.is_match(haystack))
    }

    /// Adds every pattern that matches `haystack` to `set` (sized for [`Self::pattern_len`]).
    pub fn which_matches(&self, haystack: &[u8], set: &mut PatternSet) {
        let mut local = PatternSet::new(PATTERNS_PER_DFA);
        for (offset, chunk) in &self.chunks {
            if !chunk.is_match(haystack) {
                continue;
            }
            local.clear();
            chunk.which_matches(haystack, &mut local);
            for pattern in local.iter() {
                if let Ok(global) = PatternID::new(offset + pattern.as_usize()) {
                    let _ = set.try_insert(global);
                }
            }
        }
    }
}

/// One lazy DFA (with its PikeVM fallback) over a chunk of the patterns.
#[derive(Debug)]
struct Chunk {
    dfa: Option<DFA>,
    /// The lazy DFA's cache (one per automaton: requests are evaluated one at a time per VM).
    dfa_cache: Mutex<Option<DfaCache>>,
    pikevm: PikeVM,
    pike_cache: Mutex<Option<PikeCache>>,
}

impl Chunk {
    /// Compiles `patterns` (byte-oriented syntax, see `engine::regex_syntax`).
    fn build(patterns: &[String]) -> Result<Self, String> {
        let nfa = thompson::Compiler::new()
            .syntax(crate::engine::regex_syntax())
            .configure(thompson::Config::new().which_captures(WhichCaptures::Implicit).shrink(false))
            .build_many(patterns)
            .map_err(|error| error.to_string())?;
        let dfa = [CACHE_CAPACITY, LARGE_CACHE_CAPACITY].iter().find_map(|&capacity| {
            DFA::builder()
                .configure(
                    DFA::config()
                        .match_kind(MatchKind::All)
                        .cache_capacity(capacity)
                        // Never give up for the PikeVM (orders of magnitude slower on these
                        // large pattern sets): a cache that fills is cleared and refilled.
                        .minimum_cache_clear_count(None),
                )
                .build_from_nfa(nfa.clone())
                .ok()
        });
        let pikevm = PikeVM::builder()
            .configure(PikeVM::config().match_kind(MatchKind::All))
            .build_from_nfa(nfa)
            .map_err(|error| error.to_string())?;
        Ok(Self { dfa, dfa_cache: Mutex::new(None), pikevm, pike_cache: Mutex::new(None) })
    }

    /// Whether the lazy DFA is in use (false: PikeVM only, slow; reported at start-up).
    fn has_dfa(&self) -> bool {
        self.dfa.is_some()
    }

    /// Whether any pattern matches `haystack`.
    fn is_match(&self, haystack: &[u8]) -> bool {
        let input = Input::new(haystack).earliest(true);
        if let Some(dfa) = &self.dfa
            && let Ok(mut guard) = self.dfa_cache.lock()
        {
            let cache = guard.get_or_insert_with(|| dfa.create_cache());
            if let Ok(found) = dfa.try_search_fwd(cache, &input) {
                return found.is_some();
            }
        }
        let Ok(mut guard) = self.pike_cache.lock() else { return false };
        let cache = guard.get_or_insert_with(|| self.pikevm.create_cache());
        self.pikevm.is_match(cache, input)
    }

    /// Adds every pattern that matches `haystack` to `set` (sized for [`Self::pattern_len`]).
    fn which_matches(&self, haystack: &[u8], set: &mut PatternSet) {
        let input = Input::new(haystack);
        if let Some(dfa) = &self.dfa
            && let Ok(mut guard) = self.dfa_cache.lock()
        {
            let cache = guard.get_or_insert_with(|| dfa.create_cache());
            if dfa.try_which_overlapping_matches(cache, &input, set).is_ok() {
                return;
            }
            set.clear();
        }
        let Ok(mut guard) = self.pike_cache.lock() else { return };
        let cache = guard.get_or_insert_with(|| self.pikevm.create_cache());
        self.pikevm.which_overlapping_matches(cache, &input, set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_matching_pattern_and_bytes() {
        let patterns: Vec<String> = [r"(?i)union\s+select", r"\xBC", r"^abc", r"[\x7f-\xff]", r"select"]
            .iter()
            .map(|p| p.to_string())
            .collect();
        let automaton = Automaton::build(&patterns).unwrap();
        assert!(automaton.has_dfa());
        assert_eq!(automaton.pattern_len(), 5);
        let mut set = PatternSet::new(5);
        automaton.which_matches(b"1 union  select \xbc", &mut set);
        assert_eq!(set.iter().map(|p| p.as_usize()).collect::<Vec<_>>(), vec![0, 1, 3, 4]);
        assert!(automaton.is_match(b"abcdef"));
        assert!(!automaton.is_match(b"xabc"));
        assert!(Automaton::build(&["(".to_string()]).is_err());
    }

    #[test]
    fn patterns_past_the_first_chunk_keep_their_global_index() {
        let patterns: Vec<String> = (0..3 * PATTERNS_PER_DFA + 1).map(|i| format!("word{i}x")).collect();
        let automaton = Automaton::build(&patterns).unwrap();
        assert_eq!(automaton.pattern_len(), patterns.len());
        let last = patterns.len() - 1;
        let text = format!("a word5x and a word{}x and a word{last}x", PATTERNS_PER_DFA);
        let mut set = PatternSet::new(patterns.len());
        automaton.which_matches(text.as_bytes(), &mut set);
        assert_eq!(set.iter().map(|p| p.as_usize()).collect::<Vec<_>>(), vec![5, PATTERNS_PER_DFA, last]);
        assert!(automaton.is_match(format!("word{last}x").as_bytes()));
        assert!(!automaton.is_match(b"word"));
    }
}
