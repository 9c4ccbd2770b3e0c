//! The fixture format: YAML files of one or more cases (documents separated by `---`), each a
//! filter chain, its configuration, and steps of requests with what must come out.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::abi::LogLevel;

/// One case: a chain, how it runs, and its steps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Shown in every report line.
    pub name: String,
    /// Free text: what the case shows.
    #[serde(default)]
    pub description: Option<String>,
    /// The chain, in `http_filters` order.
    pub filters: Vec<FilterEntry>,
    /// Number of VMs per filter (Envoy's `--concurrency`); they share shared data and metrics.
    #[serde(default = "one")]
    pub workers: usize,
    /// The virtual clock's starting instant (RFC 3339); default 2026-01-01T00:00:00Z.
    #[serde(default)]
    pub clock: Option<String>,
    /// Seed of WASI `random_get`.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Answers for `proxy_http_call`s made at any time (start-up, ticks, any step).
    #[serde(default)]
    pub http_calls: Vec<HttpCallAnswer>,
    /// Answers for gRPC calls made at any time.
    #[serde(default)]
    pub grpc_calls: Vec<GrpcCallAnswer>,
    /// Envoy clusters that exist besides those `http_calls` answers name (a call to one of
    /// these that nothing answers times out); a call to a cluster that does not exist fails at
    /// once with `BadArgument`, as in Envoy.
    #[serde(default)]
    pub clusters: Vec<String>,
    /// The steps, in order.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Expect the plugin start itself (VM start + configure) to fail, or to succeed with logs.
    #[serde(default)]
    pub expect_start: Option<ExpectStart>,
    /// How the case runs in real Envoy (`envoy: {skip: "reason"}`).
    #[serde(default)]
    pub envoy: Option<EnvoyOptions>,
}

fn one() -> usize {
    1
}

/// How a case runs through real Envoy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvoyOptions {
    /// Why this case cannot be reproduced in Envoy; the case then runs in the harness only.
    #[serde(default)]
    pub skip: Option<String>,
    /// Headers whose values count real seconds from an earlier step (`retry-after`, `ratelimit`):
    /// Envoy's clock moves while the case runs and the harness's virtual clock does not, so these
    /// are compared by presence and count only.
    #[serde(default)]
    pub clock_dependent_headers: Vec<String>,
}

/// A filter of the chain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterEntry {
    /// The filter: resolves to `<name>.wasm` in the module search path unless `wasm` is given.
    pub name: String,
    /// An explicit module path, relative to the fixture file.
    #[serde(default)]
    pub wasm: Option<PathBuf>,
    /// The plugin configuration: any YAML value, passed as JSON bytes.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// The plugin configuration as raw text, for configurations that are not valid JSON.
    #[serde(default)]
    pub config_raw: Option<String>,
    /// The VM configuration, passed as JSON bytes.
    #[serde(default)]
    pub vm_config: Option<serde_json::Value>,
    /// `plugin_name` (default: `name`).
    #[serde(default)]
    pub plugin_name: Option<String>,
    /// `root_id` (default empty).
    #[serde(default)]
    pub root_id: Option<String>,
    /// `vm_id` (default empty).
    #[serde(default)]
    pub vm_id: Option<String>,
    /// Environment variables of the VM.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `fail_closed` (default) or `fail_open`.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// The log level the host reports and filters by (default `trace`: every line is kept).
    #[serde(default)]
    pub log_level: Option<LogLevel>,
}

/// Envoy's `failure_policy` of a Wasm filter.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// A dead VM answers every request with 503.
    #[default]
    FailClosed,
    /// A dead VM is skipped.
    FailOpen,
}

