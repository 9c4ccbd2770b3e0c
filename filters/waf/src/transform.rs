//! Transformations (ModSecurity / CRS `t:` functions): normalise a value before an operator sees
//! it, so an attacker's encoding tricks (double URL encoding, `%u`, entities, comments inside SQL)
//! collapse to one canonical form.
//!
//! Every function is total: malformed input is passed through as ModSecurity does, never an error.
//! A [`Pipeline`] is an ordered list; the engine interns pipelines so a value is transformed once
//! per distinct pipeline and request.

use std::borrow::Cow;
use std::fmt;

/// One transformation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transform {
    Lowercase,
    Uppercase,
    UrlDecode,
    UrlDecodeUni,
    HtmlEntityDecode,
    JsDecode,
    CssDecode,
    EscapeSeqDecode,
    CmdLine,
    CompressWhitespace,
    RemoveWhitespace,
    RemoveNulls,
    ReplaceNulls,
    RemoveComments,
    RemoveCommentsChar,
    ReplaceComments,
    NormalisePath,
    NormalisePathWin,
    Base64Decode,
    HexDecode,
    HexEncode,
    Length,
    Trim,
    TrimLeft,
    TrimRight,
    Utf8ToUnicode,
    Sha1,
}

/// Why a transformation name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTransform(pub String);

impl fmt::Display for UnknownTransform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown transformation \"{}\"", self.0.escape_default())
    }
}

/// A parsed transformation name: `none` clears everything before it (as `t:none` does in SecLang).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransformName {
    None,
    Apply(Transform),
}

impl TransformName {
    /// Parses a SecLang / native name, case-insensitively; British and American spellings of the
    /// path normalisers are both accepted.
    pub fn parse(name: &str) -> Result<Self, UnknownTransform> {
        let lower = name.to_ascii_lowercase();
        let transform = match lower.as_str() {
            "none" => return Ok(Self::None),
            "lowercase" => Transform::Lowercase,
            "uppercase" => Transform::Uppercase,
            "urldecode" => Transform::UrlDecode,
            "urldecodeuni" => Transform::UrlDecodeUni,
            "htmlentitydecode" => Transform::HtmlEntityDecode,
            "jsdecode" => Transform::JsDecode,
            "cssdecode" => Transform::CssDecode,
            "escapeseqdecode" => Transform::EscapeSeqDecode,
            "cmdline" => Transform::CmdLine,
            "compresswhitespace" => Transform::CompressWhitespace,
            "removewhitespace" => Transform::RemoveWhitespace,
            "removenulls" => Transform::RemoveNulls,
            "replacenulls" => Transform::ReplaceNulls,
            "removecomments" => Transform::RemoveComments,
            "removecommentschar" => Transform::RemoveCommentsChar,
            "replacecomments" => Transform::ReplaceComments,
            "normalisepath" | "normalizepath" => Transform::NormalisePath,
            "normalisepathwin" | "normalizepathwin" => Transform::NormalisePathWin,
            "base64decode" => Transform::Base64Decode,
            "hexdecode" => Transform::HexDecode,
            "hexencode" => Transform::HexEncode,
            "length" => Transform::Length,
            "trim" => Transform::Trim,
            "trimleft" => Transform::TrimLeft,
            "trimright" => Transform::TrimRight,
            "utf8tounicode" => Transform::Utf8ToUnicode,
            "sha1" => Transform::Sha1,
            _ => return Err(UnknownTransform(name.to_owned())),
        };
        Ok(Self::Apply(transform))
    }
}

/// Every transformation by its SecLang name (the spellings CRS uses), for tools and tests that
/// go through all of them.
pub const NAMES: &[&str] = &[
    "lowercase",
    "uppercase",
    "urlDecode",
    "urlDecodeUni",
    "htmlEntityDecode",
    "jsDecode",
    "cssDecode",
    "escapeSeqDecode",
    "cmdLine",
    "compressWhitespace",
    "removeWhitespace",
    "removeNulls",
    "replaceNulls",
    "removeComments",
    "removeCommentsChar",
    "replaceComments",
    "normalisePath",
    "normalisePathWin",
    "base64Decode",
    "hexDecode",
    "hexEncode",
    "length",
    "trim",
    "trimLeft",
    "trimRight",
    "utf8toUnicode",
    "sha1",
];

