//! The filter configuration: mode, paranoia level, threshold, built-in rule groups, custom
//! rules, body limits and per-route overrides, parsed and compiled once into a [`Policy`].

use crate::builtin;
use crate::crs;
use crate::engine::{Exclusions, Ruleset};
use crate::native::{self, NativeRule};
use crate::rule::{IdRange, RuleItem, RuleSelector, exclusion_from_text};
use crate::seclang::{Issue, Loader};
use serde::Deserialize;
use shield_kit::config::{ConfigError, parse_json};
use std::collections::{BTreeMap, HashMap};

/// Default body buffering limit: 128 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 128 * 1024;
/// Largest configurable body limit (Envoy's own buffer limit is usually lower).
pub const MAX_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// `detect` counts and logs; `block` also rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Detect,
    #[default]
    Block,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Detect => "detect",
            Self::Block => "block",
        }
    }
}

/// What to do with a body larger than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OverLimit {
    /// Answer 413 (closed default: an attacker cannot hide a payload past the limit).
    #[default]
    Reject,
    /// Inspect the first `limit` bytes and let the rest through.
    InspectFirstPart,
}

/// A paranoia level, 1 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u8")]
pub struct Paranoia(pub u8);

impl TryFrom<u8> for Paranoia {
    type Error = String;
    fn try_from(level: u8) -> Result<Self, String> {
        if (1..=4).contains(&level) { Ok(Self(level)) } else { Err(format!("paranoia level {level} is not 1 to 4")) }
    }
}

impl Default for Paranoia {
    fn default() -> Self {
        Self(1)
    }
}

/// An HTTP status for a block reply, 200 to 599.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u16")]
pub struct Status(pub u16);

impl TryFrom<u16> for Status {
    type Error = String;
    fn try_from(status: u16) -> Result<Self, String> {
        if (200..=599).contains(&status) { Ok(Self(status)) } else { Err(format!("status {status} is not 200 to 599")) }
    }
}

/// An inbound anomaly threshold (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Threshold(pub i64);

impl TryFrom<i64> for Threshold {
    type Error = String;
    fn try_from(threshold: i64) -> Result<Self, String> {
        if threshold >= 1 { Ok(Self(threshold)) } else { Err(format!("threshold {threshold} must be at least 1")) }
    }
}

/// A rule ID (`942100`) or range (`"942100-942199"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "IdOrRange")]
pub struct RuleIds(pub IdRange);

#[derive(Deserialize)]
#[serde(untagged)]
enum IdOrRange {
    Id(u32),
    Range(String),
}

impl TryFrom<IdOrRange> for RuleIds {
    type Error = String;
    fn try_from(value: IdOrRange) -> Result<Self, String> {
        match value {
            IdOrRange::Id(id) => Ok(Self(IdRange { first: id, last: id })),
            IdOrRange::Range(text) => IdRange::parse(&text).map(Self),
        }
    }
}

/// Body handling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BodyConfig {
    /// Bytes buffered for inspection (default 131072).
    pub limit: usize,
    /// `reject` (413, default) or `inspect_first_part`.
    pub over_limit: OverLimit,
}

impl Default for BodyConfig {
    fn default() -> Self {
        Self { limit: DEFAULT_BODY_LIMIT, over_limit: OverLimit::Reject }
    }
}

/// One target a route stops a rule (or rule range) from reading.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisabledTarget {
    /// Rule ID or range.
    pub rules: RuleIds,
    /// `ARGS:q`, `REQUEST_COOKIES:/^_ga/`, or a whole variable (`FILES`).
    pub target: String,
}

/// Overrides for requests whose path starts with `prefix` (the longest prefix wins).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub prefix: String,
    pub mode: Option<Mode>,
    pub paranoia_level: Option<Paranoia>,
    pub inbound_threshold: Option<Threshold>,
    #[serde(default)]
    pub disabled_rules: Vec<RuleIds>,
    #[serde(default)]
    pub disabled_tags: Vec<String>,
    #[serde(default)]
    pub disabled_targets: Vec<DisabledTarget>,
}

