//! `policyc diff` over a corpus of policy pairs (`tests/diff/NAME/{old,new}.policy`,
//! `expect`: one `KIND AGENT TOOL` line per escalation or restriction cell).
//! Every escalation must carry a witness, and each witness is confirmed here
//! independently by `policyc eval` on both policies.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff")
}

fn policyc(args: &[&str], stdin: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_policyc"))
        .args(args)
        .current_dir(corpus())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("waits");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn level(decision: &Value) -> u8 {
    match decision["decision"].as_str() {
        Some("allow") => 2,
        Some("approval_required") => 1,
        _ => 0,
    }
}

/// `policyc eval` of `request` against `policy`.
fn eval(policy: &str, request: &Value) -> Value {
    let (_, out) = policyc(
        &["eval", policy, "--requests", "-"],
        &format!("{request}\n"),
    );
    serde_json::from_str(out.trim()).expect("a decision line")
}

/// Whether NEW's decision is more permissive than OLD's, as the eval output shows it.
fn confirmed(old: &Value, new: &Value) -> bool {
    if level(new) != level(old) {
        return level(new) > level(old);
    }
    let count = |d: &Value| d["approval"]["count"].as_u64().unwrap_or(0);
    let group = |d: &Value| d["approval"]["group"].clone();
    let rate = |d: &Value| {
        let (l, w) = (
            d["budget"]["limit"].as_u64(),
            d["budget"]["window_secs"].as_u64(),
        );
        l.zip(w)
    };
    let higher = match (rate(old), rate(new)) {
        (Some(_), None) => true,
        (Some((lo, wo)), Some((ln, wn))) => ln * wo > lo * wn,
        _ => false,
    };
    count(new) < count(old) || (group(old) != json!(null) && group(new) != group(old)) || higher
}

#[test]
fn every_known_change_is_found_and_every_escalation_is_witnessed() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "the corpus is there");
    let mut failures = Vec::new();
    for dir in dirs {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let (old, new) = (format!("{name}/old.policy"), format!("{name}/new.policy"));
        let (code, out) = policyc(
            &[
                "diff",
                &old,
                &new,
                "--format",
                "json",
                "--fail-on",
                "escalation",
            ],
            "",
        );
        let doc: Value = serde_json::from_str(&out).expect("json");
        let changes = doc["changes"].as_array().expect("changes");
        let got: BTreeSet<String> = changes
            .iter()
            .filter(|c| c["kind"] != "neutral")
            .map(|c| {
                format!(
                    "{} {} {}",
                    c["kind"].as_str().unwrap_or(""),
                    c["agent"].as_str().unwrap_or(""),
                    c["tool"].as_str().unwrap_or("")
                )
            })
            .collect();
        let want: BTreeSet<String> = std::fs::read_to_string(dir.join("expect"))
            .expect("expect file")
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if got != want {
            failures.push(format!("{name}: expected {want:?}, got {got:?}\n{out}"));
        }
        let escalations = want.iter().any(|w| w.starts_with("escalation"));
        if code != i32::from(escalations) {
            failures.push(format!("{name}: --fail-on escalation exited {code}"));
        }
        for c in changes.iter().filter(|c| c["kind"] == "escalation") {
            let w = &c["witness"]["request"];
            if w.is_null() {
                failures.push(format!("{name}: unproven escalation {c}"));
                continue;
            }
            let (o, n) = (eval(&old, w), eval(&new, w));
            if !confirmed(&o, &n) {
                failures.push(format!(
                    "{name}: witness {w} not confirmed: old {o}, new {n}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn sarif_points_escalations_at_the_new_policy() {
    let (code, out) = policyc(
        &[
            "diff",
            "host_suffix/old.policy",
            "host_suffix/new.policy",
            "--format",
            "sarif",
        ],
        "",
    );
    assert_eq!(code, 0, "without --fail-on a diff succeeds");
    let doc: Value = serde_json::from_str(&out).expect("json");
    let result = &doc["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "toolgate::diff::escalation");
    let loc = &result["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "host_suffix/new.policy");
    assert_eq!(loc["region"]["startLine"], 34);
    assert!(
        result["message"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("witness: "),
        "{result}"
    );
}
