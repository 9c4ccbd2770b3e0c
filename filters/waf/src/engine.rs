//! The rule engine: compiles a rule list once (pipelines interned, every `@rx` of a pipeline and
//! value class grouped into one multi-pattern automaton), then evaluates requests phase by phase
//! with CRS semantics (chains, `skipAfter` markers, `setvar`, `ctl`, paranoia levels).
//!
//! Per request, a value is transformed once per distinct pipeline and scanned once per pipeline:
//! the set of patterns that matched is cached, so the tenth `@rx` rule over `ARGS` with the same
//! transformations costs a lookup, not a scan.

use crate::automaton::Automaton;
use crate::body::{self, BodyProcessor};
use crate::macros::{MacroVariable, Template};
use crate::operator::{self, OperatorKind, OperatorSpec};
use crate::request::{Collections, Source, SourceSet};
use crate::rule::{
    Ctl, Disruptive, Exclusion, ForcedBodyProcessor, KeySelector, Phase, Rule, RuleItem, RuleSelector, SetOperation,
    SetVar, Target, Variable, error_summary,
};
use crate::transform::{Pipeline, Transform, apply_pipeline};
use regex_automata::meta::Regex;
use regex_automata::util::syntax::Config as SyntaxConfig;
use regex_automata::{Input, PatternSet};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt;

/// Value classes scanned with separate automata: arguments and bodies, headers, the request
/// line and its parts, and transaction / match variables (not cached).
const CLASS_COUNT: usize = 4;
const DYNAMIC_CLASS: usize = 3;

/// Longest matched value kept for the audit line (the log escapes and truncates it again).
const MAX_RECORDED_VALUE: usize = 256;

/// How patterns are read: bytes, not UTF-8 (a request may hold any byte), ASCII classes and
/// case folding, as PCRE without UTF mode does for ModSecurity.
pub fn regex_syntax() -> SyntaxConfig {
    SyntaxConfig::new().utf8(false).unicode(false)
}

/// A rule that cannot be compiled: its ID, the field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub rule_id: u32,
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {}: {}: {}", self.rule_id, self.field, self.message)
    }
}

/// Checks a pattern alone (used by configuration parsers to name the field; the automaton
/// build reports what parsing cannot, such as size limits).
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    regex_automata::util::syntax::parse_with(pattern, &regex_syntax())
        .map(|_| ())
        .map_err(|error| format!("invalid regex: {}", error_summary(&error.to_string())))
}

/// A standalone regex for `capture`, built the first time its rule matches: most capturing
/// rules never match, and compiling hundreds of CRS patterns twice would double start-up.
#[derive(Debug)]
struct CaptureRegex {
    pattern: String,
    regex: OnceCell<Option<Regex>>,
}

impl CaptureRegex {
    fn get(&self) -> Option<&Regex> {
        self.regex.get_or_init(|| Regex::builder().syntax(regex_syntax()).build(&self.pattern).ok()).as_ref()
    }
}

/// A compiled operator.
#[derive(Debug)]
enum Operator {
    /// Global regex ID and a standalone regex when the rule captures.
    Rx {
        id: u32,
        capture: Option<Box<CaptureRegex>>,
    },
    Other(Box<OperatorKind>),
}

/// The automaton group per value class of one pipeline (`@rx` only).
type Groups = [Option<u32>; CLASS_COUNT];

/// One link of a rule chain.
#[derive(Debug)]
struct Link {
    targets: Vec<Target>,
    exclusions: Vec<Exclusion>,
    /// The pipelines the operator runs after, with their automaton groups: one, or with
    /// `multiMatch` the value before and after each transformation (first match wins).
    pipelines: Vec<(u16, Groups)>,
    operator: Operator,
    negated: bool,
    capture: bool,
    setvars: Vec<SetVar>,
    ctls: Vec<Ctl>,
}

#[derive(Debug)]
struct CompiledRule {
    id: u32,
    phase: Phase,
    paranoia: u8,
    tags: Vec<String>,
    msg: Option<String>,
    disruptive: Disruptive,
    log: bool,
    skip_after: Option<usize>,
    /// The regex ID that must have matched some value for this rule to be able to match (a
    /// non-negated `@rx` first link over request values only); checked before any evaluation.
    rx_gate: Option<u32>,
    links: Vec<Link>,
}

#[derive(Debug)]
enum Item {
    Rule(CompiledRule),
    Marker,
}

/// Every `@rx` of one pipeline and value class as one automaton.
#[derive(Debug)]
struct RxGroup {
    regex: Automaton,
    /// Pattern index in the automaton → global regex ID.
    ids: Vec<u32>,
    /// The pipeline its values are transformed with.
    pipeline: u16,
    /// The request collections its rules read, with the keys read (`None`: every key), scanned
    /// up front (see `Transaction::prescan`).
    sources: Vec<(Source, Option<Vec<Vec<u8>>>)>,
}

/// A compiled rule list.
#[derive(Debug)]
pub struct Ruleset {
    items: Vec<Item>,
    pipelines: Vec<Pipeline>,
    groups: Vec<RxGroup>,
    /// Number of global regex IDs (bits in a scan result).
    rx_count: usize,
    /// Patterns in the largest automaton (the scan scratch capacity).
    max_group_len: usize,
    rule_count: usize,
    uses_remote_addr: bool,
    uses_protocol: bool,
    used_sources: SourceSet,
}

