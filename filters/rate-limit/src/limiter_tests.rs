//! The core driven without a host: an in-memory model of Envoy's shared data (CAS tokens as
//! Envoy hands them out), a settable clock, and recorded metrics and log lines.

use super::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;

const SECOND: u64 = 1_000_000_000;
const T0: u64 = 1_767_225_600 * SECOND;

/// Envoy's shared data: a value and a CAS token per key; a write with a stale non-zero token
/// fails with CasMismatch.
#[derive(Default)]
struct SharedData {
    entries: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    /// Writes that fail with CasMismatch before any real one (another worker winning races).
    forced_mismatches: u32,
    /// Reads that fail with this status.
    failing_reads: Option<u32>,
    /// Another worker empties the bucket between this worker's read and its write.
    steal_before_next_set: bool,
}

struct Fake<'a> {
    now: u64,
    source: Option<IpAddr>,
    shared: &'a RefCell<SharedData>,
    counts: HashMap<(usize, Metric), u64>,
    logs: Vec<LimitedEvent>,
}

impl<'a> Fake<'a> {
    fn new(shared: &'a RefCell<SharedData>) -> Self {
        Self { now: T0, source: "203.0.113.7".parse().ok(), shared, counts: HashMap::new(), logs: Vec::new() }
    }

    fn count_of(&self, rule: usize, metric: Metric) -> u64 {
        self.counts.get(&(rule, metric)).copied().unwrap_or(0)
    }

    fn from(&mut self, source: &str) -> &mut Self {
        self.source = source.parse().ok();
        self
    }
}

impl RequestFacts for Fake<'_> {
    fn source_address(&mut self) -> Option<IpAddr> {
        self.source
    }
    fn route_name(&mut self) -> Option<Vec<u8>> {
        Some(b"route".to_vec())
    }
}

impl Host for Fake<'_> {
    fn now(&mut self) -> u64 {
        self.now
    }
    fn shared_get(&mut self, key: &str) -> SharedRead {
        let shared = self.shared.borrow();
        if let Some(status) = shared.failing_reads {
            return SharedRead::Failed(status);
        }
        match shared.entries.get(key) {
            Some((value, cas)) => SharedRead::Found { value: value.clone(), cas: *cas },
            None => SharedRead::NotFound,
        }
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> SharedWrite {
        let mut shared = self.shared.borrow_mut();
        if shared.steal_before_next_set {
            shared.steal_before_next_set = false;
            let mut stolen = SlotValue::decode(value).unwrap();
            stolen.bucket.tokens = 0;
            shared.next_cas += 1;
            let next = shared.next_cas;
            shared.entries.insert(key.to_owned(), (stolen.encode().to_vec(), next));
        }
        if shared.forced_mismatches > 0 {
            shared.forced_mismatches -= 1;
            return SharedWrite::CasMismatch;
        }
        if cas != 0 && shared.entries.get(key).is_some_and(|(_, current)| *current != cas) {
            return SharedWrite::CasMismatch;
        }
        shared.next_cas += 1;
        let next = shared.next_cas;
        shared.entries.insert(key.to_owned(), (value.to_vec(), next));
        SharedWrite::Done
    }
    fn count(&mut self, rule: usize, metric: Metric, by: u64) {
        *self.counts.entry((rule, metric)).or_default() += by;
    }
    fn log_limited(&mut self, event: &LimitedEvent) {
        self.logs.push(event.clone());
    }
}

fn limiter(json: &str) -> Limiter {
    Limiter::new(Rc::new(Policy::from_json(json.as_bytes()).unwrap()), "wasm_shield.rate_limit/test/".into(), 99)
}

