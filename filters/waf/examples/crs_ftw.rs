//! Runs CRS's go-ftw regression tests (request-side) natively through the core API, with CRS's
//! test setup (paranoia level 4, detection only, the test `tx` settings), and prints pass / fail
//! / skipped per rule family. A development aid until `host-test crs` runs them through the
//! module; it checks `expect_ids` / `no_expect_ids` against every rule that fired (`nolog` ones
//! included, as the hit counters see them). Stages that only check `status` or log regexes are
//! skipped (they depend on the web server).
//!
//! `CRS_DIR=../shared/crs cargo run --release -p waf --features crs --example crs_ftw [RULE_ID_PREFIX] [--failures]`

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use waf::config::Policy;
use waf::inspect::{HeadersOutcome, Verdict};
use waf::request::RequestHead;

/// CRS's own test configuration (tests/regression), as the `waf` configuration expresses it.
pub const TEST_CONFIG: &str = r#"{
  "mode": "detect", "paranoia_level": 4,
  "body": {"limit": 1048576, "over_limit": "inspect_first_part"},
  "crs": {"setup": {"crs_validate_utf8_encoding": 1, "arg_name_length": 100, "arg_length": 400,
                    "total_arg_length": 64000, "max_num_args": 255, "max_file_size": 64100,
                    "combined_file_sizes": 65535}}
}"#;

#[derive(Deserialize)]
struct TestFile {
    #[serde(default)]
    tests: Vec<Test>,
}

#[derive(Deserialize)]
struct Test {
    test_id: serde_yaml_ng::Value,
    #[serde(default)]
    stages: Vec<Stage>,
}

#[derive(Deserialize)]
struct Stage {
    input: Input,
    output: Output,
}

#[derive(Deserialize, Default)]
struct Input {
    method: Option<String>,
    uri: Option<String>,
    version: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, serde_yaml_ng::Value>,
    data: Option<String>,
    encoded_request: Option<String>,
    autocomplete_headers: Option<bool>,
}

#[derive(Deserialize, Default)]
struct Output {
    log: Option<Log>,
}

#[derive(Deserialize, Default)]
struct Log {
    #[serde(default)]
    expect_ids: Vec<u32>,
    #[serde(default)]
    no_expect_ids: Vec<u32>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let show_failures = args.iter().any(|arg| arg == "--failures");
    let filter = args.iter().find(|arg| !arg.starts_with("--")).cloned().unwrap_or_default();
    let crs_dir = std::env::var("CRS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs"));
    let started = std::time::Instant::now();
    let policy = match Policy::from_json(TEST_CONFIG.as_bytes()) {
        Ok(policy) => policy,
        Err(error) => {
            eprintln!("crs_ftw: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("policy: {} rules in {:?}", policy.ruleset.rule_count(), started.elapsed());
    let tests_dir = crs_dir.join("tests/regression/tests");
    let mut directories: Vec<PathBuf> = std::fs::read_dir(&tests_dir)
        .map(|entries| entries.filter_map(Result::ok).map(|entry| entry.path()).collect())
        .unwrap_or_default();
    directories.retain(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("REQUEST-")));
    directories.sort();
    let mut families: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for directory in directories {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
            .map(|entries| entries.filter_map(Result::ok).map(|entry| entry.path()).collect())
            .unwrap_or_default();
        files.sort();
        for file in files {
            let stem = file.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
            if !stem.starts_with(&filter) {
                continue;
            }
            let family = stem.get(..3).unwrap_or_default().to_owned();
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            let parsed: TestFile = match serde_yaml_ng::from_str(&text) {
                Ok(parsed) => parsed,
                Err(error) => {
                    eprintln!("{}: {error}", file.display());
                    continue;
                }
            };
            for test in parsed.tests {
                let id = match &test.test_id {
                    serde_yaml_ng::Value::Number(number) => number.to_string(),
                    other => format!("{other:?}"),
                };
                let counts = families.entry(family.clone()).or_default();
                let mut outcome = Some(true);
                for stage in &test.stages {
                    let Some(log) = &stage.output.log else {
                        outcome = None;
                        continue;
                    };
                    if log.expect_ids.is_empty() && log.no_expect_ids.is_empty() {
                        outcome = None;
                        continue;
                    }
                    let fired = run(&policy, &stage.input);
                    let missing: Vec<u32> = log.expect_ids.iter().copied().filter(|id| !fired.contains(id)).collect();
                    let unexpected: Vec<u32> =
                        log.no_expect_ids.iter().copied().filter(|id| fired.contains(id)).collect();
                    if !missing.is_empty() || !unexpected.is_empty() {
                        outcome = Some(false);
                        failures.push(format!("{stem}-{id}: missing {missing:?} unexpected {unexpected:?}"));
                    }
                }
                match outcome {
                    Some(true) => counts.0 += 1,
                    Some(false) => counts.1 += 1,
                    None => counts.2 += 1,
                }
            }
        }
    }
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (family, (pass, fail, skip)) in &families {
        println!("{family}: {pass} passed, {fail} failed, {skip} skipped");
        passed += pass;
        failed += fail;
        skipped += skip;
    }
    if show_failures {
        for failure in &failures {
            println!("FAIL {failure}");
        }
    }
    let rate = if passed + failed == 0 { 0.0 } else { 100.0 * passed as f64 / (passed + failed) as f64 };
    println!("total: {passed} passed, {failed} failed, {skipped} skipped ({rate:.1} % of those run)");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The rule IDs that fired for one stage's request.
fn run(policy: &Policy, input: &Input) -> Vec<u32> {
    let (method, uri, version, headers, body) = match &input.encoded_request {
        Some(encoded) => match decode_raw(encoded) {
            Some(parts) => parts,
            None => return Vec::new(),
        },
        None => {
            let headers: Vec<(String, String)> = input
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        serde_yaml_ng::Value::String(text) => text.clone(),
                        serde_yaml_ng::Value::Number(number) => number.to_string(),
                        serde_yaml_ng::Value::Bool(flag) => flag.to_string(),
                        _ => String::new(),
                    };
                    (name.clone(), value)
                })
                .collect();
            (
                input.method.clone().unwrap_or_else(|| "GET".into()),
                input.uri.clone().unwrap_or_else(|| "/".into()),
                input.version.clone().unwrap_or_else(|| "HTTP/1.1".into()),
                headers,
                input.data.clone().unwrap_or_default().into_bytes(),
            )
        }
    };
    let mut envoy_headers: Vec<(String, Vec<u8>)> =
        vec![(":method".into(), method.into_bytes()), (":path".into(), uri.into_bytes())];
    let mut headers = headers;
    let mut body = body;
    // go-ftw's autocompletion: a body gets a urlencoded content type (its keys and values
    // percent-encoded unless already encoded), multipart bodies CRLF line ends, and a length.
    if input.encoded_request.is_none() && input.autocomplete_headers.unwrap_or(true) {
        let content_type =
            headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("content-type")).map(|(_, value)| value.clone());
        if !body.is_empty() && content_type.is_none() {
            headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
        }
        let content_type = content_type.unwrap_or_else(|| {
            if body.is_empty() { String::new() } else { "application/x-www-form-urlencoded".into() }
        });
        if content_type == "application/x-www-form-urlencoded"
            && !body.is_empty()
            && query_unescape(&body) == Some(body.clone())
        {
            body = encode_form(&body);
        }
        if content_type.starts_with("multipart/form-data;") {
            let mut crlf = Vec::with_capacity(body.len());
            for &byte in &body {
                if byte == b'\n' {
                    crlf.push(b'\r');
                }
                crlf.push(byte);
            }
            body = crlf;
        }
        let method_has_body = ["POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .any(|m| envoy_headers.first().is_some_and(|(_, v)| v == m.as_bytes()));
        if (!body.is_empty() || method_has_body)
            && !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        {
            headers.push(("Content-Length".into(), body.len().to_string()));
        }
        if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("connection")) {
            headers.push(("Connection".into(), "close".into()));
        }
    }
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let name = if lower == "host" { ":authority".to_owned() } else { lower };
        envoy_headers.push((name, value.into_bytes()));
    }
    let head = RequestHead { headers: &envoy_headers, protocol: version.as_bytes(), remote_addr: b"127.0.0.1" };
    let verdict = match policy.inspect_headers(&head, body.is_empty()) {
        HeadersOutcome::Done(verdict) => verdict,
        HeadersOutcome::ReadBody(inspection) => inspection.finish_with_body(policy, &body),
    };
    match verdict {
        Verdict::Allow => Vec::new(),
        Verdict::Pass(report) | Verdict::Block { report, .. } => report.rule_ids().collect(),
    }
}

