//! The `harness_shield` target: the whole chain (the five filters as stages of the `shield`
//! module, configured as envoy-configs/envoy/full-chain.yaml) run by host-test on an arbitrary
//! request. The module must never trap, and every request must end (a reply or a response).
//!
//! Input format (see [`crate::seeds::encode_request`]): `name: value` lines (`:path`, `:method`
//! and `:authority` set the pseudo-headers), an empty line, then the body, delivered in chunks
//! whose size comes from the body's first byte.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use host_test::Host;
use host_test::fixture::{Body, Case, HeaderList, Request};
use host_test::runner::{Runner, StepOutcome};

/// The shield configuration of the full chain: every stage with the full chain's configuration.
pub fn shield_config() -> serde_json::Value {
    let stages: Vec<serde_json::Value> = [
        ("header-strip", include_str!("../configs/header-strip.json")),
        ("request-id", include_str!("../configs/request-id.json")),
        ("jwt-auth", include_str!("../configs/jwt-auth.json")),
        ("rate-limit", include_str!("../configs/rate-limit.json")),
        ("waf", include_str!("../configs/waf.json")),
    ]
    .into_iter()
    .map(|(filter, config)| {
        let config: serde_json::Value =
            serde_json::from_str(config).unwrap_or_else(|e| panic!("fuzz/configs/{filter}.json: {e}"));
        serde_json::json!({"filter": filter, "config": config})
    })
    .collect();
    serde_json::json!({ "stages": stages })
}

/// Where the modules are: `HOST_TEST_MODULE_PATH` (`:`-separated), else the repository's
/// `target/filters`.
pub fn module_path() -> Vec<PathBuf> {
    match std::env::var_os("HOST_TEST_MODULE_PATH") {
        Some(paths) => std::env::split_paths(&paths).collect(),
        None => vec![crate::seeds::repo_root().join("target/filters")],
    }
}

/// Whether the `shield` module is built (the stable test skips the target without it).
pub fn module_available() -> bool {
    module_path().iter().any(|dir| dir.join("shield.wasm").is_file())
}

fn start_runner() -> Runner {
    let case_json = serde_json::json!({
        "name": "fuzz",
        "filters": [{"name": "shield", "config": shield_config()}],
        "steps": [{"request": {}}],
    });
    let text = case_json.to_string();
    let case: Case = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("the fuzz case: {e}"));
    let mut host = Host::new(module_path()).unwrap_or_else(|e| panic!("host: {e:#}"));
    let fixture = crate::seeds::repo_root().join("fuzz/fuzz.yaml");
    let mut runner = Runner::new(&mut host, &case, &fixture).unwrap_or_else(|e| panic!("the shield module: {e:#}"));
    runner.start().unwrap_or_else(|e| panic!("shield did not start: {e}"));
    runner.world.borrow_mut().keep_logs = false;
    runner
}

thread_local! {
    static RUNNER: RefCell<Option<Runner>> = const { RefCell::new(None) };
}

/// Decodes the input into a request.
pub fn decode_request(data: &[u8]) -> Request {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(end) => (&data[..end], &data[end + 2..]),
        None => (data, &data[..0]),
    };
    let mut request: Request = serde_yaml_ng::from_str("{}").unwrap_or_else(|e| panic!("an empty request: {e}"));
    let mut headers = Vec::new();
    for line in head.split(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let Some((name, value)) = text.split_once(':').and_then(|(n, v)| {
            // `:path: /x` splits at the second colon.
            if n.is_empty() { v.split_once(':').map(|(n, v)| (format!(":{n}"), v)) } else { Some((n.to_owned(), v)) }
        }) else {
            continue;
        };
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match name.as_str() {
            ":path" => request.path = value,
            ":method" => request.method = value,
            ":authority" => request.authority = value,
            _ if name.is_empty() || name.starts_with(':') => {}
            _ => headers.push((name, value)),
        }
    }
    request.headers = HeaderList(headers);
    if let Some(first) = body.first() {
        let chunk = 1 + usize::from(*first % 64);
        request.body = Body::Bytes(body.chunks(chunk).map(<[u8]>::to_vec).collect());
    }
    request
}

/// Compiles and starts the chain (libFuzzer's `init`: the compile is not an input's time).
pub fn warm_up() {
    RUNNER.with(|cell| {
        cell.borrow_mut().get_or_insert_with(start_runner);
    });
}

/// Runs the request through the chain; panics on a trap or a request that never ends.
pub fn harness_shield(data: &[u8]) {
    let request = decode_request(data);
    RUNNER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let runner = slot.get_or_insert_with(start_runner);
        let mut outcome = StepOutcome::default();
        runner.run_request(0, &request, None, Duration::from_secs(10), &mut outcome);
        assert!(outcome.traps.is_empty(), "the shield module trapped: {:?}", outcome.traps);
        assert!(!outcome.stalled, "the request never ended");
        assert!(outcome.response.is_some() || outcome.reset, "no response reached the client");
    });
}
