//! Counts per rule family and in total, the failure list, and the pass rate.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{TestResult, Verdict};

/// Counts of one family (or of all).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed (known deviations included).
    pub failed: usize,
    /// Of the failures, those listed in the deviations file.
    pub known: usize,
    /// Tests that could not run.
    pub skipped: usize,
    /// RESPONSE-* tests, out of scope (not counted in the total or the pass rate).
    pub response_side: usize,
}

impl Counts {
    /// Every test counted (RESPONSE-* tests are out of scope).
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.skipped
    }

    /// Passed tests as a share of all tests, in percent (skipped tests count against it).
    pub fn pass_rate(&self) -> f64 {
        100.0 * self.passed as f64 / self.total().max(1) as f64
    }

    fn add(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Passed => self.passed += 1,
            Verdict::Failed { deviation, .. } => {
                self.failed += 1;
                if deviation.is_some() {
                    self.known += 1;
                }
            }
            Verdict::Skipped { reason } if reason == super::RESPONSE_SKIP_REASON => self.response_side += 1,
            Verdict::Skipped { .. } => self.skipped += 1,
        }
    }
}

/// Counts per family, and the total.
pub fn counts(results: &[TestResult]) -> (BTreeMap<u32, Counts>, Counts) {
    let mut families: BTreeMap<u32, Counts> = BTreeMap::new();
    let mut total = Counts::default();
    for result in results {
        families.entry(result.family).or_default().add(&result.verdict);
        total.add(&result.verdict);
    }
    (families, total)
}

/// The per-family table with the total.
pub fn table(results: &[TestResult]) -> String {
    let (families, total) = counts(results);
    let mut out = String::new();
    let _ = writeln!(out, "family   passed  failed (known)  skipped   total   pass%  (RESPONSE-*, not run)");
    let mut line = |label: &str, c: &Counts| {
        let _ = writeln!(
            out,
            "{label:<8} {:>6}  {:>6} {:>7}  {:>7}  {:>6}  {:>6.1}{}",
            c.passed,
            c.failed,
            format!("({})", c.known),
            c.skipped,
            c.total(),
            c.pass_rate(),
            if c.response_side > 0 { format!("  ({})", c.response_side) } else { String::new() }
        );
    };
    for (family, c) in &families {
        line(&family.to_string(), c);
    }
    line("total", &total);
    out
}

/// Every failure (unexplained ones first), and the reasons for skipped tests grouped.
pub fn failures(results: &[TestResult]) -> String {
    let mut out = String::new();
    let mut listed: Vec<&TestResult> = results.iter().filter(|r| matches!(r.verdict, Verdict::Failed { .. })).collect();
    listed.sort_by_key(|r| !r.unexplained_failure());
    for result in listed {
        let Verdict::Failed { failures, deviation } = &result.verdict else { continue };
        let tag = if deviation.is_some() { "KNOWN" } else { "FAIL" };
        let fired: Vec<String> = result
            .stages
            .iter()
            .filter_map(|s| s.observed.as_ref())
            .map(|o| {
                format!(
                    "fired [{}] status {}",
                    super::check::join(&o.fired),
                    o.status.map_or("-".into(), |s| s.to_string())
                )
            })
            .collect();
        let _ = writeln!(out, "{tag} {}: {}; {}", result.title, failures.join("; "), fired.join("; "));
        for note in result.stages.iter().flat_map(|s| &s.notes) {
            let _ = writeln!(out, "    note: {note}");
        }
        if let Some(reason) = deviation {
            let _ = writeln!(out, "    deviation: {reason}");
        }
    }
    out
}

/// Skip reasons with how many tests each (the reason's text up to its first ':' detail).
pub fn skip_reasons(results: &[TestResult]) -> String {
    let mut reasons: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for result in results {
        if let Verdict::Skipped { reason } = &result.verdict {
            reasons.entry(reason.clone()).or_default().push(&result.title);
        }
    }
    let mut out = String::new();
    for (reason, titles) in reasons {
        let shown: Vec<&str> = titles.iter().take(8).copied().collect();
        let more =
            if titles.len() > shown.len() { format!(" (+{})", titles.len() - shown.len()) } else { String::new() };
        let _ = writeln!(out, "SKIP {:>4} x {reason}: {}{more}", titles.len(), shown.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(title: &str, family: u32, verdict: Verdict) -> TestResult {
        TestResult { title: title.into(), rule_id: family * 1000, family, verdict, stages: Vec::new() }
    }

    #[test]
    fn counts_per_family_and_rate() {
        let results = vec![
            result("920100-1", 920, Verdict::Passed),
            result("920100-2", 920, Verdict::Failed { failures: vec!["x".into()], deviation: Some("why".into()) }),
            result("942100-1", 942, Verdict::Skipped { reason: "r".into() }),
            result("942100-2", 942, Verdict::Failed { failures: vec!["y".into()], deviation: None }),
        ];
        let (families, total) = counts(&results);
        assert_eq!(families[&920], Counts { passed: 1, failed: 1, known: 1, skipped: 0, response_side: 0 });
        assert_eq!(total, Counts { passed: 1, failed: 2, known: 1, skipped: 1, response_side: 0 });
        assert!((total.pass_rate() - 25.0).abs() < 1e-9);
        let text = failures(&results);
        assert!(text.starts_with("FAIL 942100-2"), "{text}");
        assert!(text.contains("KNOWN 920100-2") && text.contains("deviation: why"));
        assert!(table(&results).contains("total"));
    }
}
