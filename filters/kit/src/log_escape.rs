//! Client-supplied bytes made safe for a log line: printable ASCII only, and bounded.
//!
//! A header value may hold CR/LF (a forged second log line), quotes (a forged key=value), control
//! characters (terminal escapes), invalid UTF-8 or kilobytes of padding. Everything a filter logs
//! that came from a request goes through here.

/// Longest escaped text one logged value may take, in characters.
pub const MAX_LOGGED_VALUE_CHARS: usize = 256;

/// Marker appended when the escaped text was cut at [`MAX_LOGGED_VALUE_CHARS`].
pub const TRUNCATION_MARKER: &str = "...";

/// `bytes` inside double quotes, escaped (`\r`, `\n`, `\t`, `\\`, `\"`, `\'`, `\xNN` for anything
/// else outside printable ASCII), at most [`MAX_LOGGED_VALUE_CHARS`] characters between the
/// quotes, followed by `...` when cut.
pub fn escape_quoted(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().min(MAX_LOGGED_VALUE_CHARS) + 5);
    out.push('"');
    let truncated = escape_into(&mut out, bytes, MAX_LOGGED_VALUE_CHARS, false);
    out.push('"');
    if truncated {
        out.push_str(TRUNCATION_MARKER);
    }
    out
}

/// `bytes` escaped like [`escape_quoted`] but without quotes and with spaces escaped too
/// (`\x20`), so the result is one whitespace-free token for an unquoted `key=value`.
pub fn escape_bare(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().min(MAX_LOGGED_VALUE_CHARS) + 3);
    if escape_into(&mut out, bytes, MAX_LOGGED_VALUE_CHARS, true) {
        out.push_str(TRUNCATION_MARKER);
    }
    out
}

/// Appends the escaped form of `bytes` to `out`, stopping before the escaped text would exceed
/// `max_chars` (never splitting an escape sequence). Returns whether it stopped early.
fn escape_into(out: &mut String, bytes: &[u8], max_chars: usize, escape_space: bool) -> bool {
    let mut written = 0usize;
    for &byte in bytes {
        if escape_space && byte == b' ' {
            // `escape_ascii` keeps spaces; the bare form must not contain any.
            if written + ESCAPED_SPACE.len() > max_chars {
                return true;
            }
            written += ESCAPED_SPACE.len();
            out.push_str(ESCAPED_SPACE);
            continue;
        }
        let escaped = byte.escape_ascii();
        if written + escaped.len() > max_chars {
            return true;
        }
        written += escaped.len();
        out.extend(escaped.map(char::from));
    }
    false
}

const ESCAPED_SPACE: &str = "\\x20";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ascii_is_kept() {
        assert_eq!(escape_quoted(b"abc-123 x"), r#""abc-123 x""#);
        assert_eq!(escape_bare(b"abc-123"), "abc-123");
    }

    #[test]
    fn crlf_and_quotes_are_escaped() {
        let escaped = escape_quoted(b"abc\r\nX-Injected: \"1\"");
        assert_eq!(escaped, r#""abc\r\nX-Injected: \"1\"""#);
        assert!(!escaped.contains('\n') && !escaped.contains('\r'));
    }

    #[test]
    fn controls_and_non_ascii_become_hex() {
        assert_eq!(escape_bare(b"a\x00\x1b[31m"), r"a\x00\x1b[31m");
        assert_eq!(escape_bare("é".as_bytes()), r"\xc3\xa9");
        assert_eq!(escape_bare(b"\xff"), r"\xff");
    }

    #[test]
    fn bare_escapes_spaces() {
        assert_eq!(escape_bare(b"a b=c"), r"a\x20b=c");
        assert!(!escape_bare(b"a b").contains(' '));
    }

    #[test]
    fn output_is_printable_ascii() {
        let all: Vec<u8> = (0..=255).collect();
        let escaped = escape_quoted(&all);
        assert!(escaped.bytes().all(|b| (0x20..0x7f).contains(&b)));
    }

    #[test]
    fn long_values_are_bounded() {
        let value = vec![b'a'; 4096];
        let escaped = escape_quoted(&value);
        assert_eq!(escaped.len(), MAX_LOGGED_VALUE_CHARS + 2 + TRUNCATION_MARKER.len());
        assert!(escaped.ends_with(&format!("\"{TRUNCATION_MARKER}")));
    }

    #[test]
    fn exact_limit_is_not_truncated() {
        let value = vec![b'a'; MAX_LOGGED_VALUE_CHARS];
        let escaped = escape_bare(&value);
        assert_eq!(escaped.len(), MAX_LOGGED_VALUE_CHARS);
        assert!(!escaped.ends_with(TRUNCATION_MARKER));
    }

    #[test]
    fn escape_sequences_are_never_split() {
        // 255 plain bytes then a newline: "\n" needs 2 characters but only 1 is left.
        let mut value = vec![b'a'; MAX_LOGGED_VALUE_CHARS - 1];
        value.push(b'\n');
        let escaped = escape_bare(&value);
        assert_eq!(escaped, format!("{}{TRUNCATION_MARKER}", "a".repeat(MAX_LOGGED_VALUE_CHARS - 1)));
    }

    #[test]
    fn empty_value() {
        assert_eq!(escape_quoted(b""), r#""""#);
        assert_eq!(escape_bare(b""), "");
    }
}
