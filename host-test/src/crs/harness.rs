//! Runs requests through the WAF module in the harness: one plugin started once (CRS compiles
//! once), every request a fresh stream on it, the rules that fired read from the deltas of the
//! filter's `wasm_shield.waf.rule_hits.<id>` counters (the decision log line's `rules=` list when
//! the module defines no such counters).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Result, anyhow};

use super::check::Observation;
use crate::fixture::{Body, Case, HeaderList, Request, Step, Upstream};
use crate::host::Host;
use crate::runner::Runner;

/// The prefix of the per-rule counters.
pub const RULE_HITS_PREFIX: &str = "wasm_shield.waf.rule_hits.";
/// The counter of requests the WAF looked at: it moves only when the filter ran.
pub const INSPECTED_METRIC: &str = "wasm_shield.waf.requests_inspected";

/// The rule IDs in a decision line's `rules=` list (the rules that log), and whether the list
/// is complete (more than 32 end in `...(+N)`); `None` for another line.
pub fn rules_from_decision_line(line: &str) -> Option<(Vec<u32>, bool)> {
    if !line.starts_with("waf decision ") {
        return None;
    }
    let list = line.split_whitespace().find_map(|field| field.strip_prefix("rules="))?;
    let complete = !list.contains("...");
    Some((list.split(',').filter_map(|id| id.parse().ok()).collect(), complete))
}

/// Splits the rules that matched into those that log and those that do not: the decision line
/// lists the logging ones; when it is absent or cut short, the `nolog` rules learnt so far are
/// taken out of the counters' list.
pub fn split_logged(
    matched: &[u32],
    decision: Option<(Vec<u32>, bool)>,
    nolog_known: &mut BTreeSet<u32>,
) -> (Vec<u32>, Vec<u32>) {
    match decision {
        Some((listed, true)) => {
            let nolog: Vec<u32> = matched.iter().copied().filter(|id| !listed.contains(id)).collect();
            nolog_known.extend(nolog.iter().copied());
            let mut logged: Vec<u32> = if matched.is_empty() {
                listed
            } else {
                matched.iter().copied().filter(|id| listed.contains(id)).collect()
            };
            logged.sort_unstable();
            logged.dedup();
            (logged, nolog)
        }
        _ => matched.iter().copied().partition(|id| !nolog_known.contains(id)),
    }
}

/// The per-rule hit counters in a metrics snapshot.
pub fn rule_hits(metrics: &BTreeMap<String, i64>, prefix: &str) -> BTreeMap<u32, i64> {
    metrics.iter().filter_map(|(name, value)| Some((name.strip_prefix(prefix)?.parse().ok()?, *value))).collect()
}

/// IDs whose counter grew from `before` to `after`, ascending.
pub fn fired_between(before: &BTreeMap<u32, i64>, after: &BTreeMap<u32, i64>) -> Vec<u32> {
    after.iter().filter(|(id, value)| **value > before.get(id).copied().unwrap_or(0)).map(|(id, _)| *id).collect()
}

/// The case describing the one-filter chain under test.
pub fn chain_case(module: &str, config: &serde_json::Value) -> Result<Case> {
    let filter = if module.ends_with(".wasm") || module.contains('/') {
        serde_json::json!({"name": "waf", "wasm": module, "config": config})
    } else {
        serde_json::json!({"name": module, "config": config})
    };
    serde_json::from_value(serde_json::json!({"name": "crs", "filters": [filter], "steps": []}))
        .map_err(|e| anyhow!("the chain: {e}"))
}

/// The WAF plugin, started, with the counter values after the last request.
pub struct HarnessWaf {
    case: Case,
    runner: Runner,
    hits: BTreeMap<u32, i64>,
    /// How often the plugin was restarted after a trap.
    pub restarts: usize,
    /// Rules seen matching without being listed in a complete decision line.
    pub nolog_known: BTreeSet<u32>,
}

