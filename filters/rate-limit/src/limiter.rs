//! The per-request decision: every matching rule's bucket is checked; any exhausted enforced
//! bucket rejects; otherwise one token is taken from each. Also the eviction tick.
//!
//! The core never calls the host directly: time, the source address, shared data, metrics and
//! log lines go through [`Host`], which the Proxy-Wasm shell implements with hostcalls and the
//! tests implement in memory.
//!
//! A rejected request takes no token from any bucket (local mode gives back what it took from
//! earlier rules; shared mode writes nothing until every rule has answered), so a client held
//! back by one rule does not also drain the others (a per-user limit would otherwise eat the
//! global ceiling of everybody).

use crate::bucket::Bucket;
use crate::config::{ContentionPolicy, Mode, Policy, Rule};
use crate::key::{MISSING_KEY_HASH, MissingKeyPolicy, RequestFacts, key_hash, key_text};
use crate::request::Request;
use crate::shared::{PROBES, SlotValue, slot_name, slot_of};
use crate::store::KeyStore;
use std::rc::Rc;

/// Most keys evicted per rule and tick (each costs two hostcalls in shared mode); the rest
/// wait for the next tick.
pub const MAX_EVICTIONS_PER_TICK: u32 = 10_000;

/// Per-rule counters (see the crate README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// A request this rule let through (and that was forwarded).
    Allowed,
    /// A request this rule rejected.
    Limited,
    /// A request this shadow rule would have rejected.
    ShadowLimited,
    /// A request missing a key part of this rule.
    MissingKey,
    /// A lost compare-and-swap race, retried (shared mode).
    CasRetries,
    /// A request that found no way to update the bucket (`on_contention` applied).
    Contention,
    /// A key dropped from the rule's memory (idle on a tick, or least recently used when full).
    Evictions,
}

/// What reading a shared-data entry gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedRead {
    /// The value and its compare-and-swap token.
    Found {
        /// The value.
        value: Vec<u8>,
        /// Its CAS token.
        cas: u32,
    },
    /// Never written.
    NotFound,
    /// The host failed with this status.
    Failed(u32),
}

/// What writing a shared-data entry gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedWrite {
    /// Written.
    Done,
    /// Someone wrote it since it was read.
    CasMismatch,
    /// The host failed with this status.
    Failed(u32),
}

/// Why a request was (or in shadow mode would have been) limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReason {
    /// The bucket is empty.
    Exhausted,
    /// A key part is missing and the rule says `reject`.
    MissingKey,
    /// The shared bucket could not be updated and `on_contention` is `deny`.
    Contention,
}

impl LimitReason {
    /// The log form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exhausted => "exhausted",
            Self::MissingKey => "missing_key",
            Self::Contention => "contention",
        }
    }
}

/// One rejection log line (at most one per key, rule and fill interval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitedEvent {
    /// Index of the rule.
    pub rule: usize,
    /// Name of the rule.
    pub rule_name: String,
    /// Why.
    pub reason: LimitReason,
    /// The key, escaped and quoted.
    pub key: String,
    /// Seconds until the next fill (`None` when waiting does not help).
    pub retry_after: Option<u64>,
    /// Whether the rule is in shadow mode (the request was not rejected for it).
    pub shadow: bool,
    /// Limited requests of this key not logged since the previous line.
    pub suppressed: u32,
}

/// What the host provides to the core.
pub trait Host: RequestFacts {
    /// Now, in nanoseconds since the Unix epoch.
    fn now(&mut self) -> u64;
    /// Reads a shared-data entry.
    fn shared_get(&mut self, key: &str) -> SharedRead;
    /// Writes a shared-data entry if its CAS token is still `cas` (0: unconditionally).
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> SharedWrite;
    /// Adds `by` to a rule's counter.
    fn count(&mut self, rule: usize, metric: Metric, by: u64);
    /// Logs a limited request.
    fn log_limited(&mut self, event: &LimitedEvent);
}

