//! Seed inputs for every target, taken from the fixtures (filters/*/fixtures, host-test's) and
//! the jwt-auth test data: configurations, tokens, JWKS documents, paths, header values and
//! bodies. `cargo run --no-default-features --features seed-corpus --bin seed-corpus` writes them to `corpus/<target>/` for libFuzzer; the
//! stable corpus test reads them directly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// Seeds per target name.
pub type Seeds = BTreeMap<&'static str, Vec<Vec<u8>>>;

/// The repository root (the parent of `fuzz/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".."))
}

/// Every fixture file of the repository.
pub fn fixture_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = vec![root.join("host-test/tests/fixtures")];
    if let Ok(entries) = std::fs::read_dir(root.join("filters")) {
        dirs.extend(entries.filter_map(|e| e.ok()).map(|e| e.path().join("fixtures")));
    }
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Collects the seeds of every target.
pub fn collect(root: &Path) -> Seeds {
    let mut seeds = Seeds::new();
    let mut add = |target: &'static str, bytes: Vec<u8>| {
        let list = seeds.entry(target).or_default();
        if !list.contains(&bytes) && bytes.len() <= 64 * 1024 {
            list.push(bytes);
        }
    };
    for file in fixture_files(root) {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        if text.len() <= 16 * 1024 {
            add("fixture", text.clone().into_bytes());
        }
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let Ok(case) = <Value as serde::Deserialize>::deserialize(document) else { continue };
            case_seeds(&case, &mut add);
        }
    }
    let testdata = root.join("filters/jwt-auth/testdata");
    if let Ok(entries) = std::fs::read_dir(&testdata) {
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let Ok(bytes) = std::fs::read(&path) else { continue };
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("jwks")) => {
                    add("jwks", bytes)
                }
                Some("token") => add("jwt_token", bytes.trim_ascii().to_vec()),
                _ => {}
            }
        }
    }
    for (target, extra) in HANDWRITTEN {
        for seed in *extra {
            add(target, seed.as_bytes().to_vec());
        }
    }
    seeds
}

