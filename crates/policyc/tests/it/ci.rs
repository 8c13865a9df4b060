//! CI-grade output and the rough edges reviewers hit: empty paths, `fmt
//! --diff`, streaming `eval`, `explain --requests`, SARIF and GitHub output,
//! kill-switch denials in a replay.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::run;
use run::{policyc, scratch, write};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn a_path_without_policy_files_is_a_usage_error() {
    let dir = scratch("no_policies");
    write(&dir, "empty/readme.txt", "nothing here");
    for cmd in [&["check", "empty"][..], &["fmt", "--check", "empty"]] {
        let run = policyc(&dir, cmd);
        assert_eq!(run.code, 2, "{cmd:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("no `.policy` files found in `empty`"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn fmt_check_diff_prints_a_unified_diff() {
    let dir = scratch("fmt_diff");
    write(&dir, "a.policy", "tool a read;\nallow   a;\n");
    let run = policyc(&dir, &["fmt", "--check", "--diff", "a.policy"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "--- a/a.policy\n+++ b/a.policy\n@@ -1,2 +1,2 @@\n tool a read;\n-allow   a;\n+allow a;\n"
    );
    let unchanged = std::fs::read_to_string(dir.join("a.policy")).expect("read");
    assert_eq!(unchanged, "tool a read;\nallow   a;\n");
    assert_eq!(policyc(&dir, &["fmt", "--diff", "a.policy"]).code, 2);
}

#[test]
fn eval_streams_one_flushed_line_per_request_and_echoes_ids() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_policyc"))
        .args(["eval", "policies/support-desk.policy", "--requests", "-"])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut input = child.stdin.take().expect("stdin");
    let mut output = BufReader::new(child.stdout.take().expect("stdout"));
    let ctx = r#""context": {"tenant": "acme", "env": "prod", "account_id": "A1"}"#;
    // A co-process: each answer must arrive while the input is still open.
    for (id, tool, expect) in [("r1", "kb.read", "allow"), ("r2", "db.write", "deny")] {
        writeln!(
            input,
            r#"{{"id": "{id}", "agent": "support-bot", "tool": "{tool}", {ctx}}}"#
        )
        .expect("write");
        input.flush().expect("flush");
        let mut line = String::new();
        output.read_line(&mut line).expect("read");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(
            (v["id"].as_str(), v["decision"].as_str()),
            (Some(id), Some(expect)),
            "{line}"
        );
    }
    writeln!(input, r#"{{"id": 7, "agent": 1}}"#).expect("write");
    drop(input);
    let mut line = String::new();
    output.read_line(&mut line).expect("read");
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(
        (v["id"].as_i64(), v["line"].as_i64()),
        (Some(7), Some(3)),
        "{line}"
    );
    assert_eq!(child.wait().expect("waits").code(), Some(1));
}

#[test]
fn explain_takes_a_requests_file_and_names_the_schema_check() {
    let dir = scratch("explain_requests");
    let ctx = r#""context": {"tenant": "acme", "env": "prod", "account_id": "A1"}"#;
    write(
        &dir,
        "r.jsonl",
        format!(
            "{{\"id\": \"ok\", \"agent\": \"support-bot\", \"tool\": \"kb.read\", {ctx}}}\n\
             {{\"id\": \"bad\", \"agent\": \"support-bot\", \"tool\": \"ticket.close\", \"args\": {{\"account_id\": 5}}, {ctx}}}\n"
        ),
    );
    let policy = root().join("policies/support-desk.policy");
    let run = policyc(
        &dir,
        &[
            "explain",
            policy.to_str().expect("utf-8"),
            "--requests",
            "r.jsonl",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let parts: Vec<&str> = run.stdout.split("\nid: ").collect();
    assert_eq!(parts.len(), 2, "{}", run.stdout);
    assert!(
        parts[0].starts_with("id: \"ok\"") && parts[0].contains("decision: allow"),
        "{}",
        parts[0]
    );
    assert!(!parts[0].contains("schema check"), "{}", parts[0]);
    assert!(parts[1].starts_with("\"bad\""), "{}", parts[1]);
    assert!(
        parts[1].contains("the schema check decided before any rule:"),
        "{}",
        parts[1]
    );
}

#[test]
fn sarif_rules_are_described_and_results_are_repository_relative() {
    let dir = scratch("sarif_rules");
    write(&dir, "p/a.policy", "tool a read;\nallow b;\nagent x {}\n");
    let run = policyc(
        &dir,
        &[
            "check",
            "--format",
            "sarif",
            "--help-base-uri",
            "https://example.org/d.md",
            "p",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let run0 = &doc["runs"][0];
    let rule = &run0["tool"]["driver"]["rules"][0];
    assert_eq!(rule["id"], "toolgate::check::unknown_tool");
    assert!(rule["shortDescription"]["text"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert!(rule["fullDescription"]["text"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert_eq!(
        rule["helpUri"],
        "https://example.org/d.md#toolgatecheckunknown_tool"
    );
    let loc = &run0["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(
        (loc["uri"].as_str(), loc["uriBaseId"].as_str()),
        (Some("p/a.policy"), Some("SRCROOT"))
    );
    let base = run0["originalUriBaseIds"]["SRCROOT"]["uri"]
        .as_str()
        .unwrap_or("");
    assert!(
        base.starts_with("file:///") && base.ends_with('/'),
        "{base}"
    );
}

#[test]
fn github_format_prints_escaped_workflow_commands() {
    let dir = scratch("github_format");
    write(
        &dir,
        "a.policy",
        "tool a read;\nallow b;\nallow *;\nagent x {}\n",
    );
    let run = policyc(&dir, &["check", "--format", "github", "a.policy"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let first = run.stdout.lines().next().unwrap_or("");
    assert!(
        first.starts_with("::error file=a.policy,line=2,col=7,endLine=2,endColumn=8,title=toolgate%3A%3Acheck%3A%3Aunknown_tool::"),
        "{first}"
    );
    assert!(
        run.stdout.contains("::warning file=a.policy"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.lines().count(),
        2,
        "one line per diagnostic: {}",
        run.stdout
    );
}

#[test]
fn a_call_the_kill_switch_denies_cites_no_rule() {
    let dir = scratch("kill_no_rule");
    let ctx = r#""context": {"tenant": "acme", "env": "prod", "account_id": "A1"}"#;
    write(
        &dir,
        "t.jsonl",
        format!(
            "{{\"at\": \"2026-11-21T10:00:00Z\", \"event\": \"kill_switch\", \"engaged\": true, \"by\": \"ops\", \"reason\": \"incident\"}}\n\
             {{\"at\": \"2026-11-21T10:01:00Z\", \"id\": \"c1\", \"agent\": \"support-bot\", \"tool\": \"ticket.create\", \"args\": {{\"account_id\": \"A1\", \"title\": \"x\"}}, {ctx}}}\n"
        ),
    );
    let policy = root().join("policies/support-desk.policy");
    let run = policyc(
        &dir,
        &[
            "replay",
            policy.to_str().expect("utf-8"),
            "--trace",
            "t.jsonl",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let call: serde_json::Value =
        serde_json::from_str(run.stdout.lines().next().unwrap_or("")).expect("json");
    assert_eq!(call["outcome"], "denied", "{call}");
    assert!(
        call["reason"]
            .as_str()
            .unwrap_or("")
            .contains("kill switch"),
        "{call}"
    );
    assert_eq!(call["rule"], serde_json::Value::Null, "{call}");
}