/// The remaining budget of the most restrictive rule, for the rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Index of the rule.
    pub rule: usize,
    /// Tokens left.
    pub remaining: u64,
    /// Seconds until the next fill.
    pub reset_seconds: u64,
}

/// The decision about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it; the budget is there when the policy wants headers on allowed requests.
    Allow(Option<Budget>),
    /// Answer with the policy's status.
    Reject {
        /// For the rate-limit headers: the rule with the longest wait.
        budget: Option<Budget>,
        /// `Retry-After` in seconds; `None` when waiting does not help (missing key).
        retry_after: Option<u64>,
    },
}

/// Per-key state kept in the worker: the bucket (local mode) or the slot it was last found in
/// (shared mode), and the log throttle.
#[derive(Debug, Clone, Copy)]
struct KeyState {
    bucket: Bucket,
    slot: u32,
    logged_epoch: u64,
    suppressed: u32,
}

const NO_SLOT: u32 = u32::MAX;

impl KeyState {
    fn new(bucket: Bucket) -> Self {
        Self { bucket, slot: NO_SLOT, logged_epoch: u64::MAX, suppressed: 0 }
    }
}

/// A shared slot read for one key.
#[derive(Debug, Clone, Copy)]
struct SlotRead {
    slot: u32,
    cas: u32,
    /// The key's bucket, refilled to now (a new full one for a key not found).
    bucket: Bucket,
    /// Whether taking the slot drops another key's active bucket.
    displaces: bool,
}

/// A shared-mode rule waiting for its write.
#[derive(Debug, Clone, Copy)]
struct PendingWrite {
    rule: usize,
    key: u64,
    read: SlotRead,
}

/// The accumulated rejection of one request.
#[derive(Debug, Default)]
struct Outcome {
    rejected: bool,
    retry_after: Option<u64>,
    budget: Option<Budget>,
}

impl Outcome {
    /// Records an enforced rule's rejection; the longest wait wins the headers. A rejection
    /// without a wait (missing key) carries no budget.
    fn reject(&mut self, rule: usize, retry_after: Option<u64>) {
        if !self.rejected {
            // A budget offered by a rule that passed is not what a rejection reports.
            self.budget = None;
        }
        self.rejected = true;
        if let Some(seconds) = retry_after
            && self.retry_after.is_none_or(|current| seconds > current)
        {
            self.retry_after = Some(seconds);
            self.budget = Some(Budget { rule, remaining: 0, reset_seconds: seconds });
        }
    }

    /// Keeps the budget of the enforced rule with the fewest tokens left.
    fn offer_budget(&mut self, budget: Budget) {
        if self.budget.is_none_or(|current| budget.remaining < current.remaining) {
            self.budget = Some(budget);
        }
    }

    fn verdict(self) -> Verdict {
        if self.rejected {
            Verdict::Reject { budget: self.budget, retry_after: self.retry_after }
        } else {
            Verdict::Allow(self.budget)
        }
    }
}

/// The limiter of one worker (one per root context).
#[derive(Debug)]
pub struct Limiter {
    policy: Rc<Policy>,
    stores: Vec<KeyStore<KeyState>>,
    /// Prefix of the shared-data names, e.g. `wasm_shield.rate_limit/<plugin>/`.
    namespace: String,
    /// Reused for shared-data names.
    name: String,
}

impl Limiter {
    /// A limiter for `policy`; `namespace` prefixes shared-data names (per plugin), `seed`
    /// keys the in-memory index.
    pub fn new(policy: Rc<Policy>, namespace: String, seed: u64) -> Self {
        let stores = policy.rules.iter().map(|rule| KeyStore::new(rule.max_keys, seed)).collect();
        Self { policy, stores, namespace, name: String::new() }
    }

    /// The policy.
    pub fn policy(&self) -> &Rc<Policy> {
        &self.policy
    }

    /// Keys held in this worker's memory for rule `rule`.
    pub fn keys_held(&self, rule: usize) -> usize {
        self.stores.get(rule).map_or(0, KeyStore::len)
    }

