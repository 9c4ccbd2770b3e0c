//! Header names from configuration: RFC 9110 tokens, stored lowercase.
//!
//! Validating at configuration time means a typo such as `x-user email` refuses to start the
//! plugin instead of silently never matching; lowercasing once means per-request matching is a
//! plain byte comparison (Envoy hands names to Wasm in lowercase; the filters still lowercase
//! what they read, so a host that does not is covered too).

use crate::log_escape::escape_quoted;
use serde::Deserialize;
use std::fmt;

/// Longest header name accepted from configuration; real names are far shorter, and the bound
/// keeps error messages and logs small.
pub const MAX_HEADER_NAME_LENGTH: usize = 256;

/// A validated, lowercased header name (or name prefix) from configuration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct HeaderName(String);

impl HeaderName {
    /// Validates `name` as an RFC 9110 token and lowercases it.
    pub fn new(name: &str) -> Result<Self, InvalidHeaderName> {
        if name.is_empty() {
            return Err(InvalidHeaderName::Empty);
        }
        if name.len() > MAX_HEADER_NAME_LENGTH {
            return Err(InvalidHeaderName::TooLong(name.len()));
        }
        if !name.bytes().all(is_token_byte) {
            return Err(InvalidHeaderName::IllegalCharacter(escape_quoted(name.as_bytes())));
        }
        Ok(Self(name.to_ascii_lowercase()))
    }

    /// The lowercase name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lowercase name, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for HeaderName {
    type Error = InvalidHeaderName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(&name)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a configured header name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidHeaderName {
    /// The empty string.
    Empty,
    /// Longer than [`MAX_HEADER_NAME_LENGTH`] bytes.
    TooLong(usize),
    /// Holds a character outside the token set; carries the escaped, quoted name.
    IllegalCharacter(String),
}

impl fmt::Display for InvalidHeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("invalid header name: empty"),
            Self::TooLong(length) => {
                write!(f, "invalid header name: {length} bytes, at most {MAX_HEADER_NAME_LENGTH} allowed")
            }
            Self::IllegalCharacter(quoted) => {
                write!(f, "invalid header name {quoted}: only letters, digits and !#$%&'*+-.^_`|~ are allowed")
            }
        }
    }
}

/// RFC 9110 §5.6.2 `tchar`: the characters a header field name may contain.
pub fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_valid_names() {
        assert_eq!(HeaderName::new("X-User-Email").unwrap().as_str(), "x-user-email");
        assert_eq!(HeaderName::new("x-auth-request-").unwrap().as_str(), "x-auth-request-");
    }

    #[test]
    fn accepts_every_token_punctuation() {
        assert!(HeaderName::new("a!#$%&'*+-.^_`|~9").is_ok());
    }

    #[test]
    fn refuses_empty() {
        assert_eq!(HeaderName::new(""), Err(InvalidHeaderName::Empty));
    }

    #[test]
    fn refuses_separators_and_controls() {
        for bad in [
            "x user",
            "x:user",
            ":authority",
            "x-user\r\n",
            "x,y",
            "x=y",
            "x\"y",
            "x/y",
            "x(y)",
            "x\u{0}y",
            "x-üser",
            "x\ty",
        ] {
            let error = HeaderName::new(bad).unwrap_err();
            assert!(matches!(error, InvalidHeaderName::IllegalCharacter(_)), "{bad:?} gave {error:?}");
        }
    }

    #[test]
    fn error_message_escapes_the_name() {
        let error = HeaderName::new("x-a\r\nb").unwrap_err().to_string();
        assert!(error.contains(r#""x-a\r\nb""#), "{error}");
        assert!(!error.contains('\n'));
    }

    #[test]
    fn refuses_overlong() {
        let long = "a".repeat(MAX_HEADER_NAME_LENGTH + 1);
        assert_eq!(HeaderName::new(&long), Err(InvalidHeaderName::TooLong(MAX_HEADER_NAME_LENGTH + 1)));
        assert!(HeaderName::new(&"a".repeat(MAX_HEADER_NAME_LENGTH)).is_ok());
    }

    #[test]
    fn deserializes_through_validation() {
        let name: HeaderName = serde_json::from_str(r#""X-Tenant-ID""#).unwrap();
        assert_eq!(name.as_str(), "x-tenant-id");
        let error = serde_json::from_str::<HeaderName>(r#""x tenant""#).unwrap_err();
        assert!(error.to_string().contains("invalid header name"), "{error}");
    }
}
