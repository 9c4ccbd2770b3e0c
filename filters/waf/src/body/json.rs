//! JSON bodies flattened into `ARGS_POST`: `{"a":{"b":[{"c":1}]}}` gives the argument `a.b.0.c`
//! with the value `1` (strings unquoted, `null` empty).

use crate::request::{Collections, Source};
use serde_json::Value;

/// Nesting deeper than this is not walked further (serde_json itself refuses beyond 128).
const MAX_DEPTH: usize = 64;

/// Fills `ARGS_POST` from a JSON body; false when the body is not JSON.
pub fn fill(collections: &mut Collections, body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else { return false };
    let mut name = Vec::new();
    walk(collections, &value, &mut name, 0);
    true
}

fn walk(collections: &mut Collections, value: &Value, name: &mut Vec<u8>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let leaf = match value {
        Value::Object(members) => {
            for (key, member) in members {
                let length = name.len();
                if !name.is_empty() {
                    name.push(b'.');
                }
                name.extend_from_slice(key.as_bytes());
                walk(collections, member, name, depth + 1);
                name.truncate(length);
            }
            return;
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let length = name.len();
                if !name.is_empty() {
                    name.push(b'.');
                }
                name.extend_from_slice(index.to_string().as_bytes());
                walk(collections, item, name, depth + 1);
                name.truncate(length);
            }
            return;
        }
        Value::String(text) => text.as_bytes().to_vec(),
        Value::Null => Vec::new(),
        Value::Bool(flag) => flag.to_string().into_bytes(),
        Value::Number(number) => number.to_string().into_bytes(),
    };
    collections.push_arg(Source::ArgsPost, Source::ArgsPostNames, name.clone(), leaf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestHead;

    #[test]
    fn nested_documents_flatten_to_dotted_names() {
        let mut collections = Collections::from_head(&RequestHead { headers: &[], protocol: b"", remote_addr: b"" });
        assert!(fill(&mut collections, br#"{"a":{"b":[{"c":1},"x"]},"n":null,"t":true,"s":"O'Brien"}"#));
        assert_eq!(collections.first(Source::ArgsPost, Some(b"a.b.0.c")), Some(&b"1"[..]));
        assert_eq!(collections.first(Source::ArgsPost, Some(b"a.b.1")), Some(&b"x"[..]));
        assert_eq!(collections.first(Source::ArgsPost, Some(b"n")), Some(&b""[..]));
        assert_eq!(collections.first(Source::ArgsPost, Some(b"t")), Some(&b"true"[..]));
        assert_eq!(collections.first(Source::ArgsPost, Some(b"s")), Some(&b"O'Brien"[..]));
        assert_eq!(collections.get(Source::ArgsPostNames).len(), 5);
    }

    #[test]
    fn top_level_scalars_and_garbage() {
        let mut collections = Collections::from_head(&RequestHead { headers: &[], protocol: b"", remote_addr: b"" });
        assert!(fill(&mut collections, b"\"just a string\""));
        assert_eq!(collections.first(Source::ArgsPost, Some(b"")), Some(&b"just a string"[..]));
        assert!(!fill(&mut collections, b"{not json"));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(!fill(&mut collections, deep.as_bytes()));
    }
}