    /// Decides about a request.
    pub fn check<H: Host>(&mut self, request: &Request<'_>, host: &mut H) -> Verdict {
        let policy = Rc::clone(&self.policy);
        match policy.mode {
            Mode::Local => self.check_local(&policy, request, host),
            Mode::Shared => self.check_shared(&policy, request, host),
        }
    }

    /// The key of `rule` for the request, after the missing-key policy: `None` = skip the rule;
    /// `Some((hash, true))` = reject for the missing key.
    fn rule_key<H: Host>(index: usize, rule: &Rule, request: &Request<'_>, host: &mut H) -> Option<(u64, bool)> {
        if let Some(hash) = key_hash(&rule.key, request, host) {
            return Some((hash, false));
        }
        host.count(index, Metric::MissingKey, 1);
        match rule.on_missing_key {
            MissingKeyPolicy::Skip => None,
            MissingKeyPolicy::OwnBucket => Some((MISSING_KEY_HASH, false)),
            MissingKeyPolicy::Reject => Some((MISSING_KEY_HASH, true)),
        }
    }

    fn check_local<H: Host>(&mut self, policy: &Policy, request: &Request<'_>, host: &mut H) -> Verdict {
        let mut now = None;
        let mut outcome = Outcome::default();
        // Rules that took a token: given back if the request is rejected.
        let mut taken = [(0usize, 0u64); crate::config::MAX_RULES];
        let mut taken_count = 0;
        for (index, rule) in policy.rules.iter().enumerate() {
            if !rule.matcher.matches(request) {
                continue;
            }
            let now = *now.get_or_insert_with(|| host.now());
            let Some((key, reject_missing)) = Self::rule_key(index, rule, request, host) else { continue };
            let Some(store) = self.stores.get_mut(index) else { continue };
            let (state, evicted) = store.get_or_insert_with(key, now, || KeyState::new(rule.bucket.full(now)));
            if evicted.is_some() {
                host.count(index, Metric::Evictions, 1);
            }
            let Some(state) = state else { continue };
            if reject_missing {
                note_limited(index, rule, state, now, LimitReason::MissingKey, None, request, host, &mut outcome);
                continue;
            }
            state.bucket = rule.bucket.refill(state.bucket, now);
            if state.bucket.tokens == 0 {
                let retry_after = rule.bucket.seconds_to_next_fill(state.bucket, now);
                note_limited(
                    index,
                    rule,
                    state,
                    now,
                    LimitReason::Exhausted,
                    Some(retry_after),
                    request,
                    host,
                    &mut outcome,
                );
            } else if !outcome.rejected {
                state.bucket.tokens -= 1;
                if let Some(slot) = taken.get_mut(taken_count) {
                    *slot = (index, key);
                    taken_count += 1;
                }
                if policy.headers_on_allowed && !rule.shadow {
                    outcome.offer_budget(Budget {
                        rule: index,
                        remaining: state.bucket.tokens,
                        reset_seconds: rule.bucket.seconds_to_next_fill(state.bucket, now),
                    });
                }
            }
        }
        let taken = taken.get(..taken_count).unwrap_or_default();
        if outcome.rejected {
            let now = now.unwrap_or_default();
            for &(index, key) in taken {
                let (Some(store), Some(rule)) = (self.stores.get_mut(index), policy.rules.get(index)) else { continue };
                if let Some(state) = store.get_mut(key, now) {
                    state.bucket.tokens = (state.bucket.tokens + 1).min(rule.bucket.max_tokens());
                }
            }
        } else {
            for &(index, _) in taken {
                host.count(index, Metric::Allowed, 1);
            }
        }
        outcome.verdict()
    }