type RawRequest = (String, String, String, Vec<(String, String)>, Vec<u8>);

/// A base64 raw HTTP/1.x request split into method, target, version, headers and body.
fn decode_raw(encoded: &str) -> Option<RawRequest> {
    let bytes = base64_decode(encoded.trim())?;
    let split = bytes.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(bytes.get(..split)?).into_owned();
    let body = bytes.get(split + 4..)?.to_vec();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.splitn(3, ' ');
    let method = request_line.next()?.to_owned();
    let uri = request_line.next()?.to_owned();
    let version = request_line.next().unwrap_or("HTTP/1.1").to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':').map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned())))
        .collect();
    Some((method, uri, version, headers, body))
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let table: HashMap<u8, u32> = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        .iter()
        .enumerate()
        .map(|(index, &byte)| (byte, index as u32))
        .collect();
    let mut output = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|byte| !byte.is_ascii_whitespace() && *byte != b'=') {
        buffer = (buffer << 6) | table.get(&byte)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            output.push((buffer >> bits) as u8);
        }
    }
    Some(output)
}

/// Go's `url.QueryUnescape`: `None` on a malformed escape.
fn query_unescape(data: &[u8]) -> Option<Vec<u8>> {
    let mut output = Vec::with_capacity(data.len());
    let mut index = 0;
    while let Some(&byte) = data.get(index) {
        match byte {
            b'%' => {
                let hex = std::str::from_utf8(data.get(index + 1..index + 3)?).ok()?;
                output.push(u8::from_str_radix(hex, 16).ok()?);
                index += 3;
            }
            b'+' => {
                output.push(b' ');
                index += 1;
            }
            other => {
                output.push(other);
                index += 1;
            }
        }
    }
    Some(output)
}

/// go-ftw's encoding of `key=value&…` form data (Go's `url.QueryEscape` on keys and values).
fn encode_form(data: &[u8]) -> Vec<u8> {
    let escape = |text: &[u8], output: &mut Vec<u8>| {
        for &byte in text {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => output.push(byte),
                b' ' => output.push(b'+'),
                other => output.extend_from_slice(format!("%{other:02X}").as_bytes()),
            }
        }
    };
    let mut output = Vec::with_capacity(data.len() * 2);
    for (index, token) in data.split(|&b| b == b'&').enumerate() {
        if index > 0 {
            output.push(b'&');
        }
        match token.iter().position(|&b| b == b'=') {
            Some(at) => {
                escape(token.get(..at).unwrap_or_default(), &mut output);
                output.push(b'=');
                escape(token.get(at + 1..).unwrap_or_default(), &mut output);
            }
            None => escape(token, &mut output),
        }
    }
    output
}
