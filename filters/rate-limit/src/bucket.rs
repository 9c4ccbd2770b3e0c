//! Token-bucket arithmetic, computed lazily from the clock: no timer per key.
//!
//! Like Envoy's `local_ratelimit`, a bucket holds at most `max_tokens` and gains `tokens_per_fill`
//! at each `fill_interval` boundary. Instead of a timer, the fills that happened since the
//! bucket was last looked at are added when it is looked at again. Fill boundaries are counted
//! from the moment the bucket was created (a bucket that has refilled to full is dropped
//! without loss, see [`BucketSpec::idle_nanos`]).

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The state of one key's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens left.
    pub tokens: u64,
    /// Time of the last fill boundary, in nanoseconds since the Unix epoch.
    pub last_fill: u64,
}

/// The parameters of a rule's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSpec {
    max_tokens: u64,
    tokens_per_fill: u64,
    fill_interval: u64,
}

impl BucketSpec {
    /// A bucket of `max_tokens` gaining `tokens_per_fill` every `fill_interval` nanoseconds
    /// (every argument at least 1).
    pub fn new(max_tokens: u64, tokens_per_fill: u64, fill_interval: u64) -> Self {
        Self {
            max_tokens: max_tokens.max(1),
            tokens_per_fill: tokens_per_fill.max(1),
            fill_interval: fill_interval.max(1),
        }
    }

    /// The bucket size.
    pub fn max_tokens(&self) -> u64 {
        self.max_tokens
    }

    /// The fill interval in nanoseconds.
    pub fn fill_interval_nanos(&self) -> u64 {
        self.fill_interval
    }

    /// A new, full bucket.
    pub fn full(&self, now: u64) -> Bucket {
        Bucket { tokens: self.max_tokens, last_fill: now }
    }

    /// `bucket` with the fills that happened up to `now` added. A clock that went back adds
    /// nothing (and the bucket keeps its boundary).
    pub fn refill(&self, bucket: Bucket, now: u64) -> Bucket {
        if now <= bucket.last_fill {
            return bucket;
        }
        let fills = (now - bucket.last_fill) / self.fill_interval;
        if fills == 0 {
            return bucket;
        }
        let tokens = bucket.tokens.saturating_add(fills.saturating_mul(self.tokens_per_fill)).min(self.max_tokens);
        // fills * fill_interval <= now - last_fill, so this cannot overflow.
        Bucket { tokens, last_fill: bucket.last_fill + fills * self.fill_interval }
    }

    /// Nanoseconds from `now` until the next fill of a refilled bucket: in (0, fill_interval].
    pub fn nanos_to_next_fill(&self, bucket: Bucket, now: u64) -> u64 {
        bucket.last_fill.saturating_add(self.fill_interval).saturating_sub(now).clamp(1, self.fill_interval)
    }

    /// Whole seconds until the next fill, rounded up, at least 1: `Retry-After` and the reset
    /// of the rate-limit headers (the next fill is when the next request can pass).
    pub fn seconds_to_next_fill(&self, bucket: Bucket, now: u64) -> u64 {
        self.nanos_to_next_fill(bucket, now).div_ceil(NANOS_PER_SECOND).max(1)
    }

    /// How long a key must stay untouched before it is dropped: the time an empty bucket takes
    /// to fill up again, so an idle key is dropped only once its bucket is full again and
    /// dropping it loses nothing (a returning key gets the same full bucket it would have had).
    pub fn idle_nanos(&self) -> u64 {
        self.max_tokens.div_ceil(self.tokens_per_fill).saturating_mul(self.fill_interval)
    }

