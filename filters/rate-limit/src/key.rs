//! What a bucket is per: a key built from parts of the request, hashed to 64 bits.

use crate::address::{X_FORWARDED_FOR, client_from_forwarded_for};
use crate::request::{PATH, Request, path_without_query};
use serde::Deserialize;
use shield_kit::header_name::HeaderName;
use std::hash::{DefaultHasher, Hasher};
use std::net::IpAddr;

/// One part of a rule's key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPart {
    /// The downstream peer address (Envoy `source.address`, port dropped).
    RemoteAddress,
    /// The client address from `X-Forwarded-For`, behind `trusted_hops` proxies.
    XForwardedFor(ForwardedFor),
    /// A request header's value (first occurrence), e.g. an API key, or the verified user
    /// `jwt-auth` wrote (`x-user-id`). Missing when absent or empty.
    Header(HeaderName),
    /// The path without its query string.
    Path,
    /// Envoy's route name (`xds.route_name`). Missing when the route has no name.
    RouteName,
    /// A constant: every request shares the bucket (a global ceiling).
    Constant(String),
}

/// `x_forwarded_for` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedFor {
    /// Proxies in front of Envoy that append to `X-Forwarded-For` (1 to 10): the client is that
    /// many entries from the right.
    pub trusted_hops: TrustedHops,
    /// What a missing, short or invalid `X-Forwarded-For` means.
    #[serde(default)]
    pub on_invalid: ForwardedForFallback,
}

/// `trusted_hops`: 1 to 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct TrustedHops(u32);

impl TrustedHops {
    /// The number of hops.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for TrustedHops {
    type Error = String;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        match u32::try_from(value) {
            Ok(hops) if (1..=10).contains(&hops) => Ok(Self(hops)),
            _ => Err(format!("{value} is out of range: must be 1 to 10 (use remote_address for none)")),
        }
    }
}

/// What a missing, short or invalid `X-Forwarded-For` means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedForFallback {
    /// Use the downstream peer address (that of the nearest proxy, or of a client that bypassed
    /// it): such requests share that peer's bucket, they never get a fresh one.
    #[default]
    SourceAddress,
    /// Treat the key part as missing (`on_missing_key` applies).
    Missing,
}

/// What a request whose key part is missing does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingKeyPolicy {
    /// All such requests share one bucket of the rule (the default: nobody escapes the limit).
    #[default]
    OwnBucket,
    /// The rule does not apply to the request.
    Skip,
    /// The request is rejected.
    Reject,
}

impl KeyPart {
    /// The request header this part reads, if any.
    pub fn header_name(&self) -> Option<&str> {
        match self {
            Self::Header(name) => Some(name.as_str()),
            Self::Path => Some(PATH),
            Self::XForwardedFor(_) => Some(X_FORWARDED_FOR),
            Self::RemoteAddress | Self::RouteName | Self::Constant(_) => None,
        }
    }

    /// Whether this part may read `source.address`.
    pub fn needs_source_address(&self) -> bool {
        match self {
            Self::RemoteAddress => true,
            Self::XForwardedFor(forwarded) => forwarded.on_invalid == ForwardedForFallback::SourceAddress,
            _ => false,
        }
    }
}

/// What the core asks the host for, only when a matching rule needs it.
pub trait RequestFacts {
    /// The downstream peer IP (`source.address`), if known.
    fn source_address(&mut self) -> Option<IpAddr>;
    /// The route name, if the route has one.
    fn route_name(&mut self) -> Option<Vec<u8>>;
}

/// A resolved key part.
enum PartValue<'a> {
    Address(IpAddr),
    Bytes(&'a [u8]),
    Owned(Vec<u8>),
}

impl PartValue<'_> {
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Address(_) => None,
            Self::Bytes(bytes) => Some(bytes),
            Self::Owned(bytes) => Some(bytes),
        }
    }
}

