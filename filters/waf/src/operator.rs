//! Operators (SecLang `@rx`, `@pm`, `@eq`, …): parsing the operator text of a rule, and the
//! per-value tests of every operator except `@rx`, which the engine runs through one multi-pattern
//! automaton per pipeline (see `engine`).

use crate::macros::Template;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

/// A parsed operator, before regexes are grouped.
#[derive(Debug, Clone)]
pub struct OperatorSpec {
    /// `!@op`: the rule matches when the operator does not.
    pub negated: bool,
    pub kind: OperatorKind,
}

/// What an operator tests.
#[derive(Debug, Clone)]
pub enum OperatorKind {
    /// `@rx PATTERN`: the pattern text, compiled by the engine into its pipeline's automaton.
    Rx(String),
    /// `@pm` / `@pmFromFile`: case-insensitive phrase match.
    Pm(Box<Phrases>),
    Contains(Template),
    BeginsWith(Template),
    EndsWith(Template),
    Streq(Template),
    /// `@within LIST`: the value occurs inside the (expanded) parameter.
    Within(Template),
    Eq(Template),
    Gt(Template),
    Ge(Template),
    Lt(Template),
    Le(Template),
    DetectSqli,
    DetectXss,
    /// `@validateByteRange`: matches when a byte falls outside the allowed set.
    ValidateByteRange(ByteSet),
    /// Matches an invalid `%` escape.
    ValidateUrlEncoding,
    /// Matches invalid (incl. overlong) UTF-8.
    ValidateUtf8Encoding,
    IpMatch(Vec<IpNetwork>),
    UnconditionalMatch,
    NoMatch,
}

impl OperatorKind {
    /// The macro texts of the parameter (for finding which collections a rule reads).
    pub fn template(&self) -> Option<&Template> {
        match self {
            Self::Contains(template)
            | Self::BeginsWith(template)
            | Self::EndsWith(template)
            | Self::Streq(template)
            | Self::Within(template)
            | Self::Eq(template)
            | Self::Gt(template)
            | Self::Ge(template)
            | Self::Lt(template)
            | Self::Le(template) => Some(template),
            _ => None,
        }
    }
}

/// Why an operator text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorError(pub String);

impl fmt::Display for OperatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `[!]@name argument` (an operator text without `@` is `@rx`, as in SecLang).
/// `data_files` serves `@pmFromFile NAME`.
pub fn parse_operator(text: &str, data_files: &HashMap<String, Vec<String>>) -> Result<OperatorSpec, OperatorError> {
    let (negated, rest) = match text.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let Some(named) = rest.strip_prefix('@') else {
        return Ok(OperatorSpec { negated, kind: OperatorKind::Rx(pcre_compat(rest)) });
    };
    let (name, argument) = match named.split_once([' ', '\t']) {
        Some((name, argument)) => (name, argument.trim_start()),
        None => (named, ""),
    };
    let template = || Template::parse(argument).map_err(OperatorError);
    let kind = match name.to_ascii_lowercase().as_str() {
        "rx" => OperatorKind::Rx(pcre_compat(argument)),
        "pm" => OperatorKind::Pm(Box::new(Phrases::new(argument.split_ascii_whitespace())?)),
        "pmfromfile" | "pmf" => {
            let mut phrases = Vec::new();
            for file in argument.split_ascii_whitespace() {
                let Some(lines) = data_files.get(file) else {
                    return Err(OperatorError(format!(
                        "@pmFromFile: no data file \"{}\" in `data_files`",
                        file.escape_default()
                    )));
                };
                phrases.extend(data_file_phrases(lines));
            }
            OperatorKind::Pm(Box::new(Phrases::new(phrases)?))
        }
        "contains" => OperatorKind::Contains(template()?),
        "beginswith" => OperatorKind::BeginsWith(template()?),
        "endswith" => OperatorKind::EndsWith(template()?),
        "streq" => OperatorKind::Streq(template()?),
        "within" => OperatorKind::Within(template()?),
        "eq" => OperatorKind::Eq(template()?),
        "gt" => OperatorKind::Gt(template()?),
        "ge" => OperatorKind::Ge(template()?),
        "lt" => OperatorKind::Lt(template()?),
        "le" => OperatorKind::Le(template()?),
        "detectsqli" => OperatorKind::DetectSqli,
        "detectxss" => OperatorKind::DetectXss,
        "validatebyterange" => OperatorKind::ValidateByteRange(ByteSet::parse(argument)?),
        "validateurlencoding" => OperatorKind::ValidateUrlEncoding,
        "validateutf8encoding" => OperatorKind::ValidateUtf8Encoding,
        "ipmatch" => OperatorKind::IpMatch(parse_networks(argument)?),
        "unconditionalmatch" => OperatorKind::UnconditionalMatch,
        "nomatch" => OperatorKind::NoMatch,
        _ => return Err(OperatorError(format!("unknown operator \"@{}\"", name.escape_default()))),
    };
    Ok(OperatorSpec { negated, kind })
}

