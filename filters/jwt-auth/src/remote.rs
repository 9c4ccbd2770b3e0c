//! When to fetch a remote JWKS, and what a fetch result does to the keys. Pure: times are
//! nanoseconds from the host clock, passed in.
//!
//! - The first fetch starts at once; a failed fetch is retried with backoff (1s, 2s, 4s … 30s).
//! - Keys are refreshed before `cache_duration` runs out (at 90 %, at most 30s early).
//! - A failed fetch or refresh keeps the last good keys.
//! - An unknown `kid` asks for one refetch, at most one per [`REFETCH_INTERVAL_NS`].

use crate::config::RemoteJwks;
use crate::jwks::KeySet;
use std::rc::Rc;

const SECOND: u64 = 1_000_000_000;
/// At most one unknown-`kid` refetch per this interval.
pub const REFETCH_INTERVAL_NS: u64 = 30 * SECOND;
/// Longest retry delay after failures.
pub const MAX_RETRY_NS: u64 = 30 * SECOND;
/// How early a refresh starts, at most.
pub const MAX_REFRESH_MARGIN_NS: u64 = 30 * SECOND;
/// A fetch not answered this long after its timeout is considered lost.
const LOST_FETCH_GRACE_NS: u64 = SECOND;

/// What a finished fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// New keys are in use (`keys` usable entries; `skipped` JWKs ignored).
    Updated { keys: usize, skipped: Vec<String> },
    /// The same document as before: keys and cached tokens stay.
    Unchanged,
    /// The fetch failed; the last good keys (if any) stay.
    Failed(String),
}

/// The fetch state and keys of one remote provider.
#[derive(Debug)]
pub struct RemoteState {
    /// Where and how.
    pub config: RemoteJwks,
    /// The last good keys.
    pub keys: Option<Rc<KeySet>>,
    /// Bumped whenever the keys change: cached tokens of older generations are re-verified.
    pub generation: u64,
    last_document: Vec<u8>,
    /// A fetch is out; it is considered lost after this instant.
    in_flight_until: Option<u64>,
    next_fetch_at: u64,
    last_started: Option<u64>,
    refetch_wanted: bool,
    failures: u32,
}

impl RemoteState {
    /// A provider with no keys yet: the first fetch is due at once.
    pub fn new(config: RemoteJwks) -> Self {
        Self {
            config,
            keys: None,
            generation: 0,
            last_document: Vec::new(),
            in_flight_until: None,
            next_fetch_at: 0,
            last_started: None,
            refetch_wanted: false,
            failures: 0,
        }
    }

    /// Whether a fetch should start now.
    pub fn is_due(&self, now: u64) -> bool {
        if self.in_flight_until.is_some_and(|until| now < until) {
            return false;
        }
        now >= self.next_fetch_at || (self.refetch_wanted && self.refetch_allowed(now))
    }

    fn refetch_allowed(&self, now: u64) -> bool {
        self.last_started.is_none_or(|started| now >= started.saturating_add(REFETCH_INTERVAL_NS))
    }

    /// Whether a fetch is out.
    pub fn in_flight(&self, now: u64) -> bool {
        self.in_flight_until.is_some_and(|until| now < until)
    }

    /// A fetch was dispatched at `now`.
    pub fn started(&mut self, now: u64) {
        let timeout = u64::try_from(self.config.timeout.as_nanos()).unwrap_or(u64::MAX);
        self.in_flight_until = Some(now.saturating_add(timeout).saturating_add(LOST_FETCH_GRACE_NS));
        self.last_started = Some(now);
        self.refetch_wanted = false;
    }

    /// The host refused to dispatch the fetch (e.g. unknown cluster): retry later.
    pub fn start_failed(&mut self, now: u64) {
        self.in_flight_until = None;
        self.refetch_wanted = false;
        self.schedule_retry(now);
    }

    /// A fetch finished: `Ok(body)` for a 200 answer, `Err(why)` otherwise.
    pub fn finished(&mut self, now: u64, result: Result<&[u8], String>) -> FetchOutcome {
        self.in_flight_until = None;
        let body = match result {
            Ok(body) => body,
            Err(why) => {
                self.schedule_retry(now);
                return FetchOutcome::Failed(why);
            }
        };
        if self.keys.is_some() && body == self.last_document.as_slice() {
            self.schedule_refresh(now);
            return FetchOutcome::Unchanged;
        }
        match KeySet::parse(body) {
            Ok(set) => {
                let outcome = FetchOutcome::Updated { keys: set.keys.len(), skipped: set.skipped.clone() };
                self.keys = Some(Rc::new(set));
                self.generation = self.generation.wrapping_add(1);
                self.last_document = body.to_vec();
                self.schedule_refresh(now);
                outcome
            }
            Err(why) => {
                self.schedule_retry(now);
                FetchOutcome::Failed(why)
            }
        }
    }