impl Ruleset {
    /// Compiles `items` (already validated field by field by their parser; what fails here is
    /// named by rule ID).
    pub fn compile(items: Vec<RuleItem>) -> Result<Self, CompileError> {
        let mut builder = Builder::default();
        let mut markers: HashMap<String, usize> = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            if let RuleItem::Marker(name) = item {
                markers.insert(name.clone(), index);
            }
        }
        let mut seen_ids: HashMap<u32, ()> = HashMap::new();
        let mut compiled = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            match item {
                RuleItem::Marker(_) => compiled.push(Item::Marker),
                RuleItem::Rule(rule) => {
                    if seen_ids.insert(rule.id, ()).is_some() {
                        return Err(CompileError {
                            rule_id: rule.id,
                            field: "id",
                            message: "duplicate rule ID".into(),
                        });
                    }
                    let skip_after = match &rule.skip_after {
                        None => None,
                        Some(name) => match markers.get(name) {
                            Some(&marker) if marker > index => Some(marker),
                            Some(_) => {
                                return Err(CompileError {
                                    rule_id: rule.id,
                                    field: "skip_after",
                                    message: format!("marker \"{}\" comes before the rule", name.escape_default()),
                                });
                            }
                            None => {
                                return Err(CompileError {
                                    rule_id: rule.id,
                                    field: "skip_after",
                                    message: format!("no marker \"{}\"", name.escape_default()),
                                });
                            }
                        },
                    };
                    compiled.push(Item::Rule(builder.rule(*rule, skip_after)?));
                }
            }
        }
        let groups = builder.build_groups()?;
        let max_group_len = groups.iter().map(|group| group.regex.pattern_len()).max().unwrap_or(0);
        let rule_count = compiled.iter().filter(|item| matches!(item, Item::Rule(_))).count();
        Ok(Self {
            items: compiled,
            pipelines: builder.pipelines,
            groups,
            rx_count: builder.next_rx as usize,
            max_group_len,
            rule_count,
            uses_remote_addr: builder.uses_remote_addr,
            uses_protocol: builder.uses_protocol,
            used_sources: builder.used_sources.unwrap_or_else(SourceSet::empty),
        })
    }

    /// Number of rules (chains count once).
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Number of multi-pattern automata.
    pub fn automaton_count(&self) -> usize {
        self.groups.len()
    }

    /// Automata searched by the PikeVM alone (their NFA is too large for the lazy DFA's cache).
    pub fn automata_without_dfa(&self) -> usize {
        self.groups.iter().filter(|group| !group.regex.has_dfa()).count()
    }

    /// Number of distinct transformation pipelines.
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.len()
    }

    /// Whether a rule reads `REMOTE_ADDR` (the stage reads the source address only then).
    pub fn uses_remote_addr(&self) -> bool {
        self.uses_remote_addr
    }

    /// The request collections some rule reads (a request fills only those).
    pub fn used_sources(&self) -> SourceSet {
        self.used_sources
    }

    /// Whether a rule reads `REQUEST_PROTOCOL` or `REQUEST_LINE`.
    pub fn uses_protocol(&self) -> bool {
        self.uses_protocol
    }

    /// The IDs of every rule, in order.
    pub fn rule_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.items.iter().filter_map(|item| match item {
            Item::Rule(rule) => Some(rule.id),
            Item::Marker => None,
        })
    }
}

/// A group being collected.
struct PendingGroup {
    pipeline: u16,
    class: usize,
    patterns: Vec<String>,
    ids: Vec<u32>,
    /// The rule of each pattern (to name it when the group does not compile).
    rule_ids: Vec<u32>,
    sources: Vec<(Source, Option<Vec<Vec<u8>>>)>,
}

#[derive(Default)]
struct Builder {
    pipelines: Vec<Pipeline>,
    pipeline_ids: HashMap<Pipeline, u16>,
    /// (pipeline, class) → (patterns, global IDs), in insertion order.
    group_patterns: Vec<PendingGroup>,
    next_rx: u32,
    uses_remote_addr: bool,
    uses_protocol: bool,
    /// `None` until the first rule.
    used_sources: Option<SourceSet>,
}

impl Builder {
    fn rule(&mut self, rule: Rule, skip_after: Option<usize>) -> Result<CompiledRule, CompileError> {
        let id = rule.id;
        let mut links = Vec::new();
        let Rule { phase, paranoia, tags, msg, disruptive, log, chain, .. } = rule.clone();
        let mut next = Some(Box::new(rule));
        while let Some(link) = next {
            let mut link = *link;
            next = link.chain.take();
            links.push(self.link(id, link)?);
        }
        drop(chain);
        let rx_gate = match links.first() {
            Some(Link { operator: Operator::Rx { id, .. }, negated: false, pipelines, .. })
                if pipelines.iter().all(|(_, groups)| groups.get(DYNAMIC_CLASS).is_some_and(Option::is_none)) =>
            {
                Some(*id)
            }
            _ => None,
        };
        Ok(CompiledRule { id, phase, paranoia, tags, msg, disruptive, log, skip_after, rx_gate, links })
    }