/// Rewrites the PCRE spellings the regex syntax reads differently: `\x{HH}` (a byte in PCRE's
/// non-UTF mode, as ModSecurity runs it) becomes `\xHH`, which is a byte here too — inside a
/// class the braced form would be read as a Unicode code point and refused.
pub fn pcre_compat(pattern: &str) -> String {
    if !pattern.contains("\\x{") {
        return pattern.to_owned();
    }
    let mut output = String::with_capacity(pattern.len());
    let mut chars = pattern.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            output.push(c);
            continue;
        }
        let Some((_, next)) = chars.next() else {
            output.push(c);
            break;
        };
        if next == 'x' && chars.peek().map(|(_, brace)| *brace) == Some('{') {
            let rest = pattern.get(at + 3..).unwrap_or_default();
            if let Some(end) = rest.find('}')
                && let Ok(value) = u8::from_str_radix(rest.get(..end).unwrap_or_default(), 16)
            {
                output.push_str(&format!("\\x{value:02X}"));
                // Skip `{`, the digits and `}`.
                for _ in 0..end + 2 {
                    chars.next();
                }
                continue;
            }
        }
        output.push(c);
        output.push(next);
    }
    output
}

/// The phrases of a data file: one per line, blank lines and `#` comments skipped.
pub fn data_file_phrases(lines: &[String]) -> impl Iterator<Item = &str> {
    lines.iter().map(|line| line.trim()).filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// A compiled phrase list (ASCII case-insensitive, any occurrence).
#[derive(Debug, Clone)]
pub struct Phrases {
    automaton: AhoCorasick,
}

impl Phrases {
    pub fn new<S: AsRef<str>>(phrases: impl IntoIterator<Item = S>) -> Result<Self, OperatorError> {
        let phrases: Vec<String> = phrases.into_iter().map(|phrase| phrase.as_ref().to_owned()).collect();
        if phrases.is_empty() {
            return Err(OperatorError("@pm: no phrases".into()));
        }
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            // Without SIMD (wasm32) the packed prefilter falls back to Rabin-Karp, which is
            // slower than the automaton alone.
            .prefilter(false)
            .build(&phrases)
            .map_err(|error| OperatorError(format!("@pm: {error}")))?;
        Ok(Self { automaton })
    }

    /// The first phrase found in `value`, as the matched bytes.
    pub fn find<'v>(&self, value: &'v [u8]) -> Option<&'v [u8]> {
        let found = self.automaton.find(value)?;
        value.get(found.start()..found.end())
    }
}

/// The allowed bytes of `@validateByteRange` (`1-255`, `9,10,13,32-126`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteSet {
    /// Indexed by byte value (a `u8` index cannot be out of bounds): one table lookup per byte.
    allowed: Box<[bool; 256]>,
}

impl ByteSet {
    pub fn parse(text: &str) -> Result<Self, OperatorError> {
        let mut allowed = Box::new([false; 256]);
        let bad = || OperatorError(format!("@validateByteRange: invalid range \"{}\"", text.escape_default()));
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (low, high) = match part.split_once('-') {
                Some((low, high)) => (low.trim(), high.trim()),
                None => (part, part),
            };
            let low: u8 = low.parse().map_err(|_| bad())?;
            let high: u8 = high.parse().map_err(|_| bad())?;
            if low > high {
                return Err(bad());
            }
            for byte in low..=high {
                allowed[usize::from(byte)] = true;
            }
        }
        if !allowed.contains(&true) {
            return Err(bad());
        }
        Ok(Self { allowed })
    }

    /// The first byte outside the set.
    pub fn first_violation(&self, value: &[u8]) -> Option<usize> {
        let allowed: &[bool; 256] = &self.allowed;
        value.iter().position(|&byte| !allowed[usize::from(byte)])
    }
}

