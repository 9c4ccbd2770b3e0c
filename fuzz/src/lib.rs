//! The bodies of the fuzz targets, as plain functions: `cargo +nightly fuzz run <target>` calls
//! them from `fuzz_targets/<target>.rs` (libFuzzer), and the stable `tests/corpus.rs` calls them
//! over the seed corpus and mutated inputs, so `cargo test` keeps them compiling and passing.
//!
//! Every target feeds untrusted bytes to a pure core (no host) and checks the invariants that are
//! cheap to state: a panic, an overflow (debug builds) or a failed assertion is a finding.

pub mod seeds;

#[cfg(feature = "harness")]
pub mod harness;

use std::cell::RefCell;
use std::sync::OnceLock;

/// A target: its name (the `fuzz_targets/<name>.rs` binary and `corpus/<name>/` directory) and
/// its body.
pub struct Target {
    /// `fuzz_targets/<name>.rs`, `corpus/<name>/`.
    pub name: &'static str,
    /// The body.
    pub run: fn(&[u8]),
}

/// Every target whose body needs no built module, in the order `scripts/fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target { name: "jwt_token", run: jwt_token },
    Target { name: "jwks", run: jwks },
    Target { name: "waf_transform", run: waf_transform },
    Target { name: "waf_body", run: waf_body },
    Target { name: "forwarded_for", run: forwarded_for },
    Target { name: "cidr", run: cidr },
    Target { name: "request_id", run: request_id },
    Target { name: "config_header_strip", run: config_header_strip },
    Target { name: "config_request_id", run: config_request_id },
    Target { name: "config_jwt_auth", run: config_jwt_auth },
    Target { name: "config_rate_limit", run: config_rate_limit },
    Target { name: "config_waf", run: config_waf },
    Target { name: "config_shield", run: config_shield },
    Target { name: "kit_headers", run: kit_headers },
    Target { name: "fixture", run: fixture },
    Target { name: "waf_seclang", run: waf_seclang },
];

/// The full chain's jwt-auth configuration (envoy-configs/envoy/full-chain.yaml): the RS256 test
/// key inline, issuer and audience required.
pub const JWT_AUTH_CONFIG: &str = include_str!("../configs/jwt-auth.json");

/// A token valid for [`JWT_AUTH_CONFIG`] until 2100 (filters/jwt-auth/testdata/bench.token).
pub const VALID_TOKEN: &str = include_str!("../../filters/jwt-auth/testdata/bench.token");

thread_local! {
    /// One authenticator per thread, kept across inputs: its token cache sees every input.
    static AUTHENTICATOR: RefCell<jwt_auth::decision::Authenticator> = RefCell::new(
        match jwt_auth::config::Policy::from_json(JWT_AUTH_CONFIG.as_bytes()) {
            Ok(policy) => jwt_auth::decision::Authenticator::new(policy),
            Err(error) => panic!("fuzz/configs/jwt-auth.json: {error}"),
        },
    );
    /// The WAF with its built-in rules in block mode.
    static DEFAULT_WAF: waf::config::Policy = match waf::config::Policy::from_json(br#"{"mode": "block"}"#) {
        Ok(policy) => policy,
        Err(error) => panic!("the WAF's default configuration: {error}"),
    };
}

/// JWT decoding and verification: the bytes as a token, decoded alone, then as the bearer token
/// of a request that the full chain's jwt-auth decides twice (the second from the cache: the
/// same answer).
pub fn jwt_token(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = jwt_auth::token::decode(&text);
    let mut authorization = b"Bearer ".to_vec();
    authorization.extend_from_slice(data);
    let headers: [(&str, &[u8]); 4] =
        [(":path", b"/api"), (":method", b"GET"), (":authority", b"example.com"), ("authorization", &authorization)];
    let moment = jwt_auth::decision::Moment { now_ns: 1_800_000_000_000_000_000, wait_over: false };
    let (first, second) = AUTHENTICATOR.with_borrow_mut(|authenticator| {
        (authenticator.decide(&headers, moment), authenticator.decide(&headers, moment))
    });
    assert_eq!(
        matches!(first, jwt_auth::decision::Decision::Allow(_)),
        matches!(second, jwt_auth::decision::Decision::Allow(_)),
        "the cached decision differs from the first"
    );
}

/// JWKS documents: parsed, and each key looked up by every algorithm.
pub fn jwks(data: &[u8]) {
    if let Ok(set) = jwt_auth::jwks::KeySet::parse(data) {
        for name in ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA", "HS256"] {
            if let Some(alg) = jwt_auth::jwks::Algorithm::from_name(name) {
                let _ = set.candidates(alg, Some("k")).count();
                let _ = set.candidates(alg, None).count();
                let _ = set.has_alg(alg);
            }
        }
        let _ = set.has_kid("k");
    }
}

