//! `multipart/form-data`: field values into `ARGS_POST`, file fields into `FILES` (field name →
//! file name) and `FILES_NAMES`, every part header line into `MULTIPART_PART_HEADERS`. File
//! contents are not rule input (as in ModSecurity).

use crate::request::{Collections, Entry, Source};

/// The `boundary` parameter of a multipart `content-type` (quotes removed), case preserved.
pub fn boundary(content_type: &[u8]) -> Option<Vec<u8>> {
    let (_, parameters) = split_once(content_type, b';')?;
    parameter(parameters, b"boundary").filter(|boundary| !boundary.is_empty() && boundary.len() <= 200)
}

/// Fills `collections` from `body`; false when the body is malformed (no opening or closing
/// boundary, a part without a header end), after keeping every part that could be read.
pub fn fill(collections: &mut Collections, boundary: &[u8], body: &[u8]) -> bool {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let Some(first) = find(body, &delimiter, 0) else { return false };
    let mut position = first + delimiter.len();
    loop {
        if body.get(position..position + 2) == Some(b"--") {
            return true;
        }
        // The rest of the delimiter line (transport padding) ends with LF.
        let Some(line_end) = find(body, b"\n", position) else { return false };
        let part_start = line_end + 1;
        let mut next_delimiter = b"\n".to_vec();
        next_delimiter.extend_from_slice(&delimiter);
        let Some(next) = find(body, &next_delimiter, part_start) else {
            // No closing boundary: keep what the part holds, report the body as malformed.
            let _ = read_part(collections, body.get(part_start..).unwrap_or_default());
            return false;
        };
        // The CR before the LF belongs to the delimiter, not to the content.
        let part_end = if next > part_start && body.get(next - 1) == Some(&b'\r') { next - 1 } else { next };
        if !read_part(collections, body.get(part_start..part_end).unwrap_or_default()) {
            return false;
        }
        position = next + next_delimiter.len();
    }
}

/// One part: header lines, a blank line, the content.
fn read_part(collections: &mut Collections, part: &[u8]) -> bool {
    let (headers, content) = if let Some(at) = find(part, b"\r\n\r\n", 0) {
        (part.get(..at).unwrap_or_default(), part.get(at + 4..).unwrap_or_default())
    } else if let Some(at) = find(part, b"\n\n", 0) {
        (part.get(..at).unwrap_or_default(), part.get(at + 2..).unwrap_or_default())
    } else {
        return false;
    };
    let mut name: Option<Vec<u8>> = None;
    let mut filename: Option<Vec<u8>> = None;
    let lines: Vec<&[u8]> = headers
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|l| !l.is_empty())
        .collect();
    for line in &lines {
        let Some((header, value)) = split_once(line, b':') else { continue };
        if header.trim_ascii().eq_ignore_ascii_case(b"content-disposition")
            && let Some((_, parameters)) = split_once(value, b';')
        {
            name = parameter(parameters, b"name");
            filename = parameter(parameters, b"filename");
        }
    }
    let name = name.unwrap_or_default();
    for line in lines {
        collections.push(Source::MultipartPartHeaders, Entry::new(name.clone(), line));
    }
    match filename {
        Some(filename) => {
            collections.push(Source::FilesNames, Entry::new(name.clone(), name.clone()));
            collections.push(Source::FilesSizes, Entry::new(name.clone(), content.len().to_string()));
            collections.push(Source::Files, Entry::new(name, filename));
        }
        None => collections.push_arg(Source::ArgsPost, Source::ArgsPostNames, name, content.to_vec()),
    }
    true
}