fn resolve<'a>(part: &'a KeyPart, request: &Request<'a>, facts: &mut dyn RequestFacts) -> Option<PartValue<'a>> {
    match part {
        KeyPart::RemoteAddress => facts.source_address().map(PartValue::Address),
        KeyPart::XForwardedFor(forwarded) => {
            let client = request
                .header(X_FORWARDED_FOR)
                .and_then(|value| client_from_forwarded_for(value, forwarded.trusted_hops.get()));
            match (client, forwarded.on_invalid) {
                (Some(address), _) => Some(PartValue::Address(address)),
                (None, ForwardedForFallback::SourceAddress) => facts.source_address().map(PartValue::Address),
                (None, ForwardedForFallback::Missing) => None,
            }
        }
        KeyPart::Header(name) => request.header(name.as_str()).filter(|value| !value.is_empty()).map(PartValue::Bytes),
        KeyPart::Path => request.header(PATH).map(|path| PartValue::Bytes(path_without_query(path))),
        KeyPart::RouteName => facts.route_name().filter(|name| !name.is_empty()).map(PartValue::Owned),
        KeyPart::Constant(value) => Some(PartValue::Bytes(value.as_bytes())),
    }
}

/// Hash of the shared bucket of requests missing a key part (no real key hashes to it except
/// by a 2^-64 accident: real keys are hashed with a different framing).
pub const MISSING_KEY_HASH: u64 = 0x6d69_7373_696e_6721;

/// The key of a request for a rule: its 64-bit hash, or `None` when a part is missing.
///
/// The hash is SipHash-1-3 with fixed keys (std's `DefaultHasher::new()`), the same in every
/// worker, so shared-mode slots agree across workers. Parts are framed (tag + length) so
/// `["ab","c"]` and `["a","bc"]` differ.
pub fn key_hash(parts: &[KeyPart], request: &Request<'_>, facts: &mut dyn RequestFacts) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    for part in parts {
        match resolve(part, request, facts)? {
            PartValue::Address(IpAddr::V4(v4)) => {
                hasher.write_u8(4);
                hasher.write(&v4.octets());
            }
            PartValue::Address(IpAddr::V6(v6)) => {
                hasher.write_u8(6);
                hasher.write(&v6.octets());
            }
            value => {
                let bytes = value.bytes().unwrap_or_default();
                hasher.write_u8(b'b');
                hasher.write_usize(bytes.len());
                hasher.write(bytes);
            }
        }
    }
    let hash = hasher.finish();
    // Keep the marker reserved for missing keys.
    Some(if hash == MISSING_KEY_HASH { hash ^ 1 } else { hash })
}

