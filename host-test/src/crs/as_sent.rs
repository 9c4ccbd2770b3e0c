//! The request as go-ftw sent it, as the harness's request model: what a Proxy-Wasm host in
//! front of an origin server (the Apache and nginx CRS's tests were written against) hands the
//! filter. Unlike [`super::translate`] (Envoy's view, which the `--envoy` run measures for real),
//! nothing is normalised away: the request line's method, target and version as written, every
//! header line as sent (hop-by-hop headers, a Referer of any text, `Expect`, a lone CR in a value),
//! a chunked body de-chunked with its `Transfer-Encoding` kept.
//!
//! What is not a request at all is answered before any filter, as every HTTP/1.1 server must or
//! may (RFC 9112): a request line without a method, target and version, a header line that is not
//! `name: value`, body framing that cannot be read (a non-numeric or conflicting
//! `Content-Length`, an unknown transfer coding), an HTTP/1.1 request without `Host`. What the
//! request model cannot hold is reported as such.

use super::translate::{CLIENT_ADDRESS, DEFAULT_HOST_FOR_HTTP_10, SERVER_ADDRESS, Translation, dechunk, split_head};
use crate::fixture::{Body, HeaderList, Request};

fn rejected(status: u16, reason: impl Into<String>) -> Translation {
    Translation::Rejected { status, reason: reason.into() }
}

