//! The rule model, with CRS / SecLang semantics: targets (collections with key selection,
//! exclusion `!` and count `&`), a transformation pipeline, an operator, and actions (phase,
//! severity, disruptive action, chain, `skipAfter`, `setvar`, `ctl`, paranoia level).
//!
//! Both the native JSON rules (`native`) and, later, SecLang text produce [`RuleItem`]s; the
//! engine compiles them.

use crate::macros::Template;
use crate::operator::OperatorSpec;
use crate::request::Source;
use crate::transform::Pipeline;
use regex_automata::meta::Regex;
use std::fmt;

/// A variable a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variable {
    /// One or more request collections.
    Request(&'static [Source]),
    /// The transaction collection `TX`.
    Tx,
    /// `MATCHED_VAR` / `MATCHED_VAR_NAME`: the last value (name) a rule of the chain matched.
    MatchedVar,
    MatchedVarName,
    /// `MATCHED_VARS` / `MATCHED_VARS_NAMES`: every value (name) the previous rule of the chain matched.
    MatchedVars,
    MatchedVarsNames,
    /// `XML` with an XPath other than `/*` (text) and `//@*` (attributes): never has values.
    Xml,
}

/// SecLang names and what they read.
const VARIABLES: &[(&str, Variable)] = &[
    ("ARGS", Variable::Request(&[Source::ArgsGet, Source::ArgsPost])),
    ("ARGS_GET", Variable::Request(&[Source::ArgsGet])),
    ("ARGS_POST", Variable::Request(&[Source::ArgsPost])),
    ("ARGS_NAMES", Variable::Request(&[Source::ArgsGetNames, Source::ArgsPostNames])),
    ("ARGS_GET_NAMES", Variable::Request(&[Source::ArgsGetNames])),
    ("ARGS_POST_NAMES", Variable::Request(&[Source::ArgsPostNames])),
    ("REQUEST_LINE", Variable::Request(&[Source::RequestLine])),
    ("REQUEST_METHOD", Variable::Request(&[Source::RequestMethod])),
    ("REQUEST_PROTOCOL", Variable::Request(&[Source::RequestProtocol])),
    ("REQUEST_URI", Variable::Request(&[Source::RequestUri])),
    ("REQUEST_URI_RAW", Variable::Request(&[Source::RequestUriRaw])),
    ("REQUEST_FILENAME", Variable::Request(&[Source::RequestFilename])),
    ("REQUEST_BASENAME", Variable::Request(&[Source::RequestBasename])),
    ("QUERY_STRING", Variable::Request(&[Source::QueryString])),
    ("REQUEST_HEADERS", Variable::Request(&[Source::RequestHeaders])),
    ("REQUEST_HEADERS_NAMES", Variable::Request(&[Source::RequestHeadersNames])),
    ("REQUEST_COOKIES", Variable::Request(&[Source::RequestCookies])),
    ("REQUEST_COOKIES_NAMES", Variable::Request(&[Source::RequestCookiesNames])),
    ("REQUEST_BODY", Variable::Request(&[Source::RequestBody])),
    ("REQUEST_BODY_LENGTH", Variable::Request(&[Source::RequestBodyLength])),
    ("FILES", Variable::Request(&[Source::Files])),
    ("FILES_NAMES", Variable::Request(&[Source::FilesNames])),
    ("MULTIPART_PART_HEADERS", Variable::Request(&[Source::MultipartPartHeaders])),
    ("REQBODY_PROCESSOR", Variable::Request(&[Source::ReqbodyProcessor])),
    ("REQBODY_ERROR", Variable::Request(&[Source::ReqbodyError])),
    ("REMOTE_ADDR", Variable::Request(&[Source::RemoteAddr])),
    ("UNIQUE_ID", Variable::Request(&[Source::UniqueId])),
    ("ARGS_COMBINED_SIZE", Variable::Request(&[Source::ArgsCombinedSize])),
    ("FILES_SIZES", Variable::Request(&[Source::FilesSizes])),
    ("FILES_COMBINED_SIZE", Variable::Request(&[Source::FilesCombinedSize])),
    ("TX", Variable::Tx),
    ("MATCHED_VAR", Variable::MatchedVar),
    ("MATCHED_VAR_NAME", Variable::MatchedVarName),
    ("MATCHED_VARS", Variable::MatchedVars),
    ("MATCHED_VARS_NAMES", Variable::MatchedVarsNames),
    ("XML", Variable::Xml),
];

