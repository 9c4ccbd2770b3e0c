//! The per-request decision: which request ID the stream carries, and what happens to the
//! trace context. Pure: randomness and time come in through [`IdSource`].

use crate::config::{IdFormat, Policy, TraceparentMode};
use crate::id::{self, Rejection};
use crate::traceparent::{self, TRACEPARENT, TRACESTATE};

/// Where generated IDs get their randomness and time from (the host in the stage, fixed values
/// in tests).
pub trait IdSource {
    /// 16 random bytes; called at most once per request.
    fn random_bytes(&mut self) -> [u8; 16];
    /// Current Unix time in milliseconds; called only for ULIDs.
    fn unix_millis(&mut self) -> u64;
}

/// What happened to the incoming request ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdOutcome {
    /// A valid incoming ID is used as is; the request header is not rewritten.
    Kept,
    /// There was none; a new one was generated.
    Generated,
    /// The incoming value was refused and replaced by a generated one.
    Replaced {
        /// The refused value (repeated headers joined with `, `), for the audit line.
        original: Vec<u8>,
        /// Why it was refused.
        reason: Rejection,
    },
}

/// What happens to `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceOutcome {
    /// `traceparent: off`: not looked at.
    Off,
    /// A valid one is kept.
    Kept,
    /// There was none; this one is set.
    Created(String),
    /// An invalid (or repeated) one is replaced by `traceparent`.
    Replaced {
        /// The refused value (repeated headers joined with `, `), for the audit line.
        original: Vec<u8>,
        /// The new value.
        traceparent: String,
    },
}

/// Everything the stage has to do for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The stream's request ID (validated or generated, so safe in headers and logs).
    pub request_id: String,
    /// What happened to the incoming ID.
    pub id: IdOutcome,
    /// What happens to `traceparent`.
    pub trace: TraceOutcome,
    /// Whether to remove `tracestate`: it belongs to a traceparent that is no longer there.
    pub drop_tracestate: bool,
}

/// Decides the request ID and trace context of a request with these `headers`.
pub fn decide<N: AsRef<str>, V: AsRef<[u8]>>(policy: &Policy, headers: &[(N, V)], source: &mut impl IdSource) -> Plan {
    let mut id_values: Vec<&[u8]> = Vec::new();
    let mut trace_values: Vec<&[u8]> = Vec::new();
    let mut has_tracestate = false;
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref());
        if name.eq_ignore_ascii_case(&policy.header) {
            id_values.push(value);
        } else if name.eq_ignore_ascii_case(TRACEPARENT) {
            trace_values.push(value);
        } else if name.eq_ignore_ascii_case(TRACESTATE) {
            has_tracestate = true;
        }
    }

    let (request_id, id) = match occurrence(&id_values) {
        Occurrence::Absent => (generate(policy.format, source), IdOutcome::Generated),
        Occurrence::One(value) => match id::validate(value, policy.max_length) {
            // Validated bytes are ASCII, so the byte-to-char mapping is exact.
            Ok(()) => (value.iter().map(|b| char::from(*b)).collect(), IdOutcome::Kept),
            Err(reason) => (generate(policy.format, source), IdOutcome::Replaced { original: value.to_vec(), reason }),
        },
        Occurrence::Repeated => (
            generate(policy.format, source),
            IdOutcome::Replaced { original: id_values.join(&b", "[..]), reason: Rejection::Repeated },
        ),
    };

    let trace = match policy.traceparent {
        TraceparentMode::Off => TraceOutcome::Off,
        TraceparentMode::Create => match occurrence(&trace_values) {
            Occurrence::One(value) if traceparent::is_valid(value) => TraceOutcome::Kept,
            Occurrence::Absent => TraceOutcome::Created(traceparent::derive(&request_id)),
            Occurrence::One(_) | Occurrence::Repeated => TraceOutcome::Replaced {
                original: trace_values.join(&b", "[..]),
                traceparent: traceparent::derive(&request_id),
            },
        },
    };
    let drop_tracestate = has_tracestate && matches!(trace, TraceOutcome::Created(_) | TraceOutcome::Replaced { .. });

    Plan { request_id, id, trace, drop_tracestate }
}

/// How often a header appeared.
enum Occurrence<'a> {
    Absent,
    One(&'a [u8]),
    /// More than once: ambiguous, since proxies and services may pick different ones.
    Repeated,
}