/// RFC 9110 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// go-ftw's bytes as the harness request the filter sees.
pub fn as_sent(raw: &[u8]) -> Translation {
    let Some((lines, rest)) = split_head(raw) else {
        return Translation::Unsupported(
            "the request head never ends (no empty line): a server waits for the rest until its timeout".into(),
        );
    };
    let Some((request_line, header_lines)) = lines.split_first() else {
        return rejected(400, "an empty request line");
    };
    let mut notes = Vec::new();
    if request_line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return rejected(400, "the request line starts with whitespace: it has no method (RFC 9112 section 3)");
    }
    let parts: Vec<&[u8]> = request_line.split(|b| *b == b' ' || *b == b'\t').filter(|part| !part.is_empty()).collect();
    let (method, target, version) = match parts.as_slice() {
        [method, target, version] => (*method, *target, Some(*version)),
        // HTTP/0.9's simple request: no version and no header lines.
        [method, target] => (*method, *target, None),
        [_] => return rejected(400, "the request line has no request target"),
        _ => {
            return rejected(
                400,
                "the request line has more than three parts (a space in the target): no request target",
            );
        }
    };
    if !method.iter().all(|b| is_tchar(*b)) {
        return rejected(400, format!("method {:?} is not a token", String::from_utf8_lossy(method)));
    }
    let (Ok(method), Ok(target)) = (std::str::from_utf8(method), std::str::from_utf8(target)) else {
        return Translation::Unsupported(
            "the request line holds bytes that are not UTF-8: the harness request model carries text".into(),
        );
    };
    let protocol = match version {
        Some(version) => match std::str::from_utf8(version) {
            Ok(version) => version.to_string(),
            Err(_) => return Translation::Unsupported("the version token is not UTF-8".into()),
        },
        None => {
            notes.push("no version in the request line: an HTTP/0.9 request, its header lines are not read".into());
            "HTTP/0.9".to_string()
        }
    };
    let http11 = protocol == "HTTP/1.1";

    let mut headers: Vec<(String, String)> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    let mut content_lengths: Vec<String> = Vec::new();
    let mut transfer_encoding: Option<String> = None;
    let header_lines = if version.is_none() { &[][..] } else { header_lines };
    for line in header_lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return rejected(400, "a folded header line (obs-fold, RFC 9112 section 5.2)");
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
        // A lone CR is delivered as sent (a Proxy-Wasm header value is bytes); other control
        // bytes make the line invalid (RFC 9110 section 5.5).
        if let Some(bad) = value.iter().find(|b| (**b < 0x20 && **b != b'\t' && **b != b'\r') || **b == 0x7f) {
            return rejected(400, format!("a header value holds control byte 0x{bad:02x}"));
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let Ok(value) = String::from_utf8(value.to_vec()) else {
            return Translation::Unsupported(format!(
                "header {name} holds bytes that are not UTF-8: the harness request model carries header text"
            ));
        };
        match name.as_str() {
            "host" => {
                hosts.push(value);
                continue;
            }
            "content-length" => content_lengths.push(value.clone()),
            "transfer-encoding" => transfer_encoding = Some(value.clone()),
            _ => {}
        }
        headers.push((name, value));
    }
    let authority = if !hosts.is_empty() {
        hosts.join(",")
    } else if http11 {
        return rejected(400, "an HTTP/1.1 request without Host (RFC 9112 section 3.2)");
    } else {
        notes.push(format!(
            "no Host: the harness request model always carries :authority, here {DEFAULT_HOST_FOR_HTTP_10:?}"
        ));
        DEFAULT_HOST_FOR_HTTP_10.to_string()
    };

    // The body, framed as RFC 9112 section 6.3 reads it.
    let (chunks, used) = match (&transfer_encoding, content_lengths.as_slice()) {
        (Some(te), lengths) if te.eq_ignore_ascii_case("chunked") => {
            if !lengths.is_empty() {
                // Transfer-Encoding overrides Content-Length; Apache removes the latter.
                notes
                    .push("Transfer-Encoding overrides Content-Length, which is removed (RFC 9112 section 6.3)".into());
                headers.retain(|(name, _)| name != "content-length");
            }
            match dechunk(rest) {
                Some((chunks, used)) => (chunks, used),
                None => return rejected(400, "a malformed or incomplete chunked body"),
            }
        }
        (Some(te), _) => return rejected(501, format!("transfer coding {te:?} is not implemented")),
        (None, []) => (Vec::new(), 0),
        (None, [first, others @ ..]) => {
            if others.iter().any(|other| other != first) {
                return rejected(400, "Content-Length headers that disagree");
            }
            let Some(length) = first.parse::<usize>().ok().filter(|_| first.bytes().all(|b| b.is_ascii_digit())) else {
                return rejected(400, format!("Content-Length {first:?} is not a number"));
            };
            if rest.len() < length {
                return Translation::Unsupported(format!(
                    "the body has {} of the {length} bytes Content-Length announces: a server waits for the rest \
                     until its timeout",
                    rest.len()
                ));
            }
            let body = rest[..length].to_vec();
            (if body.is_empty() { Vec::new() } else { vec![body] }, length)
        }
    };
    let trailing = rest.len() - used;
    if trailing > 0 {
        notes.push(format!("{trailing} bytes after the request's framing are a next request, not this body"));
    }
    let body = if chunks.is_empty() { Body::Empty } else { Body::Bytes(chunks) };
    let request = Request {
        method: method.to_string(),
        path: target.to_string(),
        authority,
        scheme: "http".into(),
        // go-ftw runs on the same machine as the server under test.
        source: Some(CLIENT_ADDRESS.into()),
        destination: Some(SERVER_ADDRESS.into()),
        protocol: Some(protocol),
        headers: HeaderList(headers),
        body,
        trailers: HeaderList::default(),
    };
    Translation::Request { request: Box::new(request), answered_by_envoy: None, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &[u8]) -> (Request, Vec<String>) {
        match as_sent(raw) {
            Translation::Request { request, notes, .. } => (*request, notes),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn status(raw: &[u8]) -> u16 {
        match as_sent(raw) {
            Translation::Rejected { status, .. } => status,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn the_request_line_and_headers_arrive_as_written() {
        let (r, notes) = request(
            b"FOO http://localhost HTTP/4.0\r\nHost: h\r\nConnection: keep-alive,User-Agent\r\nUser-Agent: u\r\n\
              Referer: cat /etc/passwd#x\r\nKeep-Alive: 300\r\nExpect: 100-continue\r\nX: a\rb\r\n\r\n",
        );
        assert_eq!((r.method.as_str(), r.path.as_str(), r.authority.as_str()), ("FOO", "http://localhost", "h"));
        assert_eq!(r.protocol.as_deref(), Some("HTTP/4.0"));
        let names: Vec<&str> = r.headers.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["connection", "user-agent", "referer", "keep-alive", "expect", "x"]);
        assert_eq!(r.headers.0[2].1, "cat /etc/passwd#x");
        assert_eq!(r.headers.0[5].1, "a\rb");
        assert!(notes.is_empty(), "{notes:?}");
        let (r, _) = request(b"GET /a#b?\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.path, "/a#b?\u{e9}");
        let (r, _) = request(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.path, "*");
        let (r, _) = request(b"CONNECT 1.2.3.4:80 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.method.as_str(), r.path.as_str()), ("CONNECT", "1.2.3.4:80"));
    }

    #[test]
    fn bodies_are_framed_as_rfc_9112_says() {
        let (r, notes) = request(
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n3\r\nHi \r\n3\r\nCRS\r\n0\r\n\r\n",
        );
        assert_eq!(r.body.byte_chunks(), vec![&b"Hi "[..], &b"CRS"[..]]);
        assert!(r.headers.0.iter().any(|(k, v)| k == "transfer-encoding" && v == "chunked"));
        assert!(r.headers.0.iter().all(|(k, _)| k != "content-length"));
        assert_eq!(notes.len(), 1, "{notes:?}");
        let (r, notes) = request(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nabcd");
        assert_eq!(r.body.byte_chunks(), vec![&b"ab"[..]]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3;\r\n\r\nabc"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 501);
        assert!(matches!(
            as_sent(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nab"),
            Translation::Unsupported(_)
        ));
    }

    #[test]
    fn what_is_not_a_request_is_answered_before_the_filter() {
        assert_eq!(status(b"  GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n"), 400);
        assert_eq!(status(b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        // HTTP/1.0 may omit Host; HTTP/0.9 has no header lines.
        let (r, notes) = request(b"GET / HTTP/1.0\r\nUser-Agent: u\r\n\r\n");
        assert_eq!((r.authority.as_str(), r.headers.0.len()), ("localhost", 1));
        assert_eq!(notes.len(), 1);
        let (r, _) = request(b"GET /\r\nUser-Agent: u\r\n\r\n");
        assert_eq!((r.protocol.as_deref(), r.headers.0.len()), (Some("HTTP/0.9"), 0));
    }
}