    fn link(&mut self, id: u32, rule: Rule) -> Result<Link, CompileError> {
        let mut pipeline_ids = Vec::new();
        if rule.multi_match {
            for length in 0..rule.pipeline.len() {
                pipeline_ids.push(self.pipeline(rule.pipeline.get(..length).unwrap_or_default().to_vec()));
            }
        }
        pipeline_ids.push(self.pipeline(rule.pipeline));
        let used = self.used_sources.get_or_insert_with(SourceSet::empty);
        let mut templates: Vec<&Template> = rule.operator.kind.template().into_iter().collect();
        for setvar in &rule.setvars {
            if let SetOperation::Set(template) | SetOperation::Add(template) | SetOperation::Subtract(template) =
                &setvar.operation
            {
                templates.push(template);
            }
        }
        // A macro naming a request collection may read any of them: keep them all.
        let reads_request_macro = templates.iter().flat_map(|template| template.variables()).any(|variable| {
            !matches!(variable.collection.as_str(), "tx" | "matched_var" | "matched_var_name" | "rule")
        });
        if reads_request_macro {
            *used = SourceSet::all();
        }
        for target in &rule.targets {
            for source in target.variable.sources() {
                used.insert(*source);
            }
        }
        for target in &rule.targets {
            for source in target.variable.sources() {
                self.uses_remote_addr |= *source == Source::RemoteAddr;
                self.uses_protocol |= matches!(source, Source::RequestProtocol | Source::RequestLine);
            }
        }
        let OperatorSpec { negated, kind } = rule.operator;
        let mut pipelines: Vec<(u16, Groups)> =
            pipeline_ids.iter().map(|&pipeline| (pipeline, [None; CLASS_COUNT])).collect();
        let operator = match kind {
            OperatorKind::Rx(pattern) => {
                let rx_id = self.next_rx;
                self.next_rx += 1;
                // The sources read per value class; counts and non-request variables are dynamic.
                let mut classes: [Vec<(Source, Option<Vec<u8>>)>; CLASS_COUNT] = Default::default();
                let mut dynamic = false;
                for target in &rule.targets {
                    match target.variable {
                        Variable::Request(sources) if !target.count => {
                            let key = match &target.selector {
                                KeySelector::Exact(key) => Some(key.clone()),
                                _ => None,
                            };
                            for source in sources {
                                if let Some(list) = classes.get_mut(source.scan_class()) {
                                    list.push((*source, key.clone()));
                                }
                            }
                        }
                        _ => dynamic = true,
                    }
                }
                for (pipeline, groups) in &mut pipelines {
                    for (class, sources) in classes.iter().enumerate() {
                        let used = if class == DYNAMIC_CLASS { dynamic } else { !sources.is_empty() };
                        if used && let Some(slot) = groups.get_mut(class) {
                            *slot = Some(self.add_pattern(*pipeline, class, &pattern, rx_id, id, sources));
                        }
                    }
                }
                let capture =
                    rule.capture.then(|| Box::new(CaptureRegex { pattern: pattern.clone(), regex: OnceCell::new() }));
                Operator::Rx { id: rx_id, capture }
            }
            other => Operator::Other(Box::new(other)),
        };
        Ok(Link {
            targets: rule.targets,
            exclusions: rule.exclusions,
            pipelines,
            operator,
            negated,
            capture: rule.capture,
            setvars: rule.setvars,
            ctls: rule.ctls,
        })
    }

    fn pipeline(&mut self, pipeline: Pipeline) -> u16 {
        if let Some(&id) = self.pipeline_ids.get(&pipeline) {
            return id;
        }
        let id = u16::try_from(self.pipelines.len()).unwrap_or(u16::MAX);
        self.pipelines.push(pipeline.clone());
        self.pipeline_ids.insert(pipeline, id);
        id
    }

    /// Adds a pattern (read from `sources`) to its group; returns the group's index.
    fn add_pattern(
        &mut self,
        pipeline: u16,
        class: usize,
        pattern: &str,
        rx_id: u32,
        rule_id: u32,
        sources: &[(Source, Option<Vec<u8>>)],
    ) -> u32 {
        // Request values of every class share one automaton per pipeline: a pattern read from
        // arguments, headers and the URI is compiled once, not once per class.
        let class = if class == DYNAMIC_CLASS { DYNAMIC_CLASS } else { 0 };
        let index =
            match self.group_patterns.iter().position(|group| group.pipeline == pipeline && group.class == class) {
                Some(index) => index,
                None => {
                    self.group_patterns.push(PendingGroup {
                        pipeline,
                        class,
                        patterns: Vec::new(),
                        ids: Vec::new(),
                        rule_ids: Vec::new(),
                        sources: Vec::new(),
                    });
                    self.group_patterns.len() - 1
                }
            };
        if let Some(group) = self.group_patterns.get_mut(index) {
            if group.ids.last() != Some(&rx_id) {
                group.patterns.push(pattern.to_owned());
                group.ids.push(rx_id);
                group.rule_ids.push(rule_id);
            }
            for (source, key) in sources {
                match group.sources.iter_mut().find(|(known, _)| known == source) {
                    None => group.sources.push((*source, key.clone().map(|key| vec![key]))),
                    Some((_, keys)) => match (keys.as_mut(), key) {
                        (Some(keys), Some(key)) => {
                            if !keys.contains(key) {
                                keys.push(key.clone());
                            }
                        }
                        (_, None) => *keys = None,
                        (None, Some(_)) => {}
                    },
                }
            }
        }
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    fn build_groups(&mut self) -> Result<Vec<RxGroup>, CompileError> {
        let mut groups = Vec::with_capacity(self.group_patterns.len());
        for PendingGroup { pipeline, patterns, ids, rule_ids, sources, .. } in std::mem::take(&mut self.group_patterns)
        {
            let regex = Automaton::build(&patterns).map_err(|error| {
                // Patterns are compiled once, as a group; only a failing group is taken
                // apart to name the rule.
                for (pattern, rule_id) in patterns.iter().zip(&rule_ids) {
                    if let Err(message) = check_pattern(pattern) {
                        return CompileError { rule_id: *rule_id, field: "operator", message };
                    }
                }
                CompileError {
                    rule_id: rule_ids.first().copied().unwrap_or(0),
                    field: "operator",
                    message: format!("regex group of {} patterns: {}", patterns.len(), error_summary(&error)),
                }
            })?;
            groups.push(RxGroup { regex, ids, pipeline, sources });
        }
        Ok(groups)
    }
}

/// A rule that matched, for the audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    pub rule_id: u32,
    /// `ARGS:q`, `REQUEST_HEADERS:user-agent`, `REQUEST_URI`.
    pub target: String,
    /// The transformed value the operator matched (bounded).
    pub value: Vec<u8>,
    pub msg: Option<String>,
    /// The rule logs (`log`, the default); `nolog` matches are kept for the hit counters only.
    pub log: bool,
}

