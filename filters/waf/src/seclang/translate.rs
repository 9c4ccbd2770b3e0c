//! SecLang directives into the engine's rule model ([`RuleItem`]s), with ModSecurity's semantics:
//! `SecDefaultAction` per phase (its transformations come first, `block` and a rule without a
//! disruptive action take its disruptive action, its `log`/`status` apply unless the rule says
//! otherwise), `chain`, `SecMarker`, and the configure-time exclusions (`SecRuleRemoveById`,
//! `SecRuleRemoveByTag`, `SecRuleUpdateTargetById`, `SecRuleUpdateTargetByTag`), which apply to
//! the whole rule list once everything is loaded.
//!
//! Nothing is skipped silently: what the engine cannot do is an [`Issue`] naming the source
//! line, the rule ID and the feature; what has no effect here on purpose (audit-log settings,
//! persistent collections, server directives) is listed as ignored.

use super::actions::{Action, parse_actions};
use super::lexer::directives;
use crate::operator::{OperatorKind, parse_operator};
use crate::rule::{
    Ctl, Disruptive, Exclusion, IdRange, Phase, Rule, RuleItem, RuleSelector, SetVar, Severity, Target, TargetSpec,
    parse_ctl, parse_setvar, parse_target,
};
use crate::transform::{Pipeline, TransformName};
use std::collections::HashMap;
use std::fmt;

/// Something the engine does not support (or a syntax error), by source line, rule and feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The file or configuration field the text came from.
    pub source: String,
    pub line: usize,
    pub rule_id: Option<u32>,
    /// `ctl:ruleEngine`, `@rbl`, `t:sqlHexDecode`, `SecRuleScript`, …
    pub feature: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.source, self.line)?;
        if let Some(id) = self.rule_id {
            write!(f, "rule {id}: ")?;
        }
        write!(f, "{}: {}", self.feature, self.message)
    }
}

/// Directives that configure the server, the audit log or persistent storage: they have no
/// effect on a request's verdict here (body limits are the `body` configuration field).
const IGNORED_DIRECTIVES: &[&str] = &[
    "seccomponentsignature",
    "secrequestbodyaccess",
    "secrequestbodylimit",
    "secrequestbodynofileslimit",
    "secrequestbodyinmemorylimit",
    "secrequestbodylimitaction",
    "secrequestbodyjsondepthlimit",
    "secresponsebodyaccess",
    "secresponsebodymimetype",
    "secresponsebodylimit",
    "secresponsebodylimitaction",
    "secauditengine",
    "secauditlog",
    "secauditlog2",
    "secauditlogparts",
    "secauditlogtype",
    "secauditlogformat",
    "secauditlogstoragedir",
    "secauditlogdirmode",
    "secauditlogfilemode",
    "secauditlogrelevantstatus",
    "secdebuglog",
    "secdebugloglevel",
    "sectmpdir",
    "secdatadir",
    "secuploaddir",
    "secuploadkeepfiles",
    "secuploadfilemode",
    "secuploadfilelimit",
    "secargumentseparator",
    "seccookieformat",
    "secunicodemapfile",
    "secstatusengine",
    "secpcrematchlimit",
    "secpcrematchlimitrecursion",
    "seccollectiontimeout",
    "sectmpsaveuploadedfiles",
    "secargumentslimit",
];

/// Metadata actions: kept (`msg`, `tag`, `severity`) or without effect on the verdict.
const METADATA_ACTIONS: &[&str] = &["logdata", "ver", "rev", "maturity", "accuracy", "auditlog", "noauditlog"];

/// A `SecRuleUpdateTarget*` to apply once everything is loaded.
#[derive(Debug, Clone)]
pub struct TargetUpdate {
    pub selector: RuleSelector,
    pub target: TargetSpec,
}

/// Everything loaded from one or more SecLang texts.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Rules and markers, in load order.
    pub items: Vec<RuleItem>,
    /// `SecRuleRemoveById` / `SecRuleRemoveByTag`.
    pub removals: Vec<RuleSelector>,
    /// `SecRuleUpdateTargetById` / `SecRuleUpdateTargetByTag`.
    pub updates: Vec<TargetUpdate>,
    /// Unsupported features and syntax errors (a policy with any refuses to start).
    pub issues: Vec<Issue>,
    /// Features accepted without effect, for the record.
    pub ignored: Vec<Issue>,
}

