//! The reviewed list of known deviations: CRS test titles (`920100-2`) with the reason each one
//! fails here. A listed failure does not fail the run; an entry without a reason is refused.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// Where a deviation shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// In the harness and in Envoy.
    #[default]
    Both,
    /// Only through real Envoy (Envoy answers or normalises before the filter).
    Envoy,
    /// Only in the harness.
    Harness,
}

/// One entry: a reason, or a reason with a scope.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Entry {
    Reason(String),
    Scoped {
        reason: String,
        #[serde(default)]
        scope: Scope,
    },
}

/// The known deviations, by test title.
#[derive(Debug, Default, Clone)]
pub struct Deviations {
    entries: BTreeMap<String, (Scope, String)>,
}

impl Deviations {
    /// Reads the file: a YAML map of `"<rule>-<test>": reason` (or `{reason, scope: envoy}`).
    pub fn load(path: &Path) -> Result<Deviations, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Deviations, String> {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        if value.is_null() {
            return Ok(Deviations::default());
        }
        let raw: BTreeMap<String, Entry> = serde_yaml_ng::from_value(value).map_err(|e| e.to_string())?;
        let mut entries = BTreeMap::new();
        for (title, entry) in raw {
            let (scope, reason) = match entry {
                Entry::Reason(reason) => (Scope::Both, reason),
                Entry::Scoped { reason, scope } => (scope, reason),
            };
            if reason.trim().is_empty() {
                return Err(format!("{title}: a deviation needs a reason"));
            }
            entries.insert(title, (scope, reason));
        }
        Ok(Deviations { entries })
    }

    /// The reason `title` may fail in the harness (`envoy: false`) or in Envoy (`envoy: true`).
    pub fn reason(&self, title: &str, envoy: bool) -> Option<&str> {
        let (scope, reason) = self.entries.get(title)?;
        let applies = match scope {
            Scope::Both => true,
            Scope::Envoy => envoy,
            Scope::Harness => !envoy,
        };
        applies.then_some(reason.as_str())
    }

    /// The reason of an entry with `scope: envoy` (a behaviour of Envoy's, not of the filter).
    pub fn envoy_only_reason(&self, title: &str) -> Option<&str> {
        self.entries.get(title).filter(|(scope, _)| *scope == Scope::Envoy).map(|(_, reason)| reason.as_str())
    }

    /// Every listed title.
    pub fn titles(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_need_reasons_and_scopes_apply() {
        let deviations = Deviations::parse(
            "920100-2: Apache answers 400\n\"920100-4\": {reason: Envoy answers 404, scope: envoy}\n",
        )
        .expect("valid");
        assert_eq!(deviations.reason("920100-2", false), Some("Apache answers 400"));
        assert_eq!(deviations.reason("920100-4", false), None);
        assert_eq!(deviations.reason("920100-4", true), Some("Envoy answers 404"));
        assert_eq!(deviations.envoy_only_reason("920100-4"), Some("Envoy answers 404"));
        assert_eq!(deviations.envoy_only_reason("920100-2"), None);
        assert!(Deviations::parse("920100-2: ''\n").is_err());
        assert!(Deviations::parse("# none yet\n").expect("empty").is_empty());
    }
}
