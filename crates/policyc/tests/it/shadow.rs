//! `policyc replay --journal`: a journal written by a replay, re-decided by
//! a candidate policy; flips counted, unknowable decisions never guessed.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn policyc(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_policyc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn manifest(rel: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    p.to_str().expect("utf-8").to_string()
}

#[test]
fn a_shadow_replay_counts_flips_and_marks_unknowable_decisions() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shadow_replay");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let ctx = r#""context": {"tenant": "acme", "env": "prod", "account_id": "A1"}"#;
    let trace = [
        format!(r#"{{"at": "2026-11-21T10:00:00Z", "id": "k1", "agent": "support-bot", "tool": "kb.read", {ctx}}}"#),
        format!(r#"{{"at": "2026-11-21T10:00:01Z", "id": "h1", "agent": "browser", "tool": "http.get", "args": {{"url": "https://www.example.com/"}}, {ctx}}}"#),
        format!(r#"{{"at": "2026-11-21T10:00:02Z", "id": "h2", "agent": "browser", "tool": "http.get", "args": {{"url": "https://docs.example.com/a"}}, {ctx}}}"#),
        format!(r#"{{"at": "2026-11-21T10:00:03Z", "id": "d1", "agent": "support-bot", "tool": "db.write", {ctx}}}"#),
        format!(r#"{{"at": "2026-11-21T10:00:04Z", "id": "t1", "agent": "support-bot", "tool": "ticket.create", "args": {{"account_id": "A1", "title": "x"}}, {ctx}}}"#),
    ]
    .join("\n");
    std::fs::write(dir.join("trace.jsonl"), trace + "\n").expect("write");
    let old = manifest("../../policies/support-desk.policy");
    let (code, _, err) = policyc(
        &dir,
        &[
            "replay",
            &old,
            "--trace",
            "trace.jsonl",
            "--audit",
            "audit.jsonl",
        ],
    );
    assert_eq!(code, 0, "{err}");

    let new = manifest("tests/diff/the_pull_request/new.policy");
    let (code, out, err) = policyc(
        &dir,
        &[
            "replay",
            "--journal",
            "audit.jsonl",
            "--policy",
            &new,
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 1, "calls would become more permissive: {out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["decisions"], 5);
    assert_eq!(
        doc["flips"]["deny -> allow"]["examples"],
        serde_json::json!(["h1"]),
        "{doc}"
    );
    assert_eq!(
        doc["flips"]["deny -> approval_required"]["examples"],
        serde_json::json!(["d1"]),
        "{doc}"
    );
    assert_eq!(doc["more_permissive"], 2);
    assert_eq!(doc["same"], 2, "k1 and h2 stay allowed: {doc}");
    let unknown = doc["unknown"]
        ["a rule reads `ctx.account_id`, which decision records do not hold"]["examples"]
        .clone();
    assert_eq!(unknown, serde_json::json!(["t1"]), "{doc}");

    let (code, out, _) = policyc(
        &dir,
        &[
            "replay",
            "--journal",
            "audit.jsonl",
            "--policy",
            &new,
            "--allow-escalation",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("deny -> allow: 1 (e.g. h1)"), "{out}");
    let (code, _, _) = policyc(
        &dir,
        &["replay", "--journal", "audit.jsonl", "--policy", &old],
    );
    assert_eq!(code, 0, "the same policy flips nothing");
}