impl Loaded {
    /// Applies the configure-time exclusions to `items` (any rule source, CRS included).
    pub fn apply_exclusions(&self, items: &mut Vec<RuleItem>) {
        apply_exclusions(&self.removals, &self.updates, items);
    }
}

/// Removes the rules `removals` select and adds the targets / exclusions of `updates`.
pub fn apply_exclusions(removals: &[RuleSelector], updates: &[TargetUpdate], items: &mut Vec<RuleItem>) {
    if !removals.is_empty() {
        items.retain(|item| match item {
            RuleItem::Rule(rule) => !removals.iter().any(|selector| selector.selects(rule.id, &rule.tags)),
            RuleItem::Marker(_) => true,
        });
    }
    for update in updates {
        for item in items.iter_mut() {
            let RuleItem::Rule(rule) = item else { continue };
            if !update.selector.selects(rule.id, &rule.tags) {
                continue;
            }
            match &update.target {
                TargetSpec::Read(target) => rule.targets.push(target.clone()),
                TargetSpec::Exclude(exclusion) => rule.exclusions.push(exclusion.clone()),
            }
        }
    }
}

/// A chain being read: its links so far.
struct PendingChain {
    links: Vec<Rule>,
    id: u32,
    line: usize,
    broken: bool,
}

/// Reads SecLang texts one after the other (default actions carry over, as with `Include`).
pub struct Loader<'d> {
    data_files: &'d HashMap<String, Vec<String>>,
    /// `SecDefaultAction` per phase.
    defaults: HashMap<u8, Vec<Action>>,
    chain: Option<PendingChain>,
    loaded: Loaded,
    /// Where the directive being read comes from.
    source: String,
    line: usize,
}

/// The parts of a rule its action list gives.
#[derive(Default)]
struct RuleActions {
    phase: Option<u8>,
    transforms: Vec<String>,
    msg: Option<String>,
    tags: Vec<String>,
    severity: Option<Severity>,
    log: Option<bool>,
    capture: bool,
    multi_match: bool,
    chain: bool,
    skip_after: Option<String>,
    setvars: Vec<SetVar>,
    ctls: Vec<Ctl>,
    status: Option<u16>,
    /// `pass`, `deny`, `drop` or `block` as written.
    disruptive: Option<&'static str>,
}

impl<'d> Loader<'d> {
    /// A loader serving `@pmFromFile NAME` from `data_files`.
    pub fn new(data_files: &'d HashMap<String, Vec<String>>) -> Self {
        Self {
            data_files,
            defaults: HashMap::new(),
            chain: None,
            loaded: Loaded::default(),
            source: String::new(),
            line: 0,
        }
    }

    /// Reads one text; `source` names it in issues (a file name or a configuration field).
    pub fn load(&mut self, source: &str, text: &str) {
        self.source = source.to_owned();
        match directives(text) {
            Ok(list) => {
                for directive in list {
                    self.line = directive.line;
                    let args: Vec<&str> = directive.args.iter().map(String::as_str).collect();
                    self.directive(&directive.name, &args);
                }
            }
            Err(error) => {
                self.line = error.line;
                self.issue(None, "syntax", error.message);
            }
        }
        if let Some(chain) = self.chain.take() {
            self.line = chain.line;
            self.issue(Some(chain.id), "chain", "the last rule of the text has `chain` but no rule follows".into());
        }
    }

    /// Rules and markers loaded so far.
    pub fn item_count(&self) -> usize {
        self.loaded.items.len()
    }

    /// Everything loaded.
    pub fn finish(self) -> Loaded {
        self.loaded
    }

    fn issue(&mut self, rule_id: Option<u32>, feature: &str, message: String) {
        self.loaded.issues.push(Issue {
            source: self.source.clone(),
            line: self.line,
            rule_id,
            feature: feature.to_owned(),
            message,
        });
    }

    fn ignored(&mut self, rule_id: Option<u32>, feature: &str, message: &str) {
        self.loaded.ignored.push(Issue {
            source: self.source.clone(),
            line: self.line,
            rule_id,
            feature: feature.to_owned(),
            message: message.to_owned(),
        });
    }