    fn check_shared<H: Host>(&mut self, policy: &Policy, request: &Request<'_>, host: &mut H) -> Verdict {
        let mut now = None;
        let mut outcome = Outcome::default();
        // Rules waiting for their write (no allocation: at most MAX_RULES).
        let mut pending = [None::<PendingWrite>; crate::config::MAX_RULES];
        let mut pending_count = 0;
        for (index, rule) in policy.rules.iter().enumerate() {
            if !rule.matcher.matches(request) {
                continue;
            }
            let now = *now.get_or_insert_with(|| host.now());
            let Some((key, reject_missing)) = Self::rule_key(index, rule, request, host) else { continue };
            let Some(store) = self.stores.get_mut(index) else { continue };
            // The worker's index of the key: where its slot was, and the log throttle.
            let (state, _) = store.get_or_insert_with(key, now, || KeyState::new(rule.bucket.full(now)));
            let Some(state) = state else { continue };
            if reject_missing {
                note_limited(index, rule, state, now, LimitReason::MissingKey, None, request, host, &mut outcome);
                continue;
            }
            let hint = state.slot;
            let read = match read_slot(&mut self.name, &self.namespace, rule, key, hint, now, host) {
                Ok(read) => read,
                Err(status) => {
                    contention(index, rule, policy, status, request, host, &mut outcome, &mut self.stores, key, now);
                    continue;
                }
            };
            let state = self.stores.get_mut(index).and_then(|store| store.get_mut(key, now));
            if read.bucket.tokens == 0 {
                let retry_after = rule.bucket.seconds_to_next_fill(read.bucket, now);
                match state {
                    Some(state) => {
                        state.slot = read.slot;
                        let reason = LimitReason::Exhausted;
                        note_limited(index, rule, state, now, reason, Some(retry_after), request, host, &mut outcome);
                    }
                    None if !rule.shadow => outcome.reject(index, Some(retry_after)),
                    None => {}
                }
                continue;
            }
            if let Some(state) = state {
                state.slot = read.slot;
            }
            if !outcome.rejected
                && let Some(slot) = pending.get_mut(pending_count)
            {
                *slot = Some(PendingWrite { rule: index, key, read });
                pending_count += 1;
            }
        }
        if outcome.rejected {
            return outcome.verdict();
        }
        let now = now.unwrap_or_default();
        let mut committed: u32 = 0;
        for write in pending.into_iter().take(pending_count).flatten() {
            let Some(rule) = policy.rules.get(write.rule) else { continue };
            if self.commit(policy, rule, write, now, request, host, &mut outcome) {
                committed |= 1 << write.rule;
            }
            if outcome.rejected {
                // Lost a race to an empty bucket: the request is rejected; tokens already
                // written for earlier rules stay taken (see README, accuracy).
                break;
            }
        }
        if !outcome.rejected {
            for index in 0..policy.rules.len() {
                if committed & (1 << index) != 0 {
                    host.count(index, Metric::Allowed, 1);
                }
            }
        }
        outcome.verdict()
    }