fn rule(name: &str, key: &str, max: u32, interval: &str) -> String {
    format!(r#"{{"name":"{name}","key":{key},"max_tokens":{max},"fill_interval":"{interval}"}}"#)
}

fn rules(mode: &str, rules: &[String]) -> String {
    format!(r#"{{"mode":"{mode}","headers_on_allowed":true,"rules":[{}]}}"#, rules.join(","))
}

fn allowed(verdict: Verdict) -> bool {
    matches!(verdict, Verdict::Allow(_))
}

fn retry_after(verdict: Verdict) -> Option<u64> {
    match verdict {
        Verdict::Reject { retry_after, .. } => retry_after,
        Verdict::Allow(_) => None,
    }
}

const NO_HEADERS: Request<'static> = Request::new(&[]);

#[test]
fn bucket_empties_then_refills_with_the_clock() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let mut limiter = limiter(&rules("local", &[rule("ip", r#"["remote_address"]"#, 3, "10s")]));
    for _ in 0..3 {
        assert!(allowed(limiter.check(&NO_HEADERS, &mut host)));
    }
    let rejected = limiter.check(&NO_HEADERS, &mut host);
    assert_eq!(retry_after(rejected), Some(10));
    host.now += 4 * SECOND;
    assert_eq!(retry_after(limiter.check(&NO_HEADERS, &mut host)), Some(6), "Retry-After counts down");
    host.now += 6 * SECOND;
    assert!(allowed(limiter.check(&NO_HEADERS, &mut host)), "one fill: one more request");
    assert!(!allowed(limiter.check(&NO_HEADERS, &mut host)));
    assert_eq!(host.count_of(0, Metric::Allowed), 4);
    assert_eq!(host.count_of(0, Metric::Limited), 3);
}

#[test]
fn rejections_are_logged_once_per_key_and_interval() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let mut limiter = limiter(&rules("local", &[rule("ip", r#"["remote_address"]"#, 1, "10s")]));
    for _ in 0..5 {
        limiter.check(&NO_HEADERS, &mut host);
    }
    assert_eq!(host.logs.len(), 1, "four rejections, one line");
    assert_eq!(host.logs[0].key, "\"203.0.113.7\"");
    assert_eq!(host.logs[0].reason, LimitReason::Exhausted);
    assert_eq!(host.logs[0].suppressed, 0);
    // Another key is logged on its own.
    host.from("203.0.113.8");
    limiter.check(&NO_HEADERS, &mut host);
    limiter.check(&NO_HEADERS, &mut host);
    assert_eq!(host.logs.len(), 2);
    // Next interval: the first key's line reports what was skipped.
    host.now += 10 * SECOND;
    host.from("203.0.113.7");
    for _ in 0..2 {
        limiter.check(&NO_HEADERS, &mut host);
    }
    assert_eq!(host.logs.len(), 3);
    assert_eq!(host.logs[2].suppressed, 3);
}

#[test]
fn every_key_has_its_own_bucket_and_the_global_rule_caps_them_all() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config = rules(
        "local",
        &[rule("ip", r#"["remote_address"]"#, 2, "1h"), rule("global", r#"[{"constant":"all"}]"#, 5, "1h")],
    );
    let mut limiter = limiter(&config);
    let mut passed = 0;
    for client in 0..20 {
        host.from(&format!("198.51.100.{client}"));
        for _ in 0..2 {
            if allowed(limiter.check(&NO_HEADERS, &mut host)) {
                passed += 1;
            }
        }
    }
    assert_eq!(passed, 5, "the global ceiling holds under many keys");
    assert_eq!(host.count_of(1, Metric::Allowed), 5);
    assert_eq!(host.count_of(1, Metric::Limited), 35);
}

#[test]
fn a_rejected_request_takes_no_token_from_other_rules() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config = rules(
        "local",
        &[rule("global", r#"[{"constant":"all"}]"#, 3, "1h"), rule("ip", r#"["remote_address"]"#, 1, "1h")],
    );
    let mut limiter = limiter(&config);
    host.from("10.0.0.1");
    for _ in 0..10 {
        limiter.check(&NO_HEADERS, &mut host);
    }
    // The abusive client got one request; the global bucket still has two for others.
    host.from("10.0.0.2");
    assert!(allowed(limiter.check(&NO_HEADERS, &mut host)));
    host.from("10.0.0.3");
    assert!(allowed(limiter.check(&NO_HEADERS, &mut host)));
    host.from("10.0.0.4");
    assert!(!allowed(limiter.check(&NO_HEADERS, &mut host)));
}

#[test]
fn retry_after_is_the_longest_wait_of_the_exhausted_rules() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config = rules(
        "local",
        &[rule("short", r#"["remote_address"]"#, 1, "5s"), rule("long", r#"[{"constant":"g"}]"#, 1, "60s")],
    );
    let mut limiter = limiter(&config);
    assert!(allowed(limiter.check(&NO_HEADERS, &mut host)));
    match limiter.check(&NO_HEADERS, &mut host) {
        Verdict::Reject { retry_after, budget } => {
            assert_eq!(retry_after, Some(60));
            assert_eq!(budget.map(|budget| budget.rule), Some(1));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(host.count_of(0, Metric::Limited), 1);
    assert_eq!(host.count_of(1, Metric::Limited), 1);
}

#[test]
fn shadow_rules_count_and_log_but_never_reject() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config =
        r#"{"rules":[{"name":"try","key":["remote_address"],"max_tokens":2,"fill_interval":"1h","shadow":true}]}"#;
    let mut limiter = limiter(config);
    for _ in 0..5 {
        assert!(allowed(limiter.check(&NO_HEADERS, &mut host)));
    }
    assert_eq!(host.count_of(0, Metric::ShadowLimited), 3);
    assert_eq!(host.count_of(0, Metric::Limited), 0);
    assert_eq!(host.count_of(0, Metric::Allowed), 2);
    assert_eq!(host.logs.len(), 1);
    assert!(host.logs[0].shadow);
}

#[test]
fn allowed_requests_report_the_tightest_enforced_budget() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config = rules(
        "local",
        &[rule("wide", r#"[{"constant":"g"}]"#, 100, "1m"), rule("narrow", r#"["remote_address"]"#, 3, "10s")],
    );
    let mut limiter = limiter(&config);
    host.now += 3 * SECOND;
    assert_eq!(
        limiter.check(&NO_HEADERS, &mut host),
        Verdict::Allow(Some(Budget { rule: 1, remaining: 2, reset_seconds: 10 }))
    );
}

#[test]
fn missing_key_policies() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let make = |policy: &str| {
        format!(
            r#"{{"rules":[{{"name":"key","key":[{{"header":"x-api-key"}}],"max_tokens":2,"fill_interval":"1h","on_missing_key":"{policy}"}}]}}"#
        )
    };
    let with_key: [(&str, &[u8]); 1] = [("x-api-key", b"k1")];
    let keyed = Request::new(&with_key);

    let mut skip = limiter(&make("skip"));
    for _ in 0..5 {
        assert!(allowed(skip.check(&NO_HEADERS, &mut host)), "skipped rule never limits");
    }
    assert_eq!(host.count_of(0, Metric::MissingKey), 5);

    let mut own = limiter(&make("own_bucket"));
    assert!(allowed(own.check(&NO_HEADERS, &mut host)));
    assert!(allowed(own.check(&NO_HEADERS, &mut host)));
    assert!(!allowed(own.check(&NO_HEADERS, &mut host)), "keyless requests share one bucket");
    assert!(allowed(own.check(&keyed, &mut host)), "a keyed request has its own");

    let mut reject = limiter(&make("reject"));
    assert_eq!(reject.check(&NO_HEADERS, &mut host), Verdict::Reject { budget: None, retry_after: None });
    assert!(allowed(reject.check(&keyed, &mut host)));
    assert_eq!(host.logs.last().map(|event| event.reason), Some(LimitReason::MissingKey));
}

#[test]
fn local_mode_counts_per_worker() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config = rules("local", &[rule("g", r#"[{"constant":"g"}]"#, 3, "1h")]);
    let mut workers = [limiter(&config), limiter(&config)];
    let passed = (0..12).filter(|step| allowed(workers[step % 2].check(&NO_HEADERS, &mut host))).count();
    assert_eq!(passed, 6, "each worker allows the limit: workers x limit in total");
}

#[test]
fn shared_mode_holds_the_total_across_workers() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config = rules("shared", &[rule("g", r#"[{"constant":"g"}]"#, 3, "1h")]);
    let mut workers = [limiter(&config), limiter(&config), limiter(&config), limiter(&config)];
    let passed = (0..16).filter(|step| allowed(workers[step % 4].check(&NO_HEADERS, &mut host))).count();
    assert_eq!(passed, 3, "the limit, not 4x the limit");
    assert_eq!(host.count_of(0, Metric::Allowed), 3);
    assert_eq!(host.count_of(0, Metric::Limited), 13);
    // Time refills the shared bucket for everyone.
    host.now += 3600 * SECOND;
    assert!(allowed(workers[3].check(&NO_HEADERS, &mut host)));
    let names: Vec<_> = shared.borrow().entries.keys().cloned().collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("wasm_shield.rate_limit/test/g/"), "{names:?}");
}

#[test]
fn shared_mode_two_phase_takes_nothing_from_a_rejected_request() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config = rules(
        "shared",
        &[rule("global", r#"[{"constant":"all"}]"#, 3, "1h"), rule("ip", r#"["remote_address"]"#, 1, "1h")],
    );
    let mut limiter = limiter(&config);
    host.from("10.0.0.1");
    for _ in 0..10 {
        limiter.check(&NO_HEADERS, &mut host);
    }
    host.from("10.0.0.2");
    assert!(allowed(limiter.check(&NO_HEADERS, &mut host)));
    host.from("10.0.0.3");
    assert!(allowed(limiter.check(&NO_HEADERS, &mut host)));
    host.from("10.0.0.4");
    assert!(!allowed(limiter.check(&NO_HEADERS, &mut host)));
}

#[test]
fn lost_races_are_retried_then_contention_applies() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config = |on_contention: &str| {
        format!(
            r#"{{"mode":"shared","cas_attempts":3,"on_contention":"{on_contention}","rules":[{}]}}"#,
            rule("g", r#"[{"constant":"g"}]"#, 10, "1h")
        )
    };
    let mut deny = limiter(&config("deny"));
    shared.borrow_mut().forced_mismatches = 2;
    assert!(allowed(deny.check(&NO_HEADERS, &mut host)), "two lost races, third attempt wins");
    assert_eq!(host.count_of(0, Metric::CasRetries), 2);
    shared.borrow_mut().forced_mismatches = 3;
    assert_eq!(retry_after(deny.check(&NO_HEADERS, &mut host)), Some(1), "every attempt lost: denied");
    assert_eq!(host.count_of(0, Metric::Contention), 1);
    assert_eq!(host.logs.last().map(|event| event.reason), Some(LimitReason::Contention));

    let mut allow = limiter(&config("allow"));
    shared.borrow_mut().forced_mismatches = 3;
    assert!(allowed(allow.check(&NO_HEADERS, &mut host)), "fail-open only when configured");
    assert_eq!(host.count_of(0, Metric::Contention), 2);
    shared.borrow_mut().failing_reads = Some(10);
    assert!(allowed(allow.check(&NO_HEADERS, &mut host)));
    assert!(!allowed(deny.check(&NO_HEADERS, &mut host)), "a failing host is contention too");
}

#[test]
fn a_race_lost_to_the_last_token_rejects() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config = rules("shared", &[rule("g", r#"[{"constant":"g"}]"#, 5, "1h")]);
    let mut worker = limiter(&config);
    assert!(allowed(worker.check(&NO_HEADERS, &mut host)));
    // Between this worker's read (4 tokens) and its write, another worker takes the rest.
    shared.borrow_mut().steal_before_next_set = true;
    let verdict = worker.check(&NO_HEADERS, &mut host);
    assert!(!allowed(verdict), "the re-read finds the bucket empty");
    assert_eq!(retry_after(verdict), Some(3600));
    assert_eq!(host.count_of(0, Metric::CasRetries), 1);
    assert_eq!(host.count_of(0, Metric::Limited), 1);
    assert_eq!(host.count_of(0, Metric::Allowed), 1);
}

#[test]
fn idle_keys_are_evicted_on_the_tick_and_shared_slots_emptied() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let mut local = limiter(&rules("local", &[rule("ip", r#"["remote_address"]"#, 2, "10s")]));
    let mut global = limiter(&rules("shared", &[rule("ip", r#"["remote_address"]"#, 2, "10s")]));
    for client in 0..50 {
        host.from(&format!("198.51.100.{client}"));
        local.check(&NO_HEADERS, &mut host);
        global.check(&NO_HEADERS, &mut host);
    }
    host.now += 19 * SECOND;
    local.evict_idle(&mut host);
    assert_eq!(local.keys_held(0), 50, "not idle yet: the buckets are not full again");
    host.now += SECOND;
    local.evict_idle(&mut host);
    assert_eq!(local.keys_held(0), 0);
    assert_eq!(host.count_of(0, Metric::Evictions), 50);
    global.evict_idle(&mut host);
    assert_eq!(global.keys_held(0), 0);
    assert_eq!(host.count_of(0, Metric::Evictions), 100);
    assert!(shared.borrow().entries.values().all(|(value, _)| value.is_empty()), "slots emptied");
}

#[test]
fn a_flood_of_distinct_keys_stays_bounded_in_both_modes() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config = |mode: &str| {
        format!(
            r#"{{"mode":"{mode}","rules":[{{"name":"ip","key":["remote_address"],"max_tokens":5,"fill_interval":"1h","max_keys":100}}]}}"#
        )
    };
    let mut local = limiter(&config("local"));
    let mut global = limiter(&config("shared"));
    for client in 0..100_000u32 {
        host.source = Some(IpAddr::from(client.to_be_bytes()));
        host.now += 1_000;
        assert!(allowed(local.check(&NO_HEADERS, &mut host)));
        assert!(allowed(global.check(&NO_HEADERS, &mut host)));
    }
    assert_eq!(local.keys_held(0), 100);
    assert!(global.keys_held(0) <= 100);
    assert!(shared.borrow().entries.len() <= 100, "shared entries: {}", shared.borrow().entries.len());
    // Local: 99,900 dropped for room; shared: displaced slots are counted too.
    assert!(host.count_of(0, Metric::Evictions) >= 99_900 + 99_000, "{}", host.count_of(0, Metric::Evictions));
}

#[test]
fn a_key_is_found_again_after_its_home_slot_was_taken() {
    let shared = RefCell::new(SharedData::default());
    let mut host = Fake::new(&shared);
    let config = r#"{"mode":"shared","rules":[{"name":"ip","key":["remote_address"],"max_tokens":2,"fill_interval":"1h","max_keys":4}]}"#;
    // Fresh workers (no slot hint) must find each key by probing.
    let clients = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
    for client in clients {
        host.from(client);
        assert!(allowed(limiter(config).check(&NO_HEADERS, &mut host)));
    }
    for client in clients {
        host.from(client);
        assert!(allowed(limiter(config).check(&NO_HEADERS, &mut host)), "{client} second token");
        assert!(!allowed(limiter(config).check(&NO_HEADERS, &mut host)), "{client} exhausted");
    }
    assert_eq!(host.count_of(0, Metric::Evictions), 0, "four keys fit four slots");
}