/// Why evaluation stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interruption {
    pub rule_id: u32,
    /// The rule's status, if it set one.
    pub status: Option<u16>,
}

/// What a route or the policy removes before evaluation starts.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    pub removed_rules: Vec<RuleSelector>,
    pub removed_targets: Vec<(RuleSelector, Exclusion)>,
}

/// One value's cached work for one pipeline.
#[derive(Default)]
struct CacheEntry {
    /// The transformed value; `None` when the pipeline left it unchanged.
    transformed: Option<Vec<u8>>,
    /// Bit per global regex ID: the patterns that matched; `None` until a rule asked.
    rx: Option<Box<[u64]>>,
}

/// Per-request cache: a dense table indexed by (entry ID, pipeline).
#[derive(Default)]
struct Cache {
    /// `slot[id * pipelines + pipeline]` → index into `entries` (`u32::MAX`: not computed).
    slots: Vec<u32>,
    entries: Vec<CacheEntry>,
    /// Reused for every scan; sized for the largest automaton.
    scratch: Option<PatternSet>,
}

/// A value under test: its cache ID (`None` for transaction and match variables), its scan class
/// and its bytes.
struct Candidate<'a> {
    id: Option<u32>,
    class: usize,
    raw: &'a [u8],
}

/// The parts of a transaction an operator may read (for macro expansion).
struct Context<'a> {
    tx: &'a HashMap<String, Vec<u8>>,
    collections: &'a Collections,
    dynamic: &'a [(String, Vec<u8>)],
}

/// One request's evaluation state.
pub struct Transaction {
    collections: Collections,
    cache: Cache,
    tx: HashMap<String, Vec<u8>>,
    paranoia: u8,
    exclusions: Exclusions,
    matched: Vec<RuleMatch>,
    interruption: Option<Interruption>,
    /// Scratch for the chain: values (names) the previous link matched.
    matched_vars: Vec<(String, Vec<u8>)>,
    /// Bit per regex ID: matched at least one request value (see [`Transaction::prescan`]).
    rx_seen: Vec<u64>,
    /// Entry IDs handed out when the last prescan ran (no new values: nothing to scan).
    prescanned: Option<u32>,
    /// SecLang `DetectionOnly`: a `deny` is recorded but evaluation goes on.
    detection_only: bool,
    /// Set by `ctl:requestBodyProcessor`.
    forced_processor: Option<ForcedBodyProcessor>,
}

impl Transaction {
    /// A transaction over `collections` at `paranoia`, with `exclusions` applied from the start
    /// and `tx` preset (CRS setup variables).
    pub fn new(collections: Collections, paranoia: u8, exclusions: Exclusions, tx: HashMap<String, Vec<u8>>) -> Self {
        Self {
            collections,
            cache: Cache::default(),
            tx,
            paranoia,
            exclusions,
            matched: Vec::new(),
            interruption: None,
            matched_vars: Vec::new(),
            rx_seen: Vec::new(),
            prescanned: None,
            detection_only: false,
            forced_processor: None,
        }
    }

    /// Detection only (SecLang `DetectionOnly`): a `deny` is recorded as the interruption but
    /// the remaining rules still run, so every rule that would match is reported.
    pub fn set_detection_only(&mut self, detection_only: bool) {
        self.detection_only = detection_only;
    }

    /// The body processor a `ctl:requestBodyProcessor` chose, if one did.
    pub fn forced_processor(&self) -> Option<ForcedBodyProcessor> {
        self.forced_processor
    }

    /// Scans every request value each automaton's rules read (once per value and pipeline,
    /// cached) and records which patterns matched anything: a rule whose pattern matched nothing
    /// is then skipped without looking at its targets. On a benign request that skips nearly
    /// every `@rx` rule.
    fn prescan(&mut self, ruleset: &Ruleset) {
        if self.prescanned == Some(self.collections.id_count()) {
            return;
        }
        self.prescanned = Some(self.collections.id_count());
        self.rx_seen.resize(ruleset.rx_count.div_ceil(64), 0);
        let pipeline_count = ruleset.pipelines.len().max(1);
        for (group_id, group) in ruleset.groups.iter().enumerate() {
            let group_id = u32::try_from(group_id).unwrap_or(u32::MAX);
            for (source, keys) in &group.sources {
                let source = *source;
                for entry in self.collections.get(source) {
                    if let Some(keys) = keys
                        && !keys.iter().any(|key| key.eq_ignore_ascii_case(&entry.key))
                    {
                        continue;
                    }
                    let Some(bits) =
                        cached_scan(ruleset, &mut self.cache, pipeline_count, group_id, source, entry.id, &entry.value)
                    else {
                        continue;
                    };
                    for (seen, word) in self.rx_seen.iter_mut().zip(bits.iter()) {
                        *seen |= word;
                    }
                }
            }
        }
    }