/// An ordered list of transformations; empty means the raw value.
pub type Pipeline = Vec<Transform>;

/// Builds a pipeline from names, `none` resetting what came before.
pub fn parse_pipeline<S: AsRef<str>>(names: &[S]) -> Result<Pipeline, UnknownTransform> {
    let mut pipeline = Pipeline::new();
    for name in names {
        match TransformName::parse(name.as_ref())? {
            TransformName::None => pipeline.clear(),
            TransformName::Apply(transform) => pipeline.push(transform),
        }
    }
    Ok(pipeline)
}

/// Applies `pipeline` to `value`; borrows when nothing changed.
///
/// One pass classifies the bytes; a transformation whose trigger bytes are absent (no `%` for a
/// URL decoder, no uppercase for `lowercase`, …) is skipped without touching the value, which
/// is the common case for benign values.
pub fn apply_pipeline<'a>(pipeline: &[Transform], value: &'a [u8]) -> Cow<'a, [u8]> {
    let mut current: Cow<'a, [u8]> = Cow::Borrowed(value);
    let mut classes = byte_classes(value);
    for transform in pipeline {
        let triggers = transform.triggers();
        if triggers != class::ANY && classes & triggers == 0 {
            continue;
        }
        if let Some(changed) = transform.apply(&current) {
            classes = byte_classes(&changed);
            current = Cow::Owned(changed);
        }
    }
    current
}

/// Byte classes, as bits, that make a transformation do something.
mod class {
    pub const PERCENT_PLUS: u32 = 1;
    pub const AMPERSAND: u32 = 1 << 1;
    pub const BACKSLASH: u32 = 1 << 2;
    pub const NUL: u32 = 1 << 3;
    pub const UPPER: u32 = 1 << 4;
    pub const LOWER: u32 = 1 << 5;
    pub const NON_ASCII: u32 = 1 << 6;
    pub const WHITESPACE: u32 = 1 << 7;
    pub const COMMENT: u32 = 1 << 8;
    pub const PATH: u32 = 1 << 9;
    pub const SHELL: u32 = 1 << 10;
    pub const ANY: u32 = u32::MAX;
}

/// The classes of every byte value.
const BYTE_CLASSES: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        let mut bits = 0;
        if b == b'%' || b == b'+' {
            bits |= class::PERCENT_PLUS;
        }
        if b == b'&' {
            bits |= class::AMPERSAND;
        }
        if b == b'\\' {
            bits |= class::BACKSLASH | class::PATH | class::SHELL;
        }
        if b == 0 {
            bits |= class::NUL;
        }
        if b.is_ascii_uppercase() {
            bits |= class::UPPER | class::SHELL;
        }
        if b.is_ascii_lowercase() {
            bits |= class::LOWER;
        }
        if b >= 0x80 {
            bits |= class::NON_ASCII;
        }
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0) {
            bits |= class::WHITESPACE | class::SHELL;
        }
        if matches!(b, b'/' | b'*' | b'#' | b'-' | b'<') {
            bits |= class::COMMENT;
        }
        if matches!(b, b'/' | b'.') {
            bits |= class::PATH;
        }
        if matches!(b, b'"' | b'\'' | b'^' | b',' | b';' | b'(') {
            bits |= class::SHELL;
        }
        table[byte] = bits;
        byte += 1;
    }
    table
};

fn byte_classes(value: &[u8]) -> u32 {
    value.iter().fold(0, |bits, &byte| bits | BYTE_CLASSES[usize::from(byte)])
}

impl Transform {
    /// Byte classes without which this transformation leaves a value unchanged.
    fn triggers(self) -> u32 {
        match self {
            Self::Lowercase => class::UPPER,
            Self::Uppercase => class::LOWER,
            Self::UrlDecode | Self::UrlDecodeUni => class::PERCENT_PLUS,
            Self::HtmlEntityDecode => class::AMPERSAND,
            Self::JsDecode | Self::CssDecode | Self::EscapeSeqDecode => class::BACKSLASH,
            Self::CmdLine => class::SHELL,
            Self::CompressWhitespace | Self::RemoveWhitespace | Self::Trim | Self::TrimLeft | Self::TrimRight => {
                class::WHITESPACE
            }
            Self::RemoveNulls | Self::ReplaceNulls => class::NUL,
            Self::RemoveComments | Self::RemoveCommentsChar | Self::ReplaceComments => class::COMMENT,
            Self::NormalisePath | Self::NormalisePathWin => class::PATH,
            Self::Utf8ToUnicode => class::NON_ASCII,
            Self::Base64Decode | Self::HexDecode | Self::HexEncode | Self::Length | Self::Sha1 => class::ANY,
        }
    }