/// The value of `key` in `a=1; key="v"` parameters (quotes and `\"` escapes removed).
fn parameter(parameters: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    let mut rest = parameters;
    loop {
        rest = rest.trim_ascii_start();
        if rest.is_empty() {
            return None;
        }
        let equals = rest.iter().position(|&b| b == b'=' || b == b';')?;
        let found_key = rest.get(..equals).unwrap_or_default().trim_ascii();
        if rest.get(equals) == Some(&b';') {
            rest = rest.get(equals + 1..).unwrap_or_default();
            continue;
        }
        let after = rest.get(equals + 1..).unwrap_or_default().trim_ascii_start();
        let (value, remaining) = if after.first() == Some(&b'"') {
            let mut value = Vec::new();
            let mut index = 1;
            let mut closed = false;
            while let Some(&byte) = after.get(index) {
                match byte {
                    b'\\' if matches!(after.get(index + 1), Some(b'"' | b'\\')) => {
                        value.push(after.get(index + 1).copied().unwrap_or(byte));
                        index += 2;
                    }
                    b'"' => {
                        closed = true;
                        index += 1;
                        break;
                    }
                    _ => {
                        value.push(byte);
                        index += 1;
                    }
                }
            }
            if !closed {
                return None;
            }
            let remaining = after.get(index..).unwrap_or_default();
            let remaining = match remaining.iter().position(|&b| b == b';') {
                Some(at) => remaining.get(at + 1..).unwrap_or_default(),
                None => &[],
            };
            (value, remaining)
        } else {
            match after.iter().position(|&b| b == b';') {
                Some(at) => {
                    (after.get(..at).unwrap_or_default().trim_ascii().to_vec(), after.get(at + 1..).unwrap_or_default())
                }
                None => (after.trim_ascii().to_vec(), &[][..]),
            }
        };
        if found_key.eq_ignore_ascii_case(key) {
            return Some(value);
        }
        rest = remaining;
    }
}

fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == separator)?;
    Some((bytes.get(..at)?, bytes.get(at + 1..)?))
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let tail = haystack.get(from..)?;
    tail.windows(needle.len()).position(|window| window == needle).map(|at| at + from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestHead;

    fn empty() -> Collections {
        Collections::from_head(&RequestHead { headers: &[], protocol: b"", remote_addr: b"" })
    }

    #[test]
    fn boundary_parameter() {
        assert_eq!(boundary(b"multipart/form-data; boundary=abc123"), Some(b"abc123".to_vec()));
        assert_eq!(boundary(b"multipart/form-data; charset=utf-8; BOUNDARY=\"a b\""), Some(b"a b".to_vec()));
        assert_eq!(boundary(b"multipart/form-data"), None);
        assert_eq!(boundary(b"multipart/form-data; boundary="), None);
    }

    #[test]
    fn fields_files_and_part_headers() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello world\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"cv.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4 <script>\r\n\
--XyZ--\r\n";
        let mut collections = empty();
        assert!(fill(&mut collections, b"XyZ", body));
        assert_eq!(collections.first(Source::ArgsPost, Some(b"title")), Some(&b"Hello world"[..]));
        assert_eq!(collections.first(Source::Files, Some(b"upload")), Some(&b"cv.pdf"[..]));
        assert_eq!(collections.first(Source::FilesNames, None), Some(&b"upload"[..]));
        assert!(collections.get(Source::ArgsPost).iter().all(|entry| !entry.value.starts_with(b"%PDF")));
        assert_eq!(collections.get(Source::MultipartPartHeaders).len(), 3);
        assert_eq!(
            collections.first(Source::MultipartPartHeaders, Some(b"upload")),
            Some(&b"Content-Disposition: form-data; name=\"upload\"; filename=\"cv.pdf\""[..])
        );
    }

    #[test]
    fn lf_only_parts_are_read() {
        let body = b"--b\nContent-Disposition: form-data; name=a\n\n1\n--b--\n";
        let mut collections = empty();
        assert!(fill(&mut collections, b"b", body));
        assert_eq!(collections.first(Source::ArgsPost, Some(b"a")), Some(&b"1"[..]));
    }

    #[test]
    fn truncated_body_keeps_parts_and_reports_error() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\n' or 1=1";
        let mut collections = empty();
        assert!(!fill(&mut collections, b"b", body));
        assert_eq!(collections.first(Source::ArgsPost, Some(b"a")), Some(&b"1"[..]));
        assert_eq!(collections.first(Source::ArgsPost, Some(b"c")), Some(&b"' or 1=1"[..]));
        assert!(!fill(&mut empty(), b"b", b"no boundary here"));
    }
}