impl Variable {
    /// Looks a SecLang variable name up (case-insensitive).
    pub fn parse(name: &str) -> Option<(Self, &'static str)> {
        VARIABLES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(known, variable)| (*variable, *known))
    }

    /// The request collections read, empty for transaction and match variables.
    pub fn sources(self) -> &'static [Source] {
        match self {
            Self::Request(sources) => sources,
            _ => &[],
        }
    }
}

/// Which keys of a collection a target reads.
#[derive(Debug, Clone)]
pub enum KeySelector {
    All,
    /// One key, compared case-insensitively (stored lowercase).
    Exact(Vec<u8>),
    /// Keys matching a regex (`ARGS:/^user/`).
    Regex(Box<Regex>),
}

impl KeySelector {
    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            Self::All => true,
            Self::Exact(expected) => expected.eq_ignore_ascii_case(key),
            Self::Regex(regex) => regex.is_match(key),
        }
    }
}

/// One target of a rule: `ARGS`, `REQUEST_HEADERS:User-Agent`, `&ARGS`, `TX:/^score/`.
#[derive(Debug, Clone)]
pub struct Target {
    pub variable: Variable,
    /// The variable's canonical name, for logs (`ARGS`).
    pub name: &'static str,
    pub selector: KeySelector,
    /// `&VAR`: the number of selected values instead of the values.
    pub count: bool,
}

/// A target a rule (or a `ctl`, or a route) excludes: `!ARGS:password`.
#[derive(Debug, Clone)]
pub struct Exclusion {
    pub name: &'static str,
    pub selector: KeySelector,
}

impl Exclusion {
    /// Whether this exclusion removes the value `key` of the variable `name`.
    pub fn excludes(&self, name: &str, key: &[u8]) -> bool {
        self.name == name && self.selector.matches(key)
    }
}

/// A parsed target text: a target to read or an exclusion.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    Read(Target),
    Exclude(Exclusion),
}

/// Parses `[!|&]VARIABLE[:key|:/regex/]`.
pub fn parse_target(text: &str) -> Result<TargetSpec, String> {
    let text = text.trim();
    let (exclude, count, rest) = match text.as_bytes().first() {
        Some(b'!') => (true, false, text.get(1..).unwrap_or_default()),
        Some(b'&') => (false, true, text.get(1..).unwrap_or_default()),
        _ => (false, false, text),
    };
    let (variable_name, key) = match rest.split_once(':') {
        Some((name, key)) => (name, Some(key)),
        None => (rest, None),
    };
    let Some((variable, name)) = Variable::parse(variable_name) else {
        return Err(format!("unknown variable \"{}\"", variable_name.escape_default()));
    };
    // XML: the two XPath expressions CRS reads have body collections; any other path never
    // has values (no XPath engine).
    let (variable, name, key) = match (variable, key.map(str::trim)) {
        (Variable::Xml, Some("/*")) => (Variable::Request(&[Source::XmlText]), "XML:/*", None),
        (Variable::Xml, Some("//@*")) => (Variable::Request(&[Source::XmlAttributes]), "XML://@*", None),
        (Variable::Xml, _) => (Variable::Xml, name, None),
        _ => (variable, name, key),
    };
    let selector = match key {
        None => KeySelector::All,
        Some(key) => parse_selector(key)?,
    };
    if exclude {
        if matches!(selector, KeySelector::All) {
            return Err(format!("exclusion \"{}\" needs a key", text.escape_default()));
        }
        return Ok(TargetSpec::Exclude(Exclusion { name, selector }));
    }
    Ok(TargetSpec::Read(Target { variable, name, selector, count }))
}