    /// Adds the parsed body (for phase 2).
    pub fn add_body(&mut self, processor: &BodyProcessor, body: &[u8]) {
        body::fill(&mut self.collections, processor, body);
    }

    /// The request collections.
    pub fn collections(&self) -> &Collections {
        &self.collections
    }

    /// Rules that matched, in order (`log` tells the logged ones).
    pub fn matched(&self) -> &[RuleMatch] {
        &self.matched
    }

    /// The rule that denied, if one did.
    pub fn interruption(&self) -> Option<Interruption> {
        self.interruption
    }

    /// A transaction variable as an integer (missing: 0).
    pub fn tx_number(&self, name: &str) -> i64 {
        self.tx.get(name).map_or(0, |value| operator::parse_number(value))
    }

    /// A transaction variable.
    pub fn tx_value(&self, name: &str) -> Option<&[u8]> {
        self.tx.get(name).map(Vec::as_slice)
    }

    /// Runs every rule of `phase`, in order, until one denies.
    pub fn run_phase(&mut self, ruleset: &Ruleset, phase: Phase) {
        let slots = self.collections.id_count() as usize * ruleset.pipelines.len().max(1);
        if self.cache.slots.len() < slots {
            self.cache.slots.resize(slots, u32::MAX);
            // Roughly one cached entry per value and pipeline in use: grow once, not per push.
            self.cache.entries.reserve(slots / 2);
        }
        if self.cache.scratch.is_none() && ruleset.max_group_len > 0 {
            self.cache.scratch = Some(PatternSet::new(ruleset.max_group_len));
        }
        self.prescan(ruleset);
        let mut index = 0;
        while let Some(item) = ruleset.items.get(index) {
            if self.interruption.is_some() && !self.detection_only {
                return;
            }
            index += 1;
            let Item::Rule(rule) = item else { continue };
            if rule.phase != phase || (rule.paranoia > self.paranoia) || self.rule_removed(rule) {
                continue;
            }
            if let Some(rx) = rule.rx_gate
                && !has_bit(&self.rx_seen, rx)
            {
                continue;
            }
            let Some(first_match) = self.evaluate_chain(ruleset, rule) else { continue };
            for link in &rule.links {
                for ctl in &link.ctls {
                    self.apply_ctl(ctl);
                }
            }
            let (target, mut value) = if rule.log { first_match } else { (String::new(), Vec::new()) };
            value.truncate(MAX_RECORDED_VALUE);
            self.matched.push(RuleMatch { rule_id: rule.id, target, value, msg: rule.msg.clone(), log: rule.log });
            if let Disruptive::Deny(status) = rule.disruptive {
                if self.interruption.is_none() {
                    self.interruption = Some(Interruption { rule_id: rule.id, status });
                }
                if !self.detection_only {
                    return;
                }
            }
            if let Some(marker) = rule.skip_after {
                index = marker + 1;
            }
        }
    }

    fn rule_removed(&self, rule: &CompiledRule) -> bool {
        !self.exclusions.removed_rules.is_empty()
            && self.exclusions.removed_rules.iter().any(|selector| selector.selects(rule.id, &rule.tags))
    }

    /// Evaluates every link; the first link's first match (name, value) when all matched.
    fn evaluate_chain(&mut self, ruleset: &Ruleset, rule: &CompiledRule) -> Option<(String, Vec<u8>)> {
        let mut first: Option<(String, Vec<u8>)> = None;
        for link in &rule.links {
            let (matches, captures) = self.evaluate_link(ruleset, rule, link);
            if matches.is_empty() {
                self.matched_vars.clear();
                return None;
            }
            // As ModSecurity does: a link's captures and `setvar`s take effect per matched
            // value as soon as the link matches (the next link may read them, and
            // `setvar:tx.counter_%{MATCHED_VAR_NAME}=+1` counts every name), even when a later
            // link of the chain then fails.
            for (matched, captured) in matches.iter().zip(captures) {
                for (key, value) in captured {
                    self.tx.insert(key, value);
                }
                for setvar in &link.setvars {
                    self.apply_setvar(setvar, std::slice::from_ref(matched));
                }
            }
            if first.is_none() {
                first = matches.first().cloned();
            }
            self.matched_vars = matches;
        }
        self.matched_vars.clear();
        first
    }