    fn directive(&mut self, name: &str, args: &[&str]) {
        let lower = name.to_ascii_lowercase();
        if lower != "secrule"
            && let Some(chain) = self.chain.take()
        {
            self.issue(Some(chain.id), "chain", format!("`chain` is followed by {name}, not by a SecRule"));
        }
        match (lower.as_str(), args) {
            ("secrule", [variables, operator]) => self.sec_rule(Some(variables), operator, ""),
            ("secrule", [variables, operator, actions]) => self.sec_rule(Some(variables), operator, actions),
            ("secaction", [actions]) => self.sec_rule(None, "@unconditionalMatch", actions),
            ("secmarker", [marker]) if !marker.is_empty() => self.loaded.items.push(RuleItem::Marker((*marker).into())),
            ("secdefaultaction", [actions]) => self.default_action(actions),
            ("secruleremovebyid", ids) if !ids.is_empty() => {
                let mut ranges = Vec::new();
                for text in ids {
                    match IdRange::parse(text) {
                        Ok(range) => ranges.push(range),
                        Err(message) => self.issue(None, name, message),
                    }
                }
                self.loaded.removals.push(RuleSelector::Ids(ranges));
            }
            ("secruleremovebytag", tags) if !tags.is_empty() => {
                for tag in tags {
                    self.loaded.removals.push(RuleSelector::Tag((*tag).to_owned()));
                }
            }
            ("secruleupdatetargetbyid" | "secruleupdatetargetbytag", [rules, targets]) => {
                let selector = if lower.ends_with("byid") {
                    match IdRange::parse(rules) {
                        Ok(range) => RuleSelector::Ids(vec![range]),
                        Err(message) => return self.issue(None, name, message),
                    }
                } else {
                    RuleSelector::Tag((*rules).to_owned())
                };
                for text in split_variables(targets) {
                    match parse_target(text) {
                        Ok(target) => self.loaded.updates.push(TargetUpdate { selector: selector.clone(), target }),
                        Err(message) => self.issue(None, name, message),
                    }
                }
            }
            ("secruleupdatetargetbyid" | "secruleupdatetargetbytag", [_, _, _]) => {
                self.issue(None, name, "replacing a target (third argument) is not supported".into());
            }
            ("secruleengine", _) => self.issue(
                None,
                name,
                "the engine mode is the `mode` configuration field (detect = DetectionOnly, block = On)".into(),
            ),
            (other, _) if IGNORED_DIRECTIVES.contains(&other) => {
                self.ignored(None, name, "server, audit-log or storage setting: no effect on the verdict");
            }
            (
                "secrule"
                | "secaction"
                | "secmarker"
                | "secdefaultaction"
                | "secruleremovebyid"
                | "secruleremovebytag"
                | "secruleupdatetargetbyid"
                | "secruleupdatetargetbytag",
                _,
            ) => self.issue(None, name, format!("wrong number of arguments ({})", args.len())),
            _ => self.issue(None, name, "unsupported directive".into()),
        }
    }

    fn default_action(&mut self, text: &str) {
        let actions = match parse_actions(text) {
            Ok(actions) => actions,
            Err(message) => return self.issue(None, "SecDefaultAction", message),
        };
        let mut phase = None;
        for action in &actions {
            match action.name.as_str() {
                "phase" => phase = parse_phase(action.value()),
                "id" | "chain" | "skipafter" | "skip" | "capture" | "multimatch" => {
                    let message = format!("`{}` cannot be a default action", action.name);
                    self.issue(None, "SecDefaultAction", message);
                }
                _ => {}
            }
        }
        match phase {
            Some(phase) => {
                self.defaults.insert(phase, actions);
            }
            None => self.issue(None, "SecDefaultAction", "needs a phase (1 to 5)".into()),
        }
    }