    /// Takes one token from a shared bucket with compare-and-swap, retrying lost races. Returns
    /// whether the token was taken.
    #[allow(clippy::too_many_arguments)]
    fn commit<H: Host>(
        &mut self,
        policy: &Policy,
        rule: &Rule,
        write: PendingWrite,
        now: u64,
        request: &Request<'_>,
        host: &mut H,
        outcome: &mut Outcome,
    ) -> bool {
        let mut read = write.read;
        let mut attempt = 1;
        loop {
            let mut bucket = read.bucket;
            bucket.tokens = bucket.tokens.saturating_sub(1);
            let value = SlotValue { key: write.key, bucket, last_seen: now }.encode();
            slot_name(&mut self.name, &self.namespace, &rule.name, read.slot);
            match host.shared_set(&self.name, &value, read.cas) {
                SharedWrite::Done => {
                    if read.displaces {
                        host.count(write.rule, Metric::Evictions, 1);
                    }
                    if let Some(state) = self.stores.get_mut(write.rule).and_then(|store| store.get_mut(write.key, now))
                    {
                        state.slot = read.slot;
                    }
                    if policy.headers_on_allowed && !rule.shadow {
                        outcome.offer_budget(Budget {
                            rule: write.rule,
                            remaining: bucket.tokens,
                            reset_seconds: rule.bucket.seconds_to_next_fill(bucket, now),
                        });
                    }
                    return true;
                }
                SharedWrite::CasMismatch => {
                    host.count(write.rule, Metric::CasRetries, 1);
                    if attempt >= policy.cas_attempts {
                        contention(
                            write.rule,
                            rule,
                            policy,
                            0,
                            request,
                            host,
                            outcome,
                            &mut self.stores,
                            write.key,
                            now,
                        );
                        return false;
                    }
                    attempt += 1;
                    match read_slot(&mut self.name, &self.namespace, rule, write.key, read.slot, now, host) {
                        Ok(fresh) if fresh.bucket.tokens == 0 => {
                            let retry_after = rule.bucket.seconds_to_next_fill(fresh.bucket, now);
                            if let Some(state) =
                                self.stores.get_mut(write.rule).and_then(|store| store.get_mut(write.key, now))
                            {
                                note_limited(
                                    write.rule,
                                    rule,
                                    state,
                                    now,
                                    LimitReason::Exhausted,
                                    Some(retry_after),
                                    request,
                                    host,
                                    outcome,
                                );
                            }
                            return false;
                        }
                        Ok(fresh) => read = fresh,
                        Err(status) => {
                            contention(
                                write.rule,
                                rule,
                                policy,
                                status,
                                request,
                                host,
                                outcome,
                                &mut self.stores,
                                write.key,
                                now,
                            );
                            return false;
                        }
                    }
                }
                SharedWrite::Failed(status) => {
                    contention(
                        write.rule,
                        rule,
                        policy,
                        status,
                        request,
                        host,
                        outcome,
                        &mut self.stores,
                        write.key,
                        now,
                    );
                    return false;
                }
            }
        }
    }

    /// The eviction tick: drops keys idle for as long as their bucket needs to fill up again
    /// (least recently used first, at most [`MAX_EVICTIONS_PER_TICK`] per rule). In shared
    /// mode the slot is emptied too, if no worker used it meanwhile.
    pub fn evict_idle<H: Host>(&mut self, host: &mut H) {
        let policy = Rc::clone(&self.policy);
        let now = host.now();
        for (index, (rule, store)) in policy.rules.iter().zip(self.stores.iter_mut()).enumerate() {
            let idle = rule.bucket.idle_nanos();
            let mut evicted_count = 0u64;
            for _ in 0..MAX_EVICTIONS_PER_TICK {
                let Some(evicted) = store.pop_idle(now, idle) else { break };
                match policy.mode {
                    Mode::Local => evicted_count += 1,
                    Mode::Shared => {
                        if evicted.value.slot == NO_SLOT {
                            continue;
                        }
                        slot_name(&mut self.name, &self.namespace, &rule.name, evicted.value.slot);
                        let SharedRead::Found { value, cas } = host.shared_get(&self.name) else { continue };
                        let still_idle = SlotValue::decode(&value)
                            .is_some_and(|slot| slot.key == evicted.key && slot.is_idle(&rule.bucket, now));
                        if still_idle && host.shared_set(&self.name, &[], cas) == SharedWrite::Done {
                            evicted_count += 1;
                        }
                    }
                }
            }
            host.count(index, Metric::Evictions, evicted_count);
        }
    }
}

