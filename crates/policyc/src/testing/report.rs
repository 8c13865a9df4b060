//! `policyc test` output: human, JSON or JUnit XML.

use super::TestResult;
use crate::cli::TestFormat;
use serde_json::json;

/// The whole output for `results` of `files` test files (`broken` of them not run).
pub(crate) fn render(
    format: TestFormat,
    results: &[TestResult],
    files: usize,
    broken: usize,
) -> String {
    let failed = results.iter().filter(|r| !r.failures.is_empty()).count();
    let passed = results.len() - failed;
    match format {
        TestFormat::Human => human(results, files, broken, passed, failed),
        TestFormat::Json => {
            let tests: Vec<_> = results
                .iter()
                .map(|r| json!({ "file": r.file, "kind": r.kind, "name": r.name, "passed": r.failures.is_empty(), "failures": r.failures }))
                .collect();
            let summary = json!({ "files": files, "broken_files": broken, "passed": passed, "failed": failed });
            format!("{}\n", json!({ "tests": tests, "summary": summary }))
        }
        TestFormat::Junit => junit(results, failed),
    }
}

fn human(
    results: &[TestResult],
    files: usize,
    broken: usize,
    passed: usize,
    failed: usize,
) -> String {
    let mut out = String::new();
    for r in results {
        let status = if r.failures.is_empty() {
            "ok  "
        } else {
            "FAIL"
        };
        out.push_str(&format!(
            "{status} {}: {} {}\n",
            r.file,
            r.kind,
            crate::eval::escape_controls(&r.name)
        ));
        for f in &r.failures {
            out.push_str(&format!("       {}\n", crate::eval::escape_controls(f)));
        }
    }
    let s = |n: usize| if n == 1 { "" } else { "s" };
    out.push_str(&format!(
        "\n{passed} passed, {failed} failed ({files} file{}",
        s(files)
    ));
    if broken > 0 {
        out.push_str(&format!(", {broken} broken"));
    }
    out.push_str(")\n");
    out
}

/// XML text with `&`, `<`, `>`, `"` and `'` escaped, and control characters XML 1.0 cannot hold dropped.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn junit(results: &[TestResult], failed: usize) -> String {
    let mut by_file: Vec<(&str, Vec<&TestResult>)> = Vec::new();
    for r in results {
        match by_file.iter_mut().find(|(f, _)| *f == r.file) {
            Some((_, v)) => v.push(r),
            None => by_file.push((&r.file, vec![r])),
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"policyc test\" tests=\"{}\" failures=\"{failed}\">\n",
        results.len()
    ));
    for (file, rs) in by_file {
        let fails = rs.iter().filter(|r| !r.failures.is_empty()).count();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\">\n",
            xml(file),
            rs.len()
        ));
        for r in rs {
            let name = xml(&format!("{}: {}", r.kind, r.name));
            if r.failures.is_empty() {
                out.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{name}\"/>\n",
                    xml(file)
                ));
            } else {
                let text = xml(&r.failures.join("\n"));
                let first = xml(&r.failures[0]);
                out.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{name}\">\n      <failure message=\"{first}\">{text}</failure>\n    </testcase>\n",
                    xml(file)
                ));
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