    /// Every (name, transformed value) of `link`'s targets that the operator matched.
    /// Every (name, transformed value) of `link`'s targets that the operator matched, with each
    /// match's captures (`TX:0`, `TX:1`… when the link captures).
    #[allow(clippy::type_complexity)]
    fn evaluate_link(
        &mut self,
        ruleset: &Ruleset,
        rule: &CompiledRule,
        link: &Link,
    ) -> (Vec<(String, Vec<u8>)>, Vec<Vec<(String, Vec<u8>)>>) {
        let mut matches = Vec::new();
        let mut match_captures: Vec<Vec<(String, Vec<u8>)>> = Vec::new();
        let dynamic = std::mem::take(&mut self.matched_vars);
        let pipeline_count = ruleset.pipelines.len().max(1);
        for target in &link.targets {
            let excluded = |key: &[u8]| -> bool {
                link.exclusions.iter().any(|exclusion| exclusion.excludes(target.name, key))
                    || self.exclusions.removed_targets.iter().any(|(selector, exclusion)| {
                        exclusion.excludes(target.name, key) && selector.selects(rule.id, &rule.tags)
                    })
            };
            let context = Context { tx: &self.tx, collections: &self.collections, dynamic: &dynamic };
            let mut count = 0usize;
            let mut record = |name: &[u8], value: Vec<u8>| {
                let mut captured = Vec::new();
                if link.capture
                    && let Operator::Rx { capture: Some(regex), .. } = &link.operator
                    && let Some(regex) = regex.get()
                {
                    capture_groups(&mut captured, regex, &value);
                }
                let name = if name.is_empty() {
                    target.name.to_owned()
                } else {
                    format!("{}:{}", target.name, String::from_utf8_lossy(name))
                };
                matches.push((name, value));
                match_captures.push(captured);
            };
            match target.variable {
                Variable::Request(sources) => {
                    for &source in sources {
                        for entry in self.collections.get(source) {
                            if !target.selector.matches(&entry.key) || excluded(&entry.key) {
                                continue;
                            }
                            count += 1;
                            if target.count {
                                continue;
                            }
                            let candidate =
                                Candidate { id: Some(entry.id), class: source.scan_class(), raw: &entry.value };
                            if let Some(value) =
                                test_value(ruleset, link, &mut self.cache, pipeline_count, &context, &candidate)
                            {
                                record(&entry.key, value);
                            }
                        }
                    }
                }
                _ => {
                    let values = dynamic_values(target.variable, &target.selector, &self.tx, &dynamic);
                    for (name, value) in &values {
                        if !target.selector.matches(name) || excluded(name) {
                            continue;
                        }
                        count += 1;
                        if target.count {
                            continue;
                        }
                        let candidate = Candidate { id: None, class: DYNAMIC_CLASS, raw: value };
                        if let Some(value) =
                            test_value(ruleset, link, &mut self.cache, pipeline_count, &context, &candidate)
                        {
                            let name: &[u8] =
                                if matches!(target.variable, Variable::MatchedVarName) { b"" } else { name };
                            record(name, value);
                        }
                    }
                }
            }
            if target.count {
                let count = count.to_string().into_bytes();
                let candidate = Candidate { id: None, class: DYNAMIC_CLASS, raw: &count };
                if let Some(value) = test_value(ruleset, link, &mut self.cache, pipeline_count, &context, &candidate) {
                    matches.push((format!("&{}", target.name), value));
                    match_captures.push(Vec::new());
                }
            }
        }
        // An operator with no targets (SecAction-like rules) tests once against nothing.
        if link.targets.is_empty() {
            let context = Context { tx: &self.tx, collections: &self.collections, dynamic: &dynamic };
            let candidate = Candidate { id: None, class: DYNAMIC_CLASS, raw: b"" };
            if let Some(value) = test_value(ruleset, link, &mut self.cache, pipeline_count, &context, &candidate) {
                matches.push((String::new(), value));
                match_captures.push(Vec::new());
            }
        }
        (matches, match_captures)
    }

    /// Applies a `setvar`; `matched` is what `%{MATCHED_VAR}` / `%{MATCHED_VAR_NAME}` read.
    fn apply_setvar(&mut self, setvar: &SetVar, matched: &[(String, Vec<u8>)]) {
        let expand = |template: &Template, tx: &HashMap<String, Vec<u8>>, collections: &Collections| {
            template.expand(|variable| macro_value(variable, tx, collections, matched))
        };
        let name: Cow<'_, str> = match &setvar.name_template {
            None => Cow::Borrowed(&setvar.name),
            Some(template) => {
                Cow::Owned(String::from_utf8_lossy(&expand(template, &self.tx, &self.collections)).to_ascii_lowercase())
            }
        };
        match &setvar.operation {
            SetOperation::Delete => {
                self.tx.remove(name.as_ref());
            }
            SetOperation::Set(template) => {
                let value = expand(template, &self.tx, &self.collections);
                self.tx.insert(name.into_owned(), value);
            }
            SetOperation::Add(template) | SetOperation::Subtract(template) => {
                let amount = operator::parse_number(&expand(template, &self.tx, &self.collections));
                let current = self.tx_number(&name);
                let result = if matches!(setvar.operation, SetOperation::Add(_)) {
                    current.saturating_add(amount)
                } else {
                    current.saturating_sub(amount)
                };
                self.tx.insert(name.into_owned(), result.to_string().into_bytes());
            }
        }
    }

    fn apply_ctl(&mut self, ctl: &Ctl) {
        match ctl {
            Ctl::RequestBodyProcessor(processor) => self.forced_processor = Some(*processor),
            Ctl::RemoveRules(selector) => self.exclusions.removed_rules.push(selector.clone()),
            Ctl::RemoveTarget(selector, exclusion) => {
                self.exclusions.removed_targets.push((selector.clone(), exclusion.clone()));
            }
        }
    }
}