/// One step: move the clock, maybe send a request, check what happened.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// A label for reports.
    #[serde(default)]
    pub name: Option<String>,
    /// Move the virtual clock first (ticks and timeouts fire on the way).
    #[serde(default)]
    pub advance: Option<Dur>,
    /// The worker that gets the request (default: round-robin).
    #[serde(default)]
    pub worker: Option<usize>,
    /// The request; a step without one only moves the clock.
    #[serde(default)]
    pub request: Option<Request>,
    /// Answers for calls dispatched during this step.
    #[serde(default)]
    pub http_calls: Vec<HttpCallAnswer>,
    /// gRPC answers for this step.
    #[serde(default)]
    pub grpc_calls: Vec<GrpcCallAnswer>,
    /// What the upstream answers (default 200, no body).
    #[serde(default)]
    pub upstream: Option<Upstream>,
    /// How long a paused stream may wait for timers on the virtual clock (default 10s).
    #[serde(default)]
    pub max_wait: Option<Dur>,
    /// What must have happened.
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// A request from the client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `:method`.
    #[serde(default = "default_method")]
    pub method: String,
    /// `:path`, query included.
    #[serde(default = "default_path")]
    pub path: String,
    /// `:authority`.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// `:scheme`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// The client address, `IP:port` (IPv6 as `[addr]:port`).
    #[serde(default)]
    pub source: Option<String>,
    /// The listener address.
    #[serde(default)]
    pub destination: Option<String>,
    /// `HTTP/1.1` (default) or `HTTP/2`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Headers in order: a map, or a list of `[name, value]` pairs for repeated names.
    #[serde(default)]
    pub headers: HeaderList,
    /// The body: one string, or a list of chunks.
    #[serde(default)]
    pub body: Body,
    /// Trailers.
    #[serde(default)]
    pub trailers: HeaderList,
}

fn default_method() -> String {
    "GET".into()
}
fn default_path() -> String {
    "/".into()
}
fn default_authority() -> String {
    "example.com".into()
}
fn default_scheme() -> String {
    "http".into()
}

/// The default client address of a request without `source`.
pub const DEFAULT_SOURCE: &str = "203.0.113.1:40000";
/// The default listener address.
pub const DEFAULT_DESTINATION: &str = "127.0.0.1:10000";

/// A request or response body, whole or in chunks.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(untagged)]
pub enum Body {
    /// No body.
    #[default]
    #[serde(skip)]
    Empty,
    /// One chunk.
    Whole(String),
    /// Several chunks, delivered one callback each.
    Chunks(Vec<String>),
    /// Raw byte chunks (not UTF-8 text): built by programs such as the CRS runner, never read
    /// from a fixture file.
    #[serde(skip)]
    Bytes(Vec<Vec<u8>>),
}

impl Body {
    /// The chunks, without empty ones.
    pub fn chunks(&self) -> Vec<&str> {
        match self {
            Body::Empty => Vec::new(),
            Body::Whole(text) => [text.as_str()].into_iter().filter(|c| !c.is_empty()).collect(),
            Body::Chunks(chunks) => chunks.iter().map(String::as_str).filter(|c| !c.is_empty()).collect(),
            Body::Bytes(chunks) => {
                chunks.iter().filter_map(|c| std::str::from_utf8(c).ok()).filter(|c| !c.is_empty()).collect()
            }
        }
    }

    /// The chunks as bytes, without empty ones (the only complete view of a `Bytes` body).
    pub fn byte_chunks(&self) -> Vec<&[u8]> {
        match self {
            Body::Bytes(chunks) => chunks.iter().map(Vec::as_slice).filter(|c| !c.is_empty()).collect(),
            other => other.chunks().into_iter().map(str::as_bytes).collect(),
        }
    }
}

/// What the upstream (the backend) answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Status code.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: HeaderList,
    /// Response body.
    #[serde(default)]
    pub body: Body,
    /// Response trailers.
    #[serde(default)]
    pub trailers: HeaderList,
}

fn ok_status() -> u16 {
    200
}

/// An answer for `proxy_http_call`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCallAnswer {
    /// Which calls it answers.
    #[serde(rename = "match")]
    pub matcher: CallMatch,
    /// The response (absent with `fail: true`).
    #[serde(default)]
    pub response: Option<CallResponse>,
    /// Fail the call (as a reset or unreachable cluster does): the callback gets no headers.
    #[serde(default)]
    pub fail: bool,
    /// Answer only after this much virtual time.
    #[serde(default)]
    pub delay: Option<Dur>,
}

/// Selects calls by cluster, path and method; an absent field matches anything.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallMatch {
    /// Envoy cluster name.
    #[serde(default)]
    pub cluster: Option<String>,
    /// `:path` of the call, exactly.
    #[serde(default)]
    pub path: Option<String>,
    /// `:method`.
    #[serde(default)]
    pub method: Option<String>,
}