    fn sec_rule(&mut self, variables: Option<&str>, operator: &str, actions_text: &str) {
        let chained = self.chain.is_some();
        let actions = match parse_actions(actions_text) {
            Ok(actions) => actions,
            Err(message) => {
                let id = self.chain.as_ref().map(|chain| chain.id).or_else(|| id_in_text(actions_text));
                self.issue(id, "actions", message);
                if let Some(chain) = self.chain.as_mut() {
                    chain.broken = true;
                }
                return;
            }
        };
        let head_id = match &self.chain {
            Some(chain) => Some(chain.id),
            None => actions.iter().find(|action| action.name == "id").and_then(|action| action.value().parse().ok()),
        };
        let issues_before = self.loaded.issues.len();
        let Some(id) = head_id.filter(|id| *id > 0) else {
            self.issue(None, "id", "a rule needs a positive numeric `id`".into());
            return;
        };
        let parts = self.rule_actions(id, &actions, chained);
        let mut rule = self.build_rule(id, variables, operator, parts);
        let broken = self.loaded.issues.len() > issues_before;
        match (self.chain.take(), rule.take()) {
            (None, Some((rule, true))) => {
                self.chain = Some(PendingChain { links: vec![rule], id, line: self.line, broken });
            }
            (None, Some((rule, false))) => {
                if !broken {
                    self.loaded.items.push(RuleItem::Rule(Box::new(rule)));
                }
            }
            (None, None) => {}
            (Some(mut chain), built) => {
                chain.broken |= broken || built.is_none();
                let link_continues = built.as_ref().is_some_and(|(_, chain)| *chain);
                if let Some((link, _)) = built {
                    chain.links.push(link);
                }
                if link_continues {
                    self.chain = Some(chain);
                } else if !chain.broken
                    && let Some(rule) = nest(chain.links)
                {
                    self.loaded.items.push(RuleItem::Rule(Box::new(rule)));
                }
            }
        }
    }

    /// Reads a rule's actions (merged with the phase's default action for a chain starter).
    fn rule_actions(&mut self, id: u32, actions: &[Action], chained: bool) -> RuleActions {
        let mut parts = RuleActions::default();
        let phase = actions.iter().rev().find(|action| action.name == "phase").map(|action| action.value().to_owned());
        let phase_number = match &phase {
            Some(text) => match parse_phase(text) {
                Some(phase) => phase,
                None => {
                    self.issue(Some(id), "phase", format!("unknown phase \"{}\"", text.escape_default()));
                    2
                }
            },
            None => 2,
        };
        let defaults = if chained {
            Vec::new()
        } else {
            self.defaults.get(&phase_number).cloned().unwrap_or_else(|| {
                // ModSecurity's own default action.
                vec![Action::new("log", None), Action::new("auditlog", None), Action::new("pass", None)]
            })
        };
        let mut default_parts = RuleActions::default();
        for action in &defaults {
            self.action(id, action, false, &mut default_parts);
        }
        for action in actions {
            self.action(id, action, chained, &mut parts);
        }
        if !chained {
            parts.phase = Some(phase_number);
            let mut transforms = default_parts.transforms;
            transforms.append(&mut parts.transforms);
            parts.transforms = transforms;
            parts.log = parts.log.or(default_parts.log);
            parts.status = parts.status.or(default_parts.status);
            parts.disruptive = match parts.disruptive {
                None | Some("block") => default_parts.disruptive.filter(|action| *action != "block").or(Some("pass")),
                explicit => explicit,
            };
        }
        parts
    }

    fn action(&mut self, id: u32, action: &Action, chained: bool, parts: &mut RuleActions) {
        let name = action.name.as_str();
        let value = action.value();
        let starter_only = |loader: &mut Self| {
            if chained {
                loader.issue(Some(id), name, "only the first rule of a chain can have it".into());
            }
        };
        match name {
            "id" | "phase" => starter_only(self),
            "t" => parts.transforms.push(value.to_owned()),
            "msg" => parts.msg = Some(value.to_owned()),
            "tag" => parts.tags.push(value.to_owned()),
            "severity" => match parse_severity(value) {
                Ok(severity) => parts.severity = severity,
                Err(message) => self.issue(Some(id), "severity", message),
            },
            "log" => parts.log = Some(true),
            "nolog" => parts.log = Some(false),
            "capture" => parts.capture = true,
            "multimatch" => parts.multi_match = true,
            "chain" => parts.chain = true,
            "skipafter" => {
                starter_only(self);
                parts.skip_after = Some(value.to_owned());
            }
            "setvar" => match parse_setvar(value) {
                Ok(setvar) => parts.setvars.push(setvar),
                Err(message) => self.issue(Some(id), "setvar", message),
            },
            "ctl" => self.ctl(id, value, parts),
            "initcol" => self.ignored(
                Some(id),
                "initcol",
                "persistent collections (ip, global) are not kept; no request-side CRS rule reads them",
            ),
            "status" => match value.trim().parse::<u16>() {
                Ok(status) if (200..=599).contains(&status) => parts.status = Some(status),
                _ => self.issue(Some(id), "status", format!("status \"{}\" is not 200 to 599", value.escape_default())),
            },
            "pass" | "block" | "deny" | "drop" => {
                starter_only(self);
                parts.disruptive = Some(match name {
                    "pass" => "pass",
                    "block" => "block",
                    "deny" => "deny",
                    _ => "drop",
                });
            }
            other if METADATA_ACTIONS.contains(&other) => {}
            _ => self.issue(Some(id), name, "unsupported action".into()),
        }
    }

