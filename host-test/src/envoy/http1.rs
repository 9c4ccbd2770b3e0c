//! Just enough HTTP/1.1 for the Envoy runner: read a request or response (content-length,
//! chunked with trailers, or until close) and write one, over a plain TCP stream.

use std::io::{BufRead, BufReader, Write};

use anyhow::{Context as _, Result, anyhow, bail};

/// A parsed HTTP/1.1 message.
#[derive(Clone, Debug, Default)]
pub struct Http1Message {
    /// The request line or status line.
    pub start_line: String,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Trailers (from a chunked body).
    pub trailers: Vec<(String, String)>,
}

impl Http1Message {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn read_line<R: BufRead>(reader: &mut R) -> Result<Option<String>> {
    let mut line = Vec::new();
    let read = reader.read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

fn read_fields<R: BufRead>(reader: &mut R) -> Result<Vec<(String, String)>> {
    let mut fields = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| anyhow!("connection closed inside the header block"))?;
        if line.is_empty() {
            return Ok(fields);
        }
        let (name, value) = line.split_once(':').ok_or_else(|| anyhow!("malformed header line {line:?}"))?;
        fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

/// Reads one message. `None` when the peer closed before sending anything. A response to a
/// request without a body (`bodyless`, e.g. HEAD, 204, 304) has none.
pub fn read_message<R: BufRead>(reader: &mut R, is_response: bool, bodyless: bool) -> Result<Option<Http1Message>> {
    let start_line = loop {
        match read_line(reader)? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let headers = read_fields(reader)?;
    // A 204 or 304 response has no body, whatever its headers say.
    let status = start_line.split_whitespace().nth(1).unwrap_or("");
    let bodyless = bodyless || (is_response && matches!(status, "204" | "304"));
    let mut message = Http1Message { start_line, headers, ..Default::default() };
    if bodyless {
        return Ok(Some(message));
    }
    let chunked = message.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            let size_line = read_line(reader)?.ok_or_else(|| anyhow!("connection closed inside a chunked body"))?;
            let size_text = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16).with_context(|| format!("bad chunk size {size_line:?}"))?;
            if size == 0 {
                message.trailers = read_fields(reader)?;
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk)?;
            message.body.extend_from_slice(&chunk);
            read_line(reader)?;
        }
    } else if let Some(length) = message.header("content-length") {
        let length: usize = length.parse().with_context(|| format!("bad content-length {length:?}"))?;
        message.body = vec![0; length];
        reader.read_exact(&mut message.body)?;
    } else if is_response {
        reader.read_to_end(&mut message.body)?;
    }
    Ok(Some(message))
}

/// Writes a message: with `content-length` for a body (always, for a response), chunked when
/// there are trailers.
pub fn write_message<W: Write>(
    writer: &mut W,
    start_line: &str,
    headers: &[(String, String)],
    body: &[u8],
    trailers: &[(String, String)],
) -> Result<()> {
    let mut out = format!("{start_line}\r\n").into_bytes();
    let has_length = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    for (name, value) in headers {
        if value.contains(['\r', '\n']) {
            bail!("header {name} has a CR or LF, which HTTP/1.1 cannot carry");
        }
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !trailers.is_empty() {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        if !body.is_empty() {
            out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        for (name, value) in trailers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    } else {
        let is_response = start_line.starts_with("HTTP/");
        if !has_length && (is_response || !body.is_empty()) {
            out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }
    writer.write_all(&out)?;
    writer.flush()?;
    Ok(())
}

/// A buffered reader over a clone of the stream, for reading while writing on the original.
pub fn reader(stream: &std::net::TcpStream) -> Result<BufReader<std::net::TcpStream>> {
    Ok(BufReader::new(stream.try_clone()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_body_with_trailers_round_trips() {
        let mut wire = Vec::new();
        write_message(
            &mut wire,
            "POST /x HTTP/1.1",
            &[("host".into(), "a".into())],
            b"hello",
            &[("t".into(), "1".into())],
        )
        .expect("written");
        let message = read_message(&mut wire.as_slice(), false, false).expect("parsed").expect("a message");
        assert_eq!(message.start_line, "POST /x HTTP/1.1");
        assert_eq!(message.body, b"hello");
        assert_eq!(message.trailers, vec![("t".to_string(), "1".to_string())]);
    }

    #[test]
    fn content_length_body() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok";
        let message = read_message(&mut &wire[..], true, false).expect("parsed").expect("a message");
        assert_eq!(message.header("x-a"), Some("b"));
        assert_eq!(message.body, b"ok");
    }
}
