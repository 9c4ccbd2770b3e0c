//! The native rule format: rules as JSON objects in the filter configuration (and in the
//! built-in set), with the same semantics as SecLang.
//!
//! ```json
//! {"id": 100001, "phase": 2, "targets": ["ARGS", "!ARGS:password"],
//!  "transforms": ["urlDecodeUni", "lowercase"], "operator": "@rx union\\s+select",
//!  "action": "block", "severity": "critical", "msg": "SQL injection", "tags": ["attack-sqli"],
//!  "paranoia_level": 1}
//! ```

use crate::engine::check_pattern;
use crate::operator::{OperatorKind, parse_operator};
use crate::rule::{
    Disruptive, Phase, Rule, RuleItem, SetVar, Severity, TargetSpec, parse_ctl, parse_setvar, parse_target,
};
use crate::transform::parse_pipeline;
use serde::Deserialize;
use shield_kit::config::ConfigError;
use std::collections::HashMap;

/// TX variable the native `block` action adds severity points to; the policy compares it with
/// the inbound threshold.
pub const ANOMALY_SCORE_VARIABLE: &str = "anomaly_score";

/// One native rule (or marker). Every field is documented in the crate README.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NativeRule {
    /// Unique rule ID (required for rules, absent for markers and chained rules).
    pub id: Option<u32>,
    /// A `skip_after` target instead of a rule.
    pub marker: Option<String>,
    /// 1 = request headers, 2 = request body (default 2).
    pub phase: Option<u8>,
    /// Targets: `VAR`, `VAR:key`, `VAR:/regex/`, `!VAR:key` (exclusion), `&VAR` (count).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Transformation names, in order (`none` clears what came before).
    #[serde(default)]
    pub transforms: Vec<String>,
    /// `[!]@operator argument` (SecLang syntax); required for rules.
    pub operator: Option<String>,
    /// `block` (default: add anomaly points), `deny` (reject at once) or `pass`.
    pub action: Option<String>,
    /// Status for `deny` (default: the policy's block status).
    pub status: Option<u16>,
    /// `critical` (default), `error`, `warning`, `notice`.
    pub severity: Option<String>,
    /// Anomaly points for `block` (default: from the severity: 5, 4, 3, 2).
    pub score: Option<i64>,
    pub msg: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Runs from this paranoia level up (1–4, default 1).
    pub paranoia_level: Option<u8>,
    /// Listed in the audit line when it matches (default true).
    pub log: Option<bool>,
    /// Keep the regex match in `TX:0`, groups in `TX:1`…
    #[serde(default)]
    pub capture: bool,
    /// `tx.name=value`, `tx.name=+N`, `!tx.name`.
    #[serde(default)]
    pub setvar: Vec<String>,
    /// `ruleRemoveById=…`, `ruleRemoveTargetById=ID;VAR:key`, … for the rest of the request.
    #[serde(default)]
    pub ctl: Vec<String>,
    /// Jump past the marker of this name when the rule matches.
    pub skip_after: Option<String>,
    /// A rule that must match too (no `id`, `phase`, `action`, …).
    pub chain: Option<Box<NativeRule>>,
}

/// Converts native rules at `path` (e.g. `rules`) into rule items, naming the field of the
/// first error (`rules[2].transforms[1]`) and the rule ID.
pub fn to_items(
    rules: &[NativeRule],
    path: &str,
    data_files: &HashMap<String, Vec<String>>,
) -> Result<Vec<RuleItem>, ConfigError> {
    rules.iter().enumerate().map(|(index, rule)| to_item(rule, &format!("{path}[{index}]"), data_files)).collect()
}

