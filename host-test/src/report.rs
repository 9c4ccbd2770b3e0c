//! Reports of a replay: a line per case for people, JSON and JUnit XML for machines.

use std::fmt::Write as _;

use serde::Serializer;

use crate::replay::CaseResult;

/// Serializes bytes as lossy UTF-8 text.
pub fn lossy<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&String::from_utf8_lossy(bytes))
}

/// Serializes byte pairs as lossy text pairs.
pub fn lossy_pairs<S: Serializer>(pairs: &crate::abi::Pairs, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = serializer.serialize_seq(Some(pairs.len()))?;
    for (k, v) in pairs {
        seq.serialize_element(&(String::from_utf8_lossy(k), String::from_utf8_lossy(v)))?;
    }
    seq.end()
}

/// The human report: one line per case, and for each failure what was expected against what
/// happened, with the filters' own log lines. Ends with `N passed, M failed`.
pub fn text(results: &[CaseResult]) -> String {
    let mut out = String::new();
    for result in results {
        let verdict = if result.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(out, "{verdict} {} ({:.1} ms)", result.label(), result.millis);
        if result.passed {
            continue;
        }
        if let Some(error) = &result.error {
            for line in error.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
        for step in &result.steps {
            for mismatch in &step.mismatches {
                let label = step.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
                let _ = writeln!(out, "    step {}{label}: {mismatch}", step.index + 1);
            }
        }
        if !result.logs.is_empty() {
            let _ = writeln!(out, "    filter log:");
            for line in result.logs.iter().rev().take(40).rev() {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let _ = writeln!(out, "{passed} passed, {} failed", results.len() - passed);
    out
}

/// A table per fixture file: cases, passed, failed, time; with a total row.
pub fn table(results: &[CaseResult]) -> String {
    let mut rows: Vec<(String, usize, usize, f64)> = Vec::new();
    for result in results {
        match rows.last_mut() {
            Some(row) if row.0 == result.file => {
                row.1 += 1;
                row.2 += usize::from(result.passed);
                row.3 += result.millis;
            }
            _ => rows.push((result.file.clone(), 1, usize::from(result.passed), result.millis)),
        }
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max("total".len());
    let mut out = String::new();
    let _ = writeln!(out, "{:<width$}  {:>5}  {:>6}  {:>6}  {:>9}", "fixture file", "cases", "passed", "failed", "ms");
    let _ = writeln!(out, "{}", "-".repeat(width + 36));
    for (file, cases, passed, millis) in &rows {
        let _ = writeln!(out, "{file:<width$}  {cases:>5}  {passed:>6}  {:>6}  {millis:>9.1}", cases - passed);
    }
    let cases: usize = rows.iter().map(|r| r.1).sum();
    let passed: usize = rows.iter().map(|r| r.2).sum();
    let millis: f64 = rows.iter().map(|r| r.3).sum();
    let _ = writeln!(out, "{}", "-".repeat(width + 36));
    let _ = writeln!(out, "{:<width$}  {cases:>5}  {passed:>6}  {:>6}  {millis:>9.1}", "total", cases - passed);
    out
}

/// The results as JSON.
pub fn json(results: &[CaseResult]) -> serde_json::Result<String> {
    serde_json::to_string_pretty(results)
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The results as JUnit XML: a test suite per fixture file, a test case per case.
pub fn junit(results: &[CaseResult]) -> String {
    let mut files: Vec<&str> = results.iter().map(|r| r.file.as_str()).collect();
    files.dedup();
    let failures = results.iter().filter(|r| !r.passed).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"host-test\" tests=\"{}\" failures=\"{failures}\">", results.len());
    for file in files {
        let cases: Vec<&CaseResult> = results.iter().filter(|r| r.file == file).collect();
        let failed = cases.iter().filter(|r| !r.passed).count();
        let seconds: f64 = cases.iter().map(|r| r.millis / 1e3).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" time=\"{seconds:.3}\">",
            xml_escape(file),
            cases.len()
        );
        for case in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(file),
                xml_escape(&case.name),
                case.millis / 1e3
            );
            if case.passed {
                out.push_str("/>\n");
                continue;
            }
            let mut detail: Vec<String> = case.error.iter().cloned().collect();
            for step in &case.steps {
                detail.extend(step.mismatches.iter().map(|m| format!("step {}: {m}", step.index + 1)));
            }
            let first = detail.first().cloned().unwrap_or_default();
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\">{}</failure>",
                xml_escape(&first),
                xml_escape(&detail.join("\n"))
            );
            let _ =
                writeln!(out, "      <system-out>{}</system-out>\n    </testcase>", xml_escape(&case.logs.join("\n")));
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_is_escaped() {
        assert_eq!(xml_escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;\\u{1}");
    }
}