/// Seeds no fixture holds (SecLang directives, odd forwarded-for lists, CIDRs).
const HANDWRITTEN: &[(&str, &[&str])] = &[
    (
        "waf_seclang",
        &[
            "SecRule ARGS \"@rx (?i)union\\s+select\" \"id:1001,phase:2,deny,status:403,t:none,t:urlDecodeUni,msg:'sqli'\"",
            "SecRule REQUEST_HEADERS:User-Agent \"@pm nikto sqlmap\" \"id:1002,phase:1,block,chain\"\n  SecRule ARGS_NAMES \"@streq x\" \"t:lowercase\"",
            "# comment\nSecAction \"id:900000,phase:1,pass,nolog,setvar:tx.paranoia_level=1\"\nSecRuleRemoveById 1001",
            "SecRule &ARGS \"@gt 10\" \"id:1003,phase:2,deny,log,\\\n  tag:'x'\"\nSecMarker END",
            "SecRuleUpdateTargetById 1001 \"!ARGS:password\"",
        ],
    ),
    (
        "forwarded_for",
        &["203.0.113.7", "10.0.0.1, 203.0.113.7", "[2001:db8::1]:443, 10.0.0.2", " , ,1.2.3.4:80", "unknown"],
    ),
    ("cidr", &["10.0.0.0/8 10.1.2.3", "2001:db8::/32 [2001:db8::1]:80", "0.0.0.0/0", "192.0.2.1", "::/0 ::1"]),
    ("request_id", &["7f3c0a8e-1234-4abc-9def-0123456789ab\n00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]),
    (
        "waf_body",
        &[
            "multipart/form-data; boundary=xyz\n--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1' OR '1'='1\r\n--xyz--\r\n",
        ],
    ),
];

fn string_at<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

/// The seeds of one fixture case.
fn case_seeds(case: &Value, add: &mut impl FnMut(&'static str, Vec<u8>)) {
    if let Some(filters) = case.get("filters").and_then(Value::as_sequence) {
        for filter in filters {
            let name = string_at(filter, "name").unwrap_or_default();
            let bytes = match (filter.get("config"), string_at(filter, "config_raw")) {
                (_, Some(raw)) => Some(raw.as_bytes().to_vec()),
                (Some(config), None) => serde_json::to_vec(config).ok(),
                _ => None,
            };
            let Some(bytes) = bytes else { continue };
            config_seeds(name, &bytes, add);
        }
    }
    let mut answers: Vec<&Value> = Vec::new();
    if let Some(calls) = case.get("http_calls").and_then(Value::as_sequence) {
        answers.extend(calls);
    }
    for step in case.get("steps").and_then(Value::as_sequence).into_iter().flatten() {
        if let Some(calls) = step.get("http_calls").and_then(Value::as_sequence) {
            answers.extend(calls);
        }
        if let Some(request) = step.get("request") {
            request_seeds(request, add);
        }
    }
    for answer in answers {
        if let Some(body) = answer.get("response").and_then(|r| string_at(r, "body")) {
            add("jwks", body.as_bytes().to_vec());
        }
    }
}

fn config_seeds(filter: &str, bytes: &[u8], add: &mut impl FnMut(&'static str, Vec<u8>)) {
    let target = match filter {
        "header-strip" => "config_header_strip",
        "request-id" => "config_request_id",
        "jwt-auth" => "config_jwt_auth",
        "rate-limit" => "config_rate_limit",
        "waf" | "waf-crs" => "config_waf",
        "shield" | "shield-crs" => "config_shield",
        _ => return,
    };
    add(target, bytes.to_vec());
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) else { return };
    // Stage configurations of a shield case seed their own filter's target too.
    if let Some(stages) = json.get("stages").and_then(|s| s.as_array()) {
        for stage in stages {
            let name = stage.get("filter").and_then(|f| f.as_str()).unwrap_or_default();
            if let Some(config) = stage.get("config").and_then(|c| serde_json::to_vec(c).ok()) {
                config_seeds(name, &config, add);
            }
        }
    }
    if let Some(seclang) = json.get("seclang").and_then(|s| s.as_str()) {
        add("waf_seclang", seclang.as_bytes().to_vec());
    }
    if let Some(sources) = json.get("trusted_sources").and_then(|s| s.as_array()) {
        for source in sources.iter().filter_map(|s| s.as_str()) {
            add("cidr", source.as_bytes().to_vec());
        }
    }
    if let Some(providers) = json.get("providers").and_then(|p| p.as_object()) {
        for provider in providers.values() {
            if let Some(inline) = provider.pointer("/local_jwks/inline_string").and_then(|s| s.as_str()) {
                add("jwks", inline.as_bytes().to_vec());
            }
        }
    }
}

fn request_seeds(request: &Value, add: &mut impl FnMut(&'static str, Vec<u8>)) {
    let path = string_at(request, "path").unwrap_or("/");
    add("waf_transform", path.as_bytes().to_vec());
    let mut pairs: Vec<(String, String)> = vec![(":path".into(), path.into())];
    let headers: Vec<(String, String)> = match request.get("headers") {
        Some(Value::Mapping(map)) => {
            map.iter().filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar_text(v)?))).collect()
        }
        Some(Value::Sequence(list)) => list
            .iter()
            .filter_map(|pair| {
                let pair = pair.as_sequence()?;
                Some((pair.first()?.as_str()?.to_owned(), scalar_text(pair.get(1)?)?))
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut content_type = String::new();
    for (name, value) in &headers {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "authorization" => {
                let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value);
                add("jwt_token", token.as_bytes().to_vec());
            }
            "x-forwarded-for" => add("forwarded_for", value.as_bytes().to_vec()),
            "x-request-id" | "traceparent" => add("request_id", value.as_bytes().to_vec()),
            "content-type" => content_type = value.clone(),
            _ => {}
        }
        if value.len() > 8 {
            add("waf_transform", value.as_bytes().to_vec());
        }
        pairs.push((lower, value.clone()));
    }
    if let Some(source) = string_at(request, "source") {
        add("forwarded_for", source.as_bytes().to_vec());
    }
    let body = match request.get("body") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Sequence(chunks)) => chunks.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    };
    if !body.is_empty() {
        add("waf_body", format!("{content_type}\n{body}").into_bytes());
    }
    let borrowed: Vec<(&str, &[u8])> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    add("kit_headers", shield_kit::headers::serialize_pairs(&borrowed));
    add("harness_shield", encode_request(&pairs, body.as_bytes()));
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The input format of the `harness_shield` target: `name: value` lines (the pseudo-header
/// `:path` and `:method` included), an empty line, then the body.
pub fn encode_request(headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (name, value) in headers {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(b'\n');
    }
    bytes.push(b'\n');
    bytes.extend_from_slice(body);
    bytes
}
