//! The bytes go-ftw puts on the wire for a stage: the request line as written, the headers sorted
//! by name (go-ftw keeps them in a map), the body after go-ftw's "autocomplete" (a form
//! `Content-Type`, form-encoding of unencoded `key=value` pairs, `Connection: close`,
//! `Content-Length`), multipart bodies with CRLF line ends; or an `encoded_request` as decoded.

use std::collections::BTreeMap;

use super::ftw::Input;

/// What go-ftw would send, or why this runner cannot build it.
pub fn build(input: &Input) -> Result<Vec<u8>, String> {
    if let Some(encoded) = &input.encoded_request {
        return base64_decode(encoded).ok_or_else(|| "encoded_request is not valid base64".to_string());
    }
    if let Some(raw) = &input.raw_request {
        return Ok(raw.as_bytes().to_vec());
    }
    let method = input.method.as_deref().unwrap_or("GET");
    let uri = input.uri.as_deref().unwrap_or("/");
    let version = input.version.as_deref().unwrap_or("HTTP/1.1");
    // go-ftw's header map: exact (case-sensitive) names, one value each, sorted when written.
    let mut headers: BTreeMap<String, String> =
        input.headers.iter().map(|(k, v)| (k.clone(), v.as_ref().map(|s| s.0.clone()).unwrap_or_default())).collect();
    let mut data = match (&input.data, &input.encoded_data) {
        (Some(data), _) => expand_template(data)?,
        (None, Some(encoded)) => {
            base64_decode(encoded).ok_or_else(|| "encoded_data is not valid base64".to_string())?
        }
        (None, None) => Vec::new(),
    };
    let autocomplete = input.autocomplete_headers.unwrap_or(true);
    // `Header.Add` sets a name only when its value is missing or empty.
    let add = |headers: &mut BTreeMap<String, String>, name: &str, value: String| {
        if headers.get(name).is_none_or(String::is_empty) {
            headers.insert(name.to_string(), value);
        }
    };
    if !data.is_empty() && autocomplete {
        add(&mut headers, "Content-Type", "application/x-www-form-urlencoded".into());
        if headers.get("Content-Type").map(String::as_str) == Some("application/x-www-form-urlencoded") {
            data = encode_form(data);
        }
    }
    if headers.get("Content-Type").is_some_and(|ct| ct.starts_with("multipart/form-data;")) {
        data = lf_to_crlf(&data);
    }
    if autocomplete {
        add(&mut headers, "Connection", "close".into());
        if !data.is_empty() || method_may_have_body(method) {
            add(&mut headers, "Content-Length", data.len().to_string());
        }
    }
    let mut out = format!("{method} {uri} {version}\r\n").into_bytes();
    for (name, value) in &headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&data);
    Ok(out)
}

/// go-ftw's `^POST|PUT|PATCH|DELETE$` (the anchors bind to the first and last alternative only).
fn method_may_have_body(method: &str) -> bool {
    method.starts_with("POST") || method.contains("PUT") || method.contains("PATCH") || method.ends_with("DELETE")
}

/// Every LF becomes CRLF (an existing CRLF becomes CR CRLF, as in go-ftw).
fn lf_to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for &byte in data {
        if byte == b'\n' {
            out.push(b'\r');
        }
        out.push(byte);
    }
    out
}

/// go-ftw evaluates `data` as a Go template; CRS uses only `{{ "text" | repeat N }}`. Any other
/// template is refused rather than guessed (go-ftw would send what its template engine makes).
pub fn expand_template(data: &str) -> Result<Vec<u8>, String> {
    if !data.contains("{{") {
        return Ok(data.as_bytes().to_vec());
    }
    let pattern = regex::Regex::new(r#"\{\{-?\s*"((?:[^"\\]|\\.)*)"\s*\|\s*repeat\s+(\d+)\s*-?\}\}"#)
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    let mut last = 0;
    for captures in pattern.captures_iter(data) {
        let (Some(whole), Some(text), Some(count)) = (captures.get(0), captures.get(1), captures.get(2)) else {
            continue;
        };
        out.push_str(&data[last..whole.start()]);
        let count: usize = count.as_str().parse().map_err(|_| "template: bad repeat count".to_string())?;
        if count > 16 * 1024 * 1024 {
            return Err("template: repeat count over 16 MiB".into());
        }
        out.push_str(&text.as_str().replace("\\\"", "\"").repeat(count));
        last = whole.end();
    }
    out.push_str(&data[last..]);
    if out.contains("{{") {
        return Err("data holds a Go template other than {{ \"text\" | repeat N }}".into());
    }
    Ok(out.into_bytes())
}

/// go-ftw's `encodeDataParameters`: when the body does not change under `url.QueryUnescape` (it
/// is not encoded yet), each `key=value` pair's key and value are `url.QueryEscape`d.
fn encode_form(data: Vec<u8>) -> Vec<u8> {
    if query_unescape(&data).as_deref() != Some(data.as_slice()) {
        return data;
    }
    let mut out = Vec::with_capacity(data.len() * 2);
    let mut tokens: Vec<&[u8]> = data.split(|b| *b == b'&').collect();
    // go-ftw's loop stops when nothing remains after a '&': a trailing '&' is dropped.
    if tokens.len() > 1 && tokens.last().is_some_and(|t| t.is_empty()) {
        tokens.pop();
    }
    for (index, token) in tokens.into_iter().enumerate() {
        if index > 0 {
            out.push(b'&');
        }
        match token.iter().position(|b| *b == b'=') {
            Some(eq) => {
                query_escape(&token[..eq], &mut out);
                out.push(b'=');
                query_escape(&token[eq + 1..], &mut out);
            }
            None => query_escape(token, &mut out),
        }
    }
    out
}

/// Go's `url.QueryEscape`: unreserved bytes stay, space becomes `+`, the rest `%XX`.
fn query_escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &byte in bytes {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{byte:02X}").as_bytes()),
        }
    }
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; `None` on a malformed escape.
pub fn query_unescape(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = bytes.get(index + 1..index + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(text, 16).ok()?);
                index += 3;
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            other => {
                out.push(other);
                index += 1;
            }
        }
    }
    Some(out)
}