/// Finds the slot of `key`: the hinted slot first (where this worker last saw it), then up to
/// [`PROBES`] slots from its home. A key not found gets the first free or idle slot, else
/// displaces the least recently used of the probed ones.
fn read_slot<H: Host>(
    name: &mut String,
    namespace: &str,
    rule: &Rule,
    key: u64,
    hint: u32,
    now: u64,
    host: &mut H,
) -> Result<SlotRead, u32> {
    let found = |slot: u32, cas: u32, value: SlotValue| SlotRead {
        slot,
        cas,
        bucket: rule.bucket.refill(value.bucket, now),
        displaces: false,
    };
    if hint != NO_SLOT {
        slot_name(name, namespace, &rule.name, hint);
        match host.shared_get(name) {
            SharedRead::Found { value, cas } => {
                if let Some(value) = SlotValue::decode(&value).filter(|value| value.key == key) {
                    return Ok(found(hint, cas, value));
                }
            }
            SharedRead::NotFound => {}
            SharedRead::Failed(status) => return Err(status),
        }
    }
    let mut free: Option<(u32, u32)> = None;
    let mut oldest: Option<(u32, u32, u64)> = None;
    for probe in 0..PROBES.min(rule.max_keys) {
        let slot = slot_of(key, probe, rule.max_keys);
        slot_name(name, namespace, &rule.name, slot);
        match host.shared_get(name) {
            SharedRead::Failed(status) => return Err(status),
            SharedRead::NotFound => {
                // Never written: no key was ever placed past it in this chain.
                free.get_or_insert((slot, 0));
                break;
            }
            SharedRead::Found { value, cas } => match SlotValue::decode(&value) {
                Some(value) if value.key == key => return Ok(found(slot, cas, value)),
                Some(value) if !value.is_idle(&rule.bucket, now) => {
                    if oldest.is_none_or(|(_, _, last_seen)| value.last_seen < last_seen) {
                        oldest = Some((slot, cas, value.last_seen));
                    }
                }
                _ => {
                    free.get_or_insert((slot, cas));
                }
            },
        }
    }
    let fresh = rule.bucket.full(now);
    match (free, oldest) {
        (Some((slot, cas)), _) => Ok(SlotRead { slot, cas, bucket: fresh, displaces: false }),
        (None, Some((slot, cas, _))) => Ok(SlotRead { slot, cas, bucket: fresh, displaces: true }),
        (None, None) => Err(0),
    }
}

/// Records a limited request for `rule`: counts it, rejects it unless the rule is in shadow
/// mode, and logs it once per key and fill interval (with the number of lines skipped).
#[allow(clippy::too_many_arguments)]
fn note_limited<H: Host>(
    index: usize,
    rule: &Rule,
    state: &mut KeyState,
    now: u64,
    reason: LimitReason,
    retry_after: Option<u64>,
    request: &Request<'_>,
    host: &mut H,
    outcome: &mut Outcome,
) {
    if rule.shadow {
        host.count(index, Metric::ShadowLimited, 1);
    } else {
        host.count(index, Metric::Limited, 1);
        outcome.reject(index, retry_after);
    }
    let epoch = now / rule.bucket.fill_interval_nanos();
    if state.logged_epoch == epoch {
        state.suppressed = state.suppressed.saturating_add(1);
        return;
    }
    let event = LimitedEvent {
        rule: index,
        rule_name: rule.name.clone(),
        reason,
        key: key_text(&rule.key, request, host),
        retry_after,
        shadow: rule.shadow,
        suppressed: state.suppressed,
    };
    host.log_limited(&event);
    state.logged_epoch = epoch;
    state.suppressed = 0;
}

/// A shared bucket that could not be read or updated: counted, and `on_contention` decides.
#[allow(clippy::too_many_arguments)]
fn contention<H: Host>(
    index: usize,
    rule: &Rule,
    policy: &Policy,
    _status: u32,
    request: &Request<'_>,
    host: &mut H,
    outcome: &mut Outcome,
    stores: &mut [KeyStore<KeyState>],
    key: u64,
    now: u64,
) {
    host.count(index, Metric::Contention, 1);
    if policy.on_contention == ContentionPolicy::Allow {
        return;
    }
    let Some(state) = stores.get_mut(index).and_then(|store| store.get_mut(key, now)) else {
        if !rule.shadow {
            outcome.reject(index, Some(1));
        }
        return;
    };
    note_limited(index, rule, state, now, LimitReason::Contention, Some(1), request, host, outcome);
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;
