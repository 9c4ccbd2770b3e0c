//! Finding a provider's token in a request (headers, query parameters, cookies) and decoding
//! its header and payload (before any signature check: nothing here is trusted yet).

use crate::jwks::Algorithm;
use crate::reason::Failure;
use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use serde::Deserialize;
use serde_json::{Map, Value};
use shield_kit::headers::Header;

/// Longest token accepted, in bytes. Real tokens are a few kilobytes; the bound keeps base64
/// and JSON work per request small.
pub const MAX_TOKEN_LENGTH: usize = 16 * 1024;

/// A header that carries a token: `Authorization: Bearer <token>` by default. Field names as in
/// Envoy's `JwtHeader`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderLocation {
    /// Header name (lowercased).
    pub name: shield_kit::header_name::HeaderName,
    /// Text before the token, matched ASCII case-insensitively (e.g. `Bearer `); default none.
    #[serde(default)]
    pub value_prefix: String,
}

/// Where a provider looks for its token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locations {
    /// Headers, in order.
    pub headers: Vec<HeaderLocation>,
    /// Query parameter names.
    pub params: Vec<String>,
    /// Cookie names.
    pub cookies: Vec<String>,
}

impl Locations {
    /// Envoy's default when a provider names no location: `Authorization: Bearer ` and the
    /// `access_token` query parameter.
    pub fn envoy_default() -> Self {
        let name = shield_kit::header_name::HeaderName::new("authorization");
        Self {
            headers: name.map(|name| vec![HeaderLocation { name, value_prefix: "Bearer ".into() }]).unwrap_or_default(),
            params: vec!["access_token".into()],
            cookies: Vec::new(),
        }
    }
}

/// Where a found token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `headers[index]` of the provider's locations.
    Header(usize),
    /// A query parameter.
    Param,
    /// A cookie.
    Cookie,
}

/// What the locations of one provider hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'a> {
    /// No token.
    Nothing,
    /// Exactly one.
    One(&'a str, Source),
    /// More than one (ambiguous: refused).
    Several,
}

/// Looks for the token of a provider with these `locations` in the request `headers` and the
/// `query` (the part of `:path` after `?`).
pub fn find<'a>(locations: &Locations, headers: &[Header<'a>], query: &'a str) -> Found<'a> {
    let mut found = Collector::default();
    for (index, location) in locations.headers.iter().enumerate() {
        for (name, value) in headers {
            if !name.eq_ignore_ascii_case(location.name.as_str()) {
                continue;
            }
            // Byte operations only: the value is about a kilobyte and this runs on every request.
            let value = value.trim_ascii_start();
            let prefix = location.value_prefix.as_bytes();
            let Some(head) = value.get(..prefix.len()) else { continue };
            if !head.eq_ignore_ascii_case(prefix) {
                continue;
            }
            let rest = value.get(prefix.len()..).unwrap_or_default().trim_ascii();
            // Envoy joins a repeated Authorization header with ","; a token never holds one.
            if rest.contains(&b',') {
                found.several = true;
                continue;
            }
            // A value that is not UTF-8 holds no token.
            let Ok(token) = std::str::from_utf8(rest) else { continue };
            found.add(token, Source::Header(index));
        }
    }
    if !locations.params.is_empty() && !query.is_empty() {
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if locations.params.iter().any(|param| param == name) {
                found.add(value, Source::Param);
            }
        }
    }
    if !locations.cookies.is_empty() {
        for (name, value) in headers {
            if !name.eq_ignore_ascii_case("cookie") {
                continue;
            }
            let Ok(value) = std::str::from_utf8(value) else { continue };
            for cookie in value.split(';') {
                let (name, value) = cookie.trim().split_once('=').unwrap_or((cookie.trim(), ""));
                if locations.cookies.iter().any(|wanted| wanted == name) {
                    found.add(value.trim_matches('"'), Source::Cookie);
                }
            }
        }
    }
    found.finish()
}

#[derive(Default)]
struct Collector<'a> {
    first: Option<(&'a str, Source)>,
    several: bool,
}

impl<'a> Collector<'a> {
    fn add(&mut self, token: &'a str, source: Source) {
        if self.first.is_some() {
            self.several = true;
        } else {
            self.first = Some((token, source));
        }
    }

    fn finish(self) -> Found<'a> {
        match (self.several, self.first) {
            (true, _) => Found::Several,
            (false, Some((token, source))) => Found::One(token, source),
            (false, None) => Found::Nothing,
        }
    }
}

/// The registered claims the filter checks, read from the payload (unverified until the
/// signature is).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisteredClaims {
    /// `iss`.
    pub iss: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `aud` (a string becomes one element).
    pub aud: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub exp: Option<i64>,
    /// `nbf`.
    pub nbf: Option<i64>,
    /// `iat`.
    pub iat: Option<i64>,
}