/// An address range of `@ipMatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().ok()?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().ok().filter(|&prefix| prefix <= max)?,
            None => max,
        };
        Some(Self { address, prefix })
    }

    pub fn contains(&self, candidate: IpAddr) -> bool {
        match (self.address, candidate) {
            (IpAddr::V4(network), IpAddr::V4(candidate)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(network) & mask == u32::from(candidate) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(candidate)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(network) & mask == u128::from(candidate) & mask
            }
            _ => false,
        }
    }
}

fn parse_networks(text: &str) -> Result<Vec<IpNetwork>, OperatorError> {
    let networks: Vec<IpNetwork> = text
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|part| !part.is_empty())
        .map(|part| {
            IpNetwork::parse(part)
                .ok_or_else(|| OperatorError(format!("@ipMatch: invalid address \"{}\"", part.escape_default())))
        })
        .collect::<Result<_, _>>()?;
    if networks.is_empty() {
        return Err(OperatorError("@ipMatch: no address".into()));
    }
    Ok(networks)
}

/// Leading integer of a value as ModSecurity's `atoi` reads it (no digits: 0).
pub fn parse_number(value: &[u8]) -> i64 {
    let text = value.trim_ascii_start();
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, text.get(1..).unwrap_or_default()),
        Some(b'+') => (false, text.get(1..).unwrap_or_default()),
        _ => (false, text),
    };
    let mut number: i64 = 0;
    for &digit in digits.iter().take_while(|digit| digit.is_ascii_digit()) {
        number = number.saturating_mul(10).saturating_add(i64::from(digit - b'0'));
    }
    if negative { -number } else { number }
}

/// `@validateUrlEncoding`: a `%` not followed by two hex digits.
pub fn has_invalid_url_encoding(value: &[u8]) -> bool {
    let mut index = 0;
    while let Some(&byte) = value.get(index) {
        if byte == b'%' {
            let valid = value.get(index + 1..index + 3).is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit));
            if !valid {
                return true;
            }
            index += 3;
        } else {
            index += 1;
        }
    }
    false
}

/// `@validateUtf8Encoding`: not valid UTF-8 (overlong forms and surrogates are invalid too).
pub fn has_invalid_utf8(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_err()
}

/// `@detectSQLi` through libinjection: the fingerprint when the value is SQL injection.
pub fn detect_sqli(value: &[u8]) -> Option<String> {
    if is_plain_word(value) || is_plain_prose(value) {
        return None;
    }
    let result = libinjectionrs::detect_sqli(value);
    if !result.is_injection() {
        return None;
    }
    Some(result.fingerprint.map(|fingerprint| fingerprint.to_string()).unwrap_or_default())
}

/// A value of only ASCII letters, digits and `_` (most arguments, names, IDs and cookie names),
/// for which libinjection's SQLi answer is known to be "no" and the costly call is skipped: such
/// a value tokenizes to a word, a number, or a number followed by a word. The only blacklisted
/// fingerprints that short are `X` (needs other characters), `1C`/`nC`/`sC`/`vC` (need a
/// comment), `1U`/`vU` (not SQLi with exactly two tokens) and `N`/`s`/`v` types (need quotes or
/// `@`). The unit tests check libinjection agrees on keyword-like samples.
fn is_plain_word(value: &[u8]) -> bool {
    value.iter().all(|byte| byte.is_ascii_alphanumeric() || *byte == b'_')
}