    /// The transformed value, or `None` when it equals the input (saves a copy).
    pub fn apply(self, input: &[u8]) -> Option<Vec<u8>> {
        let output = match self {
            Self::Lowercase => {
                if !input.iter().any(u8::is_ascii_uppercase) {
                    return None;
                }
                input.to_ascii_lowercase()
            }
            Self::Uppercase => {
                if !input.iter().any(u8::is_ascii_lowercase) {
                    return None;
                }
                input.to_ascii_uppercase()
            }
            Self::UrlDecode => {
                if !input.iter().any(|&b| b == b'%' || b == b'+') {
                    return None;
                }
                url_decode(input, false)
            }
            Self::UrlDecodeUni => {
                if !input.iter().any(|&b| b == b'%' || b == b'+') {
                    return None;
                }
                url_decode(input, true)
            }
            Self::HtmlEntityDecode => {
                if !input.contains(&b'&') {
                    return None;
                }
                html_entity_decode(input)
            }
            Self::JsDecode => {
                if !input.contains(&b'\\') {
                    return None;
                }
                js_decode(input)
            }
            Self::CssDecode => {
                if !input.contains(&b'\\') {
                    return None;
                }
                css_decode(input)
            }
            Self::EscapeSeqDecode => {
                if !input.contains(&b'\\') {
                    return None;
                }
                escape_seq_decode(input)
            }
            Self::CmdLine => cmd_line(input),
            Self::CompressWhitespace => {
                // Only a run of whitespace, or whitespace other than a plain space, changes.
                let changes = input.windows(2).any(|pair| pair.iter().all(|&b| is_whitespace(b)))
                    || input.iter().any(|&b| is_whitespace(b) && b != b' ');
                if !changes {
                    return None;
                }
                compress_whitespace(input)
            }
            Self::RemoveWhitespace => {
                if !input.iter().any(|&b| is_whitespace(b)) {
                    return None;
                }
                input.iter().copied().filter(|&b| !is_whitespace(b)).collect()
            }
            Self::RemoveNulls => {
                if !input.contains(&0) {
                    return None;
                }
                input.iter().copied().filter(|&b| b != 0).collect()
            }
            Self::ReplaceNulls => {
                if !input.contains(&0) {
                    return None;
                }
                input.iter().map(|&b| if b == 0 { b' ' } else { b }).collect()
            }
            Self::RemoveComments | Self::RemoveCommentsChar => {
                let has_marker = input.contains(&b'#')
                    || input.windows(2).any(|pair| pair == b"/*" || pair == b"*/" || pair == b"--")
                    || input.windows(4).any(|window| window == b"<!--");
                if !has_marker {
                    return None;
                }
                if self == Self::RemoveComments { remove_comments(input) } else { remove_comment_chars(input) }
            }
            Self::ReplaceComments => {
                if !input.windows(2).any(|pair| pair == b"/*") {
                    return None;
                }
                replace_comments(input)
            }
            Self::NormalisePath | Self::NormalisePathWin => {
                let windows = self == Self::NormalisePathWin;
                let needs_work = (windows && input.contains(&b'\\'))
                    || input.windows(2).any(|pair| pair == b"//" || pair == b"/.")
                    || input.starts_with(b".");
                if !needs_work {
                    return None;
                }
                normalise_path(input, windows)
            }
            Self::Base64Decode => base64_decode(input),
            Self::HexDecode => hex_decode(input),
            Self::HexEncode => hex_encode(input),
            Self::Length => input.len().to_string().into_bytes(),
            Self::Sha1 => crate::sha1::sha1(input).to_vec(),
            Self::Trim | Self::TrimLeft | Self::TrimRight => {
                let left = self != Self::TrimRight;
                let right = self != Self::TrimLeft;
                let changes = (left && input.first().is_some_and(|&b| is_whitespace(b)))
                    || (right && input.last().is_some_and(|&b| is_whitespace(b)));
                if !changes {
                    return None;
                }
                trim(input, left, right)
            }
            Self::Utf8ToUnicode => {
                if input.is_ascii() {
                    return None;
                }
                utf8_to_unicode(input)
            }
        };
        if output == input { None } else { Some(output) }
    }
}

