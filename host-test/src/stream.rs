//! One HTTP stream as the filters of a chain see it: header maps, the body buffer under
//! processing, trailers, the connection, and the properties filters set on it.

use std::collections::HashMap;

use crate::abi::Pairs;

/// An ordered header (or trailer) map with Envoy's semantics: names are stored lowercase,
/// a lookup returns the first value, replace keeps the first position and drops the others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Pairs,
}

impl HeaderMap {
    /// A map from pairs, lowercasing the names.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> HeaderMap {
        HeaderMap { entries: pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect() }
    }

    /// All entries in order.
    pub fn entries(&self) -> &Pairs {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of name and value lengths, as Envoy's `byteSize`.
    pub fn byte_size(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.entries.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Appends an entry; a pseudo-header goes after the other pseudo-headers, as Envoy keeps
    /// them first.
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        let entry = (name.to_ascii_lowercase(), value.to_vec());
        if name.first() == Some(&b':') {
            let at = self.entries.iter().position(|(k, _)| k.first() != Some(&b':')).unwrap_or(self.entries.len());
            self.entries.insert(at, entry);
        } else {
            self.entries.push(entry);
        }
    }

    /// Sets `name` to `value` as Envoy's `setCopy` does: every occurrence is removed and one
    /// entry is added at the end.
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        self.remove(name);
        self.add(name, value);
    }

    /// Removes every occurrence of `name`.
    pub fn remove(&mut self, name: &[u8]) {
        self.entries.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Serialized for the ABI.
    pub fn encode(&self) -> Vec<u8> {
        crate::abi::encode_pairs(self.entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    }

    /// Lossy string pairs, for reports.
    pub fn to_strings(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }
}

/// The downstream connection a stream arrived on.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Client address as `IP:port` (IPv6 in brackets).
    pub source: std::net::SocketAddr,
    /// The listener address.
    pub destination: std::net::SocketAddr,
    /// Envoy's connection id.
    pub id: u64,
    /// `HTTP/1.1` or `HTTP/2`.
    pub protocol: String,
}

/// The shared state of one stream.
#[derive(Debug)]
pub struct Stream {
    /// Request headers, pseudo-headers first.
    pub request_headers: HeaderMap,
    /// Request trailers (empty when the request has none).
    pub request_trailers: HeaderMap,
    /// Response headers once a response exists.
    pub response_headers: HeaderMap,
    /// Response trailers.
    pub response_trailers: HeaderMap,
    /// The body buffer the current body callback sees (and may change).
    pub request_body: Vec<u8>,
    /// Likewise for the response.
    pub response_body: Vec<u8>,
    /// Properties set with `proxy_set_property`, by path.
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
    /// The connection.
    pub connection: Connection,
    /// When the stream started (virtual clock, ns).
    pub start_ns: u64,
    /// Bytes of request body received so far.
    pub request_body_size: u64,
    /// Bytes of response body received so far.
    pub response_body_size: u64,
    /// Whether response headers exist yet (before that, Envoy has no response map to touch).
    pub response_started: bool,
    /// The stream is being access-logged (`proxy_on_log`): Envoy no longer has its request
    /// trailers at hand then.
    pub logging: bool,
}

impl Stream {
    /// A new stream with request headers and connection.
    pub fn new(request_headers: HeaderMap, connection: Connection, start_ns: u64) -> Stream {
        Stream {
            request_headers,
            request_trailers: HeaderMap::default(),
            response_headers: HeaderMap::default(),
            response_trailers: HeaderMap::default(),
            request_body: Vec::new(),
            response_body: Vec::new(),
            properties: HashMap::new(),
            connection,
            start_ns,
            request_body_size: 0,
            response_body_size: 0,
            response_started: false,
            logging: false,
        }
    }

    /// The response code once response headers exist.
    pub fn response_code(&self) -> Option<i64> {
        self.response_headers.get(b":status").and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        HeaderMap::from_pairs(pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())))
    }

    #[test]
    fn envoy_header_semantics() {
        let mut headers = map(&[("A", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(headers.get(b"a"), Some(&b"1"[..]));
        assert_eq!(headers.get_all(b"A").count(), 2);
        headers.replace(b"a", b"9");
        assert_eq!(headers, map(&[("b", "2"), ("a", "9")]));
        headers.add(b"B", b"4");
        headers.remove(b"b");
        assert_eq!(headers, map(&[("a", "9")]));
        headers.add(b":path", b"/");
        assert_eq!(headers, map(&[(":path", "/"), ("a", "9")]));
        headers.replace(b"c", b"new");
        assert_eq!(headers.byte_size(), 6 + 2 + 4);
    }
}
