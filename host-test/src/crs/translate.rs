//! What Envoy 1.40's HTTP/1 codec and connection manager make of the raw bytes go-ftw sends, as
//! the harness's request model: the request Envoy hands the filters, the status Envoy answers
//! with itself before any filter runs, or why the model cannot hold the request.
//!
//! Every rule here was observed with Envoy 1.40 (BalsaParser, `accept_http_10: true` with
//! `default_host_for_http_10: localhost`, as the CRS Envoy bootstrap sets): `host-test crs
//! --envoy` compares the two on every CRS test and lists where they disagree.

use crate::fixture::{Body, HeaderList, Request};

/// The request methods Envoy's HTTP/1 codec accepts (any other token is answered 400).
const KNOWN_METHODS: &[&str] = &[
    "DELETE",
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "COPY",
    "LOCK",
    "MKCOL",
    "MOVE",
    "PROPFIND",
    "PROPPATCH",
    "SEARCH",
    "UNLOCK",
    "BIND",
    "REBIND",
    "UNBIND",
    "ACL",
    "REPORT",
    "MKACTIVITY",
    "CHECKOUT",
    "MERGE",
    "M-SEARCH",
    "NOTIFY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "PATCH",
    "PURGE",
    "MKCALENDAR",
    "LINK",
    "UNLINK",
    "SOURCE",
];

/// Hop-by-hop headers the connection manager removes before the filters see the map.
const REMOVED_HEADERS: &[&str] = &["connection", "keep-alive", "proxy-connection", "upgrade", "transfer-encoding"];

/// The host Envoy gives an HTTP/1.0 request without `Host` (the bootstrap's
/// `default_host_for_http_10`).
pub const DEFAULT_HOST_FOR_HTTP_10: &str = "localhost";

/// The client's address in the harness (go-ftw connects from the same machine).
pub const CLIENT_ADDRESS: &str = "127.0.0.1:40000";
/// The listener's address in the harness (CRS tests use `dest_addr: 127.0.0.1`, port 80).
pub const SERVER_ADDRESS: &str = "127.0.0.1:80";

/// The outcome of translating one raw request.
#[derive(Debug)]
pub enum Translation {
    /// The request the filters see, with what Envoy changed on the way.
    Request {
        /// The harness request.
        request: Box<Request>,
        /// The status Envoy answers itself after the filters ran (a CONNECT without a route).
        answered_by_envoy: Option<u16>,
        /// Normalisations Envoy applies (the filter sees something other than what was sent).
        notes: Vec<String>,
    },
    /// Envoy answers this itself before any filter runs.
    Rejected {
        /// Envoy's status.
        status: u16,
        /// Why.
        reason: String,
    },
    /// The harness request model cannot hold what Envoy would hand the filters.
    Unsupported(String),
}