fn occurrence<'a>(values: &[&'a [u8]]) -> Occurrence<'a> {
    match values {
        [] => Occurrence::Absent,
        [value] => Occurrence::One(value),
        _ => Occurrence::Repeated,
    }
}

fn generate(format: IdFormat, source: &mut impl IdSource) -> String {
    let random = source.random_bytes();
    match format {
        IdFormat::Uuid4 => id::uuid4(random),
        IdFormat::Ulid => id::ulid(source.unix_millis(), random),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts draws so tests can check randomness is only spent when needed.
    struct FixedSource {
        random: [u8; 16],
        millis: u64,
        draws: usize,
        clock_reads: usize,
    }

    impl FixedSource {
        fn new() -> Self {
            Self { random: *b"0123456789abcdef", millis: 1_700_000_000_000, draws: 0, clock_reads: 0 }
        }
    }

    impl IdSource for FixedSource {
        fn random_bytes(&mut self) -> [u8; 16] {
            self.draws += 1;
            self.random
        }
        fn unix_millis(&mut self) -> u64 {
            self.clock_reads += 1;
            self.millis
        }
    }

    fn headers(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_vec())).collect()
    }

    fn policy(json: &str) -> Policy {
        Policy::from_json(json.as_bytes()).unwrap()
    }

    const VALID_TRACEPARENT: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_id_is_kept_without_randomness() {
        let mut source = FixedSource::new();
        let plan = decide(
            &policy("{}"),
            &headers(&[("x-request-id", b"abc-123"), ("traceparent", VALID_TRACEPARENT)]),
            &mut source,
        );
        assert_eq!(plan.request_id, "abc-123");
        assert_eq!(plan.id, IdOutcome::Kept);
        assert_eq!(plan.trace, TraceOutcome::Kept);
        assert!(!plan.drop_tracestate);
        assert_eq!(source.draws, 0);
        assert_eq!(source.clock_reads, 0);
    }

    #[test]
    fn header_name_is_matched_case_insensitively() {
        let plan = decide(&policy("{}"), &headers(&[("X-Request-ID", b"abc-123")]), &mut FixedSource::new());
        assert_eq!(plan.id, IdOutcome::Kept);
        assert_eq!(plan.request_id, "abc-123");
    }

    #[test]
    fn missing_id_is_generated_as_uuid4() {
        let mut source = FixedSource::new();
        let plan = decide(&policy("{}"), &headers(&[]), &mut source);
        assert_eq!(plan.id, IdOutcome::Generated);
        assert_eq!(plan.request_id, id::uuid4(*b"0123456789abcdef"));
        assert_eq!(source.draws, 1);
        assert_eq!(source.clock_reads, 0);
    }

    #[test]
    fn missing_id_is_generated_as_ulid() {
        let mut source = FixedSource::new();
        let plan = decide(&policy(r#"{"format":"ulid"}"#), &headers(&[]), &mut source);
        assert_eq!(plan.request_id, id::ulid(1_700_000_000_000, *b"0123456789abcdef"));
        assert_eq!(plan.request_id.len(), 26);
        assert_eq!((source.draws, source.clock_reads), (1, 1));
    }

    #[test]
    fn crlf_id_is_replaced_and_kept_for_the_audit() {
        let plan =
            decide(&policy("{}"), &headers(&[("x-request-id", b"abc\r\nX-Injected: 1")]), &mut FixedSource::new());
        assert_eq!(
            plan.id,
            IdOutcome::Replaced { original: b"abc\r\nX-Injected: 1".to_vec(), reason: Rejection::IllegalCharacter }
        );
        assert_eq!(plan.request_id.len(), 36);
    }

    #[test]
    fn overlong_id_is_replaced() {
        let huge = vec![b'a'; 4096];
        let plan = decide(&policy("{}"), &headers(&[("x-request-id", &huge)]), &mut FixedSource::new());
        assert!(matches!(
            plan.id,
            IdOutcome::Replaced { ref original, reason: Rejection::TooLong } if original.len() == 4096
        ));
    }

    #[test]
    fn custom_max_length_applies() {
        let id = vec![b'a'; 37];
        let plan = decide(&policy(r#"{"max_length":36}"#), &headers(&[("x-request-id", &id)]), &mut FixedSource::new());
        assert!(matches!(plan.id, IdOutcome::Replaced { reason: Rejection::TooLong, .. }));
        let plan =
            decide(&policy(r#"{"max_length":36}"#), &headers(&[("x-request-id", &id[..36])]), &mut FixedSource::new());
        assert_eq!(plan.id, IdOutcome::Kept);
    }

    #[test]
    fn empty_id_is_replaced() {
        let plan = decide(&policy("{}"), &headers(&[("x-request-id", b"")]), &mut FixedSource::new());
        assert_eq!(plan.id, IdOutcome::Replaced { original: Vec::new(), reason: Rejection::Empty });
    }

    #[test]
    fn repeated_id_is_replaced_even_when_each_is_valid() {
        let plan = decide(
            &policy("{}"),
            &headers(&[("x-request-id", b"one"), ("X-Request-Id", b"two")]),
            &mut FixedSource::new(),
        );
        assert_eq!(plan.id, IdOutcome::Replaced { original: b"one, two".to_vec(), reason: Rejection::Repeated });
        assert_ne!(plan.request_id, "one");
    }

    #[test]
    fn custom_header_is_read_and_default_ignored() {
        let plan = decide(
            &policy(r#"{"header":"x-correlation-id"}"#),
            &headers(&[("x-request-id", b"ignored"), ("x-correlation-id", b"corr-1")]),
            &mut FixedSource::new(),
        );
        assert_eq!(plan.request_id, "corr-1");
        assert_eq!(plan.id, IdOutcome::Kept);
    }

    #[test]
    fn missing_traceparent_is_created_from_the_id() {
        let plan = decide(
            &policy("{}"),
            &headers(&[("x-request-id", b"4bf92f35-77b3-4da6-a3ce-929d0e0e4736")]),
            &mut FixedSource::new(),
        );
        let TraceOutcome::Created(value) = &plan.trace else { panic!("{:?}", plan.trace) };
        assert!(value.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(traceparent::is_valid(value.as_bytes()));
    }

    #[test]
    fn generated_id_and_created_traceparent_agree() {
        let plan = decide(&policy("{}"), &headers(&[]), &mut FixedSource::new());
        let TraceOutcome::Created(value) = &plan.trace else { panic!("{:?}", plan.trace) };
        let trace_id = plan.request_id.replace('-', "");
        assert_eq!(&value[3..35], trace_id);
    }

    #[test]
    fn invalid_traceparent_is_replaced_and_tracestate_dropped() {
        let plan = decide(
            &policy("{}"),
            &headers(&[
                ("x-request-id", b"abc"),
                ("traceparent", b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
                ("tracestate", b"vendor=1"),
            ]),
            &mut FixedSource::new(),
        );
        assert_eq!(
            plan.trace,
            TraceOutcome::Replaced {
                original: b"00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_vec(),
                traceparent: traceparent::derive("abc"),
            }
        );
        assert!(plan.drop_tracestate);
    }

    #[test]
    fn repeated_traceparent_is_replaced() {
        let plan = decide(
            &policy("{}"),
            &headers(&[("traceparent", VALID_TRACEPARENT), ("traceparent", VALID_TRACEPARENT)]),
            &mut FixedSource::new(),
        );
        assert!(matches!(plan.trace, TraceOutcome::Replaced { .. }));
        assert!(!plan.drop_tracestate);
    }

    #[test]
    fn orphan_tracestate_is_dropped_when_creating() {
        let plan = decide(&policy("{}"), &headers(&[("tracestate", b"vendor=1")]), &mut FixedSource::new());
        assert!(matches!(plan.trace, TraceOutcome::Created(_)));
        assert!(plan.drop_tracestate);
    }

    #[test]
    fn tracestate_of_a_kept_traceparent_stays() {
        let plan = decide(
            &policy("{}"),
            &headers(&[("traceparent", VALID_TRACEPARENT), ("tracestate", b"v=1")]),
            &mut FixedSource::new(),
        );
        assert_eq!(plan.trace, TraceOutcome::Kept);
        assert!(!plan.drop_tracestate);
    }

    #[test]
    fn traceparent_off_touches_nothing() {
        let plan = decide(
            &policy(r#"{"traceparent":"off"}"#),
            &headers(&[("traceparent", b"garbage"), ("tracestate", b"v=1")]),
            &mut FixedSource::new(),
        );
        assert_eq!(plan.trace, TraceOutcome::Off);
        assert!(!plan.drop_tracestate);
    }
}