/// A token split and decoded, not yet verified.
#[derive(Debug, Clone)]
pub struct Decoded<'a> {
    /// The whole token.
    pub token: &'a str,
    /// The header's `alg`.
    pub alg: Algorithm,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The payload segment, still base64url (forwarded as is by `forward_payload_header`).
    pub payload_segment: &'a str,
    /// The payload object.
    pub payload: Map<String, Value>,
    /// Its registered claims.
    pub claims: RegisteredClaims,
}

/// Why a token could not be decoded, with a detail for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The reason.
    pub failure: Failure,
    /// What exactly (never token content).
    pub detail: &'static str,
}

fn malformed(detail: &'static str) -> DecodeError {
    DecodeError { failure: Failure::Malformed, detail }
}

/// Splits and decodes `token`.
pub fn decode(token: &str) -> Result<Decoded<'_>, DecodeError> {
    if token.len() > MAX_TOKEN_LENGTH {
        return Err(DecodeError { failure: Failure::TooLarge, detail: "token longer than 16384 bytes" });
    }
    let mut parts = token.split('.');
    let (Some(header_segment), Some(payload_segment), Some(signature_segment), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    let header = decode_object(header_segment).map_err(|detail| match detail {
        ObjectError::Base64 => malformed("header is not base64url"),
        ObjectError::Json => malformed("header is not a JSON object"),
    })?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Algorithm::from_name(name)
            .ok_or(DecodeError { failure: Failure::AlgNotAllowed, detail: "alg is none or not supported" })?,
        _ => return Err(malformed("header has no alg string")),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed("kid is not a string")),
    };
    if header.get("crit").is_some_and(|crit| !matches!(crit, Value::Array(items) if items.is_empty())) {
        return Err(malformed("unsupported crit header"));
    }
    if signature_segment.is_empty() || !is_base64url(signature_segment) {
        return Err(malformed("signature is not base64url"));
    }
    let payload = decode_object(payload_segment).map_err(|detail| match detail {
        ObjectError::Base64 => malformed("payload is not base64url"),
        ObjectError::Json => malformed("payload is not a JSON object"),
    })?;
    let claims = registered_claims(&payload)?;
    Ok(Decoded { token, alg, kid, payload_segment, payload, claims })
}

enum ObjectError {
    Base64,
    Json,
}

fn decode_object(segment: &str) -> Result<Map<String, Value>, ObjectError> {
    if !is_base64url(segment) {
        return Err(ObjectError::Base64);
    }
    let bytes = Base64UrlSafeNoPadding::decode_to_vec(segment, None).map_err(|_| ObjectError::Base64)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(ObjectError::Json),
    }
}