/// Which rule set runs before the custom rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSetChoice {
    /// The compact built-in groups (`builtin_groups`).
    Builtin,
    /// OWASP CRS (modules built with the `crs` feature: `waf-crs.wasm`).
    Crs,
    /// Only the custom rules (`rules`, `seclang`).
    None,
}

impl RuleSetChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Builtin => "builtin",
            Self::Crs => "crs",
            Self::None => "none",
        }
    }
}

/// A CRS setup value (`tx.NAME`): text or a number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SetupValue {
    Number(i64),
    Text(String),
}

impl SetupValue {
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Number(number) => number.to_string().into_bytes(),
            Self::Text(text) => text.clone().into_bytes(),
        }
    }
}

/// `tx` variables with a dedicated configuration field (so a route can override them).
const DEDICATED_SETUP_VARIABLES: &[(&str, &str)] = &[
    ("blocking_paranoia_level", "paranoia_level"),
    ("paranoia_level", "paranoia_level"),
    ("detection_paranoia_level", "crs.detection_paranoia_level"),
    ("inbound_anomaly_score_threshold", "inbound_threshold"),
];

/// OWASP CRS settings (used when `ruleset` is `crs`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CrsConfig {
    /// `tx.detection_paranoia_level`: rules up to this level run and log without adding to the
    /// blocking score (default: `paranoia_level`).
    pub detection_paranoia_level: Option<Paranoia>,
    /// CRS setup variables, `tx.NAME` → value, applied like crs-setup.conf's 900xxx `SecAction`s
    /// before REQUEST-901 (which fills in the defaults of everything left unset).
    pub setup: BTreeMap<String, SetupValue>,
    /// SecLang loaded after crs-setup.conf and before the CRS rules, as CRS's
    /// REQUEST-900-EXCLUSION-RULES-BEFORE-CRS: runtime exclusions (`ctl:ruleRemove…`).
    pub before_rules: String,
}

/// The configuration document (every field documented in the crate README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub mode: Mode,
    pub paranoia_level: Paranoia,
    pub inbound_threshold: Threshold,
    pub block_status: Status,
    /// Built-in groups to load; absent = all of them, `[]` = none.
    pub builtin_groups: Option<Vec<String>>,
    /// Custom rules (native format), evaluated after the built-in ones.
    pub rules: Vec<NativeRule>,
    /// Phrase lists for `@pmFromFile NAME`.
    pub data_files: HashMap<String, Vec<String>>,
    pub body: BodyConfig,
    pub routes: Vec<RouteConfig>,
    /// `builtin`, `crs` or `none`; default `crs` in a CRS build unless `builtin_groups` is
    /// given, `builtin` otherwise.
    pub ruleset: Option<RuleSetChoice>,
    pub crs: CrsConfig,
    /// SecLang loaded after the rule set: rules, `SecRuleRemoveById`, `SecRuleUpdateTargetById`, …
    pub seclang: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Block,
            paranoia_level: Paranoia(1),
            inbound_threshold: Threshold(5),
            block_status: Status(403),
            builtin_groups: None,
            rules: Vec::new(),
            data_files: HashMap::new(),
            body: BodyConfig::default(),
            routes: Vec::new(),
            ruleset: None,
            crs: CrsConfig::default(),
            seclang: String::new(),
        }
    }
}

/// Settings that apply to one request (policy defaults with a route's overrides).
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub paranoia: u8,
    pub threshold: i64,
    pub exclusions: Exclusions,
}

/// A compiled route.
#[derive(Debug, Clone)]
struct Route {
    prefix: String,
    mode: Option<Mode>,
    paranoia: Option<u8>,
    threshold: Option<i64>,
    exclusions: Exclusions,
}

/// The compiled policy.
#[derive(Debug)]
pub struct Policy {
    pub ruleset: Ruleset,
    pub mode: Mode,
    pub paranoia: u8,
    pub threshold: i64,
    pub block_status: u16,
    pub body: BodyConfig,
    /// The rule set that runs before the custom rules.
    pub rule_set: RuleSetChoice,
    /// `tx` variables every request starts with (CRS setup; empty without CRS).
    pub(crate) preset_tx: Vec<(String, Vec<u8>)>,
    /// `crs.detection_paranoia_level`.
    pub(crate) detection_paranoia: Option<u8>,
    /// SecLang features accepted without effect (for the start-up log).
    pub ignored: Vec<Issue>,
    routes: Vec<Route>,
}

