//! Bad input never crashes the harness: each gives one clear error naming the file and field.

use std::path::PathBuf;

use host_test::{Host, replay};

fn replay_one(file: &str) -> replay::CaseResult {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input").join(file);
    let mut host = Host::new(vec![PathBuf::from("/nonexistent")]).expect("engine");
    let mut results = replay::run_files(&mut host, &[path]);
    assert_eq!(results.len(), 1, "one result per bad file");
    results.remove(0)
}

fn error_of(file: &str) -> String {
    let result = replay_one(file);
    assert!(!result.passed, "{file} must fail");
    result.error.unwrap_or_else(|| panic!("{file}: expected an error, got {:?}", result.steps))
}

#[test]
fn malformed_yaml_names_the_file_and_position() {
    let error = error_of("malformed.yaml");
    assert!(error.contains("malformed.yaml"), "{error}");
    assert!(error.contains("line"), "{error}");
}

#[test]
fn unknown_key_names_the_field() {
    let error = error_of("unknown-key.yaml");
    assert!(error.contains("unknown-key.yaml"), "{error}");
    assert!(error.contains("respnse"), "{error}");
}

#[test]
fn missing_module_names_the_filter_and_where_it_looked() {
    let error = error_of("missing-module.yaml");
    assert!(error.contains("filters[0] (no-such-filter)"), "{error}");
    assert!(error.contains("no-such-filter.wasm not found"), "{error}");
}

#[test]
fn module_without_proxy_wasm_exports_is_refused() {
    let error = error_of("not-proxy-wasm.yaml");
    assert!(error.contains("not a Proxy-Wasm module"), "{error}");
    assert!(error.contains("empty.wasm"), "{error}");
}
