//! The request as the core sees it: the few headers the policy needs, as plain slices.

/// The pseudo-header holding the path (with its query string).
pub const PATH: &str = ":path";
/// The pseudo-header holding the method.
pub const METHOD: &str = ":method";

/// The request headers some rule reads (`Policy::needed_headers`), in the order the host gave
/// them. A repeated header counts by its first occurrence, the value Envoy's single-header
/// lookup returns (Envoy already joins repeated `x-forwarded-for` lines into one).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    headers: &'a [(&'a str, &'a [u8])],
}

impl<'a> Request<'a> {
    /// A request with these headers (names lowercase, as Envoy hands them over).
    pub const fn new(headers: &'a [(&'a str, &'a [u8])]) -> Self {
        Self { headers }
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.iter().find(|(candidate, _)| candidate.eq_ignore_ascii_case(name)).map(|(_, value)| *value)
    }
}

/// `path` without its query string or fragment.
pub fn path_without_query(path: &[u8]) -> &[u8] {
    match path.iter().position(|byte| *byte == b'?' || *byte == b'#') {
        Some(end) => path.get(..end).unwrap_or(path),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrence_wins_and_names_ignore_case() {
        let headers: [(&str, &[u8]); 3] = [("x-a", b"1"), ("X-A", b"2"), ("x-b", b"")];
        let request = Request::new(&headers);
        assert_eq!(request.header("x-a"), Some(&b"1"[..]));
        assert_eq!(request.header("x-b"), Some(&b""[..]));
        assert_eq!(request.header("x-c"), None);
    }

    #[test]
    fn query_and_fragment_are_cut() {
        assert_eq!(path_without_query(b"/a/b?c=d"), b"/a/b");
        assert_eq!(path_without_query(b"/a#frag"), b"/a");
        assert_eq!(path_without_query(b"/a"), b"/a");
        assert_eq!(path_without_query(b"?x"), b"");
    }
}