/// The response an http call receives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallResponse {
    /// `:status`.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Headers.
    #[serde(default)]
    pub headers: HeaderList,
    /// Body.
    #[serde(default)]
    pub body: String,
    /// Trailers.
    #[serde(default)]
    pub trailers: HeaderList,
}

/// An answer for a gRPC call or stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcCallAnswer {
    /// Which calls it answers.
    #[serde(rename = "match")]
    pub matcher: GrpcMatch,
    /// The answer.
    #[serde(default)]
    pub response: GrpcResponse,
}

/// Selects gRPC calls; an absent field matches anything.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcMatch {
    /// The cluster (the SDK's "upstream" argument).
    #[serde(default)]
    pub cluster: Option<String>,
    /// The fully-qualified service.
    #[serde(default)]
    pub service: Option<String>,
    /// The method.
    #[serde(default)]
    pub method: Option<String>,
}

/// What a gRPC call receives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcResponse {
    /// gRPC status code (0 = OK).
    #[serde(default)]
    pub status: u32,
    /// The status message `proxy_get_status` returns.
    #[serde(default)]
    pub status_message: String,
    /// The response message bytes (as text).
    #[serde(default)]
    pub message: String,
    /// Initial metadata.
    #[serde(default)]
    pub initial_metadata: HeaderList,
    /// Trailing metadata.
    #[serde(default)]
    pub trailing_metadata: HeaderList,
}

/// What must be true after a step.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The local reply a filter sent, or `false`: no filter answered itself.
    #[serde(default)]
    pub local_reply: Option<Presence<ExpectMessage>>,
    /// What the backend received, or `false`: the request never reached it.
    #[serde(default)]
    pub upstream_request: Option<Presence<ExpectMessage>>,
    /// What the client got.
    #[serde(default)]
    pub response: Option<ExpectMessage>,
    /// Log lines of this step.
    #[serde(default)]
    pub logs: Option<ExpectLogs>,
    /// Metric values after the step, by name.
    #[serde(default)]
    pub metrics: BTreeMap<String, i64>,
    /// The http calls filters dispatched during the step, in order.
    #[serde(default)]
    pub http_calls: Option<Vec<CallMatch>>,
    /// The step traps a VM: `true`, or a text the trap message contains.
    #[serde(default)]
    pub trap: Option<TrapExpect>,
    /// The stream was reset (`proxy_close_stream`).
    #[serde(default)]
    pub reset: Option<bool>,
}

/// An expectation that is either a description or `false` (it must not happen).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Presence<T> {
    /// `false`: must not happen (`true` is refused).
    Absent(bool),
    /// It happened, like this.
    Expected(T),
}

/// A trap expectation.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TrapExpect {
    /// `true`: a trap happened; `false`: none did.
    Any(bool),
    /// The trap message (including the filter's panic line) contains this.
    Contains(String),
}

/// Expected headers and body of a request or response.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectMessage {
    /// Status code (responses and local replies).
    #[serde(default)]
    pub status: Option<u16>,
    /// Header name → value matcher; names match case-insensitively.
    #[serde(default)]
    pub headers: BTreeMap<String, ValueMatch>,
    /// Headers that must not be there.
    #[serde(default)]
    pub absent: Vec<String>,
    /// The exact body.
    #[serde(default)]
    pub body: Option<String>,
    /// A text the body contains.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Trailers name → matcher.
    #[serde(default)]
    pub trailers: BTreeMap<String, ValueMatch>,
    /// Envoy's response code details of a local reply.
    #[serde(default)]
    pub details: Option<String>,
}

/// How a header value is matched.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ValueMatch {
    /// Exactly this value.
    Exact(Scalar),
    /// `{regex: ...}`: the whole value matches this regular expression.
    Regex {
        /// The pattern (anchor it yourself).
        regex: String,
    },
    /// `{present: true|false}`.
    Present {
        /// Whether the header must be present.
        present: bool,
    },
}

/// Expected log lines.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectLogs {
    /// Each text must appear in some line.
    #[serde(default)]
    pub contains: Vec<String>,
    /// No line may contain any of these texts.
    #[serde(default)]
    pub not_contains: Vec<String>,
}