/// Whitespace as ModSecurity's `isspace` plus the non-breaking space (0xA0).
fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Reads `count` hex digits at `at`, or `None` if any is missing or not hex.
fn hex_digits(input: &[u8], at: usize, count: usize) -> Option<u32> {
    let digits = input.get(at..at.checked_add(count)?)?;
    digits.iter().try_fold(0u32, |acc, &digit| Some(acc * 16 + u32::from(hex_value(digit)?)))
}

/// A `%uXXXX` / `\uXXXX` code point as one byte, as ModSecurity does: full-width ASCII
/// (U+FF01..U+FF5E) maps to its ASCII form, anything else to its low byte.
fn unicode_to_byte(code: u32) -> u8 {
    if (0xff01..=0xff5e).contains(&code) { (code - 0xfee0) as u8 } else { (code & 0xff) as u8 }
}

/// `%XX` (and with `unicode`, `%uXXXX`) decoding; `+` is a space; invalid escapes stay as written.
pub fn url_decode(input: &[u8], unicode: bool) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut index = 0;
    while let Some(&byte) = input.get(index) {
        if byte == b'%' {
            if unicode
                && matches!(input.get(index + 1), Some(b'u' | b'U'))
                && let Some(code) = hex_digits(input, index + 2, 4)
            {
                output.push(unicode_to_byte(code));
                index += 6;
                continue;
            }
            if let Some(code) = hex_digits(input, index + 1, 2) {
                output.push(code as u8);
                index += 3;
                continue;
            }
            output.push(byte);
        } else if byte == b'+' {
            output.push(b' ');
        } else {
            output.push(byte);
        }
        index += 1;
    }
    output
}

/// Named entities ModSecurity knows, without the `&` and `;`.
const NAMED_ENTITIES: [(&[u8], u8); 5] =
    [(b"quot", b'"'), (b"amp", b'&'), (b"lt", b'<'), (b"gt", b'>'), (b"nbsp", 0xa0)];

/// `&#DDD;`, `&#xHH;` (the `;` optional) and the common named entities; a code point becomes its
/// low byte.
fn html_entity_decode(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut index = 0;
    while let Some(&byte) = input.get(index) {
        if byte != b'&' {
            output.push(byte);
            index += 1;
            continue;
        }
        let rest = input.get(index + 1..).unwrap_or_default();
        if let Some((value, used)) = numeric_entity(rest) {
            output.push(value);
            index += 1 + used;
            continue;
        }
        let named = NAMED_ENTITIES.iter().find(|(name, _)| {
            rest.len() >= name.len() && rest.get(..name.len()).is_some_and(|head| head.eq_ignore_ascii_case(name))
        });
        if let Some((name, value)) = named {
            output.push(*value);
            index += 1 + name.len();
            if input.get(index) == Some(&b';') {
                index += 1;
            }
            continue;
        }
        output.push(byte);
        index += 1;
    }
    output
}

/// `#123;` or `#x7b;` after the `&`: the byte and how many input bytes it used.
fn numeric_entity(rest: &[u8]) -> Option<(u8, usize)> {
    if rest.first() != Some(&b'#') {
        return None;
    }
    let hex = matches!(rest.get(1), Some(b'x' | b'X'));
    let start = if hex { 2 } else { 1 };
    let mut end = start;
    let mut value: u32 = 0;
    while let Some(&digit) = rest.get(end) {
        let digit_value = if hex {
            hex_value(digit)
        } else if digit.is_ascii_digit() {
            Some(digit - b'0')
        } else {
            None
        };
        let Some(digit_value) = digit_value else { break };
        value = value.saturating_mul(if hex { 16 } else { 10 }).saturating_add(u32::from(digit_value));
        end += 1;
    }
    if end == start {
        return None;
    }
    if rest.get(end) == Some(&b';') {
        end += 1;
    }
    Some(((value & 0xff) as u8, end))
}

