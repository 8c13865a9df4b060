//! Golden-file tests of every diagnostic: each `tests/ui/NNNN_name.policy`
//! is checked by the built `policyc` binary; its human output (no colour,
//! width 100, exit code appended) must equal `NNNN_name.stderr` and its JSON
//! output `NNNN_name.json`. The first line of each input names the code it
//! must produce (`// expect: CODE`).
//!
//! To accept new output after an intended change: `UPDATE_GOLDEN=1 cargo test -p policyc --test ui`.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui")
}

fn policyc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_policyc"))
        .args(args)
        .current_dir(ui_dir())
        .env_remove("NO_COLOR")
        .output()
        .expect("policyc runs");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("policyc prints UTF-8");
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

/// Compares `actual` with the golden file, or rewrites it under `UPDATE_GOLDEN`.
fn golden(path: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("golden file is writable");
        return Ok(());
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{} differs\n--- expected\n{expected}\n--- actual\n{actual}\n(run with UPDATE_GOLDEN=1 to accept)",
            path.display()
        ))
    }
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(ui_dir())
        .expect("tests/ui exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "policy"))
        .collect();
    cases.sort();
    cases
}

fn expected_code(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("case is readable");
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    first
        .strip_prefix("// expect: ")
        .expect("first line is `// expect: CODE`")
        .trim()
        .to_string()
}

#[test]
fn every_diagnostic_matches_its_golden_files() {
    let mut failures = Vec::new();
    for case in cases() {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_string();
        let (code, _, stderr) = policyc(&["check", "--color", "never", &name]);
        let human = format!("{stderr}[exit {code}]\n");
        if let Err(e) = golden(&case.with_extension("stderr"), &human) {
            failures.push(e);
        }
        let (_, stdout, _) = policyc(&["check", "--format", "json", &name]);
        let doc: serde_json::Value =
            serde_json::from_str(&stdout).expect("--format json prints JSON");
        let pretty = serde_json::to_string_pretty(&doc).expect("JSON re-serialises") + "\n";
        if let Err(e) = golden(&case.with_extension("json"), &pretty) {
            failures.push(e);
        }
        let want = expected_code(&case);
        let codes: Vec<&str> = doc["diagnostics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["code"].as_str())
            .collect();
        if !codes.contains(&want.as_str()) {
            failures.push(format!("{name}: expected code {want}, got {codes:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn sarif_output_matches_its_golden_file() {
    let (code, stdout, _) = policyc(&[
        "check",
        "--format",
        "sarif",
        "0012_check_type_mismatch.policy",
    ]);
    assert_eq!(code, 1);
    let mut doc: serde_json::Value =
        serde_json::from_str(&stdout).expect("--format sarif prints JSON");
    assert_eq!(doc["version"], "2.1.0");
    // The base is the working directory, which differs from machine to machine.
    let base = &mut doc["runs"][0]["originalUriBaseIds"]["SRCROOT"]["uri"];
    assert!(
        base.as_str().is_some_and(|b| b.ends_with("/tests/ui/")),
        "{base}"
    );
    *base = serde_json::json!("file:///SRCROOT/");
    let pretty = serde_json::to_string_pretty(&doc).expect("JSON re-serialises") + "\n";
    golden(&ui_dir().join("sarif.golden.json"), &pretty).unwrap_or_else(|e| panic!("{e}"));
}

/// The text shown for a case in docs/diagnostics.md (long ones shortened).
fn shown(text: &str, max: usize, keep: usize) -> String {
    let text = text.trim_end_matches('\n');
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = keep;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n...", &text[..cut])
}

/// The fenced block after `fence` in `section`, as (start, end) byte offsets of its body.
fn block(section: &str, fence: &str) -> Option<(usize, usize)> {
    let start = section.find(fence)? + fence.len();
    let len = section[start..].find("\n```")?;
    Some((start, start + len))
}

/// docs/diagnostics.md shows each code's first golden case and its output;
/// they must be the golden files' current text (`UPDATE_GOLDEN=1` rewrites them).
#[test]
fn diagnostics_doc_examples_are_the_golden_outputs() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/diagnostics.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/diagnostics.md exists");
    let mut sections: Vec<String> = doc.split("\n### `").map(String::from).collect();
    let mut stale = Vec::new();
    for case in cases() {
        let code = expected_code(&case);
        let Some(section) = sections
            .iter_mut()
            .find(|s| s.starts_with(&format!("{code}`")))
        else {
            continue;
        };
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !section.contains(&format!("Example (`{name}`)")) {
            continue;
        }
        let input = String::from_utf8_lossy(&std::fs::read(&case).expect("case")).into_owned();
        let output = std::fs::read_to_string(case.with_extension("stderr")).expect("golden stderr");
        for (fence, want) in [
            ("```policy\n", shown(&input, 1500, 600)),
            ("```text\n", shown(&output, 2500, 1200)),
        ] {
            let Some((start, end)) = block(section, fence) else {
                stale.push(format!("{code}: no {fence:?} block"));
                continue;
            };
            if section[start..end] != want {
                stale.push(format!("{code}: {} block is stale", fence.trim()));
                section.replace_range(start..end, &want);
            }
        }
    }
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&doc_path, sections.join("\n### `")).expect("docs are writable");
        return;
    }
    assert!(
        stale.is_empty(),
        "{}\n(run with UPDATE_GOLDEN=1 to refresh docs/diagnostics.md)",
        stale.join("\n")
    );
}

#[test]
fn every_documented_code_has_a_golden_case() {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/diagnostics.md"),
    )
    .expect("docs/diagnostics.md exists");
    let documented: Vec<&str> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert!(
        documented.len() >= 30,
        "docs/diagnostics.md lists the codes as `### `CODE`` headings"
    );
    let tested: Vec<String> = cases().iter().map(|c| expected_code(c)).collect();
    let untested: Vec<&&str> = documented
        .iter()
        .filter(|c| **c != "toolgate::syntax::internal" && !tested.iter().any(|t| t == **c))
        .collect();
    assert!(
        untested.is_empty(),
        "documented codes without a golden case: {untested:?}"
    );
    let undocumented: Vec<&String> = tested
        .iter()
        .filter(|t| !documented.contains(&t.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "golden cases for undocumented codes: {undocumented:?}"
    );
}