/// The (name, value) pairs of a transaction or match variable.
fn dynamic_values(
    variable: Variable,
    selector: &KeySelector,
    tx: &HashMap<String, Vec<u8>>,
    dynamic: &[(String, Vec<u8>)],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    match variable {
        // One key (the common `TX:blocking_paranoia_level`): a lookup, not a copy of the map.
        Variable::Tx => match selector {
            KeySelector::Exact(key) => std::str::from_utf8(key)
                .ok()
                .and_then(|name| tx.get(name))
                .map(|value| vec![(key.clone(), value.clone())])
                .unwrap_or_default(),
            _ => {
                let mut values: Vec<(Vec<u8>, Vec<u8>)> = tx
                    .iter()
                    .filter(|(key, _)| selector.matches(key.as_bytes()))
                    .map(|(key, value)| (key.as_bytes().to_vec(), value.clone()))
                    .collect();
                values.sort();
                values
            }
        },
        Variable::MatchedVar => {
            dynamic.last().map(|(name, value)| vec![(name.as_bytes().to_vec(), value.clone())]).unwrap_or_default()
        }
        Variable::MatchedVarName => {
            dynamic.last().map(|(name, _)| vec![(Vec::new(), name.as_bytes().to_vec())]).unwrap_or_default()
        }
        Variable::MatchedVars => {
            dynamic.iter().map(|(name, value)| (name.as_bytes().to_vec(), value.clone())).collect()
        }
        Variable::MatchedVarsNames => {
            dynamic.iter().map(|(name, _)| (name.as_bytes().to_vec(), name.as_bytes().to_vec())).collect()
        }
        Variable::Request(_) | Variable::Xml => Vec::new(),
    }
}

/// `TX:0` (whole match) and `TX:1`… (groups) from a capturing rule, collected for the caller.
fn capture_groups(captured: &mut Vec<(String, Vec<u8>)>, regex: &Regex, value: &[u8]) {
    let mut captures = regex.create_captures();
    regex.captures(Input::new(value), &mut captures);
    for group in 0..captures.group_len().min(10) {
        let text = captures.get_group(group).and_then(|span| value.get(span.range())).unwrap_or_default();
        captured.push((group.to_string(), text.to_vec()));
    }
}

/// The value of a `%{…}` reference.
fn macro_value(
    variable: &MacroVariable,
    tx: &HashMap<String, Vec<u8>>,
    collections: &Collections,
    dynamic: &[(String, Vec<u8>)],
) -> Option<Vec<u8>> {
    let key = variable.key.as_deref();
    match variable.collection.as_str() {
        "tx" => tx.get(key?).cloned(),
        "matched_var" => dynamic.last().map(|(_, value)| value.clone()),
        "matched_var_name" => dynamic.last().map(|(name, _)| name.as_bytes().to_vec()),
        other => {
            // A variable may span several collections (`ARGS` is `ARGS_GET` then `ARGS_POST`):
            // `%{ARGS._method}` names a body argument as well as a query one, as in ModSecurity.
            let (variable, _) = Variable::parse(other)?;
            variable
                .sources()
                .iter()
                .find_map(|source| collections.first(*source, key.map(str::as_bytes)))
                .map(<[u8]>::to_vec)
        }
    }
}

/// Expands an operator parameter (no copy for literal text).
fn parameter<'t>(template: &'t Template, context: &Context<'_>) -> Cow<'t, [u8]> {
    match template.as_literal() {
        Some(bytes) => Cow::Borrowed(bytes),
        None => Cow::Owned(
            template.expand(|variable| macro_value(variable, context.tx, context.collections, context.dynamic)),
        ),
    }
}

/// Transforms (through the cache) and tests one value; the transformed value when the rule's
/// operator (with negation) matched. With `multiMatch` each pipeline is tried in turn.
fn test_value(
    ruleset: &Ruleset,
    link: &Link,
    cache: &mut Cache,
    pipeline_count: usize,
    context: &Context<'_>,
    candidate: &Candidate<'_>,
) -> Option<Vec<u8>> {
    link.pipelines.iter().find_map(|(pipeline_id, groups)| {
        test_pipeline(ruleset, link, cache, pipeline_count, context, candidate, *pipeline_id, groups)
    })
}

/// The value after one pipeline when the operator (with negation) matched it.
#[allow(clippy::too_many_arguments)]
fn test_pipeline(
    ruleset: &Ruleset,
    link: &Link,
    cache: &mut Cache,
    pipeline_count: usize,
    context: &Context<'_>,
    candidate: &Candidate<'_>,
    pipeline_id: u16,
    groups: &Groups,
) -> Option<Vec<u8>> {
    let pipeline = ruleset.pipelines.get(usize::from(pipeline_id)).map(Vec::as_slice).unwrap_or_default();
    let Some(id) = candidate.id else {
        let value = apply_pipeline(pipeline, candidate.raw);
        let matched = match &link.operator {
            Operator::Rx { id, .. } => {
                let bits = scan(ruleset, &mut cache.scratch, groups, candidate.class, &value);
                has_bit(&bits, *id)
            }
            Operator::Other(kind) => other_operator(kind, &value, context),
        };
        return (matched != link.negated).then(|| value.into_owned());
    };
    let entry_index = cached_entry(cache, pipeline_count, pipeline, pipeline_id, id, candidate.raw);
    let Cache { entries, scratch, .. } = cache;
    let entry = entries.get_mut(entry_index as usize)?;
    let value = entry.transformed.as_deref().unwrap_or(candidate.raw);
    let matched = match &link.operator {
        Operator::Rx { id, .. } => {
            if entry.rx.is_none() {
                entry.rx = Some(scan(ruleset, scratch, groups, candidate.class, value));
            }
            entry.rx.as_deref().is_some_and(|bits| has_bit(bits, *id))
        }
        Operator::Other(kind) => other_operator(kind, value, context),
    };
    (matched != link.negated).then(|| value.to_vec())
}