/// `key`, `'key'`, `/regex/` or `'/regex/'`.
fn parse_selector(key: &str) -> Result<KeySelector, String> {
    let key = key.strip_prefix('\'').and_then(|inner| inner.strip_suffix('\'')).unwrap_or(key);
    if key.is_empty() {
        return Err("empty key".into());
    }
    if key.len() >= 2 && key.starts_with('/') && key.ends_with('/') {
        let pattern = key.get(1..key.len() - 1).unwrap_or_default();
        let regex = Regex::builder()
            .syntax(regex_automata::util::syntax::Config::new().case_insensitive(true).utf8(false).unicode(false))
            .build(pattern)
            .map_err(|error| {
                format!("invalid key regex /{}/: {}", pattern.escape_default(), error_summary(&error.to_string()))
            })?;
        return Ok(KeySelector::Regex(Box::new(regex)));
    }
    Ok(KeySelector::Exact(key.to_ascii_lowercase().into_bytes()))
}

/// The last line of a multi-line error: regex errors draw the pattern and a caret first.
pub fn error_summary(text: &str) -> String {
    text.lines().rfind(|line| !line.trim().is_empty()).unwrap_or(text).trim().to_owned()
}

/// When a rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Phase 1: the request head.
    RequestHeaders = 1,
    /// Phase 2: the request body (and everything from phase 1).
    RequestBody = 2,
}

/// CRS severities; the native rules turn them into anomaly score points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Notice,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "critical" | "2" => Some(Self::Critical),
            "error" | "3" => Some(Self::Error),
            "warning" | "4" => Some(Self::Warning),
            "notice" | "5" => Some(Self::Notice),
            _ => None,
        }
    }

    /// CRS's default anomaly points for the severity.
    pub fn score(self) -> i64 {
        match self {
            Self::Critical => 5,
            Self::Error => 4,
            Self::Warning => 3,
            Self::Notice => 2,
        }
    }
}

/// The disruptive action of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruptive {
    /// Continue (anomaly scoring is done by `setvar`).
    Pass,
    /// CRS `block`: what the default action says; in anomaly mode a pass that scores.
    Block,
    /// Stop and reject; `None` status uses the policy's.
    Deny(Option<u16>),
}

/// `setvar:tx.name=value` and its forms.
#[derive(Debug, Clone)]
pub struct SetVar {
    /// The TX key, lowercase.
    pub name: String,
    /// A key with macros (`tx.paramcounter_%{MATCHED_VAR_NAME}`), expanded per match and
    /// lowercased; `name` is then the unexpanded text.
    pub name_template: Option<Template>,
    pub operation: SetOperation,
}

#[derive(Debug, Clone)]
pub enum SetOperation {
    Set(Template),
    Add(Template),
    Subtract(Template),
    Delete,
}

/// Parses `tx.name=value`, `tx.name=+5`, `tx.name=-%{tx.x}`, `!tx.name`, `tx.name`.
pub fn parse_setvar(text: &str) -> Result<SetVar, String> {
    let (delete, text) = match text.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name.trim(), Some(value)),
        None => (text.trim(), None),
    };
    let Some((collection, key)) = name.split_once('.') else {
        return Err(format!("setvar \"{}\": expected tx.NAME", text.escape_default()));
    };
    if !collection.eq_ignore_ascii_case("tx") || key.is_empty() {
        return Err(format!("setvar \"{}\": only the tx collection can be set", text.escape_default()));
    }
    let name = key.to_ascii_lowercase();
    let name_template = if key.contains("%{") { Some(Template::parse(key)?) } else { None };
    let operation = match (delete, value) {
        (true, _) => SetOperation::Delete,
        (false, None) => SetOperation::Set(Template::parse("1")?),
        (false, Some(value)) => {
            if let Some(amount) = value.strip_prefix('+') {
                SetOperation::Add(Template::parse(amount)?)
            } else if let Some(amount) = value.strip_prefix('-') {
                SetOperation::Subtract(Template::parse(amount)?)
            } else {
                SetOperation::Set(Template::parse(value)?)
            }
        }
    };
    Ok(SetVar { name, name_template, operation })
}

/// A range of rule IDs (`942100` or `942100-942199`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub first: u32,
    pub last: u32,
}

impl IdRange {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("invalid rule ID or range \"{}\"", text.escape_default());
        let (first, last) = match text.split_once('-') {
            Some((first, last)) => (first.trim().parse().map_err(|_| bad())?, last.trim().parse().map_err(|_| bad())?),
            None => {
                let id = text.parse().map_err(|_| bad())?;
                (id, id)
            }
        };
        if first > last {
            return Err(bad());
        }
        Ok(Self { first, last })
    }

    pub fn contains(&self, id: u32) -> bool {
        (self.first..=self.last).contains(&id)
    }
}

