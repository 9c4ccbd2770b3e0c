//! The local reply for a refused request: status, `WWW-Authenticate` (RFC 6750, as Envoy's
//! `jwt_authn` writes it), and a short JSON body.

use crate::decision::RequestView;
use crate::reason::Failure;

/// A local reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u32,
    /// Response headers.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: String,
}

/// The reply for `failure` on the request `view`.
///
/// `WWW-Authenticate: Bearer realm="<scheme>://<authority><path>"`, plus
/// `, error="invalid_token"` unless the token is simply missing. 503 (keys unavailable) has no
/// challenge: the client did nothing wrong.
pub fn reply(failure: Failure, view: &RequestView<'_>) -> Reply {
    let status = failure.status();
    let mut headers = Vec::with_capacity(2);
    if status != 503 {
        let mut challenge = format!("Bearer realm=\"{}\"", realm(view));
        if failure != Failure::Missing {
            challenge.push_str(", error=\"invalid_token\"");
        }
        headers.push(("www-authenticate", challenge));
    }
    headers.push(("content-type", "application/json".to_string()));
    let body = format!(r#"{{"status":{status},"error":"{}","message":"{}"}}"#, failure.as_str(), failure.message());
    Reply { status, headers, body }
}

/// `<scheme>://<authority><path>` of the request, query excluded, with anything that could end
/// the quoted string or the header (`"`, `\`, controls, non-ASCII) percent-encoded.
fn realm(view: &RequestView<'_>) -> String {
    let scheme = view
        .header("x-forwarded-proto")
        .or_else(|| view.header(":scheme"))
        .filter(|scheme| matches!(*scheme, b"http" | b"https"))
        .unwrap_or(b"http");
    let authority = view.header(":authority").unwrap_or_default();
    let mut realm = String::with_capacity(scheme.len() + authority.len() + view.path.len() + 3);
    push_escaped(&mut realm, scheme);
    realm.push_str("://");
    push_escaped(&mut realm, authority);
    push_escaped(&mut realm, view.path.as_bytes());
    realm
}

fn push_escaped(out: &mut String, bytes: &[u8]) {
    for &byte in bytes.iter().take(1024) {
        if byte.is_ascii_graphic() && byte != b'"' && byte != b'\\' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shield_kit::headers::Header;

    fn headers<'a>(path: &'a str, authority: &'a str) -> Vec<Header<'a>> {
        vec![(":authority", authority.as_bytes()), (":path", path.as_bytes()), (":scheme", b"https")]
    }

    #[test]
    fn missing_token_challenge_has_no_error() {
        let h = headers("/api/x?secret=1", "api.example.com");
        let reply = reply(Failure::Missing, &RequestView::new(&h));
        assert_eq!(reply.status, 401);
        assert_eq!(
            reply.headers[0],
            ("www-authenticate", r#"Bearer realm="https://api.example.com/api/x""#.to_string())
        );
        assert_eq!(reply.body, r#"{"status":401,"error":"missing","message":"Jwt is missing"}"#);
    }

    #[test]
    fn invalid_token_challenge() {
        let h = headers("/a", "h");
        let reply = reply(Failure::Expired, &RequestView::new(&h));
        assert_eq!(reply.headers[0].1, r#"Bearer realm="https://h/a", error="invalid_token""#);
        assert!(reply.body.contains(r#""error":"expired""#));
    }

    #[test]
    fn audience_is_403_and_unavailable_keys_503() {
        let h = headers("/a", "h");
        assert_eq!(reply(Failure::Audience, &RequestView::new(&h)).status, 403);
        let unavailable = reply(Failure::JwksUnavailable, &RequestView::new(&h));
        assert_eq!(unavailable.status, 503);
        assert!(unavailable.headers.iter().all(|(name, _)| *name != "www-authenticate"));
    }

    #[test]
    fn realm_cannot_break_the_header() {
        let h = headers("/a\"b\\c\r\nx", "h\"ost");
        let reply = reply(Failure::Missing, &RequestView::new(&h));
        assert_eq!(reply.headers[0].1, r#"Bearer realm="https://h%22ost/a%22b%5Cc%0D%0Ax""#);
    }

    #[test]
    fn forwarded_proto_wins() {
        let mut h = headers("/a", "h");
        h.push(("x-forwarded-proto", b"http"));
        let reply = reply(Failure::Missing, &RequestView::new(&h));
        assert!(reply.headers[0].1.starts_with(r#"Bearer realm="http://h/a""#));
    }
}