fn to_item(rule: &NativeRule, path: &str, data_files: &HashMap<String, Vec<String>>) -> Result<RuleItem, ConfigError> {
    if let Some(marker) = &rule.marker {
        if rule.id.is_some() || rule.operator.is_some() || !rule.targets.is_empty() {
            return Err(ConfigError::new(format!("{path}.marker"), "a marker has no id, targets or operator"));
        }
        if marker.is_empty() {
            return Err(ConfigError::new(format!("{path}.marker"), "empty marker name"));
        }
        return Ok(RuleItem::Marker(marker.clone()));
    }
    let Some(id) = rule.id else {
        return Err(ConfigError::new(format!("{path}.id"), "a rule needs an id"));
    };
    if id == 0 {
        return Err(ConfigError::new(format!("{path}.id"), "rule 0: the id must be positive"));
    }
    let phase = match rule.phase.unwrap_or(2) {
        1 => Phase::RequestHeaders,
        2 => Phase::RequestBody,
        other => {
            return Err(field_error(path, "phase", id, format!("phase {other}: only 1 and 2 (request) are supported")));
        }
    };
    let severity = match &rule.severity {
        None => Severity::Critical,
        Some(text) => Severity::parse(text).ok_or_else(|| {
            field_error(path, "severity", id, format!("unknown severity \"{}\"", text.escape_default()))
        })?,
    };
    let paranoia = rule.paranoia_level.unwrap_or(1);
    if !(1..=4).contains(&paranoia) {
        return Err(field_error(path, "paranoia_level", id, "must be 1 to 4".into()));
    }
    let disruptive = match rule.action.as_deref().unwrap_or("block") {
        "block" => Disruptive::Block,
        "pass" => Disruptive::Pass,
        "deny" => Disruptive::Deny(rule.status),
        other => {
            return Err(field_error(
                path,
                "action",
                id,
                format!("unknown action \"{}\": block, deny or pass", other.escape_default()),
            ));
        }
    };
    if let Some(status) = rule.status
        && !(200..=599).contains(&status)
    {
        return Err(field_error(path, "status", id, format!("status {status} is not 200 to 599")));
    }
    let mut built = link(rule, path, id, data_files)?;
    built.phase = phase;
    built.severity = Some(severity);
    built.paranoia = paranoia;
    built.disruptive = disruptive;
    built.msg = rule.msg.clone();
    built.tags = rule.tags.clone();
    built.log = rule.log.unwrap_or(true);
    built.skip_after = rule.skip_after.clone();
    if disruptive == Disruptive::Block {
        let points = rule.score.unwrap_or_else(|| severity.score());
        let setvar = parse_setvar(&format!("tx.{ANOMALY_SCORE_VARIABLE}=+{points}"))
            .map_err(|message| field_error(path, "score", id, message))?;
        built.setvars.push(setvar);
    }
    let mut chain_path = format!("{path}.chain");
    let mut next = rule.chain.as_deref();
    let mut tail = &mut built.chain;
    while let Some(chained) = next {
        if chained.id.is_some() || chained.phase.is_some() || chained.action.is_some() || chained.marker.is_some() {
            return Err(ConfigError::new(
                chain_path,
                format!("rule {id}: a chained rule has no id, phase, action or marker"),
            ));
        }
        let link = link(chained, &chain_path, id, data_files)?;
        *tail = Some(Box::new(link));
        tail = match tail {
            Some(link) => &mut link.chain,
            None => break,
        };
        next = chained.chain.as_deref();
        chain_path.push_str(".chain");
    }
    // A native rule's `setvar` (and its anomaly points) apply when the whole chain matched: the
    // engine runs a link's `setvar`s as that link matches (SecLang semantics), so they move to
    // the last link.
    if built.chain.is_some() {
        let setvars = std::mem::take(&mut built.setvars);
        let mut last = &mut built.chain;
        while let Some(link) = last {
            if link.chain.is_none() {
                link.setvars.extend(setvars);
                break;
            }
            last = &mut link.chain;
        }
    }
    Ok(RuleItem::Rule(Box::new(built)))
}

/// The fields every link of a chain has: targets, transforms, operator, setvar, ctl, capture.
fn link(
    rule: &NativeRule,
    path: &str,
    id: u32,
    data_files: &HashMap<String, Vec<String>>,
) -> Result<Rule, ConfigError> {
    let mut targets = Vec::new();
    let mut exclusions = Vec::new();
    for (index, text) in rule.targets.iter().enumerate() {
        match parse_target(text).map_err(|message| field_error(path, &format!("targets[{index}]"), id, message))? {
            TargetSpec::Read(target) => targets.push(target),
            TargetSpec::Exclude(exclusion) => exclusions.push(exclusion),
        }
    }
    let pipeline = parse_pipeline(&rule.transforms).map_err(|error| {
        let index = rule.transforms.iter().position(|name| *name == error.0).unwrap_or(0);
        field_error(path, &format!("transforms[{index}]"), id, error.to_string())
    })?;
    let Some(operator_text) = &rule.operator else {
        return Err(field_error(path, "operator", id, "a rule needs an operator".into()));
    };
    let operator =
        parse_operator(operator_text, data_files).map_err(|error| field_error(path, "operator", id, error.0))?;
    if let OperatorKind::Rx(pattern) = &operator.kind {
        check_pattern(pattern).map_err(|message| field_error(path, "operator", id, message))?;
    }
    let needs_targets = !matches!(operator.kind, OperatorKind::UnconditionalMatch | OperatorKind::NoMatch);
    if targets.is_empty() && needs_targets {
        return Err(field_error(path, "targets", id, "a rule needs at least one target".into()));
    }
    let setvars: Vec<SetVar> = rule
        .setvar
        .iter()
        .enumerate()
        .map(|(index, text)| {
            parse_setvar(text).map_err(|message| field_error(path, &format!("setvar[{index}]"), id, message))
        })
        .collect::<Result<_, _>>()?;
    let ctls = rule
        .ctl
        .iter()
        .enumerate()
        .map(|(index, text)| {
            parse_ctl(text).map_err(|message| field_error(path, &format!("ctl[{index}]"), id, message))
        })
        .collect::<Result<_, _>>()?;
    Ok(Rule {
        id,
        phase: Phase::RequestBody,
        targets,
        exclusions,
        pipeline,
        operator,
        msg: None,
        severity: None,
        tags: Vec::new(),
        paranoia: 0,
        disruptive: Disruptive::Pass,
        log: true,
        capture: rule.capture,
        setvars,
        ctls,
        skip_after: None,
        multi_match: false,
        chain: None,
    })
}