/// Words of letters (or of digits) separated by spaces, none of them an SQL keyword or part of
/// a multi-word keyword: libinjection tokenizes such text to barewords and numbers only (no
/// merge into a keyword is possible), and no blacklisted fingerprint is made of those alone
/// (checked against libinjection's own table in the tests). Search terms are mostly like this.
fn is_plain_prose(value: &[u8]) -> bool {
    if value.len() > 256 {
        return false;
    }
    let keywords = sql_keyword_words();
    let mut upper = Vec::with_capacity(32);
    for word in value.split(|&b| b == b' ').filter(|word| !word.is_empty()) {
        let letters = word.iter().all(|b| b.is_ascii_alphabetic() || *b == b'_');
        if !letters && !word.iter().all(u8::is_ascii_digit) {
            return false;
        }
        if letters {
            upper.clear();
            upper.extend(word.iter().map(u8::to_ascii_uppercase));
            if keywords.contains(upper.as_slice()) {
                return false;
            }
        }
    }
    true
}

/// Every word of every libinjection keyword (fingerprints excluded), uppercase.
fn sql_keyword_words() -> &'static std::collections::HashSet<Vec<u8>> {
    static WORDS: std::sync::OnceLock<std::collections::HashSet<Vec<u8>>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        libinjectionrs::sqli::sqli_data::SQL_KEYWORDS
            .iter()
            .filter(|keyword| keyword.token_type != b'F')
            .flat_map(|keyword| keyword.word.split(' '))
            .map(|word| word.as_bytes().to_vec())
            .collect()
    })
}

/// `@detectXSS` through libinjection.
pub fn detect_xss(value: &[u8]) -> bool {
    // libinjection flags a tag (needs `<`) or a dangerous attribute's value (needs `=`); text
    // without either is parsed as data or as one attribute value of no attribute, never XSS.
    if !value.iter().any(|&b| b == b'<' || b == b'=') {
        return false;
    }
    libinjectionrs::detect_xss(value).is_injection()
}