impl Policy {
    /// Parses, validates and compiles a JSON configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_config(parse_json(bytes)?)
    }

    /// Validates and compiles a parsed configuration.
    pub fn from_config(config: Config) -> Result<Self, ConfigError> {
        if config.body.limit == 0 || config.body.limit > MAX_BODY_LIMIT {
            return Err(ConfigError::new("body.limit", format!("must be 1 to {MAX_BODY_LIMIT} bytes")));
        }
        let rule_set = match config.ruleset {
            Some(choice) => choice,
            None if config.builtin_groups.is_some() || !crs::available() => RuleSetChoice::Builtin,
            None => RuleSetChoice::Crs,
        };
        if rule_set == RuleSetChoice::Crs && !crs::available() {
            return Err(ConfigError::new("ruleset", "this module was built without CRS (use waf-crs.wasm)"));
        }
        if rule_set != RuleSetChoice::Builtin && config.builtin_groups.is_some() {
            return Err(ConfigError::new("builtin_groups", "only with `ruleset: builtin`"));
        }
        let mut items: Vec<RuleItem> = match rule_set {
            RuleSetChoice::Builtin => builtin::items(config.builtin_groups.as_deref())?,
            RuleSetChoice::Crs | RuleSetChoice::None => Vec::new(),
        };
        let mut data_files = if rule_set == RuleSetChoice::Crs { crs::data_files() } else { HashMap::new() };
        data_files.extend(config.data_files.iter().map(|(name, lines)| (name.clone(), lines.clone())));
        let mut loader = Loader::new(&data_files);
        if rule_set == RuleSetChoice::Crs {
            crs::load_into(&mut loader, "crs.before_rules", &config.crs.before_rules);
        } else if !config.crs.before_rules.trim().is_empty() {
            return Err(ConfigError::new("crs.before_rules", "only with `ruleset: crs`"));
        }
        let seclang_start = loader.item_count();
        if !config.seclang.trim().is_empty() {
            loader.load("seclang", &config.seclang);
        }
        let loaded = loader.finish();
        if let Some(issue) = loaded.issues.first() {
            let field = match issue.source.as_str() {
                "seclang" => "seclang",
                "crs.before_rules" => "crs.before_rules",
                _ => "ruleset",
            };
            let more = match loaded.issues.len() {
                1 => String::new(),
                count => format!(" (and {} more)", count - 1),
            };
            return Err(ConfigError::new(field, format!("{issue}{more}")));
        }
        let seclang_ids: Vec<u32> = loaded
            .items
            .iter()
            .skip(seclang_start)
            .filter_map(|item| match item {
                RuleItem::Rule(rule) => Some(rule.id),
                RuleItem::Marker(_) => None,
            })
            .collect();
        items.extend(loaded.items.iter().cloned());
        items.extend(native::to_items(&config.rules, "rules", &data_files)?);
        loaded.apply_exclusions(&mut items);
        let ruleset = Ruleset::compile(items).map_err(|error| {
            let field = match config.rules.iter().rposition(|rule| rule.id == Some(error.rule_id)) {
                Some(index) => format!("rules[{index}].{}", error.field),
                None if seclang_ids.contains(&error.rule_id) => "seclang".to_owned(),
                None if rule_set == RuleSetChoice::Crs => "ruleset".to_owned(),
                None => "rules".to_owned(),
            };
            ConfigError::new(field, error.to_string())
        })?;
        let preset_tx = if rule_set == RuleSetChoice::Crs { setup_variables(&config.crs)? } else { Vec::new() };
        let mut routes = Vec::with_capacity(config.routes.len());
        for (index, route) in config.routes.iter().enumerate() {
            routes.push(compile_route(route, index)?);
        }
        // Longest prefix first, so the first match is the most specific.
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        Ok(Self {
            ruleset,
            mode: config.mode,
            paranoia: config.paranoia_level.0,
            threshold: config.inbound_threshold.0,
            block_status: config.block_status.0,
            body: config.body,
            rule_set,
            preset_tx,
            detection_paranoia: config.crs.detection_paranoia_level.map(|level| level.0),
            ignored: loaded.ignored,
            routes,
        })
    }

    /// The `tx` collection a request starts with: the CRS setup variables, the paranoia levels
    /// and the inbound threshold in force for it (empty without CRS).
    pub(crate) fn initial_tx(&self, settings: &Settings) -> HashMap<String, Vec<u8>> {
        if self.rule_set != RuleSetChoice::Crs {
            return HashMap::new();
        }
        let mut tx: HashMap<String, Vec<u8>> = self.preset_tx.iter().cloned().collect();
        let paranoia = settings.paranoia;
        let detection = self.detection_paranoia.unwrap_or(paranoia).max(paranoia);
        tx.insert("blocking_paranoia_level".into(), paranoia.to_string().into_bytes());
        tx.insert("detection_paranoia_level".into(), detection.to_string().into_bytes());
        tx.insert("inbound_anomaly_score_threshold".into(), settings.threshold.to_string().into_bytes());
        tx
    }

    /// The settings for a request to `path` (query ignored).
    pub fn settings_for(&self, path: &[u8]) -> Settings {
        let path = path.split(|&b| b == b'?').next().unwrap_or_default();
        let route = self.routes.iter().find(|route| path.starts_with(route.prefix.as_bytes()));
        Settings {
            mode: route.and_then(|route| route.mode).unwrap_or(self.mode),
            paranoia: route.and_then(|route| route.paranoia).unwrap_or(self.paranoia),
            threshold: route.and_then(|route| route.threshold).unwrap_or(self.threshold),
            exclusions: route.map(|route| route.exclusions.clone()).unwrap_or_default(),
        }
    }
}