/// The cache entry of value `id` under `pipeline` (transforming it on first use).
fn cached_entry(
    cache: &mut Cache,
    pipeline_count: usize,
    pipeline: &[Transform],
    pipeline_id: u16,
    id: u32,
    raw: &[u8],
) -> u32 {
    let slot_index = (id as usize).saturating_mul(pipeline_count).saturating_add(usize::from(pipeline_id));
    if cache.slots.len() <= slot_index {
        cache.slots.resize(slot_index + 1, u32::MAX);
    }
    let mut entry_index = cache.slots.get(slot_index).copied().unwrap_or(u32::MAX);
    if entry_index == u32::MAX {
        let transformed = match apply_pipeline(pipeline, raw) {
            Cow::Borrowed(_) => None,
            Cow::Owned(value) => Some(value),
        };
        entry_index = u32::try_from(cache.entries.len()).unwrap_or(u32::MAX - 1);
        cache.entries.push(CacheEntry { transformed, rx: None });
        if let Some(slot) = cache.slots.get_mut(slot_index) {
            *slot = entry_index;
        }
    }
    entry_index
}

/// The scan bits of value `id` (from `source`) with automaton `group_id`, scanning on first use.
fn cached_scan<'c>(
    ruleset: &Ruleset,
    cache: &'c mut Cache,
    pipeline_count: usize,
    group_id: u32,
    source: Source,
    id: u32,
    raw: &[u8],
) -> Option<&'c [u64]> {
    let pipeline_id = ruleset.groups.get(group_id as usize)?.pipeline;
    let pipeline = ruleset.pipelines.get(usize::from(pipeline_id)).map(Vec::as_slice).unwrap_or_default();
    let entry_index = cached_entry(cache, pipeline_count, pipeline, pipeline_id, id, raw);
    let Cache { entries, scratch, .. } = cache;
    let entry = entries.get_mut(entry_index as usize)?;
    if entry.rx.is_none() {
        let class = source.scan_class();
        let group = Some(group_id);
        let mut groups = [None; CLASS_COUNT];
        if let Some(slot) = groups.get_mut(class) {
            *slot = group;
        }
        let value = entry.transformed.as_deref().unwrap_or(raw);
        entry.rx = Some(scan(ruleset, scratch, &groups, class, value));
    }
    entry.rx.as_deref()
}

fn has_bit(bits: &[u64], id: u32) -> bool {
    bits.get((id / 64) as usize).is_some_and(|word| word & (1 << (id % 64)) != 0)
}

/// Runs the value's group automaton once: a bit per global regex ID that matched.
fn scan(
    ruleset: &Ruleset,
    scratch: &mut Option<PatternSet>,
    groups: &[Option<u32>; CLASS_COUNT],
    class: usize,
    value: &[u8],
) -> Box<[u64]> {
    // An empty slice (no allocation) means "nothing matched": the common case.
    let Some(group) = groups.get(class).copied().flatten().and_then(|group| ruleset.groups.get(group as usize)) else {
        return Box::default();
    };
    let Some(set) = scratch.as_mut().filter(|set| set.capacity() >= group.regex.pattern_len()) else {
        return Box::default();
    };
    // Most values match nothing: a plain search (early exit, literal prefilters) settles those
    // before the costlier all-patterns search.
    if !group.regex.is_match(value) {
        return Box::default();
    }
    let mut bits = vec![0u64; ruleset.rx_count.div_ceil(64)].into_boxed_slice();
    set.clear();
    group.regex.which_matches(value, set);
    for pattern in set.iter() {
        if let Some(&id) = group.ids.get(pattern.as_usize())
            && let Some(word) = bits.get_mut((id / 64) as usize)
        {
            *word |= 1 << (id % 64);
        }
    }
    bits
}

fn other_operator(kind: &OperatorKind, value: &[u8], context: &Context<'_>) -> bool {
    let parameter = |template: &Template| parameter(template, context).into_owned();
    let number = |template: &Template| operator::parse_number(&parameter(template));
    match kind {
        OperatorKind::Rx(_) => false,
        OperatorKind::Pm(phrases) => phrases.find(value).is_some(),
        OperatorKind::Contains(template) => {
            let needle = parameter(template);
            needle.is_empty() || value.windows(needle.len()).any(|window| window == needle.as_slice())
        }
        OperatorKind::BeginsWith(template) => value.starts_with(&parameter(template)),
        OperatorKind::EndsWith(template) => value.ends_with(&parameter(template)),
        OperatorKind::Streq(template) => value == parameter(template).as_slice(),
        OperatorKind::Within(template) => {
            let haystack = parameter(template);
            value.is_empty() || haystack.windows(value.len()).any(|window| window == value)
        }
        OperatorKind::Eq(template) => operator::parse_number(value) == number(template),
        OperatorKind::Gt(template) => operator::parse_number(value) > number(template),
        OperatorKind::Ge(template) => operator::parse_number(value) >= number(template),
        OperatorKind::Lt(template) => operator::parse_number(value) < number(template),
        OperatorKind::Le(template) => operator::parse_number(value) <= number(template),
        OperatorKind::DetectSqli => operator::detect_sqli(value).is_some(),
        OperatorKind::DetectXss => operator::detect_xss(value),
        OperatorKind::ValidateByteRange(set) => set.first_violation(value).is_some(),
        OperatorKind::ValidateUrlEncoding => operator::has_invalid_url_encoding(value),
        OperatorKind::ValidateUtf8Encoding => operator::has_invalid_utf8(value),
        OperatorKind::IpMatch(networks) => operator::ip_matches(networks, value),
        OperatorKind::UnconditionalMatch => true,
        OperatorKind::NoMatch => false,
    }
}