/// Only the unpadded base64url alphabet (no `=`, no `+/`, no whitespace).
fn is_base64url(segment: &str) -> bool {
    segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn registered_claims(payload: &Map<String, Value>) -> Result<RegisteredClaims, DecodeError> {
    let string = |name: &str, detail: &'static str| -> Result<Option<String>, DecodeError> {
        match payload.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(malformed(detail)),
        }
    };
    let time = |name: &str, detail: &'static str| -> Result<Option<i64>, DecodeError> {
        match payload.get(name) {
            None => Ok(None),
            Some(Value::Number(number)) => {
                if let Some(seconds) = number.as_i64() {
                    Ok(Some(seconds))
                } else if let Some(seconds) = number.as_f64().filter(|s| s.is_finite() && s.abs() < 1e15) {
                    // NumericDate may carry a fraction; whole seconds are what is compared.
                    Ok(Some(seconds.floor() as i64))
                } else {
                    Err(malformed(detail))
                }
            }
            Some(_) => Err(malformed(detail)),
        }
    };
    let aud = match payload.get("aud") {
        None => Vec::new(),
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(items)) => {
            let mut auds = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(aud) => auds.push(aud.clone()),
                    _ => return Err(malformed("aud holds a non-string")),
                }
            }
            auds
        }
        Some(_) => return Err(malformed("aud is not a string or array")),
    };
    Ok(RegisteredClaims {
        iss: string("iss", "iss is not a string")?,
        sub: string("sub", "sub is not a string")?,
        aud,
        exp: time("exp", "exp is not a number")?,
        nbf: time("nbf", "nbf is not a number")?,
        iat: time("iat", "iat is not a number")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ct_codecs::Encoder;

    fn b64(text: &str) -> String {
        Base64UrlSafeNoPadding::encode_to_string(text).unwrap()
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(payload))
    }

    fn headers<'a>(list: &[(&'a str, &'a str)]) -> Vec<Header<'a>> {
        list.iter().map(|(n, v)| (*n, v.as_bytes())).collect()
    }

    #[test]
    fn default_locations_find_bearer_and_access_token() {
        let locations = Locations::envoy_default();
        let h = headers(&[("authorization", "Bearer abc.def.ghi")]);
        assert_eq!(find(&locations, &h, ""), Found::One("abc.def.ghi", Source::Header(0)));
        let h = headers(&[("authorization", "bearer   abc.def.ghi ")]);
        assert_eq!(find(&locations, &h, ""), Found::One("abc.def.ghi", Source::Header(0)));
        assert_eq!(find(&locations, &[], "x=1&access_token=t.o.k"), Found::One("t.o.k", Source::Param));
        assert_eq!(find(&locations, &[], "x=1"), Found::Nothing);
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(find(&locations, &h, ""), Found::Nothing);
    }

    #[test]
    fn two_tokens_are_refused() {
        let locations = Locations::envoy_default();
        let h = headers(&[("authorization", "Bearer a.b.c"), ("authorization", "Bearer d.e.f")]);
        assert_eq!(find(&locations, &h, ""), Found::Several);
        let h = headers(&[("authorization", "Bearer a.b.c,Bearer d.e.f")]);
        assert_eq!(find(&locations, &h, ""), Found::Several);
        let h = headers(&[("authorization", "Bearer a.b.c")]);
        assert_eq!(find(&locations, &h, "access_token=a.b.c"), Found::Several);
    }

    #[test]
    fn custom_header_params_and_cookies() {
        let locations = Locations {
            headers: vec![HeaderLocation {
                name: shield_kit::header_name::HeaderName::new("X-Jwt").unwrap(),
                value_prefix: String::new(),
            }],
            params: vec!["jwt".into()],
            cookies: vec!["session".into()],
        };
        let h = headers(&[("x-jwt", "a.b.c")]);
        assert_eq!(find(&locations, &h, ""), Found::One("a.b.c", Source::Header(0)));
        let h = headers(&[("cookie", "theme=dark; session=s.e.s; other=1")]);
        assert_eq!(find(&locations, &h, ""), Found::One("s.e.s", Source::Cookie));
        assert_eq!(find(&locations, &[], "jwt=q.u.e"), Found::One("q.u.e", Source::Param));
        // The default Authorization header is not looked at once locations are configured.
        let h = headers(&[("authorization", "Bearer a.b.c")]);
        assert_eq!(find(&locations, &h, ""), Found::Nothing);
    }

    #[test]
    fn decodes_header_and_claims() {
        let t = token(
            r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
            r#"{"iss":"https://issuer","sub":"u1","aud":["a","b"],"exp":2000000000,"nbf":1.5,"iat":1000}"#,
        );
        let decoded = decode(&t).unwrap();
        assert_eq!(decoded.alg, Algorithm::RS256);
        assert_eq!(decoded.kid.as_deref(), Some("k1"));
        assert_eq!(decoded.claims.iss.as_deref(), Some("https://issuer"));
        assert_eq!(decoded.claims.aud, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(decoded.claims.exp, Some(2_000_000_000));
        assert_eq!(decoded.claims.nbf, Some(1));
        assert_eq!(decoded.claims.iat, Some(1000));
        assert_eq!(decoded.payload_segment, t.split('.').nth(1).unwrap());
    }

    #[test]
    fn alg_none_and_unknown_are_not_allowed() {
        for alg in ["none", "None", "HS1", "ES512", ""] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(decode(&t).unwrap_err().failure, Failure::AlgNotAllowed, "{alg}");
        }
    }

    #[test]
    fn malformed_tokens() {
        let cases = [
            ("abc".to_string(), "not three dot-separated parts"),
            ("a.b.c.d".to_string(), "not three dot-separated parts"),
            (format!("{}.{}.c2ln", "!!!", b64("{}")), "header is not base64url"),
            (format!("{}.{}.c2ln", b64("[1]"), b64("{}")), "header is not a JSON object"),
            (token(r#"{"kid":"x"}"#, "{}"), "header has no alg string"),
            (token(r#"{"alg":"RS256","kid":7}"#, "{}"), "kid is not a string"),
            (token(r#"{"alg":"RS256"}"#, "[]"), "payload is not a JSON object"),
            (token(r#"{"alg":"RS256"}"#, r#""str""#), "payload is not a JSON object"),
            (format!("{}.%%%.c2ln", b64(r#"{"alg":"RS256"}"#)), "payload is not base64url"),
            (format!("{}.{}.", b64(r#"{"alg":"RS256"}"#), b64("{}")), "signature is not base64url"),
            (format!("{}.{}.a+b=", b64(r#"{"alg":"RS256"}"#), b64("{}")), "signature is not base64url"),
            (token(r#"{"alg":"RS256"}"#, r#"{"exp":"tomorrow"}"#), "exp is not a number"),
            (token(r#"{"alg":"RS256"}"#, r#"{"aud":5}"#), "aud is not a string or array"),
            (token(r#"{"alg":"RS256"}"#, r#"{"aud":["a",1]}"#), "aud holds a non-string"),
            (token(r#"{"alg":"RS256","crit":["exp"]}"#, "{}"), "unsupported crit header"),
        ];
        for (t, detail) in cases {
            let error = decode(&t).unwrap_err();
            assert_eq!(error.failure, Failure::Malformed, "{t}");
            assert_eq!(error.detail, detail, "{t}");
        }
    }

    #[test]
    fn oversized_token_is_refused_before_decoding() {
        let t = "a".repeat(MAX_TOKEN_LENGTH + 1);
        assert_eq!(decode(&t).unwrap_err().failure, Failure::TooLarge);
    }
}