/// Which rules a `ctl` or an exclusion applies to.
#[derive(Debug, Clone)]
pub enum RuleSelector {
    Ids(Vec<IdRange>),
    Tag(String),
}

impl RuleSelector {
    pub fn selects(&self, id: u32, tags: &[String]) -> bool {
        match self {
            Self::Ids(ranges) => ranges.iter().any(|range| range.contains(id)),
            Self::Tag(tag) => tags.iter().any(|candidate| candidate.eq_ignore_ascii_case(tag)),
        }
    }
}

/// `ctl:` actions that change the rest of this request's evaluation.
#[derive(Debug, Clone)]
pub enum Ctl {
    /// `ruleRemoveById` / `ruleRemoveByTag`.
    RemoveRules(RuleSelector),
    /// `ruleRemoveTargetById=ID;VAR:key` / `ruleRemoveTargetByTag=TAG;VAR:key`.
    RemoveTarget(RuleSelector, Exclusion),
    /// `requestBodyProcessor=URLENCODED|JSON|XML`: parse the body this way whatever its type.
    RequestBodyProcessor(ForcedBodyProcessor),
}

/// A body processor a `ctl:requestBodyProcessor` can force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForcedBodyProcessor {
    UrlEncoded,
    Json,
    Xml,
}

/// Parses `ruleRemoveById=…`, `ruleRemoveByTag=…`, `ruleRemoveTargetById=…;VAR:key`,
/// `ruleRemoveTargetByTag=…;VAR:key`.
pub fn parse_ctl(text: &str) -> Result<Ctl, String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!("ctl \"{}\": expected NAME=VALUE", text.escape_default()));
    };
    let ids = |value: &str| -> Result<RuleSelector, String> {
        value
            .split([' ', ','])
            .filter(|part| !part.is_empty())
            .map(IdRange::parse)
            .collect::<Result<_, _>>()
            .map(RuleSelector::Ids)
    };
    let with_target = |value: &str, by_tag: bool| -> Result<Ctl, String> {
        let Some((rules, target)) = value.split_once(';') else {
            return Err(format!("ctl \"{}\": expected RULES;VARIABLE:key", text.escape_default()));
        };
        let selector = if by_tag { RuleSelector::Tag(rules.to_owned()) } else { ids(rules)? };
        Ok(Ctl::RemoveTarget(selector, exclusion_from_text(target)?))
    };
    match name.trim().to_ascii_lowercase().as_str() {
        "ruleremovebyid" => Ok(Ctl::RemoveRules(ids(value)?)),
        "ruleremovebytag" => Ok(Ctl::RemoveRules(RuleSelector::Tag(value.to_owned()))),
        "ruleremovetargetbyid" => with_target(value, false),
        "ruleremovetargetbytag" => with_target(value, true),
        "requestbodyprocessor" => match value.trim().to_ascii_uppercase().as_str() {
            "URLENCODED" => Ok(Ctl::RequestBodyProcessor(ForcedBodyProcessor::UrlEncoded)),
            "JSON" => Ok(Ctl::RequestBodyProcessor(ForcedBodyProcessor::Json)),
            "XML" => Ok(Ctl::RequestBodyProcessor(ForcedBodyProcessor::Xml)),
            other => Err(format!("unsupported ctl requestBodyProcessor={}", other.escape_default())),
        },
        other => Err(format!("unsupported ctl \"{}\"", other.escape_default())),
    }
}

/// A target text (`ARGS:q`, or a whole variable) as an exclusion.
pub fn exclusion_from_text(text: &str) -> Result<Exclusion, String> {
    match parse_target(text)? {
        TargetSpec::Read(target) if !target.count => Ok(Exclusion { name: target.name, selector: target.selector }),
        TargetSpec::Exclude(exclusion) => Ok(exclusion),
        TargetSpec::Read(_) => Err(format!("\"{}\" cannot be excluded", text.escape_default())),
    }
}