impl HarnessWaf {
    /// Loads and starts the plugin; an error if the module is missing or refuses the configuration.
    pub fn start(host: &mut Host, module: &str, config: &serde_json::Value) -> Result<HarnessWaf> {
        let case = chain_case(module, config)?;
        let runner = Self::started(host, &case)?;
        Ok(HarnessWaf { case, runner, hits: BTreeMap::new(), restarts: 0, nolog_known: BTreeSet::new() })
    }

    fn started(host: &mut Host, case: &Case) -> Result<Runner> {
        let mut runner = Runner::new(host, case, Path::new("."))?;
        if let Err(reason) = runner.start() {
            let logs: Vec<String> = runner.world.borrow().logs.iter().map(ToString::to_string).collect();
            return Err(anyhow!("{reason}\n{}", logs.join("\n")));
        }
        Ok(runner)
    }

    /// Sends one request; what it produced. A trap restarts the plugin (and is an error).
    /// `answered_by_envoy`: the status Envoy gives the request itself after the filters (the
    /// backend's answer stands for it).
    pub fn send(
        &mut self,
        host: &mut Host,
        request: Request,
        answered_by_envoy: Option<u16>,
    ) -> Result<Observation, String> {
        let upstream = answered_by_envoy.map(|status| Upstream {
            status,
            headers: HeaderList::default(),
            body: Body::Empty,
            trailers: HeaderList::default(),
        });
        let step = Step { request: Some(request), upstream, ..Step::default() };
        let outcome = self.runner.step(&step);
        let logs: Vec<String> = outcome.logs.iter().map(|line| line.message.clone()).collect();
        if !outcome.traps.is_empty() {
            let trap = outcome.traps.join("; ");
            self.restarts += 1;
            self.hits.clear();
            self.runner =
                Self::started(host, &self.case).map_err(|e| format!("trap: {trap}; restart failed: {e:#}"))?;
            return Err(format!("the filter trapped: {trap}"));
        }
        let hits = rule_hits(&outcome.metrics, RULE_HITS_PREFIX);
        let matched = fired_between(&self.hits, &hits);
        self.hits = hits;
        let decision = logs.iter().find_map(|line| rules_from_decision_line(line));
        let (fired, nolog) = split_logged(&matched, decision, &mut self.nolog_known);
        let status = outcome
            .response
            .as_ref()
            .and_then(|r| r.status())
            .or(outcome.local_reply.as_ref().map(|r| r.reply.status as u16));
        Ok(Observation { fired, nolog, status, logs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fired_rules_come_from_counter_deltas_or_the_decision_line() {
        let metrics: BTreeMap<String, i64> = [
            ("wasm_shield.waf.rule_hits.942100".to_string(), 3),
            ("wasm_shield.waf.rule_hits.920100".to_string(), 1),
            ("wasm_shield.waf.requests_inspected".to_string(), 9),
        ]
        .into();
        let after = rule_hits(&metrics, RULE_HITS_PREFIX);
        let before: BTreeMap<u32, i64> = [(942100, 2), (920100, 1)].into();
        assert_eq!(fired_between(&before, &after), vec![942100]);
        assert_eq!(
            rules_from_decision_line("waf decision request_id=- mode=detect rules=1,2,...(+3) target=x"),
            Some((vec![1, 2], false))
        );
        assert_eq!(rules_from_decision_line("waf body over limit"), None);
    }

    #[test]
    fn nolog_rules_are_learnt_from_complete_decision_lines() {
        let mut nolog = BTreeSet::new();
        let (logged, quiet) = split_logged(&[901100, 942100], Some((vec![942100], true)), &mut nolog);
        assert_eq!((logged, quiet), (vec![942100], vec![901100]));
        // Later, without a usable decision line, the learnt nolog rule is kept apart.
        let (logged, quiet) = split_logged(&[901100, 920100], Some((vec![920100], false)), &mut nolog);
        assert_eq!((logged, quiet), (vec![920100], vec![901100]));
    }
}
