//! The request as the rules see it: every collection a rule can read (`ARGS_GET`, headers,
//! cookies, the request line, …) filled once from the request head, and later from the body.

use crate::body::urlencoded::parse_pairs;
use crate::transform::url_decode;

/// A collection of request values. Rule variables map onto one or more sources (`ARGS` is
/// `ArgsGet` + `ArgsPost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Source {
    RequestLine,
    RequestMethod,
    RequestProtocol,
    RequestUri,
    RequestUriRaw,
    RequestFilename,
    RequestBasename,
    QueryString,
    ArgsGet,
    ArgsGetNames,
    ArgsPost,
    ArgsPostNames,
    RequestHeaders,
    RequestHeadersNames,
    RequestCookies,
    RequestCookiesNames,
    RequestBody,
    RequestBodyLength,
    Files,
    FilesNames,
    MultipartPartHeaders,
    ReqbodyProcessor,
    ReqbodyError,
    RemoteAddr,
    /// `UNIQUE_ID`: the request ID (`x-request-id`), empty without one.
    UniqueId,
    /// `ARGS_COMBINED_SIZE`: the bytes of every argument name and value.
    ArgsCombinedSize,
    /// `FILES_SIZES`: field name → size of the uploaded file.
    FilesSizes,
    /// `FILES_COMBINED_SIZE`: the bytes of every uploaded file.
    FilesCombinedSize,
    /// `XML:/*`: the text of an XML body.
    XmlText,
    /// `XML://@*`: the attribute values of an XML body.
    XmlAttributes,
}

/// Number of [`Source`] variants.
pub const SOURCE_COUNT: usize = Source::XmlAttributes as usize + 1;

impl Source {
    /// Which group of patterns values of this source are scanned with (see `engine`): argument-like
    /// values, header values, and the request line and its parts.
    pub fn scan_class(self) -> usize {
        match self {
            Self::RequestHeaders | Self::RequestHeadersNames => 1,
            Self::RequestLine
            | Self::RequestMethod
            | Self::RequestProtocol
            | Self::RequestUri
            | Self::RequestUriRaw
            | Self::RequestFilename
            | Self::RequestBasename
            | Self::QueryString
            | Self::RequestBodyLength
            | Self::ReqbodyProcessor
            | Self::ReqbodyError
            | Self::RemoteAddr
            | Self::UniqueId
            | Self::ArgsCombinedSize
            | Self::FilesCombinedSize => 2,
            _ => 0,
        }
    }
}

/// A set of sources: which collections the rules read, so a request fills only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSet(u32);

impl SourceSet {
    /// Every source.
    pub fn all() -> Self {
        Self(u32::MAX)
    }

    /// No source but the request headers and URI, which the filter itself reads.
    pub fn empty() -> Self {
        Self((1 << Source::RequestHeaders as u32) | (1 << Source::RequestUri as u32))
    }

    pub fn insert(&mut self, source: Source) {
        self.0 |= 1 << source as u32;
    }

    pub fn contains(self, source: Source) -> bool {
        self.0 & (1 << source as u32) != 0
    }
}

impl Default for SourceSet {
    fn default() -> Self {
        Self::all()
    }
}

/// One value of a collection: its key (a name; empty for single values) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Unique per request, dense from 0: the engine's cache index (set by [`Collections`]).
    pub id: u32,
}

impl Entry {
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into(), value: value.into(), id: 0 }
    }
}

/// The request head as the host gives it (Envoy's header map, pseudo-headers included).
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// `(name, value)` pairs with lowercase names, `:method`, `:path`, `:authority` included.
    pub headers: &'a [(String, Vec<u8>)],
    /// `HTTP/1.1`, `HTTP/2`, …; empty when unknown.
    pub protocol: &'a [u8],
    /// The client address (`IP` or `IP:port`); empty when unknown.
    pub remote_addr: &'a [u8],
}

/// Every collection of one request.
#[derive(Debug, Clone, Default)]
pub struct Collections {
    sources: Vec<Vec<Entry>>,
    /// Sources to fill; others stay empty (no rule reads them).
    used: SourceSet,
    /// The ID the next entry gets.
    next_id: u32,
}

impl Collections {
    /// Fills the collections available once the request head is known.
    pub fn from_head(head: &RequestHead<'_>) -> Self {
        Self::from_head_for(head, SourceSet::all())
    }