    /// An unknown `kid` was seen at `now`: asks for one refetch, which starts once
    /// [`REFETCH_INTERVAL_NS`] have passed since the last fetch started. Returns whether this
    /// call asked for it (false when one is already asked for or out).
    pub fn request_refetch(&mut self, now: u64) -> bool {
        if self.in_flight(now) || self.refetch_wanted {
            return false;
        }
        self.refetch_wanted = true;
        true
    }

    fn schedule_refresh(&mut self, now: u64) {
        self.failures = 0;
        let lifetime = u64::try_from(self.config.cache_duration.as_nanos()).unwrap_or(u64::MAX);
        let margin = (lifetime / 10).min(MAX_REFRESH_MARGIN_NS);
        self.next_fetch_at = now.saturating_add(lifetime - margin);
    }

    fn schedule_retry(&mut self, now: u64) {
        let delay = SECOND.saturating_mul(1u64 << self.failures.min(5)).min(MAX_RETRY_NS);
        self.failures = self.failures.saturating_add(1);
        self.next_fetch_at = now.saturating_add(delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::tests::TEST_JWKS;
    use std::time::Duration;

    fn state() -> RemoteState {
        RemoteState::new(RemoteJwks {
            cluster: "idp".into(),
            authority: "idp.example".into(),
            path: "/keys".into(),
            timeout: Duration::from_secs(1),
            cache_duration: Duration::from_secs(600),
            fail_open: false,
            wait_timeout: Duration::from_secs(5),
        })
    }

    #[test]
    fn first_fetch_is_due_at_once_and_not_twice() {
        let mut remote = state();
        assert!(remote.is_due(0));
        remote.started(0);
        assert!(!remote.is_due(SECOND / 2));
        assert!(remote.in_flight(SECOND / 2));
        // Lost after timeout + grace: due again.
        assert!(remote.is_due(2 * SECOND));
    }

    #[test]
    fn success_schedules_refresh_before_expiry() {
        let mut remote = state();
        remote.started(0);
        let outcome = remote.finished(SECOND, Ok(TEST_JWKS.as_bytes()));
        assert!(matches!(outcome, FetchOutcome::Updated { .. }), "{outcome:?}");
        assert_eq!(remote.generation, 1);
        // 600s cache: refresh 30s early.
        assert!(!remote.is_due(SECOND + 569 * SECOND));
        assert!(remote.is_due(SECOND + 570 * SECOND));
        // Same document again: unchanged generation.
        remote.started(571 * SECOND);
        assert_eq!(remote.finished(572 * SECOND, Ok(TEST_JWKS.as_bytes())), FetchOutcome::Unchanged);
        assert_eq!(remote.generation, 1);
    }

    #[test]
    fn failures_keep_keys_and_back_off() {
        let mut remote = state();
        remote.started(0);
        remote.finished(0, Ok(TEST_JWKS.as_bytes()));
        remote.started(570 * SECOND);
        let outcome = remote.finished(571 * SECOND, Err("status 500".into()));
        assert_eq!(outcome, FetchOutcome::Failed("status 500".into()));
        assert!(remote.keys.is_some(), "last good keys stay");
        assert!(!remote.is_due(571 * SECOND + SECOND - 1));
        assert!(remote.is_due(572 * SECOND));
        remote.started(572 * SECOND);
        remote.finished(572 * SECOND, Ok(b"not json"));
        assert!(remote.keys.is_some());
        assert!(!remote.is_due(573 * SECOND), "second failure waits 2s");
        assert!(remote.is_due(574 * SECOND));
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited() {
        let mut remote = state();
        remote.started(0);
        remote.finished(0, Ok(TEST_JWKS.as_bytes()));
        assert!(remote.request_refetch(10 * SECOND));
        assert!(!remote.is_due(10 * SECOND), "a fetch started 10s ago");
        assert!(!remote.request_refetch(20 * SECOND), "already asked");
        assert!(remote.is_due(30 * SECOND));
        remote.started(30 * SECOND);
        assert!(!remote.request_refetch(30 * SECOND), "one is out");
        remote.finished(30 * SECOND, Ok(TEST_JWKS.as_bytes()));
        assert!(remote.request_refetch(40 * SECOND));
        assert!(!remote.is_due(59 * SECOND));
        assert!(remote.is_due(60 * SECOND));
    }
}
