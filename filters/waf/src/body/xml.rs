//! `text/xml`, `application/xml` and `*+xml` bodies, for the two XPath expressions CRS reads:
//! `XML:/*` (the document's text: every text node and CDATA section, concatenated, as the
//! root element's string value) and `XML://@*` (every attribute value). Standard and numeric
//! entities are decoded, as libxml2 does for ModSecurity. No DTD processing (no external
//! entities, no entity expansion).

use crate::request::{Collections, Entry, Source};

/// Fills `XML:/*` and `XML://@*`; false when the document is malformed (what was read is kept).
pub fn fill(collections: &mut Collections, body: &[u8]) -> bool {
    let mut text = Vec::new();
    let mut index = 0;
    let mut ok = true;
    let mut depth: usize = 0;
    let mut saw_element = false;
    while index < body.len() {
        let rest = body.get(index..).unwrap_or_default();
        if rest.first() != Some(&b'<') {
            let end = rest.iter().position(|&b| b == b'<').unwrap_or(rest.len());
            if depth > 0 {
                text.extend(decode_entities(rest.get(..end).unwrap_or_default()));
            } else if rest.get(..end).is_some_and(|outside| !outside.iter().all(u8::is_ascii_whitespace)) {
                ok = false;
            }
            index += end;
            continue;
        }
        let (terminator, skip): (&[u8], usize) = if rest.starts_with(b"<!--") {
            (b"-->", 4)
        } else if rest.starts_with(b"<![CDATA[") {
            (b"]]>", 9)
        } else if rest.starts_with(b"<?") {
            (b"?>", 2)
        } else if rest.starts_with(b"<!") {
            (b">", 2)
        } else {
            (b">", 1)
        };
        let Some(end) = find(rest, terminator, skip) else {
            ok = false;
            break;
        };
        let inner = rest.get(skip..end).unwrap_or_default();
        if rest.starts_with(b"<![CDATA[") {
            if depth > 0 {
                text.extend_from_slice(inner);
            }
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
        } else if !rest.starts_with(b"<!") && !rest.starts_with(b"<?") {
            saw_element = true;
            let self_closing = inner.last() == Some(&b'/');
            attributes(collections, inner);
            if !self_closing {
                depth += 1;
            }
        }
        index += end + terminator.len();
    }
    collections.set(Source::XmlText, text);
    ok && saw_element && depth == 0
}

/// The attributes of a start tag's inside (`a probe="x" b='y'`).
fn attributes(collections: &mut Collections, tag: &[u8]) {
    let mut rest = tag;
    // Skip the element name.
    let name_end = rest.iter().position(|b| b.is_ascii_whitespace() || *b == b'/').unwrap_or(rest.len());
    rest = rest.get(name_end..).unwrap_or_default();
    loop {
        rest = rest.trim_ascii_start();
        let Some(equals) = rest.iter().position(|&b| b == b'=') else { return };
        let name = rest.get(..equals).unwrap_or_default().trim_ascii().to_vec();
        let after = rest.get(equals + 1..).unwrap_or_default().trim_ascii_start();
        let Some(&quote) = after.first().filter(|&&b| b == b'"' || b == b'\'') else { return };
        let value_part = after.get(1..).unwrap_or_default();
        let Some(close) = value_part.iter().position(|&b| b == quote) else { return };
        let value = decode_entities(value_part.get(..close).unwrap_or_default());
        collections.push(Source::XmlAttributes, Entry::new(name, value));
        rest = value_part.get(close + 1..).unwrap_or_default();
    }
}

/// `&lt;` `&gt;` `&amp;` `&quot;` `&apos;` `&#NN;` `&#xNN;` decoded (UTF-8); others kept.
fn decode_entities(text: &[u8]) -> Vec<u8> {
    if !text.contains(&b'&') {
        return text.to_vec();
    }
    let mut output = Vec::with_capacity(text.len());
    let mut index = 0;
    while let Some(&byte) = text.get(index) {
        if byte == b'&'
            && let Some(length) = text.get(index..).and_then(|rest| rest.iter().take(12).position(|&b| b == b';'))
        {
            let entity = text.get(index + 1..index + length).unwrap_or_default();
            let decoded: Option<char> = match entity {
                b"lt" => Some('<'),
                b"gt" => Some('>'),
                b"amp" => Some('&'),
                b"quot" => Some('"'),
                b"apos" => Some('\''),
                _ => entity.strip_prefix(b"#").and_then(|number| {
                    let text = std::str::from_utf8(number).ok()?;
                    let value = match text.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => text.parse().ok()?,
                    };
                    char::from_u32(value)
                }),
            };
            if let Some(character) = decoded {
                let mut buffer = [0u8; 4];
                output.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
                index += length + 1;
                continue;
            }
        }
        output.push(byte);
        index += 1;
    }
    output
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|window| window == needle).map(|at| at + from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestHead;

    #[test]
    fn text_and_attributes() {
        let mut collections = Collections::from_head(&RequestHead { headers: &[], protocol: b"", remote_addr: b"" });
        let ok = fill(
            &mut collections,
            br#"<?xml version="1.0"?><!-- c --><root><a probe="x &amp; y" b='2'/>t1<![CDATA[<cd>]]><b>&#60;t2</b></root>"#,
        );
        assert!(ok);
        assert_eq!(collections.first(Source::XmlText, None), Some(&b"t1<cd><t2"[..]));
        let attributes: Vec<(&[u8], &[u8])> =
            collections.get(Source::XmlAttributes).iter().map(|e| (e.key.as_slice(), e.value.as_slice())).collect();
        assert_eq!(attributes, vec![(&b"probe"[..], &b"x & y"[..]), (&b"b"[..], &b"2"[..])]);
    }

    #[test]
    fn malformed_documents_are_reported() {
        let mut collections = Collections::from_head(&RequestHead { headers: &[], protocol: b"", remote_addr: b"" });
        assert!(!fill(&mut collections, b"<root><a>unclosed"));
        assert!(!fill(&mut collections, b"not xml at all"));
        assert!(!fill(&mut collections, b"<root attr=\"x"));
    }
}
