//! Verified claims → header values for `claim_to_headers`.
//!
//! A claim path is split on `.` into nested object members (`realm.roles`). Strings are used as
//! they are, numbers and booleans as their JSON text, arrays of those joined with `,` (Envoy's
//! own filter drops arrays; this one does not). Objects, `null`, and anything that would not be a
//! valid header value (control characters) give no header.

use serde_json::{Map, Value};

/// Longest header value produced from a claim; longer values give no header.
pub const MAX_CLAIM_HEADER_LENGTH: usize = 8 * 1024;

/// A claim path from configuration, split into its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(Vec<String>);

impl ClaimPath {
    /// Validates `name`: non-empty members separated by `.`.
    pub fn parse(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("claim_name is empty".into());
        }
        let members: Vec<String> = name.split('.').map(str::to_owned).collect();
        if members.iter().any(String::is_empty) {
            return Err(format!("claim_name {name:?} has an empty member"));
        }
        Ok(Self(members))
    }

    /// The claim at this path in `payload`.
    pub fn lookup<'a>(&self, payload: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.0.split_first()?;
        let mut value = payload.get(first)?;
        for member in rest {
            value = value.as_object()?.get(member)?;
        }
        Some(value)
    }
}

/// The header text of a claim value, or `None` when it has no header form.
pub fn header_value(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(text) => parts.push(text.clone()),
                    Value::Number(number) => parts.push(number.to_string()),
                    Value::Bool(flag) => parts.push(flag.to_string()),
                    // Nested structures have no agreed text form: skip the element.
                    _ => {}
                }
            }
            if parts.is_empty() {
                return None;
            }
            parts.join(",")
        }
        Value::Null | Value::Object(_) => return None,
    };
    is_header_safe(&text).then_some(text)
}

/// A value Envoy accepts in a header: no control characters besides tab, bounded length.
fn is_header_safe(text: &str) -> bool {
    text.len() <= MAX_CLAIM_HEADER_LENGTH && text.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload() -> Map<String, Value> {
        match json!({
            "sub": "user-1",
            "admin": true,
            "level": 3,
            "ratio": 0.5,
            "groups": ["eng", "ops"],
            "mixed": ["a", 1, false, {"x": 1}, null],
            "realm": {"roles": ["reader", "writer"], "name": "main", "deep": {"x": "y"}},
            "nothing": null,
            "empty": [],
            "evil": "a\r\nx-injected: 1",
        }) {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn claim(path: &str) -> Option<String> {
        let payload = payload();
        ClaimPath::parse(path).unwrap().lookup(&payload).and_then(header_value)
    }

    #[test]
    fn scalars_as_text() {
        assert_eq!(claim("sub").as_deref(), Some("user-1"));
        assert_eq!(claim("admin").as_deref(), Some("true"));
        assert_eq!(claim("level").as_deref(), Some("3"));
        assert_eq!(claim("ratio").as_deref(), Some("0.5"));
    }

    #[test]
    fn arrays_are_joined() {
        assert_eq!(claim("groups").as_deref(), Some("eng,ops"));
        assert_eq!(claim("mixed").as_deref(), Some("a,1,false"));
        assert_eq!(claim("empty"), None);
    }

    #[test]
    fn nested_paths() {
        assert_eq!(claim("realm.roles").as_deref(), Some("reader,writer"));
        assert_eq!(claim("realm.name").as_deref(), Some("main"));
        assert_eq!(claim("realm.deep.x").as_deref(), Some("y"));
        assert_eq!(claim("realm.missing"), None);
        assert_eq!(claim("sub.x"), None, "a string has no members");
    }

    #[test]
    fn no_header_for_objects_null_missing_or_unsafe() {
        assert_eq!(claim("realm"), None);
        assert_eq!(claim("nothing"), None);
        assert_eq!(claim("absent"), None);
        assert_eq!(claim("evil"), None);
    }

    #[test]
    fn claim_path_validation() {
        assert!(ClaimPath::parse("").is_err());
        assert!(ClaimPath::parse("a..b").is_err());
        assert!(ClaimPath::parse(".a").is_err());
        assert!(ClaimPath::parse("a.b").is_ok());
    }

    #[test]
    fn oversized_values_give_no_header() {
        assert_eq!(header_value(&Value::String("a".repeat(MAX_CLAIM_HEADER_LENGTH + 1))), None);
        assert!(header_value(&Value::String("a".repeat(MAX_CLAIM_HEADER_LENGTH))).is_some());
    }
}