/// The WAF's transformations: each one alone on the value, then a pipeline of up to four
/// chosen by the first bytes.
pub fn waf_transform(data: &[u8]) {
    let (choice, value) = data.split_at(data.len().min(4));
    for name in waf::transform::NAMES {
        let pipeline = waf::transform::parse_pipeline(&[name]).unwrap_or_else(|e| panic!("{e}"));
        let _ = waf::transform::apply_pipeline(&pipeline, value);
    }
    let names: Vec<&str> =
        choice.iter().map(|b| waf::transform::NAMES[usize::from(*b) % waf::transform::NAMES.len()]).collect();
    let pipeline = waf::transform::parse_pipeline(&names).unwrap_or_else(|e| panic!("{e}"));
    let once = waf::transform::apply_pipeline(&pipeline, value).into_owned();
    let again = waf::transform::apply_pipeline(&pipeline, value);
    assert_eq!(once, again.as_ref(), "a pipeline is not deterministic");
}

/// The WAF's body parsers: the first line is the `content-type` (choosing urlencoded,
/// multipart with its boundary, JSON, XML or raw), the rest the body.
pub fn waf_body(data: &[u8]) {
    let (content_type, body) = match data.iter().position(|b| *b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (&b"application/json"[..], data),
    };
    let head_headers = vec![
        (":method".to_string(), b"POST".to_vec()),
        (":path".to_string(), b"/upload?a=1".to_vec()),
        ("content-type".to_string(), content_type.to_vec()),
    ];
    let head = waf::request::RequestHead { headers: &head_headers, protocol: b"HTTP/1.1", remote_addr: b"192.0.2.1:1" };
    let processor = waf::body::BodyProcessor::for_content_type(Some(content_type));
    let mut collections = waf::request::Collections::from_head(&head);
    waf::body::fill(&mut collections, &processor, body);
    collections.update_sizes();
    let _ = waf::body::urlencoded::parse_pairs(body).count();
    let mut plain = waf::request::Collections::from_head(&head);
    let _ = waf::body::json::fill(&mut plain, body);
    let _ = waf::body::xml::fill(&mut plain, body);
    if let Some(boundary) = waf::body::multipart::boundary(content_type) {
        let _ = waf::body::multipart::fill(&mut plain, &boundary, body);
    }
    // And the whole WAF (built-in rules, block mode) on that request.
    DEFAULT_WAF.with(|policy| {
        if let waf::inspect::HeadersOutcome::ReadBody(inspection) = policy.inspect_headers(&head, false) {
            let _ = inspection.finish_with_body(policy, body);
        }
    });
}

/// `X-Forwarded-For` and `source.address` as rate-limit and header-strip read them: the client
/// chosen with 1..=3 trusted hops is the hops-th entry from the right (IPv4-mapped IPv6 as IPv4),
/// never one further left that the client wrote.
pub fn forwarded_for(data: &[u8]) {
    let _ = rate_limit::address::parse_source_address(data);
    let _ = header_strip::cidr::parse_source_address(data);
    assert_eq!(rate_limit::address::client_from_forwarded_for(data, 0), None, "0 trusted hops names no client");
    for hops in 1..=3u32 {
        if let Some(client) = rate_limit::address::client_from_forwarded_for(data, hops) {
            let entry = data.rsplit(|b| *b == b',').nth(hops as usize - 1).unwrap_or_default();
            let text = String::from_utf8_lossy(entry);
            assert!(entry_is(&text, client), "client {client} chosen with {hops} hops is not entry {text:?}");
        }
    }
}

fn entry_is(entry: &str, client: std::net::IpAddr) -> bool {
    let canonical = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    };
    let entry = entry.trim_matches(|c: char| c == ' ' || c == '\t');
    let bracketed = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']'));
    let parsed = entry
        .parse::<std::net::IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| bracketed.and_then(|b| b.parse().ok()));
    parsed.map(canonical) == Some(client)
}

/// CIDR parsing (header-strip `trusted_sources`): a parsed range round-trips through its text
/// form and contains its own network address.
pub fn cidr(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (range, probe) = text.split_once(' ').unwrap_or((&text, "10.0.0.1"));
    if let Ok(cidr) = header_strip::cidr::Cidr::parse(range) {
        let again = header_strip::cidr::Cidr::parse(&cidr.to_string());
        assert_eq!(again.as_ref().ok(), Some(&cidr), "{range:?} does not round-trip through {cidr}");
        if let Some(address) = header_strip::cidr::parse_source_address(probe.as_bytes()) {
            let _ = header_strip::cidr::is_trusted(std::slice::from_ref(&cidr), address);
        }
    }
}

struct FixedSource;

impl request_id::decision::IdSource for FixedSource {
    fn random_bytes(&mut self) -> [u8; 16] {
        [7; 16]
    }
    fn unix_millis(&mut self) -> u64 {
        1_800_000_000_000
    }
}

