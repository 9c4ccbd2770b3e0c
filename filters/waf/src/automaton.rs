//! One multi-pattern automaton: a forward Thompson NFA searched by a lazy DFA (`hybrid`), with
//! the PikeVM on the same NFA as the fallback when the lazy DFA gives up.
//!
//! Why not `meta::Regex`: the engine only asks "does any pattern match?" and "which patterns
//! match?", never where a match starts, so the reverse NFA `meta` also compiles (about half of
//! the build time for CRS's large patterns) is not needed. Start-up is what this saves.

use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::nfa::thompson::pikevm::{Cache as PikeCache, PikeVM};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::{Input, MatchKind, PatternSet};
use std::sync::Mutex;

/// Lazy DFA cache per automaton, tried first; bounded so many automata stay within the VM's
/// memory budget (the cache grows only as states are visited). CRS's large `MatchKind::All`
/// automata thrash a 512 KiB cache (determinising on every request: 10× slower).
const CACHE_CAPACITY: usize = 2 * 1024 * 1024;
/// A larger cache for automata whose NFA needs more than [`CACHE_CAPACITY`] to work at all.
const LARGE_CACHE_CAPACITY: usize = 8 * 1024 * 1024;

/// A compiled set of patterns.
#[derive(Debug)]
pub struct Automaton {
    dfa: Option<DFA>,
    /// The lazy DFA's cache (one per automaton: requests are evaluated one at a time per VM).
    dfa_cache: Mutex<Option<DfaCache>>,
    pikevm: PikeVM,
    pike_cache: Mutex<Option<PikeCache>>,
}

impl Automaton {
    /// Compiles `patterns` (byte-oriented syntax, see `engine::regex_syntax`).
    pub fn build(patterns: &[String]) -> Result<Self, String> {
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

    /// Number of patterns.
    pub fn pattern_len(&self) -> usize {
        self.pikevm.pattern_len()
    }

    /// Whether the lazy DFA is in use (false: PikeVM only, slow; reported at start-up).
    pub fn has_dfa(&self) -> bool {
        self.dfa.is_some()
    }

    /// Whether any pattern matches `haystack`.
    pub fn is_match(&self, haystack: &[u8]) -> bool {
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
    pub fn which_matches(&self, haystack: &[u8], set: &mut PatternSet) {
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
}