/// JavaScript escapes: `\xHH`, `\uHHHH`, `\OOO` octal, `\n`-style letters, `\c` → `c`.
fn js_decode(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut index = 0;
    while let Some(&byte) = input.get(index) {
        if byte != b'\\' {
            output.push(byte);
            index += 1;
            continue;
        }
        let Some(&next) = input.get(index + 1) else {
            output.push(byte);
            break;
        };
        match next {
            b'u' | b'U' if hex_digits(input, index + 2, 4).is_some() => {
                output.push(unicode_to_byte(hex_digits(input, index + 2, 4).unwrap_or_default()));
                index += 6;
            }
            b'x' | b'X' if hex_digits(input, index + 2, 2).is_some() => {
                output.push(hex_digits(input, index + 2, 2).unwrap_or_default() as u8);
                index += 4;
            }
            b'0'..=b'7' => {
                let mut value: u32 = 0;
                let mut used = 0;
                while used < 3 {
                    match input.get(index + 1 + used) {
                        Some(&digit @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(digit - b'0');
                            used += 1;
                        }
                        _ => break,
                    }
                }
                output.push((value & 0xff) as u8);
                index += 1 + used;
            }
            _ => {
                output.push(simple_escape(next));
                index += 2;
            }
        }
    }
    output
}

/// The byte a one-letter C/JS escape stands for (`\n` → LF); any other letter is itself.
fn simple_escape(letter: u8) -> u8 {
    match letter {
        b'a' => 0x07,
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0b,
        other => other,
    }
}

/// CSS escapes: `\` + 1–6 hex digits (+ one optional whitespace), `\` + newline removed,
/// `\c` → `c`.
fn css_decode(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut index = 0;
    while let Some(&byte) = input.get(index) {
        if byte != b'\\' {
            output.push(byte);
            index += 1;
            continue;
        }
        let Some(&next) = input.get(index + 1) else {
            break;
        };
        if next == b'\n' {
            index += 2;
            continue;
        }
        let mut digits = 0;
        let mut value: u32 = 0;
        while digits < 6 {
            match input.get(index + 1 + digits).and_then(|&digit| hex_value(digit)) {
                Some(digit_value) => {
                    value = value * 16 + u32::from(digit_value);
                    digits += 1;
                }
                None => break,
            }
        }
        if digits == 0 {
            output.push(next);
            index += 2;
            continue;
        }
        output.push(unicode_to_byte(value));
        index += 1 + digits;
        if input.get(index).is_some_and(|&b| is_whitespace(b)) {
            index += 1;
        }
    }
    output
}

/// C escape sequences (`\n`, `\xHH`, `\OOO`), as ModSecurity's `escapeSeqDecode`.
fn escape_seq_decode(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut index = 0;
    while let Some(&byte) = input.get(index) {
        if byte != b'\\' {
            output.push(byte);
            index += 1;
            continue;
        }
        match input.get(index + 1) {
            None => {
                output.push(byte);
                index += 1;
            }
            Some(b'x' | b'X') if hex_digits(input, index + 2, 2).is_some() => {
                output.push(hex_digits(input, index + 2, 2).unwrap_or_default() as u8);
                index += 4;
            }
            Some(b'0'..=b'7') => {
                let mut value: u32 = 0;
                let mut used = 0;
                while let Some(&digit @ b'0'..=b'7') = input.get(index + 1 + used) {
                    if used == 3 {
                        break;
                    }
                    value = value * 8 + u32::from(digit - b'0');
                    used += 1;
                }
                output.push((value & 0xff) as u8);
                index += 1 + used;
            }
            Some(&letter @ (b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' | b'\\' | b'?' | b'\'' | b'"')) => {
                output.push(simple_escape(letter));
                index += 2;
            }
            Some(_) => {
                // An unknown escape stays as written.
                output.push(byte);
                index += 1;
            }
        }
    }
    output
}

/// ModSecurity's `cmdLine`: deletes `\ " ' ^`, turns `,` and `;` into spaces, compresses
/// whitespace, drops spaces before `/` and `(`, lowercases.
fn cmd_line(input: &[u8]) -> Vec<u8> {
    let mut output: Vec<u8> = Vec::with_capacity(input.len());
    let mut pending_space = false;
    for &byte in input {
        match byte {
            b'\\' | b'"' | b'\'' | b'^' => {}
            b',' | b';' => pending_space = true,
            _ if is_whitespace(byte) => pending_space = true,
            b'/' | b'(' => {
                pending_space = false;
                output.push(byte);
            }
            _ => {
                if pending_space && !output.is_empty() {
                    output.push(b' ');
                }
                pending_space = false;
                output.push(byte.to_ascii_lowercase());
            }
        }
    }
    if pending_space && !output.is_empty() {
        output.push(b' ');
    }
    output
}

