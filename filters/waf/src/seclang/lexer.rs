//! SecLang text into directives: comments, line continuations (`\` at the end of a line), and
//! arguments (bare words, or double- or single-quoted with `\"` / `\'` escapes), as Apache's
//! configuration reader gives them to ModSecurity.

/// One directive: its name, its arguments (quotes removed) and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// 1-based line of the directive's first physical line.
    pub line: usize,
    pub name: String,
    pub args: Vec<String>,
}

/// A text that cannot be split into directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub line: usize,
    pub message: String,
}

/// Splits `text` into directives. A line whose first non-blank character is `#` is a comment
/// (a comment does not continue onto the next line); a line ending in `\` continues on the next
/// one (the backslash and the line break are removed, the next line's indentation is kept).
pub fn directives(text: &str) -> Result<Vec<Directive>, LexError> {
    let mut directives = Vec::new();
    let mut logical = String::new();
    let mut start_line = 0;
    let mut continuing = false;
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if !continuing {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            start_line = line_number;
        }
        let trimmed_end = line.trim_end();
        match trimmed_end.strip_suffix('\\') {
            Some(body) => {
                logical.push_str(body);
                continuing = true;
            }
            None => {
                logical.push_str(line);
                continuing = false;
                if let Some(directive) = split_directive(&logical, start_line)? {
                    directives.push(directive);
                }
                logical.clear();
            }
        }
    }
    if continuing && let Some(directive) = split_directive(&logical, start_line)? {
        directives.push(directive);
    }
    Ok(directives)
}

fn split_directive(text: &str, line: usize) -> Result<Option<Directive>, LexError> {
    let mut words = arguments(text).map_err(|message| LexError { line, message })?.into_iter();
    let Some(name) = words.next() else { return Ok(None) };
    Ok(Some(Directive { line, name, args: words.collect() }))
}

/// Splits a directive line into words. Inside quotes a backslash escapes only the quote
/// character itself (`\"`); every other backslash is kept, so regexes arrive as written.
pub fn arguments(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '\\' && chars.peek() == Some(&first) {
                    word.push(first);
                    chars.next();
                } else if c == first {
                    closed = true;
                    break;
                } else {
                    word.push(c);
                }
            }
            if !closed {
                return Err(format!("unterminated {first}quoted argument"));
            }
            if let Some(&next) = chars.peek()
                && !next.is_whitespace()
            {
                return Err(format!("text \"{}\" right after a quoted argument", next.escape_default()));
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_join_lines_and_keep_indentation() {
        let text = "SecRule ARGS \"@rx a\" \\\n    \"id:1,\\\n    phase:2\"\n";
        let parsed = directives(text).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].line, 1);
        assert_eq!(parsed[0].args, vec!["ARGS", "@rx a", "id:1,    phase:2"]);
    }

    #[test]
    fn comments_and_blank_lines_are_skipped_and_do_not_continue() {
        let text = "# SecRule ARGS \"@rx x\" \\\nSecMarker END\n\n   # indented comment\nSecMarker 'TWO'\n";
        let parsed = directives(text).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!((parsed[0].line, parsed[0].name.as_str(), parsed[0].args[0].as_str()), (2, "SecMarker", "END"));
        assert_eq!((parsed[1].line, parsed[1].args[0].as_str()), (5, "TWO"));
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            arguments(r#"SecRule ARGS "@rx [\"'\\]" 'msg:\'x\''"#).unwrap(),
            vec!["SecRule", "ARGS", r#"@rx ["'\\]"#, "msg:'x'"]
        );
        assert_eq!(arguments(r"SecRuleRemoveById 1 2-3").unwrap(), vec!["SecRuleRemoveById", "1", "2-3"]);
        assert!(arguments("SecRule ARGS \"@rx x").unwrap_err().contains("unterminated"));
        assert!(arguments("SecRule \"a\"b").is_err());
    }

    #[test]
    fn crlf_and_trailing_continuation() {
        let parsed = directives("SecMarker A\r\nSecAction \\\r\n  \"id:2\"\r\n").unwrap();
        assert_eq!(parsed[1].args, vec!["id:2"]);
        assert_eq!(directives("SecMarker B \\").unwrap()[0].args, vec!["B"]);
    }
}
