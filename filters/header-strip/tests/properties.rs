//! Property: whatever the configuration and however a client spells a configured header (any
//! case, `_` for `-`, repeated, among other headers, any value), none of it survives the strip,
//! and no other header is touched.

use header_strip::config::Policy;
use proptest::prelude::*;

/// A header name token as configuration takes it (lowercase, dashes).
fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,6}){0,3}"
}

/// How a client may spell `name`: each letter in either case, each `-` as `-` or `_`.
fn spelling(name: String) -> impl Strategy<Value = String> {
    let length = name.len();
    proptest::collection::vec(any::<bool>(), length..=length).prop_map(move |flips| {
        name.chars()
            .zip(flips)
            .map(|(c, flip)| match (c, flip) {
                ('-', true) => '_',
                (c, true) => c.to_ascii_uppercase(),
                (c, false) => c,
            })
            .collect()
    })
}

/// The matching form the filter documents: lowercase, `_` equal to `-`.
fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

#[derive(Debug, Clone)]
struct Scenario {
    strip: Vec<String>,
    prefixes: Vec<String>,
    headers: Vec<(String, Vec<u8>)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (proptest::collection::vec(name(), 1..5), proptest::collection::vec(name(), 0..3)).prop_flat_map(
        |(strip, prefixes)| {
            let configured: Vec<String> =
                strip.iter().cloned().chain(prefixes.iter().map(|p| format!("{p}-tail"))).collect();
            let forged = proptest::sample::select(configured).prop_flat_map(spelling);
            let header = prop_oneof![forged, name(), "[A-Za-z_-]{1,12}"];
            let value = proptest::collection::vec(any::<u8>(), 0..24);
            let headers = proptest::collection::vec((header, value), 0..24);
            (Just(strip), Just(prefixes), headers).prop_map(|(strip, prefixes, headers)| Scenario {
                strip,
                prefixes,
                headers,
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_configured_header_never_gets_through(scenario in scenario(), include_defaults in any::<bool>()) {
        // The generated names are `[a-z0-9-]` only: quoting them is all JSON needs.
        let list = |items: &[String]| items.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(",");
        let config = format!(
            r#"{{"strip": [{}], "strip_prefixes": [{}], "include_defaults": {include_defaults}}}"#,
            list(&scenario.strip),
            list(&scenario.prefixes)
        );
        let policy = Policy::from_json(config.as_bytes()).expect("a valid configuration");
        let stripped = policy.request.plan(&scenario.headers, false);
        // The host removes each planned name case-insensitively, every occurrence.
        let survivors: Vec<&(String, Vec<u8>)> = scenario
            .headers
            .iter()
            .filter(|(name, _)| !stripped.names.iter().any(|removed| removed.eq_ignore_ascii_case(name)))
            .collect();
        let mut configured_names: Vec<String> = scenario.strip.clone();
        let mut configured_prefixes: Vec<String> = scenario.prefixes.clone();
        if include_defaults {
            configured_names.extend(header_strip::config::DEFAULT_STRIP.iter().map(|n| n.to_string()));
            configured_prefixes.extend(header_strip::config::DEFAULT_STRIP_PREFIXES.iter().map(|n| n.to_string()));
        }
        let is_configured = |name: &str| {
            let form = canonical(name);
            configured_names.contains(&form) || configured_prefixes.iter().any(|p| form.starts_with(p.as_str()))
        };
        for (name, _) in &survivors {
            prop_assert!(!is_configured(name), "{name:?} got through (stripped {:?})", stripped.names);
        }
        // And nothing else was removed.
        let removed = scenario.headers.len() - survivors.len();
        let expected = scenario.headers.iter().filter(|(name, _)| is_configured(name)).count();
        prop_assert_eq!(removed, expected);
        prop_assert_eq!(stripped.occurrences, expected);
    }
}