/// The start of the plugins.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectStart {
    /// The plugin refuses to start (its configuration is refused, or the VM fails).
    #[serde(default)]
    pub fails: bool,
    /// Log lines of the start.
    #[serde(default)]
    pub logs: Option<ExpectLogs>,
}

/// A YAML scalar read as text: `5`, `true` and `"5"` are all header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// Headers in order, written as a map or as a list of `[name, value]` pairs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderList(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for HeaderList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;
        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = HeaderList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of header names to values, or a list of [name, value] pairs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderList, A::Error> {
                let mut out = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Scalar>()? {
                    out.push((name, value.0));
                }
                Ok(HeaderList(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HeaderList, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = seq.next_element::<Vec<Scalar>>()? {
                    match <[Scalar; 2]>::try_from(pair) {
                        Ok([name, value]) => out.push((name.0, value.0)),
                        Err(_) => {
                            return Err(de::Error::custom("each header pair must be [name, value]"));
                        }
                    }
                }
                Ok(HeaderList(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<HeaderList, E> {
                Ok(HeaderList::default())
            }
        }
        deserializer.deserialize_any(HeadersVisitor)
    }
}

/// A duration written as `1500ms`, `2s`, `1m 30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map(Dur)
            .map_err(|e| de::Error::custom(format!("invalid duration {text:?} ({e}); write e.g. 500ms, 2s, 1m")))
    }
}

/// A case with the file it came from.
#[derive(Debug)]
pub struct LoadedCase {
    /// The fixture file.
    pub file: PathBuf,
    /// Its position in the file (1-based).
    pub index: usize,
    /// The case.
    pub case: Case,
}

impl Case {
    /// Every Envoy cluster of the case: those declared, and those any http call answer names.
    pub fn cluster_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .clusters
            .iter()
            .cloned()
            .chain(
                self.http_calls
                    .iter()
                    .chain(self.steps.iter().flat_map(|s| s.http_calls.iter()))
                    .filter_map(|a| a.matcher.cluster.clone()),
            )
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Reads every case of a file. An error names the file, the document and the field.
pub fn load_file(path: &Path) -> Result<Vec<LoadedCase>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut cases = Vec::new();
    for (position, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let index = position + 1;
        let case = Case::deserialize(document).map_err(|e| format!("{}: case {index}: {e}", path.display()))?;
        validate(&case).map_err(|e| format!("{}: case {index} ({}): {e}", path.display(), case.name))?;
        cases.push(LoadedCase { file: path.to_path_buf(), index, case });
    }
    if cases.is_empty() {
        return Err(format!("{}: no cases in the file", path.display()));
    }
    Ok(cases)
}

/// Checks what serde cannot: references between fields and regexes.
fn validate(case: &Case) -> Result<(), String> {
    if case.filters.is_empty() {
        return Err("filters: the chain is empty".into());
    }
    if case.workers == 0 {
        return Err("workers: must be at least 1".into());
    }
    if case.steps.is_empty() && case.expect_start.is_none() {
        return Err("steps: a case needs steps, or expect_start".into());
    }
    if let Some(clock) = &case.clock {
        humantime::parse_rfc3339(clock).map_err(|e| format!("clock: {e} (write e.g. 2026-01-01T00:00:00Z)"))?;
    }
    for (position, filter) in case.filters.iter().enumerate() {
        if filter.config.is_some() && filter.config_raw.is_some() {
            return Err(format!("filters[{position}]: give config or config_raw, not both"));
        }
    }
    for (position, step) in case.steps.iter().enumerate() {
        let at = format!("steps[{position}]");
        if let Some(worker) = step.worker
            && worker >= case.workers
        {
            return Err(format!("{at}.worker: {worker} is out of range (workers: {})", case.workers));
        }
        if let Some(request) = &step.request {
            for (field, value) in [("source", &request.source), ("destination", &request.destination)] {
                if let Some(value) = value {
                    value
                        .parse::<std::net::SocketAddr>()
                        .map_err(|_| format!("{at}.request.{field}: {value:?} is not IP:port (IPv6 as [addr]:port)"))?;
                }
            }
        }
        let Some(expect) = &step.expect else { continue };
        for (field, presence) in [("local_reply", &expect.local_reply), ("upstream_request", &expect.upstream_request)]
        {
            if let Some(Presence::Absent(true)) = presence {
                return Err(format!("{at}.expect.{field}: write the expectation, or false"));
            }
        }
        let messages = [
            (
                "local_reply",
                match &expect.local_reply {
                    Some(Presence::Expected(m)) => Some(m),
                    _ => None,
                },
            ),
            (
                "upstream_request",
                match &expect.upstream_request {
                    Some(Presence::Expected(m)) => Some(m),
                    _ => None,
                },
            ),
            ("response", expect.response.as_ref()),
        ];
        for (field, message) in messages {
            let Some(message) = message else { continue };
            for (name, matcher) in message.headers.iter().chain(&message.trailers) {
                if let ValueMatch::Regex { regex } = matcher {
                    regex::Regex::new(regex)
                        .map_err(|e| format!("{at}.expect.{field}.headers.{name}: invalid regex: {e}"))?;
                }
            }
        }
    }
    Ok(())
}

