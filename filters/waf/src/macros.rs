//! Macro text (`%{tx.critical_anomaly_score}`, `%{MATCHED_VAR}`): parsed once at configure time,
//! expanded per request by the engine.

/// A variable reference inside `%{…}`: a collection (lowercase) and an optional key (lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroVariable {
    pub collection: String,
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Vec<u8>),
    Variable(MacroVariable),
}

/// Text with `%{…}` references.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; an unterminated `%{` is an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("%{") {
            let (literal, after) = rest.split_at(start);
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.as_bytes().to_vec()));
            }
            let inner = after.get(2..).unwrap_or_default();
            let Some(end) = inner.find('}') else {
                return Err(format!("unterminated macro in \"{}\"", text.escape_default()));
            };
            let reference = inner.get(..end).unwrap_or_default().trim();
            if reference.is_empty() {
                return Err(format!("empty macro in \"{}\"", text.escape_default()));
            }
            let (collection, key) = match reference.split_once(['.', ':']) {
                Some((collection, key)) => (collection, Some(key.to_ascii_lowercase())),
                None => (reference, None),
            };
            parts.push(Part::Variable(MacroVariable { collection: collection.to_ascii_lowercase(), key }));
            rest = inner.get(end + 1..).unwrap_or_default();
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.as_bytes().to_vec()));
        }
        Ok(Self { parts })
    }

    /// The text as bytes when it holds no macro (the common case: no expansion per request).
    pub fn as_literal(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(&[]),
            [Part::Literal(bytes)] => Some(bytes),
            _ => None,
        }
    }

    /// Every variable the text references.
    pub fn variables(&self) -> impl Iterator<Item = &MacroVariable> {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable(variable) => Some(variable),
            Part::Literal(_) => None,
        })
    }

    /// Expands the text; `lookup` gives a variable's value (missing: empty).
    pub fn expand(&self, mut lookup: impl FnMut(&MacroVariable) -> Option<Vec<u8>>) -> Vec<u8> {
        let mut output = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(bytes) => output.extend_from_slice(bytes),
                Part::Variable(variable) => output.extend(lookup(variable).unwrap_or_default()),
            }
        }
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_text_needs_no_expansion() {
        let template = Template::parse("GET HEAD POST").unwrap();
        assert_eq!(template.as_literal(), Some(&b"GET HEAD POST"[..]));
    }

    #[test]
    fn macros_expand_in_place() {
        let template = Template::parse("+%{tx.critical_anomaly_score} by %{MATCHED_VAR_NAME}!").unwrap();
        assert_eq!(template.as_literal(), None);
        let expanded = template.expand(|variable| match (variable.collection.as_str(), variable.key.as_deref()) {
            ("tx", Some("critical_anomaly_score")) => Some(b"5".to_vec()),
            ("matched_var_name", None) => Some(b"ARGS:q".to_vec()),
            _ => None,
        });
        assert_eq!(expanded, b"+5 by ARGS:q!");
    }

    #[test]
    fn unterminated_macro_is_refused() {
        assert!(Template::parse("%{tx.a").is_err());
        assert!(Template::parse("%{}").is_err());
    }
}