fn rejected(status: u16, reason: impl Into<String>) -> Translation {
    Translation::Rejected { status, reason: reason.into() }
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Splits the head (request line and header lines; CRLF or bare LF) from what follows it.
pub(super) fn split_head(raw: &[u8]) -> Option<(Vec<&[u8]>, &[u8])> {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(offset) = raw.get(start..)?.iter().position(|b| *b == b'\n') {
        let end = start + offset;
        let line = &raw[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        start = end + 1;
        if line.is_empty() {
            return Some((lines, &raw[start..]));
        }
        lines.push(line);
    }
    None
}

/// Translates go-ftw's raw bytes into what the filters see in Envoy.
pub fn translate(raw: &[u8]) -> Translation {
    let Some((lines, rest)) = split_head(raw) else {
        return Translation::Unsupported(
            "the request head never ends (no empty line): Envoy waits for the rest until its timeout".into(),
        );
    };
    let Some((request_line, header_lines)) = lines.split_first() else {
        return rejected(400, "empty request line");
    };
    let mut notes = Vec::new();

    // The request line: METHOD SP target [SP version]; spaces and tabs separate the parts.
    if request_line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return rejected(400, "the request line starts with whitespace");
    }
    let parts: Vec<&[u8]> = request_line.split(|b| *b == b' ' || *b == b'\t').filter(|part| !part.is_empty()).collect();
    let (method, target, version) = match parts.as_slice() {
        [method, target] => (*method, *target, &b""[..]),
        [method, target, version] => (*method, *target, *version),
        [_] => return rejected(400, "the request line has no request target"),
        _ => return rejected(400, "the request line has more than three parts (a space in the target?)"),
    };
    let method = String::from_utf8_lossy(method).into_owned();
    if !KNOWN_METHODS.contains(&method.as_str()) {
        return rejected(400, format!("method {method:?} is not one Envoy's HTTP/1 codec accepts"));
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"" => {
            notes.push("no version in the request line: Envoy serves it as HTTP/0.9, without its header lines".into());
            false
        }
        _ => {
            let digits = |text: &[u8]| !text.is_empty() && text.iter().all(u8::is_ascii_digit);
            let valid = version
                .strip_prefix(b"HTTP/")
                .and_then(|v| {
                    let dot = v.iter().position(|b| *b == b'.')?;
                    Some(digits(&v[..dot]) && digits(&v[dot + 1..]))
                })
                .unwrap_or(false);
            if !valid {
                return rejected(
                    400,
                    format!("version {:?} is not HTTP/<digit>.<digit>", String::from_utf8_lossy(version)),
                );
            }
            if version != b"HTTP/1.0" {
                notes.push(format!(
                    "version {} is served as HTTP/1.0 by Envoy (REQUEST_PROTOCOL reads HTTP/1.0)",
                    String::from_utf8_lossy(version)
                ));
            }
            false
        }
    };
    if let Some(bad) = target.iter().find(|b| !(0x21..0x7f).contains(*b)) {
        return rejected(400, format!("the request target holds byte 0x{bad:02x} (Envoy accepts visible ASCII only)"));
    }
    if target.contains(&b'#') {
        return rejected(400, "the request target holds a fragment ('#'): Envoy rejects it");
    }
    // The target is printable ASCII from here on.
    let target = String::from_utf8_lossy(target).into_owned();
    let mut scheme = "http".to_string();
    let mut authority_from_target: Option<String> = None;
    let answered_by_envoy = None;
    let path = if method == "CONNECT" {
        let has_port = target.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        });
        if !has_port {
            return rejected(400, format!("CONNECT target {target:?} is not host:port"));
        }
        return Translation::Unsupported(
            "CONNECT: in Envoy the stream stays open as a tunnel (the filter sees a map without :path and no \
             end of stream, then Envoy answers 404 without a CONNECT route); the harness ends every request"
                .into(),
        );
    } else if target.starts_with('/') {
        target
    } else if target == "*" {
        return rejected(404, "an asterisk-form target (`OPTIONS *`) is answered 404 by Envoy before any filter");
    } else if let Some((url_scheme, rest)) = target.split_once("://")
        && (url_scheme.eq_ignore_ascii_case("http") || url_scheme.eq_ignore_ascii_case("https"))
    {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let path = &rest[end..];
        let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
        notes.push(format!("absolute-form target: Envoy makes :authority {:?} and :path {path:?}", &rest[..end]));
        scheme = url_scheme.to_ascii_lowercase();
        authority_from_target = Some(rest[..end].to_string());
        path
    } else {
        return rejected(400, format!("request target {target:?} is neither a path nor an absolute URL"));
    };

    // Header lines.
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    let mut content_lengths: Vec<String> = Vec::new();
    let mut transfer_encoding: Option<String> = None;
    let mut connection_values: Vec<(String, String)> = Vec::new();
    // An HTTP/0.9 request line (no version) has no headers for Envoy.
    let header_lines = if version.is_empty() { &[][..] } else { header_lines };
    for line in header_lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return rejected(400, "a folded header line (obs-fold)");
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return rejected(400, "a header line without ':'");
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
            return rejected(400, format!("header name {:?} is not a token", String::from_utf8_lossy(name)));
        }
        let blank = |b: &u8| *b == b' ' || *b == b'\t';
        let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
        let end = value.iter().rposition(|b| !blank(b)).map_or(start, |last| last + 1);
        let value = &value[start..end];
        // A lone CR inside a value is dropped by Envoy's codec.
        let value: Vec<u8> = if value.contains(&b'\r') {
            notes.push("a CR inside a header value is removed by Envoy".into());
            value.iter().copied().filter(|b| *b != b'\r').collect()
        } else {
            value.to_vec()
        };
        if let Some(bad) = value.iter().find(|b| (**b < 0x20 && **b != b'\t') || **b == 0x7f) {
            return rejected(400, format!("a header value holds control byte 0x{bad:02x}"));
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let Ok(value) = String::from_utf8(value) else {
            return Translation::Unsupported(format!(
                "header {name} holds bytes that are not UTF-8: the harness request model carries header text"
            ));
        };
        match name.as_str() {
            "host" => hosts.push(value.clone()),
            "content-length" => content_lengths.push(value.clone()),
            "transfer-encoding" => transfer_encoding = Some(value.clone()),
            "connection" => connection_values.push((name.clone(), value.clone())),
            _ => {}
        }
        if name == "expect" && value.eq_ignore_ascii_case("100-continue") {
            notes.push("Expect: 100-continue is answered by Envoy and removed from the map".into());
            continue;
        }
        if name == "host" {
            continue;
        }
        if REMOVED_HEADERS.contains(&name.as_str()) {
            // go-ftw's own `Connection: close` is on every request: no note for it.
            if name == "transfer-encoding" {
                notes.push("Envoy de-chunks the body and removes the transfer-encoding header".into());
            } else if !(name == "connection" && value.eq_ignore_ascii_case("close")) {
                notes.push(format!("Envoy removes the hop-by-hop header {name}"));
            }
            continue;
        }
        if name == "referer" && !is_valid_referer(&value) {
            notes.push("Envoy removes a Referer that is not a valid URI reference".into());
            continue;
        }
        headers.push((name, value));
    }
    // Headers the Connection header nominates are hop-by-hop: Envoy removes them too.
    let nominated: Vec<String> = headers
        .iter()
        .chain(connection_values.iter())
        .filter(|(name, _)| name == "connection")
        .flat_map(|(_, value)| value.split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .filter(|token| !token.is_empty() && token != "close" && !token.starts_with(':'))
        .collect();
    if headers.iter().any(|(name, _)| nominated.contains(name)) {
        notes.push(format!("Envoy removes the headers Connection names ({})", nominated.join(",")));
        headers.retain(|(name, _)| !nominated.contains(name));
    }
    let authority = match (authority_from_target, hosts.is_empty()) {
        (Some(authority), _) => authority,
        (None, false) => {
            if hosts.iter().any(|h| h.contains([' ', '\t'])) {
                return rejected(400, "the Host header holds whitespace");
            }
            hosts.join(",")
        }
        (None, true) if http11 => return rejected(400, "an HTTP/1.1 request without Host"),
        (None, true) => {
            notes.push(format!("HTTP/1.0 without Host: Envoy uses {DEFAULT_HOST_FOR_HTTP_10:?}"));
            DEFAULT_HOST_FOR_HTTP_10.to_string()
        }
    };

    // The body, framed as Envoy reads it.
    let (chunks, used) = match (&transfer_encoding, content_lengths.as_slice()) {
        (Some(_), [_, ..]) => return rejected(400, "both Transfer-Encoding and Content-Length"),
        (Some(te), []) if te.eq_ignore_ascii_case("chunked") => match dechunk(rest) {
            Some((chunks, used)) => (chunks, used),
            None => return rejected(400, "a malformed or incomplete chunked body"),
        },
        (Some(te), []) => return rejected(501, format!("Transfer-Encoding {te:?} is not implemented by Envoy")),
        (None, []) => (Vec::new(), 0),
        (None, [length]) => {
            let Some(length) = length.parse::<usize>().ok().filter(|_| length.bytes().all(|b| b.is_ascii_digit()))
            else {
                return rejected(400, format!("Content-Length {length:?} is not a number"));
            };
            if rest.len() < length {
                return Translation::Unsupported(format!(
                    "the body has {} of the {length} bytes Content-Length announces: Envoy waits for the rest \
                     until its timeout",
                    rest.len()
                ));
            }
            let body = rest[..length].to_vec();
            (if body.is_empty() { Vec::new() } else { vec![body] }, length)
        }
        (None, _) => return rejected(400, "more than one Content-Length header"),
    };
    let trailing = rest.len() - used;
    if trailing > 0 {
        notes.push(format!(
            "{trailing} bytes after the request's framing are read by Envoy as a next request, not as this body"
        ));
    }
    let chunked = transfer_encoding.is_some();
    let body = match chunks.len() {
        0 => Body::Empty,
        // The harness frames a body of one piece with content-length; a chunked one stays chunked
        // only if it arrives in several pieces (as Envoy then hands it on).
        1 if chunked => {
            let only = chunks.into_iter().next().unwrap_or_default();
            let (first, second) = only.split_at(1.min(only.len()));
            Body::Bytes(vec![first.to_vec(), second.to_vec()])
        }
        _ => Body::Bytes(chunks),
    };
    let request = Request {
        method,
        path,
        authority,
        scheme,
        // go-ftw runs on the same machine as the server under test.
        source: Some(CLIENT_ADDRESS.into()),
        destination: Some(SERVER_ADDRESS.into()),
        protocol: Some(if http11 { "HTTP/1.1".into() } else { "HTTP/1.0".into() }),
        headers: HeaderList(headers),
        body,
        trailers: HeaderList::default(),
    };
    Translation::Request { request: Box::new(request), answered_by_envoy, notes }
}

