//! Request bodies: which processor a content type selects, and filling the collections from the
//! buffered body (`ARGS_POST`, `FILES`, `MULTIPART_PART_HEADERS`, `REQUEST_BODY`).

pub mod json;
pub mod multipart;
pub mod urlencoded;
pub mod xml;

use crate::request::{Collections, Source};

/// How a body is parsed, from its `content-type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyProcessor {
    UrlEncoded,
    /// Multipart with its boundary.
    Multipart(Vec<u8>),
    Json,
    /// `text/xml`, `application/xml`, `*+xml` (as ModSecurity's recommended setup enables).
    Xml,
    /// Anything else: only `REQUEST_BODY` holds it.
    Raw,
}

impl BodyProcessor {
    /// Chooses the processor for a `content-type` value (parameters and case ignored).
    ///
    /// Repeated `Content-Type` headers arrive joined with commas (Envoy joins them into one
    /// value). As with ModSecurity v3, where the recommended rules 200000 (XML) and 200001 (JSON)
    /// switch the processor when any `Content-Type` value names those types, a JSON value wins,
    /// then an XML one; otherwise the first value decides (the one most backends read).
    pub fn for_content_type(content_type: Option<&[u8]>) -> Self {
        let Some(content_type) = content_type else { return Self::Raw };
        let lower = content_type.to_ascii_lowercase();
        let mut media_types = lower
            .split(|&b| b == b',')
            .map(|value| value.split(|&b| b == b';').next().unwrap_or_default().trim_ascii())
            .filter(|media_type| !media_type.is_empty());
        let first = media_types.next().unwrap_or_default();
        let mut processor = Self::for_media_type(first, content_type);
        for other in media_types {
            processor = match (processor, Self::for_media_type(other, content_type)) {
                (Self::Json, _) | (_, Self::Json) => Self::Json,
                (Self::Xml, _) | (_, Self::Xml) => Self::Xml,
                (kept, _) => kept,
            };
        }
        processor
    }

    /// The processor for one media type (lowercase, without parameters).
    fn for_media_type(media_type: &[u8], content_type: &[u8]) -> Self {
        if media_type == b"application/x-www-form-urlencoded" {
            Self::UrlEncoded
        } else if media_type == b"multipart/form-data" {
            match multipart::boundary(content_type) {
                Some(boundary) => Self::Multipart(boundary),
                None => Self::Raw,
            }
        } else if media_type == b"application/json" || media_type.ends_with(b"+json") {
            Self::Json
        } else if media_type == b"text/xml" || media_type == b"application/xml" || media_type.ends_with(b"+xml") {
            Self::Xml
        } else {
            Self::Raw
        }
    }

    /// The `REQBODY_PROCESSOR` name (ModSecurity's).
    pub fn name(&self) -> &'static [u8] {
        match self {
            Self::UrlEncoded => b"URLENCODED",
            Self::Multipart(_) => b"MULTIPART",
            Self::Json => b"JSON",
            Self::Xml => b"XML",
            Self::Raw => b"",
        }
    }
}

/// Parses `body` with `processor` into `collections`. A body the processor cannot parse sets
/// `REQBODY_ERROR` to 1 (and keeps what it could read); an empty body is no error (as in
/// ModSecurity, no processor runs on it).
pub fn fill(collections: &mut Collections, processor: &BodyProcessor, body: &[u8]) {
    collections.set(Source::RequestBodyLength, body.len().to_string().into_bytes());
    collections.set(Source::ReqbodyProcessor, processor.name().to_vec());
    let ok = body.is_empty()
        || match processor {
            BodyProcessor::UrlEncoded => {
                collections.set(Source::RequestBody, body.to_vec());
                for (name, value) in urlencoded::parse_pairs(body) {
                    collections.push_arg(Source::ArgsPost, Source::ArgsPostNames, name, value);
                }
                true
            }
            BodyProcessor::Multipart(boundary) => multipart::fill(collections, boundary, body),
            BodyProcessor::Json => {
                collections.set(Source::RequestBody, body.to_vec());
                json::fill(collections, body)
            }
            // As ModSecurity's XML processor: the document is read through `XML:`, not
            // `REQUEST_BODY` (element and attribute names are markup, not input).
            BodyProcessor::Xml => xml::fill(collections, body),
            BodyProcessor::Raw => {
                collections.set(Source::RequestBody, body.to_vec());
                true
            }
        };
    collections.set(Source::ReqbodyError, if ok { b"0".to_vec() } else { b"1".to_vec() });
    collections.update_sizes();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_select_processors() {
        assert_eq!(
            BodyProcessor::for_content_type(Some(b"application/x-www-form-urlencoded; charset=utf-8")),
            BodyProcessor::UrlEncoded
        );
        assert_eq!(BodyProcessor::for_content_type(Some(b"Application/JSON")), BodyProcessor::Json);
        assert_eq!(BodyProcessor::for_content_type(Some(b"application/vnd.api+json")), BodyProcessor::Json);
        assert_eq!(
            BodyProcessor::for_content_type(Some(b"multipart/form-data; boundary=\"xyz\"")),
            BodyProcessor::Multipart(b"xyz".to_vec())
        );
        assert_eq!(BodyProcessor::for_content_type(Some(b"multipart/form-data")), BodyProcessor::Raw);
        assert_eq!(BodyProcessor::for_content_type(Some(b"text/plain")), BodyProcessor::Raw);
        assert_eq!(BodyProcessor::for_content_type(None), BodyProcessor::Raw);
        // Two Content-Type headers joined into one value: JSON, then XML, win (ModSecurity's
        // rules 200000/200001 match any value); otherwise the first decides.
        assert_eq!(
            BodyProcessor::for_content_type(Some(b"application/x-www-form-urlencoded,application/xml")),
            BodyProcessor::Xml
        );
        assert_eq!(BodyProcessor::for_content_type(Some(b"text/xml, application/json")), BodyProcessor::Json);
        assert_eq!(
            BodyProcessor::for_content_type(Some(b"application/x-www-form-urlencoded, text/plain")),
            BodyProcessor::UrlEncoded
        );
        assert_eq!(
            BodyProcessor::for_content_type(Some(b"text/plain,multipart/form-data; boundary=b")),
            BodyProcessor::Raw
        );
    }

    #[test]
    fn urlencoded_body_fills_args_post() {
        let mut collections =
            Collections::from_head(&crate::request::RequestHead { headers: &[], protocol: b"", remote_addr: b"" });
        fill(&mut collections, &BodyProcessor::UrlEncoded, b"a=1&b=x%20y");
        assert_eq!(collections.first(Source::ArgsPost, Some(b"b")), Some(&b"x y"[..]));
        assert_eq!(collections.first(Source::ReqbodyProcessor, None), Some(&b"URLENCODED"[..]));
        assert_eq!(collections.first(Source::RequestBodyLength, None), Some(&b"11"[..]));
        assert_eq!(collections.first(Source::ReqbodyError, None), Some(&b"0"[..]));
    }
}