    /// Like [`Collections::from_head`], filling only the `used` sources.
    pub fn from_head_for(head: &RequestHead<'_>, used: SourceSet) -> Self {
        let mut collections = Self { sources: vec![Vec::new(); SOURCE_COUNT], used, next_id: 0 };
        if let Some(headers) = collections.sources.get_mut(Source::RequestHeaders as usize) {
            headers.reserve(head.headers.len());
        }
        let mut method: &[u8] = b"";
        let mut path: &[u8] = b"";
        for (name, value) in head.headers {
            match name.as_str() {
                ":method" => method = value,
                ":path" => path = value,
                ":authority" => collections.push_header("host", value),
                ":scheme" | ":protocol" | ":status" => {}
                other => {
                    if other == "x-request-id" {
                        collections.set(Source::UniqueId, value.clone());
                    }
                    if other == "cookie"
                        && (used.contains(Source::RequestCookies) || used.contains(Source::RequestCookiesNames))
                    {
                        collections.push_cookies(value);
                    }
                    collections.push_header(other, value);
                }
            }
        }
        let (filename, query) = match path.iter().position(|&b| b == b'?') {
            Some(at) => (path.get(..at).unwrap_or_default(), path.get(at + 1..).unwrap_or_default()),
            None => (path, &b""[..]),
        };
        let decoded_filename = url_decode_path(filename);
        let basename = decoded_filename.rsplit(|&b| b == b'/').next().unwrap_or_default().to_vec();
        let mut line = Vec::with_capacity(method.len() + path.len() + head.protocol.len() + 2);
        line.extend_from_slice(method);
        line.push(b' ');
        line.extend_from_slice(path);
        if !head.protocol.is_empty() {
            line.push(b' ');
            line.extend_from_slice(head.protocol);
        }
        collections.set(Source::RequestLine, line);
        collections.set(Source::RequestMethod, method.to_vec());
        collections.set(Source::RequestProtocol, head.protocol.to_vec());
        collections.set(Source::RequestUri, path.to_vec());
        collections.set(Source::RequestUriRaw, path.to_vec());
        collections.set(Source::RequestFilename, decoded_filename);
        collections.set(Source::RequestBasename, basename);
        collections.set(Source::QueryString, query.to_vec());
        if !head.remote_addr.is_empty() {
            collections.set(Source::RemoteAddr, head.remote_addr.to_vec());
        }
        if used.contains(Source::ArgsGet) || used.contains(Source::ArgsGetNames) {
            for (name, value) in parse_pairs(query) {
                collections.push_arg(Source::ArgsGet, Source::ArgsGetNames, name, value);
            }
        }
        collections.update_sizes();
        collections
    }

    /// Recomputes `ARGS_COMBINED_SIZE` and `FILES_COMBINED_SIZE` (after the head and the body).
    pub fn update_sizes(&mut self) {
        if self.used.contains(Source::ArgsCombinedSize) {
            let size: usize = [Source::ArgsGet, Source::ArgsPost]
                .iter()
                .flat_map(|source| self.get(*source))
                .map(|entry| entry.key.len() + entry.value.len())
                .sum();
            self.set(Source::ArgsCombinedSize, size.to_string().into_bytes());
        }
        if self.used.contains(Source::FilesCombinedSize) {
            let size: u64 = self
                .get(Source::FilesSizes)
                .iter()
                .map(|entry| crate::operator::parse_number(&entry.value).max(0) as u64)
                .sum();
            self.set(Source::FilesCombinedSize, size.to_string().into_bytes());
        }
    }

    fn push_header(&mut self, name: &str, value: &[u8]) {
        self.push(Source::RequestHeaders, Entry::new(name, value));
        if self.used.contains(Source::RequestHeadersNames) {
            self.push(Source::RequestHeadersNames, Entry::new(name, name));
        }
    }

