//! Invalid UTF-8 in every part of a request, through all five stages of one shield (issue 12,
//! docs/reliability.md). Envoy hands a filter header values with bytes 0x80–0xFF as they arrived
//! (obs-text), and the harness's fixtures carry header values as UTF-8 text only, so this drives
//! the stages natively, as the module's pipeline does: in order, each seeing the earlier ones'
//! changes, until one replies. No stage may panic (a panic kills the VM for every request on the
//! worker), and each request must get the decision a well-formed request of its kind gets.

use shield_kit::abi::Map;
use shield_kit::headers::HeaderMap;
use shield_kit::stage::{Flow, Request, Stage};

/// The one host import still reached through the SDK (`jwt-auth` fetches remote keys with
/// `dispatch_http_call`, which registers the call with the SDK's dispatcher). Natively there is
/// no host: the call fails as Envoy's does for an unknown cluster (`InternalFailure`). The keys
/// here are inline, so no stage calls it.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
extern "C" fn proxy_http_call(
    _upstream: *const u8,
    _upstream_size: usize,
    _headers: *const u8,
    _headers_size: usize,
    _body: *const u8,
    _body_size: usize,
    _trailers: *const u8,
    _trailers_size: usize,
    _timeout_ms: u32,
    _token: *mut u32,
) -> u32 {
    10
}

/// The lab's chain (envoy-configs/envoy/full-chain.yaml) in small: forged identity headers
/// stripped, a request ID, a token required outside `/public`, limits, the built-in WAF.
const CONFIG: &str = r#"{"stages": [
  {"filter": "header-strip", "config": {"strip": ["x-user-id", "x-user-email"]}},
  {"filter": "request-id", "config": {"header": "x-request-id", "format": "uuid4"}},
  {"filter": "jwt-auth", "config": {
    "providers": {"lab": {"issuer": "https://issuer.example", "audiences": ["api"],
      "local_jwks": {"inline_string": "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"alg\":\"HS256\",\"k\":\"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg\"}]}"},
      "claim_to_headers": [{"header_name": "x-user-id", "claim_name": "sub"}]}},
    "rules": [{"match": {"prefix": "/public"}}, {"match": {"prefix": "/"}, "requires": {"provider_name": "lab"}}]}},
  {"filter": "rate-limit", "config": {"rules": [
    {"name": "per-agent", "key": [{"header": "user-agent"}], "max_tokens": 100, "fill_interval": "1m"}]}},
  {"filter": "waf", "config": {"mode": "block"}}
]}"#;