    fn ctl(&mut self, id: u32, value: &str, parts: &mut RuleActions) {
        let name = value.split('=').next().unwrap_or_default().trim().to_ascii_lowercase();
        let written = value.split('=').next().unwrap_or_default().trim();
        match name.as_str() {
            "auditengine" | "auditlogparts" => self.ignored(
                Some(id),
                &format!("ctl:{written}"),
                "no audit log engine: the decision line is the audit record",
            ),
            "forcerequestbodyvariable" => self.ignored(
                Some(id),
                "ctl:forceRequestBodyVariable",
                "REQUEST_BODY always holds the body of every non-multipart request",
            ),
            _ => match parse_ctl(value) {
                Ok(ctl) => parts.ctls.push(ctl),
                Err(message) => {
                    let feature = format!("ctl:{}", value.split('=').next().unwrap_or_default().trim());
                    self.issue(Some(id), &feature, message);
                }
            },
        }
    }

    /// The rule (and whether it continues a chain), or `None` after an issue.
    fn build_rule(
        &mut self,
        id: u32,
        variables: Option<&str>,
        operator: &str,
        parts: RuleActions,
    ) -> Option<(Rule, bool)> {
        let mut targets: Vec<Target> = Vec::new();
        let mut exclusions: Vec<Exclusion> = Vec::new();
        for text in variables.map(split_variables).unwrap_or_default() {
            match parse_target(text) {
                Ok(TargetSpec::Read(target)) => targets.push(target),
                Ok(TargetSpec::Exclude(exclusion)) => exclusions.push(exclusion),
                Err(message) => {
                    let feature = text.trim_start_matches(['!', '&']).split(':').next().unwrap_or(text).to_owned();
                    self.issue(Some(id), &feature, message);
                }
            }
        }
        let operator = match parse_operator(operator, self.data_files) {
            Ok(operator) => operator,
            Err(error) => {
                let feature =
                    operator.trim_start_matches('!').split_whitespace().next().unwrap_or("operator").to_owned();
                self.issue(Some(id), &feature, error.0);
                return None;
            }
        };
        if variables.is_some()
            && targets.is_empty()
            && !matches!(operator.kind, OperatorKind::UnconditionalMatch | OperatorKind::NoMatch)
        {
            self.issue(Some(id), "variables", "a rule needs at least one variable to read".into());
        }
        let mut pipeline = Pipeline::new();
        for name in &parts.transforms {
            match TransformName::parse(name) {
                Ok(TransformName::None) => pipeline.clear(),
                Ok(TransformName::Apply(transform)) => pipeline.push(transform),
                Err(error) => self.issue(Some(id), &format!("t:{name}"), error.to_string()),
            }
        }
        let phase = match parts.phase {
            Some(1) => Phase::RequestHeaders,
            Some(phase @ 3..=5) => {
                self.issue(
                    Some(id),
                    &format!("phase:{phase}"),
                    "response phases are not run (request rules only)".into(),
                );
                Phase::RequestBody
            }
            _ => Phase::RequestBody,
        };
        let disruptive = match parts.disruptive {
            Some("deny" | "drop") => Disruptive::Deny(parts.status),
            _ => Disruptive::Pass,
        };
        let rule = Rule {
            id,
            phase,
            targets,
            exclusions,
            pipeline,
            operator,
            msg: parts.msg,
            severity: parts.severity,
            tags: parts.tags,
            paranoia: 0,
            disruptive,
            log: parts.log.unwrap_or(true),
            capture: parts.capture,
            setvars: parts.setvars,
            ctls: parts.ctls,
            skip_after: parts.skip_after,
            multi_match: parts.multi_match,
            chain: None,
        };
        Some((rule, parts.chain))
    }
}