    /// `a=1; b=2` pairs; cookie values are not URL-decoded (as in ModSecurity).
    fn push_cookies(&mut self, header: &[u8]) {
        for pair in header.split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (pair.get(..at).unwrap_or_default(), pair.get(at + 1..).unwrap_or_default()),
                None => (pair, &b""[..]),
            };
            let name = name.trim_ascii();
            self.push(Source::RequestCookies, Entry::new(name, value));
            if self.used.contains(Source::RequestCookiesNames) {
                self.push(Source::RequestCookiesNames, Entry::new(name, name));
            }
        }
    }

    /// An argument and its name, as the value and names collections hold them.
    pub fn push_arg(&mut self, values: Source, names: Source, name: Vec<u8>, value: Vec<u8>) {
        if self.used.contains(names) {
            self.push(names, Entry::new(name.clone(), name.clone()));
        }
        self.push(values, Entry { key: name, value, id: 0 });
    }

    /// Appends one entry to `source`.
    pub fn push(&mut self, source: Source, mut entry: Entry) {
        if !self.used.contains(source) {
            return;
        }
        if let Some(entries) = self.sources.get_mut(source as usize) {
            entry.id = self.next_id;
            self.next_id = self.next_id.saturating_add(1);
            entries.push(entry);
        }
    }

    /// How many entry IDs were handed out (an upper bound for cache tables).
    pub fn id_count(&self) -> u32 {
        self.next_id
    }

    /// Replaces a single-valued source.
    pub fn set(&mut self, source: Source, value: Vec<u8>) {
        if !self.used.contains(source) {
            return;
        }
        if let Some(entries) = self.sources.get_mut(source as usize) {
            entries.clear();
            entries.push(Entry { key: Vec::new(), value, id: self.next_id });
            self.next_id = self.next_id.saturating_add(1);
        }
    }

    /// The entries of `source`, in request order.
    pub fn get(&self, source: Source) -> &[Entry] {
        self.sources.get(source as usize).map(Vec::as_slice).unwrap_or_default()
    }

    /// The first value of `source` under `key` (case-insensitive), or the single value when
    /// `key` is `None`.
    pub fn first(&self, source: Source, key: Option<&[u8]>) -> Option<&[u8]> {
        let entries = self.get(source);
        match key {
            None => entries.first().map(|entry| entry.value.as_slice()),
            Some(key) => {
                entries.iter().find(|entry| entry.key.eq_ignore_ascii_case(key)).map(|entry| entry.value.as_slice())
            }
        }
    }

    /// A request header's first value (name in lowercase).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.first(Source::RequestHeaders, Some(name.as_bytes()))
    }
}

/// `%XX` decoding of a path (a `+` in a path is a plus, not a space).
fn url_decode_path(path: &[u8]) -> Vec<u8> {
    if !path.contains(&b'%') {
        return path.to_vec();
    }
    // url_decode turns '+' into a space: protect pluses by decoding segments between them.
    let mut output = Vec::with_capacity(path.len());
    for (index, piece) in path.split(|&b| b == b'+').enumerate() {
        if index > 0 {
            output.push(b'+');
        }
        output.extend(url_decode(piece, false));
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.as_bytes().to_vec())).collect()
    }

    #[test]
    fn head_fills_line_uri_args_headers_and_cookies() {
        let headers = headers(&[
            (":method", "GET"),
            (":path", "/a%20b/c.php?x=1&y=%27q%27&flag"),
            (":authority", "example.com"),
            (":scheme", "https"),
            ("cookie", "sid=abc; theme=dark"),
            ("user-agent", "curl/8"),
        ]);
        let collections =
            Collections::from_head(&RequestHead { headers: &headers, protocol: b"HTTP/1.1", remote_addr: b"10.0.0.1" });
        assert_eq!(
            collections.first(Source::RequestLine, None),
            Some(&b"GET /a%20b/c.php?x=1&y=%27q%27&flag HTTP/1.1"[..])
        );
        assert_eq!(collections.first(Source::RequestFilename, None), Some(&b"/a b/c.php"[..]));
        assert_eq!(collections.first(Source::RequestBasename, None), Some(&b"c.php"[..]));
        assert_eq!(collections.first(Source::QueryString, None), Some(&b"x=1&y=%27q%27&flag"[..]));
        assert_eq!(collections.first(Source::ArgsGet, Some(b"Y")), Some(&b"'q'"[..]));
        assert_eq!(collections.first(Source::ArgsGet, Some(b"flag")), Some(&b""[..]));
        assert_eq!(collections.get(Source::ArgsGetNames).len(), 3);
        assert_eq!(collections.header("host"), Some(&b"example.com"[..]));
        assert_eq!(collections.first(Source::RequestCookies, Some(b"theme")), Some(&b"dark"[..]));
        assert_eq!(collections.get(Source::RequestCookiesNames).len(), 2);
        assert!(collections.get(Source::RequestHeadersNames).iter().all(|entry| !entry.key.starts_with(b":")));
        assert_eq!(collections.first(Source::RemoteAddr, None), Some(&b"10.0.0.1"[..]));
    }

    #[test]
    fn missing_path_gives_empty_values_not_a_panic() {
        let collections = Collections::from_head(&RequestHead { headers: &[], protocol: b"", remote_addr: b"" });
        assert_eq!(collections.first(Source::RequestUri, None), Some(&b""[..]));
        assert!(collections.get(Source::ArgsGet).is_empty());
        assert_eq!(collections.header("host"), None);
    }
}