/// Whether `value` (text of an address) lies in one of `networks`.
pub fn ip_matches(networks: &[IpNetwork], value: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(value) else { return false };
    // An `IP:port` or `[IPv6]:port` value is matched on its address.
    let address =
        text.parse::<IpAddr>().ok().or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|socket| socket.ip()));
    address.is_some_and(|address| networks.iter().any(|network| network.contains(address)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcre_braced_hex_becomes_a_byte_escape() {
        assert_eq!(pcre_compat(r"[\x7f-\x{ff}]\x{bc}"), r"[\x7f-\xFF]\xBC");
        assert_eq!(pcre_compat(r"\\x{41}"), r"\\x{41}", "an escaped backslash is not an escape");
        assert_eq!(pcre_compat(r"\x{1F600}"), r"\x{1F600}", "wider code points are left to the regex syntax");
        assert_eq!(pcre_compat("plain"), "plain");
    }

    fn parse(text: &str) -> OperatorSpec {
        parse_operator(text, &HashMap::new()).unwrap()
    }

    #[test]
    fn operator_names_and_negation() {
        assert!(matches!(parse("@rx ^a b$").kind, OperatorKind::Rx(ref p) if p == "^a b$"));
        assert!(matches!(parse("^bare$").kind, OperatorKind::Rx(ref p) if p == "^bare$"));
        let negated = parse("!@streq GET");
        assert!(negated.negated);
        assert!(matches!(negated.kind, OperatorKind::Streq(_)));
        assert!(matches!(parse("@detectSQLi").kind, OperatorKind::DetectSqli));
        assert!(matches!(parse("@unconditionalMatch").kind, OperatorKind::UnconditionalMatch));
        let error = parse_operator("@bogus x", &HashMap::new()).unwrap_err();
        assert_eq!(error.0, "unknown operator \"@bogus\"");
    }

    #[test]
    fn phrase_match_is_case_insensitive() {
        let OperatorKind::Pm(phrases) = parse("@pm sqlmap nikto").kind else { panic!() };
        assert_eq!(phrases.find(b"Mozilla NIKTO/2.1"), Some(&b"NIKTO"[..]));
        assert_eq!(phrases.find(b"curl/8"), None);
    }

    #[test]
    fn pm_from_file_reads_data_files() {
        let files = HashMap::from([("agents.data".to_string(), vec!["# comment".into(), "".into(), "masscan".into()])]);
        let OperatorKind::Pm(phrases) = parse_operator("@pmFromFile agents.data", &files).unwrap().kind else {
            panic!()
        };
        assert!(phrases.find(b"MASSCAN/1.0").is_some());
        assert!(phrases.find(b"comment").is_none());
        let error = parse_operator("@pmFromFile missing.data", &files).unwrap_err();
        assert!(error.0.contains("missing.data"), "{error}");
    }

    #[test]
    fn byte_range() {
        let set = ByteSet::parse("1-255").unwrap();
        assert_eq!(set.first_violation(b"abc"), None);
        assert_eq!(set.first_violation(b"ab\0c"), Some(2));
        let printable = ByteSet::parse("9,10,13,32-126").unwrap();
        assert_eq!(printable.first_violation(b"a\tb"), None);
        assert_eq!(printable.first_violation(b"a\x7f"), Some(1));
        assert!(ByteSet::parse("5-1").is_err());
        assert!(ByteSet::parse("300").is_err());
    }

    #[test]
    fn url_encoding_validation() {
        assert!(!has_invalid_url_encoding(b"a%20b%2F"));
        assert!(has_invalid_url_encoding(b"a%2"));
        assert!(has_invalid_url_encoding(b"a%zzb"));
    }

    #[test]
    fn utf8_validation_rejects_overlong() {
        assert!(!has_invalid_utf8("café".as_bytes()));
        assert!(has_invalid_utf8(b"\xc0\xaf"));
        assert!(has_invalid_utf8(b"\xed\xa0\x80"));
    }

    #[test]
    fn numbers_parse_like_atoi() {
        assert_eq!(parse_number(b"42abc"), 42);
        assert_eq!(parse_number(b" -7"), -7);
        assert_eq!(parse_number(b"x"), 0);
        assert_eq!(parse_number(b"99999999999999999999999"), i64::MAX);
    }

    #[test]
    fn ip_match() {
        let OperatorKind::IpMatch(networks) = parse("@ipMatch 10.0.0.0/8,192.168.1.1 2001:db8::/32").kind else {
            panic!()
        };
        assert!(ip_matches(&networks, b"10.2.3.4"));
        assert!(ip_matches(&networks, b"192.168.1.1:4000"));
        assert!(!ip_matches(&networks, b"192.168.1.2"));
        assert!(ip_matches(&networks, b"2001:db8::1"));
        assert!(!ip_matches(&networks, b"not an ip"));
        assert!(parse_operator("@ipMatch 10.0.0.0/33", &HashMap::new()).is_err());
    }

    /// libinjection's own reference cases (from its test suite and documentation), so the pure-Rust
    /// port is checked before the engine trusts it.
    #[test]
    fn libinjection_sqli_known_cases() {
        for attack in [
            &b"1' OR '1'='1"[..],
            b"1 UNION SELECT username, password FROM users",
            b"-1' and 1=1 union/* foo */select load_file('/etc/passwd')--",
            b"1;DROP TABLE users",
            b"' OR 1=1--",
            b"admin'--",
            b"1 AND SLEEP(5)",
        ] {
            assert!(detect_sqli(attack).is_some(), "{:?}", String::from_utf8_lossy(attack));
        }
        for benign in
            [&b"O'Brien"[..], b"hello world", b"john.smith@example.com", b"1234", b"it's fine", b"rock & roll"]
        {
            assert!(detect_sqli(benign).is_none(), "{:?}", String::from_utf8_lossy(benign));
        }
        assert_eq!(detect_sqli(b"1' OR '1'='1").as_deref(), Some("s&sos"));
    }

    #[test]
    fn single_token_shortcut_agrees_with_libinjection() {
        // The shortcut must not change a result: libinjection itself says no to each of these.
        let words = [
            &b"union"[..],
            b"UNION",
            b"select",
            b"sleep",
            b"or",
            b"and",
            b"xp_cmdshell",
            b"information_schema",
            b"waitfor",
            b"having",
            b"benchmark",
            b"version",
            b"null",
            b"true",
            b"drop",
            b"exec",
            b"_",
            b"a_b_c",
            b"1",
            b"0",
            b"123456789012345678901234567890",
            b"",
            b"1union",
            b"1e1union",
            b"0x1union",
            b"1or1",
            b"1and",
            b"1or",
            b"0b1select",
            b"1sleep",
            b"4f9c2a7be1d04e1f8c3b",
            b"1_union",
            b"99collate",
            b"javascript",
            b"onerror",
            b"script",
            b"alert1",
            b"vbscript",
            b"expression",
            b"onload",
            b"svg",
        ];
        for word in words {
            assert!(is_plain_word(word));
            assert!(!libinjectionrs::detect_sqli(word).is_injection(), "{:?}", String::from_utf8_lossy(word));
            assert!(!libinjectionrs::detect_xss(word).is_injection(), "{:?}", String::from_utf8_lossy(word));
        }
        assert!(!is_plain_word(b"a b"));
        assert!(!is_plain_word(b"a'"));
        assert!(!is_plain_word(b"a.b"));
    }

    #[test]
    fn plain_prose_shortcut_is_sound() {
        // No blacklisted fingerprint is made only of barewords and numbers.
        let only_words_and_numbers = libinjectionrs::sqli::sqli_data::SQL_KEYWORDS
            .iter()
            .filter(|keyword| keyword.token_type == b'F')
            .filter_map(|keyword| keyword.word.strip_prefix('0'))
            .filter(|fingerprint| fingerprint.bytes().all(|b| b == b'N' || b == b'1'))
            .count();
        assert_eq!(only_words_and_numbers, 0);
        for text in [&b"running shoes"[..], b"red dress size 42", b"john smith", b"the quick brown fox"] {
            assert!(is_plain_prose(text), "{:?}", String::from_utf8_lossy(text));
            assert!(!libinjectionrs::detect_sqli(text).is_injection());
        }
        for text in [
            &b"union select password from users"[..],
            b"1 union select 1",
            b"order by 1",
            b"waitfor delay",
            b"name or 1",
            b"sleep 5",
            b"x group by y",
            b"not between",
            b"42abc",
            b"a.b",
        ] {
            assert!(!is_plain_prose(text), "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn xss_shortcut_agrees_with_libinjection() {
        for text in [
            &b"javascript:alert(1)"[..],
            b"x onerror",
            b"alert(document.cookie)",
            b"expression(alert(1))",
            b"\" onmouseover alert(1)",
            b"' autofocus onfocus",
            b"`onload`",
            b"vbscript:msgbox",
            b"data:text/html;base64,PHNjcmlwdD4",
            b"running shoes",
            b"/shop/search",
        ] {
            assert!(!libinjectionrs::detect_xss(text).is_injection(), "{:?}", String::from_utf8_lossy(text));
            assert!(!detect_xss(text));
        }
        assert!(detect_xss(b"x onerror=alert(1)") == libinjectionrs::detect_xss(b"x onerror=alert(1)").is_injection());
        assert!(detect_xss(b"<svg onload=alert(1)>"));
    }

    #[test]
    fn libinjection_xss_known_cases() {
        for attack in [
            &b"<script>alert(1)</script>"[..],
            b"<img src=x onerror=alert(1)>",
            b"<a href=\"javascript:alert(1)\">x</a>",
            b"<svg onload=alert(1)>",
            b"\"><script>alert(1)</script>",
        ] {
            assert!(detect_xss(attack), "{:?}", String::from_utf8_lossy(attack));
        }
        for benign in [&b"hello <world"[..], b"1 < 2 and 3 > 2", b"O'Brien", b"<b>bold</b>", b"a=b&c=d"] {
            assert!(!detect_xss(benign), "{:?}", String::from_utf8_lossy(benign));
        }
    }

    #[test]
    fn libinjection_survives_hostile_bytes() {
        // A panic here would kill the VM in Envoy: feed it odd inputs of every shape.
        let mut inputs: Vec<Vec<u8>> = vec![vec![], vec![0], vec![b'\''; 5000], vec![0xff; 300], b"/*".to_vec()];
        for byte in 0u8..=255 {
            inputs.push(vec![byte, b'\'', byte, b'"', b'`', byte]);
            inputs.push(vec![b'<', byte, b'a', b'=', byte]);
        }
        for input in inputs {
            let _ = detect_sqli(&input);
            let _ = detect_xss(&input);
        }
        assert!(detect_sqli(b"1 or 1=1").is_some() || detect_sqli(b"1' or 1=1 --").is_some());
    }
}