/// Whether Envoy keeps a Referer (as observed in Envoy 1.40): never with a fragment; an http(s)
/// URL of visible characters; no other scheme; a relative reference of the characters RFC 3986
/// allows.
fn is_valid_referer(value: &str) -> bool {
    if value.is_empty() || value.contains('#') {
        return false;
    }
    let lower = value.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return value.bytes().all(|b| (0x21..0x7f).contains(&b));
    }
    let scheme_end = value.find(':').unwrap_or(0);
    let has_scheme = scheme_end > 0
        && value[..scheme_end]
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphabetic() || (i > 0 && (b.is_ascii_digit() || b"+.-".contains(&b))));
    !has_scheme && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:/?[]@!$&'()*+,;=%".contains(&b))
}

/// Decodes a chunked body: the chunks and how many bytes the encoding used; `None` if malformed
/// or incomplete. Trailers after the last chunk are read and dropped.
pub(super) fn dechunk(mut rest: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    let total = rest.len();
    let mut chunks = Vec::new();
    loop {
        let line_end = rest.iter().position(|b| *b == b'\n')?;
        let line = &rest[..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let size_text = line.split(|b| *b == b';').next()?;
        let size_text = std::str::from_utf8(size_text).ok()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 1..];
        if size == 0 {
            // Trailers until an empty line.
            loop {
                let end = rest.iter().position(|b| *b == b'\n')?;
                let line = &rest[..end];
                rest = &rest[end + 1..];
                if line.strip_suffix(b"\r").unwrap_or(line).is_empty() {
                    return Some((chunks, total - rest.len()));
                }
            }
        }
        let data = rest.get(..size)?;
        chunks.push(data.to_vec());
        rest = &rest[size..];
        rest = rest.strip_prefix(b"\r\n").or_else(|| rest.strip_prefix(b"\n"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &[u8]) -> (Request, Vec<String>) {
        match translate(raw) {
            Translation::Request { request, notes, .. } => (*request, notes),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn status(raw: &[u8]) -> u16 {
        match translate(raw) {
            Translation::Rejected { status, .. } => status,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_request_becomes_envoys_map() {
        let (r, notes) = request(
            b"POST /p?a=<b> HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 3\r\n\
              User-Agent:  ua \r\nKeep-Alive: 300\r\nProxy-Connection: keep-alive\r\n\r\nabc",
        );
        assert_eq!((r.method.as_str(), r.path.as_str(), r.authority.as_str()), ("POST", "/p?a=<b>", "localhost"));
        let names: Vec<&str> = r.headers.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["content-length", "user-agent"]);
        assert_eq!(r.headers.0[1].1, "ua");
        assert_eq!(r.body.byte_chunks(), vec![&b"abc"[..]]);
        assert_eq!(r.protocol.as_deref(), Some("HTTP/1.1"));
        // Keep-Alive and Proxy-Connection are noted; go-ftw's `Connection: close` is not.
        assert_eq!(notes.len(), 2, "{notes:?}");
    }

    #[test]
    fn what_envoy_answers_itself() {
        assert_eq!(status(b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"     GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"FOO / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / JUNK/1.0\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n"), 400);
        assert_eq!(status(b"GET /\xe9 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), 404);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"),
            400
        );
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 501);
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na"), 400);
    }

    #[test]
    fn normalisations_are_noted() {
        let (r, notes) = request(b"GET http://example.org?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!((r.authority.as_str(), r.path.as_str()), ("example.org", "/?x=1"));
        assert_eq!(notes.len(), 1);
        let (r, notes) = request(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!((r.authority.as_str(), r.protocol.as_deref()), ("localhost", Some("HTTP/1.0")));
        assert_eq!(notes.len(), 1);
        let (r, notes) = request(b"GET / HTTP/4.0\r\nHost: h\r\nContent-Length: 0\r\n\r\nhi=test\r\n");
        assert_eq!(r.protocol.as_deref(), Some("HTTP/1.0"));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(r.body.byte_chunks().is_empty());
    }

    #[test]
    fn chunked_bodies_are_decoded_and_stay_chunked() {
        let (r, _) = request(
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nHi \r\n3\r\nCRS\r\n0\r\n\r\n",
        );
        assert_eq!(r.body.byte_chunks(), vec![&b"Hi "[..], &b"CRS"[..]]);
        assert!(r.headers.0.iter().all(|(k, _)| k != "transfer-encoding"));
        assert!(matches!(
            translate(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nab"),
            Translation::Unsupported(_)
        ));
        assert!(matches!(translate(b"CONNECT a:80 HTTP/1.1\r\nHost: h\r\n\r\n"), Translation::Unsupported(_)));
        let (r, _) = request(b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: u\r\nConnection: User-Agent\r\nX: 1\r\n\r\n");
        assert_eq!(r.headers.0, vec![("x".to_string(), "1".to_string())]);
        let (r, _) = request(b"GET / \r\nHost: h\r\nUser-Agent: u\r\n\r\n");
        assert!(r.headers.0.is_empty() && r.authority == "localhost");
    }

    #[test]
    fn envoy_drops_invalid_referers_and_lone_carriage_returns() {
        let (r, notes) =
            request(b"GET / HTTP/1.1\r\nHost: h\r\nReferer: a<script>\r\nX: a\rb\r\nReferer: /ok?x=1\r\n\r\n");
        assert_eq!(
            r.headers.0,
            vec![("x".to_string(), "ab".to_string()), ("referer".to_string(), "/ok?x=1".to_string())]
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        for (referer, kept) in [
            ("cat /etc/passwd", false),
            ("http://a.b/x?y=1#frag", false),
            ("/x?y=\"a\"", false),
            ("javascript:alert(1)", false),
            ("http://a.b/x?y=%zz|", true),
            ("../../etc/passwd", true),
        ] {
            assert_eq!(is_valid_referer(referer), kept, "{referer}");
        }
    }
}