/// The CRS setup variables as `tx` entries, names checked.
fn setup_variables(crs: &CrsConfig) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
    let mut variables = Vec::with_capacity(crs.setup.len());
    for (name, value) in &crs.setup {
        let field = format!("crs.setup.{name}");
        let lower = name.to_ascii_lowercase();
        let lower = lower.strip_prefix("tx.").unwrap_or(&lower).to_owned();
        if lower.is_empty() || !lower.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(ConfigError::new(field, "a tx variable name: letters, digits, `_` and `-`"));
        }
        if let Some((_, dedicated)) = DEDICATED_SETUP_VARIABLES.iter().find(|(variable, _)| *variable == lower) {
            return Err(ConfigError::new(field, format!("set it with the `{dedicated}` field")));
        }
        variables.push((lower, value.to_bytes()));
    }
    Ok(variables)
}

fn compile_route(route: &RouteConfig, index: usize) -> Result<Route, ConfigError> {
    let path = format!("routes[{index}]");
    if !route.prefix.starts_with('/') {
        return Err(ConfigError::new(format!("{path}.prefix"), "must start with /"));
    }
    let mut exclusions = Exclusions::default();
    if !route.disabled_rules.is_empty() {
        exclusions.removed_rules.push(RuleSelector::Ids(route.disabled_rules.iter().map(|ids| ids.0).collect()));
    }
    for tag in &route.disabled_tags {
        exclusions.removed_rules.push(RuleSelector::Tag(tag.clone()));
    }
    for (target_index, disabled) in route.disabled_targets.iter().enumerate() {
        let exclusion = exclusion_from_text(&disabled.target)
            .map_err(|message| ConfigError::new(format!("{path}.disabled_targets[{target_index}].target"), message))?;
        exclusions.removed_targets.push((RuleSelector::Ids(vec![disabled.rules.0]), exclusion));
    }
    Ok(Route {
        prefix: route.prefix.clone(),
        mode: route.mode,
        paranoia: route.paranoia_level.map(|level| level.0),
        threshold: route.inbound_threshold.map(|threshold| threshold.0),
        exclusions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_closed() {
        let policy = Policy::from_json(b"").unwrap();
        assert_eq!(policy.mode, Mode::Block);
        assert_eq!(policy.paranoia, 1);
        assert_eq!(policy.threshold, 5);
        assert_eq!(policy.block_status, 403);
        assert_eq!(policy.body.limit, DEFAULT_BODY_LIMIT);
        assert_eq!(policy.body.over_limit, OverLimit::Reject);
        assert!(policy.ruleset.rule_count() > 20, "the built-in rules load by default");
    }

    #[test]
    fn routes_override_by_longest_prefix() {
        let policy = Policy::from_json(
            br#"{"routes": [{"prefix": "/api", "mode": "detect"},
                            {"prefix": "/api/upload", "paranoia_level": 2, "inbound_threshold": 10,
                             "disabled_rules": [100, "200-300"], "disabled_targets": [{"rules": 5, "target": "ARGS:q"}]}]}"#,
        )
        .unwrap();
        let upload = policy.settings_for(b"/api/upload/x?y=1");
        assert_eq!(upload.mode, Mode::Block);
        assert_eq!(upload.paranoia, 2);
        assert_eq!(upload.threshold, 10);
        assert_eq!(upload.exclusions.removed_rules.len(), 1);
        assert!(upload.exclusions.removed_rules[0].selects(250, &[]));
        assert_eq!(upload.exclusions.removed_targets.len(), 1);
        assert_eq!(policy.settings_for(b"/api/orders").mode, Mode::Detect);
        assert_eq!(policy.settings_for(b"/other").mode, Mode::Block);
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases: [(&[u8], &str); 9] = [
            (br#"{"mode": "audit"}"#, "mode"),
            (br#"{"paranoia_level": 5}"#, "paranoia_level"),
            (br#"{"inbound_threshold": 0}"#, "inbound_threshold"),
            (br#"{"block_status": 99}"#, "block_status"),
            (br#"{"body": {"limit": 0}}"#, "body.limit"),
            (br#"{"routes": [{"prefix": "api"}]}"#, "routes[0].prefix"),
            (br#"{"routes": [{"prefix": "/", "disabled_rules": ["9-1"]}]}"#, "routes[0].disabled_rules[0]"),
            (
                br#"{"routes": [{"prefix": "/", "disabled_targets": [{"rules": 1, "target": "NOPE"}]}]}"#,
                "routes[0].disabled_targets[0].target",
            ),
            (br#"{"builtin_groups": ["sqli", "nope"]}"#, "builtin_groups[1]"),
        ];
        for (json, field) in cases {
            let error = Policy::from_json(json).unwrap_err();
            assert_eq!(error.field(), field, "{}: {error}", String::from_utf8_lossy(json));
        }
    }

    #[test]
    fn duplicate_rule_id_is_refused_naming_the_rule() {
        let error = Policy::from_json(
            br#"{"builtin_groups": [], "rules": [{"id": 9, "targets": ["ARGS"], "operator": "@rx a"},
                                                 {"id": 9, "targets": ["ARGS"], "operator": "@rx b"}]}"#,
        )
        .unwrap_err();
        assert_eq!(error.field(), "rules[1].id");
        assert!(error.message().contains("rule 9: id: duplicate rule ID"), "{error}");
    }

    #[test]
    fn custom_rule_clashing_with_builtin_id_is_refused() {
        let id = Policy::from_json(br#"{"ruleset": "builtin"}"#).unwrap().ruleset.rule_ids().next().unwrap();
        let json =
            format!(r#"{{"ruleset": "builtin", "rules": [{{"id": {id}, "targets": ["ARGS"], "operator": "@rx a"}}]}}"#);
        let error = Policy::from_json(json.as_bytes()).unwrap_err();
        assert!(error.message().contains("duplicate rule ID"), "{error}");
    }

    #[test]
    fn unknown_skip_after_marker_is_refused() {
        let error = Policy::from_json(
            br#"{"builtin_groups": [], "rules": [{"id": 9, "targets": ["ARGS"], "operator": "@rx a", "skip_after": "END"}]}"#,
        )
        .unwrap_err();
        assert_eq!(error.field(), "rules[0].skip_after");
        assert!(error.message().contains("no marker"), "{error}");
    }
}
