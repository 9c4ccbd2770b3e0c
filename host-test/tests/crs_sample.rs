//! `host-test crs` over the hand-written go-ftw sample (`tests/crs-sample`) with the plain `waf`
//! module: the counts per verdict, a known deviation, the one unexplained failure, what Envoy
//! answers itself, and the response-side test left out. Needs `target/filters/waf.wasm`
//! (`scripts/build-filters`); without it the module part is skipped with a notice, unless
//! `CRS_SAMPLE_REQUIRE_MODULE` is set (as `scripts/test` does after building the filters).

use std::path::{Path, PathBuf};

use host_test::Host;
use host_test::crs::deviations::Deviations;
use host_test::crs::report::{Counts, counts};
use host_test::crs::translate::Translation;
use host_test::crs::{Options, Verdict, prepare, run_harness};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn options() -> Options {
    let deviations =
        Deviations::load(&manifest_dir().join("tests/crs-sample-deviations.yaml")).expect("sample deviations load");
    Options {
        tests: manifest_dir().join("tests/crs-sample"),
        module: "waf".into(),
        config: serde_json::json!({"mode": "detect", "paranoia_level": 4}),
        only: Vec::new(),
        deviations,
    }
}

#[test]
fn the_sample_is_prepared_as_go_ftw_sends_it_and_as_envoy_would_see_it() {
    let prepared = prepare(&options()).expect("sample loads");
    assert_eq!(prepared.len(), 11);
    let find = |title: &str| prepared.iter().find(|p| p.test.title == title).unwrap_or_else(|| panic!("{title}"));
    // The response-side test is out of scope, whole.
    assert!(find("951110-1").skip.as_deref().is_some_and(|r| r.starts_with("RESPONSE-*")));
    // A non-numeric Content-Length is answered 400 before any filter, by any server and by Envoy.
    let unframed = &find("101110-2").stages[0];
    assert!(matches!(unframed.translation, Some(Translation::Rejected { status: 400, .. })));
    assert!(matches!(unframed.envoy, Some(Translation::Rejected { status: 400, .. })));
    // The encoded chunked request reaches the filter de-chunked: in the harness with its
    // transfer-encoding header as sent, in Envoy without it (and that is noted).
    let chunked = &find("101110-1").stages[0];
    for (view, keeps_header) in [(&chunked.translation, true), (&chunked.envoy, false)] {
        match view {
            Some(Translation::Request { request, .. }) => {
                assert_eq!(request.body.byte_chunks().concat(), b"id=1 union select password");
                assert_eq!(request.headers.0.iter().any(|(name, _)| name == "transfer-encoding"), keeps_header);
            }
            other => panic!("101110-1: {other:?}"),
        }
    }
    assert!(chunked.envoy_notes().iter().any(|note| note.contains("transfer-encoding")), "{:?}", chunked.envoy_notes());
    // go-ftw form-encodes the body and frames it.
    let raw = find("107110-2").stages[0].raw.as_ref().expect("raw");
    let text = String::from_utf8_lossy(raw);
    assert!(text.ends_with("\r\n\r\nid=1+union+select+password+from+users"), "{text}");
    assert!(text.contains("Content-Length: 37\r\n") && text.contains("Connection: close\r\n"), "{text}");
}

#[test]
fn the_sample_runs_through_the_waf_module_with_the_expected_counts() {
    let filters = manifest_dir().join("../target/filters");
    if !Path::new(&filters).join("waf.wasm").is_file() {
        assert!(
            std::env::var_os("CRS_SAMPLE_REQUIRE_MODULE").is_none(),
            "target/filters/waf.wasm is missing (scripts/build-filters builds it)"
        );
        eprintln!("skipped: target/filters/waf.wasm is not built (scripts/build-filters)");
        return;
    }
    let mut host = Host::new(vec![filters]).expect("engine");
    let options = options();
    let prepared = prepare(&options).expect("sample loads");
    let (results, restarts, _) = run_harness(&mut host, &options, &prepared).expect("the waf module starts");
    assert_eq!(restarts, 0);
    let (families, total) = counts(&results);
    assert_eq!(total, Counts { passed: 7, failed: 2, known: 1, skipped: 1, response_side: 1 });
    assert_eq!(families[&913], Counts { passed: 2, ..Counts::default() });
    let verdict = |title: &str| &results.iter().find(|r| r.title == title).expect(title).verdict;
    assert_eq!(verdict("102100-1"), &Verdict::Passed);
    assert_eq!(verdict("101110-3"), &Verdict::Passed, "both stages pass");
    match verdict("107110-4") {
        Verdict::Failed { deviation: Some(reason), .. } => assert!(reason.contains("detect mode")),
        other => panic!("107110-4: {other:?}"),
    }
    match verdict("107110-5") {
        Verdict::Failed { failures, deviation: None } => assert_eq!(failures, &["expect_ids: 107110 did not fire"]),
        other => panic!("107110-5: {other:?}"),
    }
    let unexplained: Vec<&str> = results.iter().filter(|r| r.unexplained_failure()).map(|r| r.title.as_str()).collect();
    assert_eq!(unexplained, ["107110-5"]);
    // The fired IDs come from the rule_hits counters: the scanner rule fired on the first stage only.
    let stages = &results.iter().find(|r| r.title == "101110-3").expect("101110-3").stages;
    assert!(stages[0].observed.as_ref().is_some_and(|o| o.fired.contains(&102100)));
    assert!(stages[1].observed.as_ref().is_some_and(|o| !o.fired.contains(&102100) && o.status == Some(200)));
}