/// Standard base64 (padding optional, whitespace ignored).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Scalar;

    fn input(method: &str, headers: &[(&str, &str)], data: Option<&str>) -> Input {
        Input {
            method: Some(method.into()),
            uri: Some("/post".into()),
            headers: headers.iter().map(|(k, v)| (k.to_string(), Some(Scalar(v.to_string())))).collect(),
            data: data.map(String::from),
            ..Input::default()
        }
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn autocomplete_adds_framing_and_form_encoding_in_go_ftw_order() {
        let raw = build(&input("POST", &[("Host", "localhost"), ("User-Agent", "t")], Some("a=<b c>&d"))).expect("ok");
        assert_eq!(
            text(raw),
            "POST /post HTTP/1.1\r\nConnection: close\r\nContent-Length: 13\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nHost: localhost\r\nUser-Agent: t\r\n\r\na=%3Cb+c%3E&d"
        );
    }

    #[test]
    fn already_encoded_or_non_form_bodies_are_sent_as_written() {
        let trailing = build(&input("POST", &[], Some("a=1&&b&"))).expect("ok");
        assert!(text(trailing).ends_with("\r\n\r\na=1&&b"));
        let encoded = build(&input("POST", &[], Some("a=%3Cb"))).expect("ok");
        assert!(text(encoded).ends_with("\r\n\r\na=%3Cb"));
        let json = build(&input("POST", &[("Content-Type", "application/json")], Some("{\"a\": 1}"))).expect("ok");
        assert!(text(json).ends_with("\r\n\r\n{\"a\": 1}"));
    }

    #[test]
    fn no_autocomplete_sends_only_what_the_test_wrote() {
        let mut request = input("POST", &[("Host", "localhost")], Some("x y"));
        request.autocomplete_headers = Some(false);
        assert_eq!(text(build(&request).expect("ok")), "POST /post HTTP/1.1\r\nHost: localhost\r\n\r\nx y");
        // A GET without data gets Connection only.
        let get = build(&input("GET", &[], None)).expect("ok");
        assert_eq!(text(get), "GET /post HTTP/1.1\r\nConnection: close\r\n\r\n");
        // go-ftw's method regex: PUT anywhere, POST at the start.
        assert!(method_may_have_body("XPUTX") && method_may_have_body("POSTX") && !method_may_have_body("XPOST"));
    }

    #[test]
    fn multipart_lines_end_in_crlf_and_templates_repeat() {
        let multipart = input("POST", &[("Content-Type", "multipart/form-data; boundary=b")], Some("--b\nx\r\n"));
        assert!(text(build(&multipart).expect("ok")).ends_with("\r\n\r\n--b\r\nx\r\r\n"));
        assert_eq!(expand_template(r#"a{{ "1" | repeat 3 }}b"#).expect("ok"), b"a111b");
        assert!(expand_template("{{ .Foo }}").is_err());
    }

    #[test]
    fn encoded_requests_are_decoded_exactly() {
        let request =
            Input { encoded_request: Some("R0VUIC8gSFRUUC8xLjANCkhvc3Q6DQoNCg==".into()), ..Input::default() };
        assert_eq!(build(&request).expect("ok"), b"GET / HTTP/1.0\r\nHost:\r\n\r\n");
        assert_eq!(base64_decode("rO0ABQ"), Some(vec![0xac, 0xed, 0x00, 0x05]));
        assert_eq!(base64_decode("a*b"), None);
        assert_eq!(query_unescape(b"a%2"), None);
        assert_eq!(query_unescape(b"a+%41"), Some(b"a A".to_vec()));
    }
}