/// Links a chain's rules: the first carries the ID and metadata, each one the next.
fn nest(links: Vec<Rule>) -> Option<Rule> {
    let mut current: Option<Rule> = None;
    for mut link in links.into_iter().rev() {
        link.chain = current.map(Box::new);
        current = Some(link);
    }
    current
}

/// `1`–`5`, `request` (2), `response` (4), `logging` (5).
fn parse_phase(text: &str) -> Option<u8> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" => Some(1),
        "2" | "request" => Some(2),
        "3" => Some(3),
        "4" | "response" => Some(4),
        "5" | "logging" => Some(5),
        _ => None,
    }
}

/// ModSecurity's eight severities; the four CRS uses map onto [`Severity`], the others are
/// kept as no severity (metadata only for SecLang rules).
fn parse_severity(text: &str) -> Result<Option<Severity>, String> {
    if let Some(severity) = Severity::parse(text) {
        return Ok(Some(severity));
    }
    match text.trim().to_ascii_lowercase().as_str() {
        "0" | "emergency" | "1" | "alert" | "6" | "info" | "7" | "debug" => Ok(None),
        _ => Err(format!("unknown severity \"{}\"", text.escape_default())),
    }
}

/// The `id:` of an action text that did not parse (for naming the rule in the issue).
fn id_in_text(text: &str) -> Option<u32> {
    let at = text.find("id:")?;
    let digits: String = text.get(at + 3..)?.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Splits `ARGS|!ARGS:/a|b/|REQUEST_HEADERS:'x|y'` on the `|` that separate variables (not
/// those inside a `/regex/` key or a quoted key).
pub fn split_variables(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut index = 0;
    let mut in_regex = false;
    let mut in_quote = false;
    while let Some(&byte) = bytes.get(index) {
        if in_regex {
            match byte {
                b'\\' => index += 1,
                b'/' => in_regex = false,
                _ => {}
            }
        } else if in_quote {
            if byte == b'\'' {
                in_quote = false;
            }
        } else {
            match byte {
                b'|' => {
                    parts.push(text.get(start..index).unwrap_or_default().trim());
                    start = index + 1;
                }
                // `XML:/*` and `XML://@*` are XPath expressions, not `/regex/` keys.
                b':' if bytes.get(index + 1) == Some(&b'/')
                    && !text
                        .get(start..index)
                        .unwrap_or_default()
                        .trim_start_matches(['!', '&'])
                        .eq_ignore_ascii_case("xml") =>
                {
                    in_regex = true;
                    index += 1;
                }
                b':' if bytes.get(index + 1) == Some(&b'\'') => {
                    in_quote = true;
                    index += 1;
                }
                _ => {}
            }
        }
        index += 1;
    }
    parts.push(text.get(start..).unwrap_or_default().trim());
    parts.retain(|part| !part.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Loaded {
        let data = HashMap::from([("words.data".to_string(), vec!["# c".to_string(), "alpha".into(), "beta".into()])]);
        let mut loader = Loader::new(&data);
        loader.load("test.conf", text);
        loader.finish()
    }

    fn rule(loaded: &Loaded, index: usize) -> &Rule {
        match &loaded.items[index] {
            RuleItem::Rule(rule) => rule,
            RuleItem::Marker(name) => panic!("marker {name}"),
        }
    }

    #[test]
    fn variables_split_outside_regex_and_quotes() {
        assert_eq!(
            split_variables("ARGS|!ARGS:/a|b/|REQUEST_HEADERS:'x|y'|XML:/*"),
            vec!["ARGS", "!ARGS:/a|b/", "REQUEST_HEADERS:'x|y'", "XML:/*"]
        );
        assert_eq!(split_variables("TX:/^a\\/b|c/|&TX:x"), vec!["TX:/^a\\/b|c/", "&TX:x"]);
        assert_eq!(split_variables("ARGS|XML:/*|XML://@*"), vec!["ARGS", "XML:/*", "XML://@*"]);
    }

    #[test]
    fn a_crs_style_rule_translates() {
        let loaded = load(
            r#"SecDefaultAction "phase:2,log,auditlog,pass"
SecRule REQUEST_COOKIES|!REQUEST_COOKIES:/__utm/|ARGS_NAMES|ARGS "@rx (?i)union\s+select" \
    "id:942100,\
    phase:2,\
    block,\
    capture,\
    t:none,t:urlDecodeUni,\
    msg:'SQL Injection, union',\
    logdata:'Matched Data: %{TX.0}',\
    tag:'attack-sqli',\
    severity:'CRITICAL',\
    multiMatch,\
    setvar:'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}'"
"#,
        );
        assert!(loaded.issues.is_empty(), "{:?}", loaded.issues);
        let rule = rule(&loaded, 0);
        assert_eq!(rule.id, 942100);
        assert_eq!(rule.phase, Phase::RequestBody);
        assert_eq!(rule.targets.len(), 3);
        assert_eq!(rule.exclusions.len(), 1);
        assert_eq!(rule.pipeline.len(), 1);
        assert_eq!(rule.msg.as_deref(), Some("SQL Injection, union"));
        assert_eq!(rule.tags, vec!["attack-sqli"]);
        assert_eq!(rule.disruptive, Disruptive::Pass, "block resolves to the default action's pass");
        assert!(rule.capture && rule.multi_match && rule.log);
        assert_eq!(rule.setvars.len(), 1, "no severity points are added: the rule scores itself");
        assert_eq!(rule.paranoia, 0);
    }

    #[test]
    fn block_takes_a_deny_default_with_its_status() {
        let loaded = load(
            "SecDefaultAction \"phase:1,deny,status:406,nolog\"\nSecRule ARGS \"@contains x\" \"id:5,phase:1,block\"\nSecRule ARGS \"@contains y\" \"id:6,phase:1,pass,log\"\nSecRule ARGS \"@contains z\" \"id:7,phase:2\"",
        );
        assert!(loaded.issues.is_empty(), "{:?}", loaded.issues);
        assert_eq!(rule(&loaded, 0).disruptive, Disruptive::Deny(Some(406)));
        assert!(!rule(&loaded, 0).log);
        assert_eq!(rule(&loaded, 1).disruptive, Disruptive::Pass);
        assert!(rule(&loaded, 1).log);
        assert_eq!(rule(&loaded, 2).disruptive, Disruptive::Pass, "phase 2 has ModSecurity's default: pass");
    }

    #[test]
    fn chains_nest_and_markers_and_actions_load() {
        let loaded = load(
            r#"SecAction "id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level=1"
SecRule TX:DETECTION_PARANOIA_LEVEL "@lt 1" "id:911011,phase:1,pass,nolog,skipAfter:END-911"
SecRule REQUEST_METHOD "!@within %{tx.allowed_methods}" "id:911100,phase:1,block,chain"
    SecRule REQUEST_HEADERS:Host "@pmFromFile words.data" "t:lowercase,chain"
        SecRule MATCHED_VAR "@rx a" "setvar:'tx.x=+1'"
SecMarker "END-911"
"#,
        );
        assert!(loaded.issues.is_empty(), "{:?}", loaded.issues);
        assert_eq!(loaded.items.len(), 4);
        let action = rule(&loaded, 0);
        assert!(matches!(action.operator.kind, OperatorKind::UnconditionalMatch));
        assert!(action.targets.is_empty() && !action.log);
        assert_eq!(rule(&loaded, 1).skip_after.as_deref(), Some("END-911"));
        let chained = rule(&loaded, 2);
        let second = chained.chain.as_ref().unwrap();
        let third = second.chain.as_ref().unwrap();
        assert!(chained.operator.negated);
        assert!(matches!(second.operator.kind, OperatorKind::Pm(_)));
        assert_eq!(third.setvars.len(), 1);
        assert!(third.chain.is_none());
        assert!(matches!(&loaded.items[3], RuleItem::Marker(name) if name == "END-911"));
    }

    #[test]
    fn exclusion_directives_apply_to_all_items() {
        let loaded = load(
            r#"SecRule ARGS "@rx a" "id:1,phase:2,tag:'t1'"
SecRule ARGS "@rx b" "id:2,phase:2,tag:'t2'"
SecRule ARGS "@rx c" "id:3,phase:2"
SecRule ARGS "@rx d" "id:4,phase:2"
SecRuleRemoveById 1 10-20
SecRuleRemoveByTag t2
SecRuleUpdateTargetById 3 "!ARGS:password|REQUEST_HEADERS:x-a"
SecRuleUpdateTargetByTag attack "!ARGS:q"
"#,
        );
        assert!(loaded.issues.is_empty(), "{:?}", loaded.issues);
        let mut items = loaded.items.clone();
        loaded.apply_exclusions(&mut items);
        let ids: Vec<u32> = items
            .iter()
            .filter_map(|item| match item {
                RuleItem::Rule(rule) => Some(rule.id),
                RuleItem::Marker(_) => None,
            })
            .collect();
        assert_eq!(ids, vec![3, 4]);
        let RuleItem::Rule(three) = &items[0] else { panic!() };
        assert_eq!(three.exclusions.len(), 1);
        assert_eq!(three.targets.len(), 2);
    }

    #[test]
    fn ignored_features_are_listed_not_silent() {
        let loaded = load(
            "SecComponentSignature \"OWASP_CRS/4.28.0\"\nSecAction \"id:1,phase:1,pass,nolog,initcol:global=global,ctl:auditEngine=Off\"",
        );
        assert!(loaded.issues.is_empty(), "{:?}", loaded.issues);
        let features: Vec<&str> = loaded.ignored.iter().map(|issue| issue.feature.as_str()).collect();
        assert_eq!(features, vec!["SecComponentSignature", "initcol", "ctl:auditEngine"]);
        assert_eq!(loaded.items.len(), 1);
    }

    #[test]
    fn unsupported_features_name_the_rule_and_feature() {
        let cases = [
            ("SecRule REMOTE_HOST \"@rx a\" \"id:11,phase:1\"", Some(11), "REMOTE_HOST"),
            ("SecRule ARGS \"@rbl sbl.example\" \"id:12,phase:1\"", Some(12), "@rbl"),
            ("SecRule ARGS \"@rx a\" \"id:13,phase:1,t:sqlHexDecode\"", Some(13), "t:sqlHexDecode"),
            ("SecRule ARGS \"@rx a\" \"id:14,phase:1,exec:/bin/x\"", Some(14), "exec"),
            ("SecRule ARGS \"@rx a\" \"id:15,phase:1,ctl:ruleEngine=Off\"", Some(15), "ctl:ruleEngine"),
            ("SecRule ARGS \"@rx a\" \"id:16,phase:4\"", Some(16), "phase:4"),
            ("SecRule ARGS \"@rx a\" \"id:17,phase:1,setvar:ip.x=1\"", Some(17), "setvar"),
            ("SecRule ARGS \"@rx a\" \"id:18,phase:1,expirevar:tx.x=10\"", Some(18), "expirevar"),
            ("SecRule ARGS \"@rx a\" \"id:19,chain\"\nSecRule ARGS \"@rx b\" \"id:20\"", Some(19), "id"),
            ("SecRule ARGS \"@rx a\" \"id:21,chain\"\nSecMarker X", Some(21), "chain"),
            ("SecRule ARGS \"@rx a\" \"phase:1\"", None, "id"),
            ("SecRule ARGS \"@rx a\" \"id:22,msg:'x\"", Some(22), "actions"),
            ("SecRuleEngine DetectionOnly", None, "SecRuleEngine"),
            ("SecRuleScript x.lua", None, "SecRuleScript"),
            ("SecRule ARGS \"@pmFromFile nope.data\" \"id:23\"", Some(23), "@pmFromFile"),
            ("SecRule ARGS", None, "SecRule"),
            ("SecRule ARGS \"@rx a\" \"id:24,severity:LOUD\"", Some(24), "severity"),
        ];
        for (text, id, feature) in cases {
            let loaded = load(text);
            let issue = loaded.issues.first().unwrap_or_else(|| panic!("{text}: no issue"));
            assert_eq!(issue.rule_id, id, "{text}: {issue}");
            assert_eq!(issue.feature, feature, "{text}: {issue}");
            assert_eq!(issue.source, "test.conf");
            assert!(
                loaded.items.iter().all(|item| !matches!(item, RuleItem::Rule(rule) if Some(rule.id) == id)),
                "{text}: a rule with an issue is not loaded"
            );
        }
    }

    #[test]
    fn issues_carry_the_line() {
        let loaded = load("# comment\nSecMarker A\n\nSecRule ARGS \"@rx a\" \\\n  \"id:30,phase:1,bogus\"\n");
        let issue = &loaded.issues[0];
        assert_eq!(issue.line, 4);
        assert_eq!(issue.to_string(), "test.conf:4: rule 30: bogus: unsupported action");
    }
}