fn compress_whitespace(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut in_space = false;
    for &byte in input {
        if is_whitespace(byte) {
            if !in_space {
                output.push(b' ');
            }
            in_space = true;
        } else {
            output.push(byte);
            in_space = false;
        }
    }
    output
}

/// Removes `/* … */` (unterminated: to the end), `<!-- … -->`, and `--` / `#` to the end of the
/// line.
fn remove_comments(input: &[u8]) -> Vec<u8> {
    strip_comments(input, None)
}

/// Replaces each C comment `/* … */` (unterminated: to the end) with one space.
fn replace_comments(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut index = 0;
    while let Some(&byte) = input.get(index) {
        if byte == b'/' && input.get(index + 1) == Some(&b'*') {
            let end = find(input, index + 2, b"*/").map_or(input.len(), |at| at + 2);
            output.push(b' ');
            index = end;
        } else {
            output.push(byte);
            index += 1;
        }
    }
    output
}

fn strip_comments(input: &[u8], replacement: Option<u8>) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut index = 0;
    while let Some(&byte) = input.get(index) {
        let rest = input.get(index..).unwrap_or_default();
        let end = if rest.starts_with(b"/*") {
            Some(find(input, index + 2, b"*/").map_or(input.len(), |at| at + 2))
        } else if rest.starts_with(b"<!--") {
            Some(find(input, index + 4, b"-->").map_or(input.len(), |at| at + 3))
        } else if rest.starts_with(b"--") || byte == b'#' {
            Some(find(input, index, b"\n").unwrap_or(input.len()))
        } else {
            None
        };
        match end {
            Some(end) => {
                if let Some(replacement) = replacement {
                    output.push(replacement);
                }
                index = end.max(index + 1);
            }
            None => {
                output.push(byte);
                index += 1;
            }
        }
    }
    output
}

/// Removes the comment characters themselves (`/*`, `*/`, `--`, `#`), keeping the text between.
fn remove_comment_chars(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut index = 0;
    while let Some(&byte) = input.get(index) {
        let rest = input.get(index..).unwrap_or_default();
        if rest.starts_with(b"/*") || rest.starts_with(b"*/") || rest.starts_with(b"--") {
            index += 2;
        } else if rest.starts_with(b"<!--") {
            index += 4;
        } else if rest.starts_with(b"-->") {
            index += 3;
        } else if byte == b'#' {
            index += 1;
        } else {
            output.push(byte);
            index += 1;
        }
    }
    output
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let tail = haystack.get(from..)?;
    tail.windows(needle.len()).position(|window| window == needle).map(|at| at + from)
}

/// Collapses `//`, removes `.` segments and resolves `..` against earlier segments; a `..` with
/// nothing left to remove is kept (so traversal above the root stays visible to the rules). With
/// `windows`, backslashes are separators first.
fn normalise_path(input: &[u8], windows: bool) -> Vec<u8> {
    let converted: Cow<'_, [u8]> = if windows && input.contains(&b'\\') {
        Cow::Owned(input.iter().map(|&b| if b == b'\\' { b'/' } else { b }).collect())
    } else {
        Cow::Borrowed(input)
    };
    let absolute = converted.first() == Some(&b'/');
    let trailing = converted.len() > 1 && converted.last() == Some(&b'/')
        || converted.ends_with(b"/.")
        || converted.ends_with(b"/..");
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in converted.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                if segments.last().is_some_and(|last| *last != b"..") {
                    segments.pop();
                } else if !absolute {
                    segments.push(segment);
                }
            }
            _ => segments.push(segment),
        }
    }
    let mut output = Vec::with_capacity(converted.len());
    if absolute {
        output.push(b'/');
    }
    for (position, segment) in segments.iter().enumerate() {
        if position > 0 {
            output.push(b'/');
        }
        output.extend_from_slice(segment);
    }
    if trailing && !segments.is_empty() {
        output.push(b'/');
    }
    output
}

