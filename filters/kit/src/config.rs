//! Plugin configuration: JSON bytes → a typed configuration, or ONE error naming the field.
//!
//! Filters declare their schema with `#[serde(deny_unknown_fields)]` and validating newtypes
//! (`#[serde(try_from = ...)]`), so a typo or a bad value is reported with its path, e.g.
//!
//! ```text
//! invalid configuration: field `trusted_sources[1]`: invalid CIDR "10.0.0.0/33"
//! ```

use proxy_wasm::hostcalls;
use proxy_wasm::types::BufferType;
use serde::de::DeserializeOwned;
use std::fmt;

/// Why a configuration was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: String,
    message: String,
}

impl ConfigError {
    /// An error about `field` (a path such as `trusted_sources[1]`, or empty for the whole
    /// document).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// The path of the offending field; empty when the document as a whole is wrong.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "invalid configuration: {}", self.message)
        } else {
            write!(f, "invalid configuration: field `{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses a JSON configuration document.
///
/// Zero bytes, only whitespace, or JSON `null` mean "no configuration": the defaults apply
/// (Envoy passes zero bytes when `configuration` is omitted).
pub fn parse_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    // serde also accepts a struct written as a JSON array (fields by position); a configuration
    // must name its fields, so anything but an object (or null) is refused up front.
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'{') && first != Some(&b'n') {
        return Err(ConfigError::new("", "expected a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed: Option<T> = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let field = error.path().to_string();
        let message = without_position(error.inner());
        // The root path prints as "."; an error there is about the document as a whole.
        ConfigError::new(if field == "." { String::new() } else { field }, message)
    })?;
    deserializer.end().map_err(|error| ConfigError::new("", without_position(&error)))?;
    Ok(parsed.unwrap_or_default())
}

/// serde_json appends " at line L column C"; the field path already says where, and the
/// configuration is usually one line, so the position only adds noise to the log line.
fn without_position(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match full.strip_suffix(&position) {
        Some(message) => message.to_owned(),
        None => full,
    }
}

/// Reads the plugin configuration and turns it into the filter's policy with `build`.
///
/// On failure it logs ONE error line naming the field and returns `None`; `on_configure` then
/// returns false so the plugin refuses to start instead of running with a guessed policy.
pub fn load<T>(configuration_size: usize, build: impl FnOnce(&[u8]) -> Result<T, ConfigError>) -> Option<T> {
    let bytes = if configuration_size == 0 {
        Vec::new()
    } else {
        match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, configuration_size) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                log::error!("invalid configuration: cannot read it from the host status={}", status as u32);
                return None;
            }
        }
    };
    match build(&bytes) {
        Ok(policy) => Some(policy),
        Err(error) => {
            log::error!("{error}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        names: Vec<String>,
        limit: u32,
        nested: Nested,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Nested {
        flag: bool,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self { names: vec!["default".into()], limit: 7, nested: Nested::default() }
        }
    }

    #[test]
    fn empty_whitespace_and_null_mean_defaults() {
        for input in [&b""[..], b"  \n\t", b"null", b" null "] {
            let parsed: Sample = parse_json(input).unwrap();
            assert_eq!(parsed, Sample::default(), "input {input:?}");
        }
    }

    #[test]
    fn empty_object_means_defaults() {
        let parsed: Sample = parse_json(b"{}").unwrap();
        assert_eq!(parsed, Sample::default());
    }

    #[test]
    fn values_are_read() {
        let parsed: Sample = parse_json(br#"{"names":["a"],"limit":3}"#).unwrap();
        assert_eq!(parsed.names, vec!["a".to_string()]);
        assert_eq!(parsed.limit, 3);
    }

    #[test]
    fn wrong_type_names_the_field_without_position() {
        let error = parse_json::<Sample>(br#"{"names":"a"}"#).unwrap_err();
        assert_eq!(error.field(), "names");
        assert!(error.message().starts_with("invalid type: string"), "{error}");
        assert!(!error.to_string().contains("line 1"), "{error}");
        assert!(error.to_string().starts_with("invalid configuration: field `names`: invalid type"));
    }

    #[test]
    fn wrong_element_type_names_the_index() {
        let error = parse_json::<Sample>(br#"{"names":["a", 5]}"#).unwrap_err();
        assert_eq!(error.field(), "names[1]");
    }

    #[test]
    fn unknown_key_is_named() {
        let error = parse_json::<Sample>(br#"{"nmaes":["a"]}"#).unwrap_err();
        assert_eq!(error.field(), "nmaes");
        assert!(
            error.to_string().starts_with("invalid configuration: field `nmaes`: unknown field `nmaes`"),
            "{error}"
        );
    }

    #[test]
    fn unknown_nested_key_names_its_path() {
        let error = parse_json::<Sample>(br#"{"nested":{"flgg":true}}"#).unwrap_err();
        assert_eq!(error.field(), "nested.flgg");
        assert!(error.message().starts_with("unknown field `flgg`"), "{error}");
    }

    #[test]
    fn not_an_object_is_refused() {
        for input in [&br#"[["a"], 3, {}]"#[..], b"5", br#""names""#, b"true"] {
            let error = parse_json::<Sample>(input).unwrap_err();
            assert_eq!(error.field(), "");
            assert_eq!(error.to_string(), "invalid configuration: expected a JSON object");
        }
        // "n" that is not null still fails in the parser.
        assert!(parse_json::<Sample>(b"nope").is_err());
    }

    #[test]
    fn malformed_json_is_refused() {
        assert!(parse_json::<Sample>(br#"{"names":["#).is_err());
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let error = parse_json::<Sample>(br#"{} {}"#).unwrap_err();
        assert!(error.message().contains("trailing"), "{error}");
    }

    #[test]
    fn display_without_field() {
        assert_eq!(ConfigError::new("", "broken").to_string(), "invalid configuration: broken");
        assert_eq!(ConfigError::new("a[0]", "bad").to_string(), "invalid configuration: field `a[0]`: bad");
    }
}