/// The key of a request as text for a log line: the parts joined by `|`, escaped and bounded
/// (`-` for a missing part). Only built when a line is logged.
pub fn key_text(parts: &[KeyPart], request: &Request<'_>, facts: &mut dyn RequestFacts) -> String {
    let mut raw = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            raw.push(b'|');
        }
        match resolve(part, request, facts) {
            Some(PartValue::Address(address)) => raw.extend_from_slice(address.to_string().as_bytes()),
            Some(value) => raw.extend_from_slice(value.bytes().unwrap_or_default()),
            None => raw.push(b'-'),
        }
    }
    shield_kit::log_escape::escape_quoted(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::METHOD;

    struct Facts {
        source: Option<IpAddr>,
        route: Option<&'static str>,
        source_reads: u32,
    }

    impl RequestFacts for Facts {
        fn source_address(&mut self) -> Option<IpAddr> {
            self.source_reads += 1;
            self.source
        }
        fn route_name(&mut self) -> Option<Vec<u8>> {
            self.route.map(|name| name.as_bytes().to_vec())
        }
    }

    fn facts(source: &str) -> Facts {
        Facts { source: source.parse().ok(), route: Some("orders"), source_reads: 0 }
    }

    fn parts(json: &str) -> Vec<KeyPart> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn remote_address_keys_by_ip_only() {
        let key = parts(r#"["remote_address"]"#);
        let request = Request::new(&[]);
        let a = key_hash(&key, &request, &mut facts("203.0.113.7")).unwrap();
        let b = key_hash(&key, &request, &mut facts("203.0.113.8")).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, key_hash(&key, &request, &mut facts("203.0.113.7")).unwrap(), "stable");
        assert_eq!(key_hash(&key, &request, &mut facts("none")), None, "unknown peer is missing");
    }

    #[test]
    fn forwarded_for_uses_the_trusted_entry_and_falls_back() {
        let key = parts(r#"[{"x_forwarded_for":{"trusted_hops":1}}]"#);
        let spoofed: [(&str, &[u8]); 1] = [(X_FORWARDED_FOR, b"6.6.6.6, 198.51.100.9")];
        let honest: [(&str, &[u8]); 1] = [(X_FORWARDED_FOR, b"198.51.100.9")];
        let mut peer = facts("10.0.0.2");
        let from_spoofed = key_hash(&key, &Request::new(&spoofed), &mut peer).unwrap();
        assert_eq!(peer.source_reads, 0, "a valid XFF needs no property read");
        assert_eq!(from_spoofed, key_hash(&key, &Request::new(&honest), &mut peer).unwrap());
        // No XFF at all: the peer's bucket.
        let fallback = key_hash(&key, &Request::new(&[]), &mut peer).unwrap();
        assert_eq!(fallback, key_hash(&parts(r#"["remote_address"]"#), &Request::new(&[]), &mut peer).unwrap());
        let strict = parts(r#"[{"x_forwarded_for":{"trusted_hops":2,"on_invalid":"missing"}}]"#);
        assert_eq!(key_hash(&strict, &Request::new(&honest), &mut peer), None, "short list is missing");
    }

    #[test]
    fn header_path_route_and_constant() {
        let headers: [(&str, &[u8]); 3] = [(PATH, b"/api/orders?page=2"), (METHOD, b"GET"), ("x-api-key", b"k1")];
        let other: [(&str, &[u8]); 2] = [(PATH, b"/api/orders?page=3"), ("x-api-key", b"k2")];
        let mut host = facts("1.2.3.4");
        let by_header = parts(r#"[{"header":"X-Api-Key"}]"#);
        assert_ne!(
            key_hash(&by_header, &Request::new(&headers), &mut host),
            key_hash(&by_header, &Request::new(&other), &mut host)
        );
        let by_path = parts(r#"["path"]"#);
        assert_eq!(
            key_hash(&by_path, &Request::new(&headers), &mut host),
            key_hash(&by_path, &Request::new(&other), &mut host),
            "the query string is not part of the path"
        );
        let global = parts(r#"[{"constant":"checkout"}]"#);
        assert_eq!(
            key_hash(&global, &Request::new(&headers), &mut host),
            key_hash(&global, &Request::new(&[]), &mut facts("9.9.9.9"))
        );
        let by_route = parts(r#"["route_name"]"#);
        assert!(key_hash(&by_route, &Request::new(&[]), &mut host).is_some());
        host.route = None;
        assert_eq!(key_hash(&by_route, &Request::new(&[]), &mut host), None);
    }

    #[test]
    fn missing_and_empty_headers_are_missing() {
        let key = parts(r#"[{"header":"x-api-key"}]"#);
        let empty: [(&str, &[u8]); 1] = [("x-api-key", b"")];
        assert_eq!(key_hash(&key, &Request::new(&[]), &mut facts("1.2.3.4")), None);
        assert_eq!(key_hash(&key, &Request::new(&empty), &mut facts("1.2.3.4")), None);
    }

    #[test]
    fn parts_are_framed() {
        let two = parts(r#"[{"header":"a"},{"header":"b"}]"#);
        let first: [(&str, &[u8]); 2] = [("a", b"ab"), ("b", b"c")];
        let second: [(&str, &[u8]); 2] = [("a", b"a"), ("b", b"bc")];
        let mut host = facts("1.2.3.4");
        assert_ne!(key_hash(&two, &Request::new(&first), &mut host), key_hash(&two, &Request::new(&second), &mut host));
    }

    #[test]
    fn key_text_is_escaped() {
        let key = parts(r#"["remote_address",{"header":"x-user-id"},"route_name"]"#);
        let headers: [(&str, &[u8]); 1] = [("x-user-id", b"u1\r\nforged")];
        let text = key_text(&key, &Request::new(&headers), &mut facts("203.0.113.7"));
        assert_eq!(text, r#""203.0.113.7|u1\r\nforged|orders""#);
        let missing = key_text(&key, &Request::new(&[]), &mut facts("none"));
        assert_eq!(missing, r#""-|-|orders""#);
    }
}
