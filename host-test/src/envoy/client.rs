//! Sends a fixture request to Envoy over HTTP/1.1, behind a PROXY protocol v1 header that
//! carries the fixture's source and destination, so Envoy sees them as the downstream addresses.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::http1::{Http1Message, read_message, reader, write_message};
use crate::fixture::{self, Request};

/// The PROXY v1 line for a connection from `source` to `destination`.
pub fn proxy_line(source: SocketAddr, destination: SocketAddr) -> String {
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => format!("PROXY TCP4 {s} {d} {} {}\r\n", source.port(), destination.port()),
        (s, d) => {
            // PROXY v1 wants one family: carry an IPv4 side as IPv4-mapped IPv6.
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            format!("PROXY TCP6 {} {} {} {}\r\n", v6(s), v6(d), source.port(), destination.port())
        }
    }
}

/// The HTTP/2 client script (run with the project's .venv Python and its `h2` package).
const H2_CLIENT: &str = include_str!("h2_client.py");

/// Sends `request` to Envoy's listener on `port` — over HTTP/2 when it says `protocol: HTTP/2`
/// (with `python`, the .venv interpreter), else over HTTP/1.1; the response, or `None` if
/// Envoy reset the stream or closed the connection without one.
pub fn send(port: u16, request: &Request, python: &std::path::Path) -> Result<Option<Http1Message>> {
    if request.protocol.as_deref() == Some("HTTP/2") {
        return send_h2(port, request, python);
    }
    send_h1(port, request)
}

fn send_h2(port: u16, request: &Request, python: &std::path::Path) -> Result<Option<Http1Message>> {
    use std::process::{Command, Stdio};
    let source: SocketAddr = request.source.as_deref().unwrap_or(fixture::DEFAULT_SOURCE).parse()?;
    let destination: SocketAddr = request.destination.as_deref().unwrap_or(fixture::DEFAULT_DESTINATION).parse()?;
    let input = serde_json::json!({
        "port": port,
        "proxy_line": proxy_line(source, destination),
        "method": request.method,
        "path": request.path,
        "authority": request.authority,
        "scheme": request.scheme,
        "headers": request.headers.0,
        "chunks": request.body.chunks(),
        "trailers": request.trailers.0,
    });
    let mut child = Command::new(python)
        .args(["-c", H2_CLIENT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow!("starting {} for the HTTP/2 client: {e}", python.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.to_string().as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(anyhow!("the HTTP/2 client failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    let response: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    if response["reset"].as_bool() == Some(true) && response["headers"].as_array().is_none_or(|h| h.is_empty()) {
        return Ok(None);
    }
    let pairs = |value: &serde_json::Value| -> Vec<(String, String)> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pair| Some((pair[0].as_str()?.to_string(), pair[1].as_str()?.to_string())))
            .collect()
    };
    let mut headers = pairs(&response["headers"]);
    let status = headers.iter().find(|(k, _)| k == ":status").map(|(_, v)| v.clone()).unwrap_or_default();
    headers.retain(|(k, _)| k != ":status");
    Ok(Some(Http1Message {
        start_line: format!("HTTP/2 {status}"),
        headers,
        body: response["body"].as_str().unwrap_or_default().as_bytes().to_vec(),
        trailers: pairs(&response["trailers"]),
    }))
}

fn send_h1(port: u16, request: &Request) -> Result<Option<Http1Message>> {
    let source: SocketAddr = request.source.as_deref().unwrap_or(fixture::DEFAULT_SOURCE).parse()?;
    let destination: SocketAddr = request.destination.as_deref().unwrap_or(fixture::DEFAULT_DESTINATION).parse()?;
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(proxy_line(source, destination).as_bytes())?;
    let mut headers = vec![("host".to_string(), request.authority.clone())];
    headers.extend(request.headers.0.iter().cloned());
    let chunks = request.body.chunks();
    let start_line = format!("{} {} HTTP/1.1", request.method, request.path);
    if chunks.len() > 1 {
        // One chunk per write, apart in time, so that Envoy hands the filters one body callback
        // per chunk, as the harness does.
        let mut head = format!("{start_line}\r\n");
        for (name, value) in &headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        stream.write_all(head.as_bytes())?;
        for chunk in chunks {
            std::thread::sleep(Duration::from_millis(40));
            stream.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())?;
        }
        std::thread::sleep(Duration::from_millis(40));
        let mut tail = String::from("0\r\n");
        for (name, value) in &request.trailers.0 {
            tail.push_str(&format!("{name}: {value}\r\n"));
        }
        tail.push_str("\r\n");
        stream.write_all(tail.as_bytes())?;
    } else {
        let body = chunks.concat().into_bytes();
        write_message(&mut stream, &start_line, &headers, &body, &request.trailers.0)?;
    }
    let mut input = reader(&stream)?;
    let bodyless = request.method.eq_ignore_ascii_case("HEAD");
    match read_message(&mut input, true, bodyless) {
        Ok(message) => Ok(message),
        Err(error) if is_reset(&error) => Ok(None),
        Err(error) => Err(anyhow!("reading the response: {error:#}")),
    }
}

fn is_reset(error: &anyhow::Error) -> bool {
    error.downcast_ref::<std::io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe
        )
    }) || error.to_string().contains("connection closed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_lines_carry_the_fixture_addresses() {
        let v4 = proxy_line("203.0.113.7:40000".parse().expect("addr"), "127.0.0.1:10000".parse().expect("addr"));
        assert_eq!(v4, "PROXY TCP4 203.0.113.7 127.0.0.1 40000 10000\r\n");
        let v6 = proxy_line("[2001:db8::1]:443".parse().expect("addr"), "127.0.0.1:10000".parse().expect("addr"));
        assert_eq!(v6, "PROXY TCP6 2001:db8::1 ::ffff:127.0.0.1 443 10000\r\n");
    }
}
