//! SecLang action lists (`"id:1,phase:2,t:none,msg:'a, b',setvar:'tx.x=+1'"`) into
//! (name, value) pairs, as ModSecurity's parser reads them: names up to `:` or `,`; a value in
//! single quotes may hold commas, `\'` and `\\` are escapes there; an unquoted value runs to the
//! next comma.

/// One action: the name (lowercase) and its value, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub name: String,
    pub value: Option<String>,
}

impl Action {
    pub fn new(name: &str, value: Option<&str>) -> Self {
        Self { name: name.to_ascii_lowercase(), value: value.map(str::to_owned) }
    }

    /// The value, or "" for an action without one.
    pub fn value(&self) -> &str {
        self.value.as_deref().unwrap_or_default()
    }
}

/// Parses an action list.
pub fn parse_actions(text: &str) -> Result<Vec<Action>, String> {
    let mut actions = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| *c != ':' && *c != ',') {
            name.push(c);
        }
        let name = name.trim();
        if name.is_empty() {
            return Err("an action without a name".into());
        }
        if chars.next_if_eq(&':').is_none() {
            actions.push(Action::new(name, None));
            continue;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(escaped) => value.push(escaped),
                        None => break,
                    },
                    '\'' => {
                        closed = true;
                        break;
                    }
                    other => value.push(other),
                }
            }
            if !closed {
                return Err(format!("action \"{}\": unterminated quoted value", name.escape_default()));
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if let Some(next) = chars.next_if(|c| *c != ',') {
                return Err(format!("action \"{}\": text \"{}\" after its quoted value", name.escape_default(), next));
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
            value = value.trim_end().to_owned();
        }
        actions.push(Action::new(name, Some(&value)));
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_and_quotes() {
        let actions = parse_actions(
            "id:942100,  phase:2,block,capture,t:none,t:urlDecodeUni,msg:'SQL, injection',\
             logdata:'it\\'s %{TX.0}',ctl:ruleRemoveTargetById=942100;ARGS:q,setvar:'tx.a=+%{tx.b}'",
        )
        .unwrap();
        let pairs: Vec<(&str, Option<&str>)> =
            actions.iter().map(|action| (action.name.as_str(), action.value.as_deref())).collect();
        assert_eq!(
            pairs,
            vec![
                ("id", Some("942100")),
                ("phase", Some("2")),
                ("block", None),
                ("capture", None),
                ("t", Some("none")),
                ("t", Some("urlDecodeUni")),
                ("msg", Some("SQL, injection")),
                ("logdata", Some("it's %{TX.0}")),
                ("ctl", Some("ruleRemoveTargetById=942100;ARGS:q")),
                ("setvar", Some("tx.a=+%{tx.b}")),
            ]
        );
    }

    #[test]
    fn names_are_lowercased_and_errors_are_reported() {
        assert_eq!(parse_actions("skipAfter:END").unwrap()[0].name, "skipafter");
        assert!(parse_actions("msg:'open").unwrap_err().contains("unterminated"));
        assert!(parse_actions("msg:'a'b").unwrap_err().contains("after its quoted value"));
        assert!(parse_actions(":x").is_err());
        assert!(parse_actions("").unwrap().is_empty());
    }
}