/// A rule as written: the first rule of a chain carries the ID, phase and metadata.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: u32,
    pub phase: Phase,
    pub targets: Vec<Target>,
    pub exclusions: Vec<Exclusion>,
    pub pipeline: Pipeline,
    pub operator: OperatorSpec,
    pub msg: Option<String>,
    pub severity: Option<Severity>,
    pub tags: Vec<String>,
    /// Runs only at this paranoia level or above; 0 = always.
    pub paranoia: u8,
    pub disruptive: Disruptive,
    /// Listed in the audit line when it matches.
    pub log: bool,
    /// Store the regex match (`TX:0`) and its groups (`TX:1`…).
    pub capture: bool,
    pub setvars: Vec<SetVar>,
    pub ctls: Vec<Ctl>,
    pub skip_after: Option<String>,
    /// `multiMatch`: the operator also runs on the value before and after each transformation.
    pub multi_match: bool,
    /// The next rule of a chain: it must match too.
    pub chain: Option<Box<Rule>>,
}

/// One entry of a rule list: a rule or a `SecMarker`.
#[derive(Debug, Clone)]
pub enum RuleItem {
    Rule(Box<Rule>),
    Marker(String),
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", *self as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_keys_exclusions_and_counts() {
        let TargetSpec::Read(target) = parse_target("REQUEST_HEADERS:User-Agent").unwrap() else { panic!() };
        assert_eq!(target.name, "REQUEST_HEADERS");
        assert!(target.selector.matches(b"user-agent"));
        assert!(!target.selector.matches(b"referer"));
        let TargetSpec::Read(count) = parse_target("&args").unwrap() else { panic!() };
        assert!(count.count);
        assert_eq!(count.variable.sources(), &[Source::ArgsGet, Source::ArgsPost]);
        let TargetSpec::Exclude(exclusion) = parse_target("!REQUEST_COOKIES:/__utm/").unwrap() else { panic!() };
        assert!(exclusion.excludes("REQUEST_COOKIES", b"__utmz"));
        assert!(!exclusion.excludes("ARGS", b"__utmz"));
        let TargetSpec::Read(quoted) = parse_target("TX:'/^score_/'").unwrap() else { panic!() };
        assert!(quoted.selector.matches(b"SCORE_pl1"));
        assert!(parse_target("BOGUS").unwrap_err().contains("unknown variable"));
        assert!(parse_target("!ARGS").unwrap_err().contains("needs a key"));
        assert!(parse_target("ARGS:/(/").unwrap_err().contains("invalid key regex"));
    }

    #[test]
    fn setvar_forms() {
        let add = parse_setvar("tx.anomaly_score=+%{tx.critical_anomaly_score}").unwrap();
        assert_eq!(add.name, "anomaly_score");
        assert!(matches!(add.operation, SetOperation::Add(_)));
        assert!(matches!(parse_setvar("!TX.Flag").unwrap().operation, SetOperation::Delete));
        assert!(matches!(parse_setvar("tx.flag").unwrap().operation, SetOperation::Set(_)));
        assert!(matches!(parse_setvar("tx.x=-2").unwrap().operation, SetOperation::Subtract(_)));
        assert!(parse_setvar("ip.x=1").is_err());
    }

    #[test]
    fn ctl_forms() {
        let Ctl::RemoveRules(RuleSelector::Ids(ranges)) = parse_ctl("ruleRemoveById=100-200 300").unwrap() else {
            panic!()
        };
        assert!(ranges.iter().any(|range| range.contains(150)) && ranges.iter().any(|range| range.contains(300)));
        let Ctl::RemoveTarget(RuleSelector::Ids(_), exclusion) =
            parse_ctl("ruleRemoveTargetById=942100;ARGS:q").unwrap()
        else {
            panic!()
        };
        assert!(exclusion.excludes("ARGS", b"Q"));
        assert!(matches!(parse_ctl("ruleRemoveByTag=attack-sqli").unwrap(), Ctl::RemoveRules(RuleSelector::Tag(_))));
        assert!(parse_ctl("auditEngine=Off").is_err());
        assert!(IdRange::parse("9-1").is_err());
    }

    #[test]
    fn severity_scores() {
        assert_eq!(Severity::parse("CRITICAL").map(Severity::score), Some(5));
        assert_eq!(Severity::parse("notice").map(Severity::score), Some(2));
        assert_eq!(Severity::parse("loud"), None);
    }
}