fn base64_value(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Standard (and URL-safe) base64; decoding stops at the first byte outside the alphabet.
fn base64_decode(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut accumulator: u32 = 0;
    let mut bits = 0;
    for &byte in input {
        let Some(value) = base64_value(byte) else { break };
        accumulator = (accumulator << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            output.push(((accumulator >> bits) & 0xff) as u8);
        }
    }
    output
}

/// Pairs of hex digits to bytes; decoding stops at the first pair that is not hex.
fn hex_decode(input: &[u8]) -> Vec<u8> {
    input.chunks_exact(2).map_while(|pair| Some(hex_value(*pair.first()?)? << 4 | hex_value(*pair.get(1)?)?)).collect()
}

fn hex_encode(input: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut output = Vec::with_capacity(input.len() * 2);
    for &byte in input {
        output.push(DIGITS[usize::from(byte >> 4)]);
        output.push(DIGITS[usize::from(byte & 0x0f)]);
    }
    output
}

fn trim(input: &[u8], left: bool, right: bool) -> Vec<u8> {
    let mut slice = input;
    if left {
        while let Some((&first, rest)) = slice.split_first() {
            if !is_whitespace(first) {
                break;
            }
            slice = rest;
        }
    }
    if right {
        while let Some((&last, rest)) = slice.split_last() {
            if !is_whitespace(last) {
                break;
            }
            slice = rest;
        }
    }
    slice.to_vec()
}

/// Multi-byte UTF-8 sequences become `%uXXXX` (as ModSecurity's `utf8toUnicode`); invalid bytes
/// are kept.
fn utf8_to_unicode(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len() * 2);
    for chunk in input.utf8_chunks() {
        for character in chunk.valid().chars() {
            if character.is_ascii() {
                output.push(character as u8);
            } else {
                let code = u32::from(character) & 0xffff;
                output.extend_from_slice(format!("%u{code:04x}").as_bytes());
            }
        }
        output.extend_from_slice(chunk.invalid());
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, input: &[u8]) -> Vec<u8> {
        let pipeline = parse_pipeline(&[name]).unwrap();
        apply_pipeline(&pipeline, input).into_owned()
    }

    #[test]
    fn lowercase_and_uppercase() {
        assert_eq!(run("lowercase", b"SeLeCT \xC3\x89"), b"select \xC3\x89");
        assert_eq!(run("uppercase", b"select"), b"SELECT");
    }

    #[test]
    fn url_decode_plain_and_invalid() {
        assert_eq!(run("urlDecode", b"a%20b+c%2"), b"a b c%2");
        assert_eq!(run("urlDecode", b"%zz%41"), b"%zzA");
        assert_eq!(run("urlDecode", b"%u0041"), b"%u0041");
    }

    #[test]
    fn url_decode_uni_handles_percent_u_and_full_width() {
        assert_eq!(run("urlDecodeUni", b"%u0027%u003c"), b"'<");
        assert_eq!(run("urlDecodeUni", b"%uff1cscript%uFF1E"), b"<script>");
        assert_eq!(run("urlDecodeUni", b"%u12"), b"%u12");
    }

    #[test]
    fn double_url_decoding_needs_two_passes() {
        assert_eq!(run("urlDecodeUni", b"%2527"), b"%27");
        let pipeline = parse_pipeline(&["urlDecodeUni", "urlDecodeUni"]).unwrap();
        assert_eq!(apply_pipeline(&pipeline, b"%2527").as_ref(), b"'");
    }

    #[test]
    fn html_entities() {
        assert_eq!(run("htmlEntityDecode", b"&lt;a&gt; &#x27;&#39 &quot;&amp;&nbsp;"), b"<a> '' \"&\xa0");
        assert_eq!(run("htmlEntityDecode", b"&#X3C;&bogus;&#;"), b"<&bogus;&#;");
    }

    #[test]
    fn js_decode_escapes() {
        assert_eq!(run("jsDecode", br"\x3cscript\u003e\101\n\q"), b"<script>A\nq");
        assert_eq!(run("jsDecode", br"\uff1c\x4"), b"<x4");
    }

    #[test]
    fn css_decode_escapes() {
        assert_eq!(run("cssDecode", br"\6a avascript\3a \,x"), b"javascript:,x");
        assert_eq!(run("cssDecode", b"a\\\nb"), b"ab");
    }

    #[test]
    fn escape_seq_decode() {
        assert_eq!(run("escapeSeqDecode", br"\x41\102\n\z"), b"AB\n\\z");
    }

    #[test]
    fn cmd_line_normalises_shell_tricks() {
        assert_eq!(run("cmdLine", br#"C^at /E"tc"/pa\ss'wd"#), b"cat/etc/passwd");
        assert_eq!(run("cmdLine", b"echo;id ,  ls  ("), b"echo id ls(");
    }

    #[test]
    fn whitespace_transforms() {
        assert_eq!(run("compressWhitespace", b"a \t\n\x0b b\xa0c"), b"a b c");
        assert_eq!(run("removeWhitespace", b" s e\tl\xa0ect "), b"select");
        assert_eq!(run("trim", b" \t x y \n"), b"x y");
        assert_eq!(run("trimLeft", b"  x "), b"x ");
        assert_eq!(run("trimRight", b"  x "), b"  x");
    }

    #[test]
    fn null_transforms() {
        assert_eq!(run("removeNulls", b"a\0b\0"), b"ab");
        assert_eq!(run("replaceNulls", b"a\0b"), b"a b");
    }

    #[test]
    fn comment_transforms() {
        assert_eq!(run("removeComments", b"SEL/**/ECT 1-- x\nok"), b"SELECT 1\nok");
        assert_eq!(run("removeComments", b"a<!-- b -->c#d"), b"ac");
        assert_eq!(run("replaceComments", b"UNION/*x*/SELECT/*"), b"UNION SELECT ");
        assert_eq!(run("removeCommentsChar", b"a/*b*/c--d#e"), b"abcde");
    }

    #[test]
    fn path_normalisation() {
        assert_eq!(run("normalisePath", b"/a//b/./c/../d"), b"/a/b/d");
        assert_eq!(run("normalizePath", b"/../../etc/passwd"), b"/etc/passwd");
        assert_eq!(run("normalisePath", b"../../etc/passwd"), b"../../etc/passwd");
        assert_eq!(run("normalisePath", b"a/b/"), b"a/b/");
        assert_eq!(run("normalisePathWin", br"C:\a\..\windows\win.ini"), b"C:/windows/win.ini");
    }

    #[test]
    fn base64_and_hex() {
        assert_eq!(run("base64Decode", b"PHNjcmlwdD4="), b"<script>");
        assert_eq!(run("base64Decode", b"YWJj!ignored"), b"abc");
        assert_eq!(run("hexDecode", b"414243zz"), b"ABC");
        assert_eq!(run("hexEncode", b"A\xff"), b"41ff");
    }

    #[test]
    fn length_is_decimal() {
        assert_eq!(run("length", b"hello"), b"5");
        assert_eq!(run("length", b""), b"0");
    }

    #[test]
    fn utf8_to_unicode() {
        assert_eq!(run("utf8toUnicode", "a\u{e9}\u{ff1c}".as_bytes()), b"a%u00e9%uff1c");
        assert_eq!(run("utf8toUnicode", b"a\xc0\xafb"), b"a\xc0\xafb");
    }

    #[test]
    fn none_resets_and_unknown_is_refused() {
        assert_eq!(parse_pipeline(&["lowercase", "none", "urlDecode"]).unwrap(), vec![Transform::UrlDecode]);
        let error = parse_pipeline(&["lowercase", "rot13"]).unwrap_err();
        assert_eq!(error.to_string(), "unknown transformation \"rot13\"");
    }

    #[test]
    fn skipping_by_byte_class_never_changes_a_result() {
        let inputs: [&[u8]; 12] = [
            b"",
            b"plain",
            b"MiXeD",
            b"a%20b+c",
            b"&lt;x&#39;",
            b"\\x41\\u0042",
            b"a\0b",
            b" x  y\t",
            b"/a/./b/../c",
            b"C:\\w\\..\\x",
            b"sel/**/ect -- #",
            "caf\u{e9}".as_bytes(),
        ];
        for name in NAMES {
            let pipeline = parse_pipeline(&[name]).unwrap();
            for input in inputs {
                let direct = pipeline[0].apply(input).unwrap_or_else(|| input.to_vec());
                assert_eq!(apply_pipeline(&pipeline, input).as_ref(), direct.as_slice(), "{name} {input:?}");
            }
        }
    }

    #[test]
    fn unchanged_values_are_borrowed() {
        let pipeline = parse_pipeline(&["lowercase", "urlDecodeUni"]).unwrap();
        assert!(matches!(apply_pipeline(&pipeline, b"plain"), Cow::Borrowed(_)));
    }
}