    /// The window of the `RateLimit-Policy` header, in whole seconds (at least 1): the time an
    /// empty bucket takes to fill up again, so the policy reads "`max_tokens` per window".
    pub fn window_seconds(&self) -> u64 {
        self.idle_nanos().div_ceil(NANOS_PER_SECOND).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = NANOS_PER_SECOND;
    const T0: u64 = 1_767_225_600 * SECOND;

    #[test]
    fn new_bucket_is_full() {
        let spec = BucketSpec::new(5, 1, SECOND);
        assert_eq!(spec.full(T0), Bucket { tokens: 5, last_fill: T0 });
    }

    #[test]
    fn refill_adds_whole_fills_only() {
        let spec = BucketSpec::new(10, 2, SECOND);
        let empty = Bucket { tokens: 0, last_fill: T0 };
        assert_eq!(spec.refill(empty, T0 + SECOND - 1), empty, "no boundary crossed yet");
        assert_eq!(spec.refill(empty, T0 + SECOND), Bucket { tokens: 2, last_fill: T0 + SECOND });
        assert_eq!(spec.refill(empty, T0 + 3 * SECOND + 500), Bucket { tokens: 6, last_fill: T0 + 3 * SECOND });
    }

    #[test]
    fn refill_is_capped_at_max_tokens() {
        let spec = BucketSpec::new(10, 2, SECOND);
        let refilled = spec.refill(Bucket { tokens: 9, last_fill: T0 }, T0 + 100 * SECOND);
        assert_eq!(refilled.tokens, 10);
        assert_eq!(refilled.last_fill, T0 + 100 * SECOND);
    }

    #[test]
    fn refill_in_steps_equals_refill_at_once() {
        let spec = BucketSpec::new(100, 3, 250_000_000);
        let start = Bucket { tokens: 0, last_fill: T0 };
        let mut stepped = start;
        for step in 1..=37u64 {
            stepped = spec.refill(stepped, T0 + step * 90_000_000);
        }
        assert_eq!(stepped, spec.refill(start, T0 + 37 * 90_000_000));
    }

    #[test]
    fn clock_going_back_adds_nothing() {
        let spec = BucketSpec::new(10, 1, SECOND);
        let bucket = Bucket { tokens: 3, last_fill: T0 };
        assert_eq!(spec.refill(bucket, T0 - 5 * SECOND), bucket);
        assert_eq!(spec.seconds_to_next_fill(bucket, T0 - 5 * SECOND), 1, "capped at one interval");
    }

    #[test]
    fn huge_gaps_do_not_overflow() {
        let spec = BucketSpec::new(u64::from(u32::MAX), u64::from(u32::MAX), 1);
        let refilled = spec.refill(Bucket { tokens: 0, last_fill: 0 }, u64::MAX);
        assert_eq!(refilled.tokens, u64::from(u32::MAX));
        assert_eq!(refilled.last_fill, u64::MAX);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let spec = BucketSpec::new(1, 1, 60 * SECOND);
        let bucket = Bucket { tokens: 0, last_fill: T0 };
        assert_eq!(spec.seconds_to_next_fill(bucket, T0), 60);
        assert_eq!(spec.seconds_to_next_fill(bucket, T0 + 30 * SECOND), 30);
        assert_eq!(spec.seconds_to_next_fill(bucket, T0 + 30 * SECOND + 1), 30);
        assert_eq!(spec.seconds_to_next_fill(bucket, T0 + 59 * SECOND + 1), 1);
        let fast = BucketSpec::new(1, 1, 100_000_000);
        assert_eq!(fast.seconds_to_next_fill(bucket, T0), 1, "sub-second intervals say 1");
    }

    #[test]
    fn idle_time_is_the_time_to_fill_up_from_empty() {
        assert_eq!(BucketSpec::new(10, 3, SECOND).idle_nanos(), 4 * SECOND);
        assert_eq!(BucketSpec::new(10, 10, 60 * SECOND).idle_nanos(), 60 * SECOND);
        assert_eq!(BucketSpec::new(10, 3, SECOND).window_seconds(), 4);
        assert_eq!(BucketSpec::new(5, 5, 100_000_000).window_seconds(), 1);
        // After idle_nanos an empty bucket is full again: dropping it loses nothing.
        let spec = BucketSpec::new(10, 3, SECOND);
        assert_eq!(spec.refill(Bucket { tokens: 0, last_fill: T0 }, T0 + spec.idle_nanos()).tokens, 10);
    }
}