/// Bytes that are not UTF-8: a lone continuation byte, a truncated sequence, an overlong `/`,
/// a surrogate, and 0xFF.
const INVALID: &[&[u8]] = &[b"\x80", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff\xfe"];

/// How a request ended: the stage that replied and its status, or `None` when it went on.
struct Ended {
    reply: Option<(&'static str, u16)>,
    request: Request,
}

fn stages() -> Vec<Box<dyn Stage>> {
    match shield::config::build_stages(CONFIG.as_bytes()) {
        Ok(stages) => stages,
        Err(error) => panic!("the test configuration is refused: {error}"),
    }
}

/// Runs one request through every stage as the pipeline does (headers, then the body for the
/// stages that asked for it), stopping at the first reply.
fn run(stages: &[Box<dyn Stage>], headers: &[(&str, &[u8])], body: &[u8]) -> Ended {
    let mut request = Request::with_headers(1, HeaderMap::from_pairs(Map::RequestHeaders, headers));
    let mut readers = Vec::new();
    for stage in stages {
        let mut stream = stage.stream(1);
        match stream.on_request_headers(&mut request, body.is_empty()) {
            Flow::Continue => {}
            Flow::ReadBody { limit } => readers.push((stage.name(), stream, limit)),
            Flow::Reply(reply) => return Ended { reply: Some((stage.name(), reply.status)), request },
            Flow::Wait { .. } => panic!("{} waits: the keys are inline", stage.name()),
        }
    }
    for (name, mut stream, limit) in readers {
        let seen = &body[..body.len().min(limit)];
        if let Flow::Reply(reply) = stream.on_request_body(&mut request, seen, body.len(), true) {
            return Ended { reply: Some((name, reply.status)), request };
        }
    }
    Ended { reply: None, request }
}

/// `value` with `bytes` spliced into its middle.
fn spliced(value: &str, bytes: &[u8]) -> Vec<u8> {
    let (head, tail) = value.split_at(value.len() / 2);
    [head.as_bytes(), bytes, tail.as_bytes()].concat()
}

#[test]
fn invalid_utf8_in_every_header_of_a_public_request_goes_through_every_stage() {
    let stages = stages();
    for bytes in INVALID {
        let agent = spliced("Mozilla/5.0 (X11; Linux x86_64)", bytes);
        let forged = spliced("admin", bytes);
        let cookie = spliced("session=abcdef; theme=dark", bytes);
        let forwarded = spliced("203.0.113.7, 10.0.0.1", bytes);
        let request_id = spliced("not-a-uuid", bytes);
        let accept = spliced("text/html", bytes);
        let ended = run(
            &stages,
            &[
                (":method", b"GET"),
                (":path", b"/public/items?page=2&sort=name"),
                (":authority", b"api.example.com"),
                ("user-agent", &agent),
                ("x-user-id", &forged),
                ("x-user-email", &forged),
                ("cookie", &cookie),
                ("x-forwarded-for", &forwarded),
                ("x-request-id", &request_id),
                ("accept", &accept),
            ],
            b"",
        );
        assert_eq!(ended.reply, None, "a public request with {bytes:?} in its header values must go on");
        let mut request = ended.request;
        assert_eq!(request.headers.get("x-user-id"), None, "a forged identity header with {bytes:?} is stripped");
        assert_eq!(request.headers.get("x-user-email"), None);
        let id = request.headers.get("x-request-id").map(<[u8]>::to_vec).unwrap_or_default();
        assert!(
            id.len() == 36 && id.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-'),
            "the invalid incoming request ID is replaced by a UUID, got {:?}",
            String::from_utf8_lossy(&id)
        );
    }
}

#[test]
fn invalid_utf8_in_the_path_and_query_is_decided_without_a_panic() {
    let stages = stages();
    for bytes in INVALID {
        let path = [b"/public/".as_slice(), bytes, b"?q=".as_slice(), bytes, b"&page=1"].concat();
        let ended = run(&stages, &[(":method", b"GET"), (":path", &path), (":authority", b"api.example.com")], b"");
        // Raw bytes over 0x7F in a path are not an attack by themselves: nothing blocks them.
        assert_eq!(ended.reply, None, "path {:?}", String::from_utf8_lossy(&path));
    }
    // The same bytes around an attack do not hide it.
    for bytes in INVALID {
        let path = [b"/public/search?q=1%27%20OR%20%271%27%3D%271".as_slice(), bytes].concat();
        let ended = run(&stages, &[(":method", b"GET"), (":path", &path), (":authority", b"api.example.com")], b"");
        assert_eq!(ended.reply, Some(("waf", 403)), "path {:?}", String::from_utf8_lossy(&path));
    }
}

#[test]
fn a_token_with_invalid_utf8_is_refused_with_401() {
    let stages = stages();
    for bytes in INVALID {
        let header_b64 = "eyJhbGciOiJIUzI1NiJ9";
        let tokens = [
            spliced(&format!("Bearer {header_b64}.e30.c2ln"), bytes),
            [b"Bearer ".as_slice(), bytes].concat(),
            [b"Bearer ".as_slice(), header_b64.as_bytes(), b".", bytes, b".", bytes].concat(),
        ];
        for token in &tokens {
            let ended = run(
                &stages,
                &[
                    (":method", b"GET"),
                    (":path", b"/api/orders"),
                    (":authority", b"api.example.com"),
                    ("authorization", token),
                ],
                b"",
            );
            assert_eq!(ended.reply, Some(("jwt-auth", 401)), "token {:?}", String::from_utf8_lossy(token));
        }
    }
}

#[test]
fn invalid_utf8_in_bodies_is_inspected_under_every_body_processor() {
    let stages = stages();
    // (content type, body before the bytes, after them for a benign body, after them with an
    // attack, the status for both): a JSON string with invalid UTF-8 is not JSON, so the body is
    // refused as unparsable (400, as ModSecurity's recommended rule 200002 does) rather than let
    // through uninspected; the other processors read around the bytes and find the attack (403).
    type BodyCase = (&'static str, &'static [u8], &'static [u8], &'static [u8], Option<u16>, u16);
    let cases: [BodyCase; 4] = [
        ("application/x-www-form-urlencoded", b"name=ab", b"cd", b"&comment=1%27%20OR%201%3D1--", None, 403),
        ("application/json", b"{\"name\": \"ab", b"\"}", b"\", \"q\": \"<script>alert(1)</script>\"}", Some(400), 400),
        ("text/xml", b"<a><b>ab", b"</b></a>", b"</b><c>&lt;script&gt;alert(1)&lt;/script&gt;</c></a>", None, 403),
        (
            "multipart/form-data; boundary=XyZ",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nab",
            b"\r\n--XyZ--\r\n",
            b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n<script>alert(1)</script>\r\n--XyZ--\r\n",
            None,
            403,
        ),
    ];
    for bytes in INVALID {
        for (content_type, head, benign_tail, attack_tail, benign_status, attack_status) in cases {
            let headers: [(&str, &[u8]); 4] = [
                (":method", b"POST"),
                (":path", b"/public/comments"),
                (":authority", b"api.example.com"),
                ("content-type", content_type.as_bytes()),
            ];
            let benign = [head, bytes, benign_tail].concat();
            let ended = run(&stages, &headers, &benign);
            assert_eq!(
                ended.reply.map(|(_, status)| status),
                benign_status,
                "{content_type} body {:?}",
                String::from_utf8_lossy(&benign)
            );
            let hostile = [head, bytes, attack_tail].concat();
            let ended = run(&stages, &headers, &hostile);
            assert_eq!(
                ended.reply,
                Some(("waf", attack_status)),
                "{content_type} body {:?} must be refused",
                String::from_utf8_lossy(&hostile)
            );
        }
    }
}