fn field_error(path: &str, field: &str, id: u32, message: String) -> ConfigError {
    ConfigError::new(format!("{path}.{field}"), format!("rule {id}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<RuleItem>, ConfigError> {
        let rules: Vec<NativeRule> = serde_json::from_str(json).unwrap();
        to_items(&rules, "rules", &HashMap::new())
    }

    #[test]
    fn a_full_rule_converts() {
        let items = parse(
            r#"[{"id": 7, "phase": 1, "targets": ["ARGS", "!ARGS:pw", "&REQUEST_HEADERS:host"], "transforms": ["lowercase"],
                 "operator": "@rx select", "action": "deny", "status": 406, "severity": "warning", "tags": ["t"],
                 "paranoia_level": 2, "setvar": ["tx.x=1"], "ctl": ["ruleRemoveById=8"],
                 "chain": {"targets": ["MATCHED_VAR"], "operator": "@contains from"}},
                {"marker": "END"}]"#,
        )
        .unwrap();
        let RuleItem::Rule(rule) = &items[0] else { panic!() };
        assert_eq!(rule.id, 7);
        assert_eq!(rule.phase, Phase::RequestHeaders);
        assert_eq!(rule.targets.len(), 2);
        assert_eq!(rule.exclusions.len(), 1);
        assert_eq!(rule.disruptive, Disruptive::Deny(Some(406)));
        assert_eq!(rule.paranoia, 2);
        assert!(rule.setvars.is_empty(), "a chain's setvars run at its last link");
        assert_eq!(rule.chain.as_ref().unwrap().setvars.len(), 1, "deny adds no anomaly points");
        assert!(matches!(&items[1], RuleItem::Marker(name) if name == "END"));
    }

    #[test]
    fn block_adds_severity_points() {
        let items = parse(r#"[{"id": 1, "targets": ["ARGS"], "operator": "@rx x", "severity": "error"}]"#).unwrap();
        let RuleItem::Rule(rule) = &items[0] else { panic!() };
        assert_eq!(rule.disruptive, Disruptive::Block);
        assert_eq!(rule.setvars.len(), 1);
        assert_eq!(rule.setvars[0].name, ANOMALY_SCORE_VARIABLE);
    }

    #[test]
    fn errors_name_the_rule_and_field() {
        let cases = [
            (
                r#"[{"id": 5, "targets": ["ARGS"], "operator": "@rx (unclosed"}]"#,
                "rules[0].operator",
                "rule 5: invalid regex",
            ),
            (
                r#"[{"id": 5, "targets": ["ARGS"], "transforms": ["lowercase", "rot13"], "operator": "@rx x"}]"#,
                "rules[0].transforms[1]",
                "unknown transformation \"rot13\"",
            ),
            (r#"[{"id": 5, "targets": ["ARGZ"], "operator": "@rx x"}]"#, "rules[0].targets[0]", "unknown variable"),
            (r#"[{"targets": ["ARGS"], "operator": "@rx x"}]"#, "rules[0].id", "needs an id"),
            (r#"[{"id": 5, "targets": ["ARGS"]}]"#, "rules[0].operator", "needs an operator"),
            (r#"[{"id": 5, "targets": ["ARGS"], "operator": "@rx x", "phase": 3}]"#, "rules[0].phase", "only 1 and 2"),
            (
                r#"[{"id": 5, "targets": ["ARGS"], "operator": "@rx x", "action": "drop"}]"#,
                "rules[0].action",
                "unknown action",
            ),
            (
                r#"[{"id": 5, "targets": ["ARGS"], "operator": "@rx x", "severity": "loud"}]"#,
                "rules[0].severity",
                "unknown severity",
            ),
            (
                r#"[{"id": 5, "targets": ["ARGS"], "operator": "@rx x", "setvar": ["ip.x=1"]}]"#,
                "rules[0].setvar[0]",
                "tx",
            ),
            (
                r#"[{"id": 5, "targets": ["ARGS"], "operator": "@rx x", "chain": {"id": 6, "targets": ["ARGS"], "operator": "@rx y"}}]"#,
                "rules[0].chain",
                "chained rule",
            ),
            (
                r#"[{"id": 5, "targets": ["ARGS"], "operator": "@rx x", "chain": {"targets": ["ARGS"], "operator": "@rx ("}}]"#,
                "rules[0].chain.operator",
                "invalid regex",
            ),
            (
                r#"[{"id": 5, "targets": ["ARGS"], "operator": "@pmFromFile nope.data"}]"#,
                "rules[0].operator",
                "nope.data",
            ),
        ];
        for (json, field, message) in cases {
            let error = parse(json).unwrap_err();
            assert_eq!(error.field(), field, "{json}: {error}");
            assert!(error.message().contains(message), "{json}: {error}");
        }
    }
}