/// Every fixture file under the given paths (files as given, directories searched for
/// `*.yaml` / `*.yml`), sorted.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: cannot read directory: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(format!("{}: no such file or directory", path.display()));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Case, String> {
        let case = Case::deserialize(serde_yaml_ng::Deserializer::from_str(text)).map_err(|e| e.to_string())?;
        validate(&case)?;
        Ok(case)
    }

    #[test]
    fn the_contract_example_parses() {
        let case = parse(
            r#"
name: spoofed identity header is removed
filters:
  - name: header-strip
    config: {strip: [x-user-email]}
workers: 1
steps:
  - advance: 0s
    worker: 0
    request: {method: GET, path: /api?x=1, authority: api.example.com, source: 203.0.113.7:40000,
              headers: {x-user-email: mallory@example.com}, body: "", trailers: {}}
    http_calls:
      - {match: {cluster: jwks, path: /keys}, response: {status: 200, headers: {}, body: "..."}}
    upstream: {status: 200, headers: {}, body: ok}
    expect:
      local_reply: {status: 403, headers: {}, body_contains: blocked}
      upstream_request: {headers: {x-request-id: {regex: "^[0-9a-f-]{36}$"}}, absent: [x-user-email]}
      response: {status: 200, headers: {}}
      logs: {contains: [], not_contains: []}
      metrics: {name: 1}
"#,
        )
        .expect("valid case");
        assert_eq!(case.filters[0].config, Some(serde_json::json!({"strip": ["x-user-email"]})));
        let request = case.steps[0].request.as_ref().expect("request");
        assert_eq!(request.headers.0, vec![("x-user-email".to_string(), "mallory@example.com".to_string())]);
        assert_eq!(case.steps[0].advance, Some(Dur(Duration::ZERO)));
    }

    #[test]
    fn repeated_headers_as_pairs_and_numbers_as_text() {
        let case = parse(
            "name: x\nfilters: [{name: f}]\nsteps:\n  - request: {headers: [[a, 1], [A, two]]}\n    expect: {local_reply: false}\n",
        )
        .expect("valid");
        let request = case.steps[0].request.as_ref().expect("request");
        assert_eq!(request.headers.0, vec![("a".into(), "1".into()), ("A".into(), "two".into())]);
        assert!(matches!(
            case.steps[0].expect.as_ref().and_then(|e| e.local_reply.as_ref()),
            Some(Presence::Absent(false))
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let unknown = parse("name: x\nfilters: [{name: f, confg: {}}]\nsteps: [{}]\n").expect_err("unknown key");
        assert!(unknown.contains("confg"), "{unknown}");
        let worker = parse("name: x\nfilters: [{name: f}]\nsteps: [{worker: 3}]\n").expect_err("bad worker");
        assert!(worker.contains("steps[0].worker"), "{worker}");
        let duration = parse("name: x\nfilters: [{name: f}]\nsteps: [{advance: soon}]\n").expect_err("bad duration");
        assert!(duration.contains("invalid duration"), "{duration}");
        let source =
            parse("name: x\nfilters: [{name: f}]\nsteps: [{request: {source: nowhere}}]\n").expect_err("bad source");
        assert!(source.contains("request.source"), "{source}");
    }
}