/// Request-ID validation, UUID/ULID parsing and `traceparent`: an accepted ID is printable
/// ASCII, a decided plan's ID always validates.
pub fn request_id(data: &[u8]) {
    if request_id::id::validate(data, 1024).is_ok() {
        assert!(data.iter().all(|b| b.is_ascii_graphic()), "an accepted request ID has a control or non-ASCII byte");
    }
    let text = String::from_utf8_lossy(data);
    let _ = request_id::id::parse_uuid(&text);
    let _ = request_id::id::parse_ulid(&text);
    let _ = request_id::traceparent::is_valid(data);
    let (id, trace) = match data.iter().position(|b| *b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &data[..0]),
    };
    let headers: [(&str, &[u8]); 3] = [("x-request-id", id), ("traceparent", trace), ("tracestate", b"a=b")];
    for policy in request_id_policies() {
        let plan = request_id::decision::decide(policy, &headers, &mut FixedSource);
        let _ = format!("{plan:?}");
    }
}

fn request_id_policies() -> &'static [request_id::config::Policy] {
    static POLICIES: OnceLock<Vec<request_id::config::Policy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        [
            r#"{}"#,
            r#"{"format": "ulid", "traceparent": "create"}"#,
            r#"{"format": "uuid4", "traceparent": "propagate", "max_length": 64}"#,
        ]
        .iter()
        .filter_map(|json| request_id::config::Policy::from_json(json.as_bytes()).ok())
        .collect()
    })
}

/// header-strip's configuration parser.
pub fn config_header_strip(data: &[u8]) {
    let _ = header_strip::config::Policy::from_json(data);
}

/// request-id's configuration parser.
pub fn config_request_id(data: &[u8]) {
    let _ = request_id::config::Policy::from_json(data);
}

/// jwt-auth's configuration parser (inline JWKS included).
pub fn config_jwt_auth(data: &[u8]) {
    if let Ok(policy) = jwt_auth::config::Policy::from_json(data) {
        let _ = jwt_auth::decision::Authenticator::new(policy);
    }
}

/// rate-limit's configuration parser.
pub fn config_rate_limit(data: &[u8]) {
    let _ = rate_limit::config::Policy::from_json(data);
}

/// The WAF's configuration parser and rule compiler (native rules, SecLang text).
pub fn config_waf(data: &[u8]) {
    let _ = waf::config::Policy::from_json(data);
}

/// shield's stage list (not the stages' own configurations).
pub fn config_shield(data: &[u8]) {
    let _ = shield::config::ShieldConfig::from_json(data);
}

/// The kit's header-map parser (the Proxy-Wasm serialization): whatever it reads serializes back
/// to a map that parses to the same pairs.
pub fn kit_headers(data: &[u8]) {
    let pairs = shield_kit::headers::parse_pairs(data);
    let bytes = shield_kit::headers::serialize_pairs(&pairs);
    let again = shield_kit::headers::parse_pairs(&bytes);
    assert_eq!(pairs, again, "parse → serialize → parse changed the pairs");
}

/// host-test's fixture parser (it reads a file: the bytes are written to one first).
pub fn fixture(data: &[u8]) {
    #[cfg(feature = "harness")]
    {
        thread_local! {
            static FILE: std::path::PathBuf =
                std::env::temp_dir().join(format!("wasm-shield-fuzz-fixture-{}.yaml", std::process::id()));
        }
        FILE.with(|path| {
            if std::fs::write(path, data).is_ok() {
                let _ = host_test::fixture::load_file(path);
            }
        });
    }
    #[cfg(not(feature = "harness"))]
    {
        // Without host-test, the YAML layer it builds on, read as host-test reads a fixture file:
        // document by document, stopping at the first error (the multi-document iterator keeps
        // yielding the same error after a malformed document, so reading on never ends).
        for document in serde_yaml_ng::Deserializer::from_slice(data) {
            if <serde_yaml_ng::Value as serde::Deserialize>::deserialize(document).is_err() {
                break;
            }
        }
    }
}

/// SecLang import (filters/waf/src/seclang): the text as `seclang` of a WAF configuration
/// (lexed, translated, compiled), and the lexer and action parser alone.
pub fn waf_seclang(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = waf::seclang::lexer::directives(&text);
    let _ = waf::seclang::actions::parse_actions(&text);
    let data_files = std::collections::HashMap::new();
    let mut loader = waf::seclang::Loader::new(&data_files);
    loader.load("fuzz", &text);
    let _ = loader.finish();
    let config = serde_json::json!({"mode": "block", "ruleset": "none", "seclang": text});
    if let Ok(bytes) = serde_json::to_vec(&config) {
        let _ = waf::config::Policy::from_json(&bytes);
    }
}
