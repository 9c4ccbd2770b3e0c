//! Property: a bucket never lets through more than it holds plus what it gained. For any two
//! requests at `t_i <= t_j`, the requests allowed in `[t_i, t_j]` number at most
//! `max_tokens + tokens_per_fill * ceil((t_j - t_i) / fill_interval)`, whatever the bucket's
//! parameters, the arrival times (bursts, gaps, a clock standing still), the mode (per worker, or
//! shared across up to 4 workers whose requests interleave) and idle-key eviction in between.
//! The limiter runs on a fake host: a settable clock and Envoy's shared data with CAS tokens.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use proptest::prelude::*;
use rate_limit::config::Policy;
use rate_limit::key::RequestFacts;
use rate_limit::limiter::{Host, LimitedEvent, Limiter, Metric, SharedRead, SharedWrite, Verdict};
use rate_limit::request::Request;

const MILLI: u64 = 1_000_000;
const T0: u64 = 1_767_225_600 * 1_000_000_000;

#[derive(Default)]
struct SharedData {
    entries: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
}

struct FakeHost<'a> {
    now: u64,
    shared: &'a RefCell<SharedData>,
}

impl RequestFacts for FakeHost<'_> {
    fn source_address(&mut self) -> Option<IpAddr> {
        "203.0.113.7".parse().ok()
    }
    fn route_name(&mut self) -> Option<Vec<u8>> {
        None
    }
}

impl Host for FakeHost<'_> {
    fn now(&mut self) -> u64 {
        self.now
    }
    fn shared_get(&mut self, key: &str) -> SharedRead {
        match self.shared.borrow().entries.get(key) {
            Some((value, cas)) => SharedRead::Found { value: value.clone(), cas: *cas },
            None => SharedRead::NotFound,
        }
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> SharedWrite {
        let mut shared = self.shared.borrow_mut();
        let current = shared.entries.get(key).map(|(_, token)| *token);
        if cas != 0 && current.is_some_and(|token| token != cas) {
            return SharedWrite::CasMismatch;
        }
        shared.next_cas += 1;
        let token = shared.next_cas;
        shared.entries.insert(key.to_owned(), (value.to_vec(), token));
        SharedWrite::Done
    }
    fn count(&mut self, _rule: usize, _metric: Metric, _by: u64) {}
    fn log_limited(&mut self, _event: &LimitedEvent) {}
}

#[derive(Debug, Clone)]
struct Scenario {
    max_tokens: u64,
    tokens_per_fill: u64,
    fill_interval_ms: u64,
    shared: bool,
    workers: usize,
    /// (gap before the request in ms, worker, evict idle keys first)
    requests: Vec<(u64, usize, bool)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1u64..20, 1u64..20, 50u64..5_000, any::<bool>(), 1usize..=4).prop_flat_map(
        |(max_tokens, tokens_per_fill, fill_interval_ms, shared, workers)| {
            // Gaps from "same instant" to several fill intervals.
            let gap = prop_oneof![3 => Just(0u64), 3 => 0..fill_interval_ms / 4 + 1, 1 => 0..fill_interval_ms * 3];
            let requests = proptest::collection::vec((gap, 0..workers, proptest::bool::weighted(0.05)), 1..150);
            requests.prop_map(move |requests| Scenario {
                max_tokens,
                tokens_per_fill: tokens_per_fill.min(max_tokens),
                fill_interval_ms,
                shared,
                workers,
                requests,
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn a_bucket_never_allows_more_than_its_capacity_in_any_window(scenario in scenario()) {
        let config = format!(
            r#"{{"mode": "{}", "rules": [{{"name": "r", "key": ["remote_address"], "max_tokens": {},
                "tokens_per_fill": {}, "fill_interval": "{}ms"}}]}}"#,
            if scenario.shared { "shared" } else { "local" },
            scenario.max_tokens,
            scenario.tokens_per_fill,
            scenario.fill_interval_ms,
        );
        let policy = Rc::new(Policy::from_json(config.as_bytes()).expect("a valid configuration"));
        // Local mode: one worker (each worker has its own buckets). Shared: all of them.
        let workers = if scenario.shared { scenario.workers } else { 1 };
        let mut limiters: Vec<Limiter> =
            (0..workers).map(|w| Limiter::new(Rc::clone(&policy), "prop".into(), w as u64 + 1)).collect();
        let shared = RefCell::new(SharedData::default());
        let mut now = T0;
        let mut allowed: Vec<u64> = Vec::new();
        let mut times: Vec<u64> = Vec::new();
        let request = Request::new(&[]);
        for (gap, worker, evict) in &scenario.requests {
            now += gap * MILLI;
            let mut host = FakeHost { now, shared: &shared };
            let limiter = &mut limiters[worker % workers];
            if *evict {
                limiter.evict_idle(&mut host);
            }
            times.push(now);
            if matches!(limiter.check(&request, &mut host), Verdict::Allow(_)) {
                allowed.push(now);
            }
        }
        let interval = scenario.fill_interval_ms * MILLI;
        for (i, start) in allowed.iter().enumerate() {
            for (j, end) in allowed.iter().enumerate().skip(i) {
                let count = (j - i + 1) as u64;
                let bound = scenario.max_tokens + scenario.tokens_per_fill * (end - start).div_ceil(interval);
                prop_assert!(
                    count <= bound,
                    "{count} requests allowed in {} ms (bound {bound}; {scenario:?})",
                    (end - start) / MILLI
                );
            }
        }
        // And the bucket does let the first max_tokens of a burst through.
        let burst = times.iter().take_while(|t| **t == T0).count() as u64;
        let allowed_at_start = allowed.iter().take_while(|t| **t == T0).count() as u64;
        prop_assert_eq!(allowed_at_start, burst.min(scenario.max_tokens));
    }
}
