//! The command line as CI uses it: exit codes, directories, formats, and
//! inputs built to break a parser (huge, deep, binary, empty).

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly on broken fixtures"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn policyc(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_policyc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh scratch directory under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("parent dir");
    }
    std::fs::write(path, content).expect("write");
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout))
}

#[test]
fn shipped_policies_check_clean_and_are_formatted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let check = policyc(&root, &["check", "--deny-warnings", "policies/"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(check.stderr.contains("0 errors, 0 warnings"));
    let fmt = policyc(&root, &["fmt", "--check", "policies/"]);
    assert_eq!((fmt.code, fmt.stdout.as_str()), (0, ""), "{}", fmt.stderr);
}

#[test]
fn exit_codes_distinguish_clean_findings_warnings_and_usage() {
    let dir = scratch("exit_codes");
    write(&dir, "clean/a.policy", "tool a read;\nallow a;\n");
    write(&dir, "warn/a.policy", "tool a read;\nallow *;\n");
    write(&dir, "bad/a.policy", "tool a read;\nallow b;\n");
    assert_eq!(policyc(&dir, &["check", "clean"]).code, 0);
    assert_eq!(policyc(&dir, &["check", "warn"]).code, 0);
    assert_eq!(policyc(&dir, &["check", "--deny-warnings", "warn"]).code, 1);
    assert_eq!(policyc(&dir, &["check", "bad"]).code, 1);
    let missing = policyc(&dir, &["check", "nope"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("cannot read `nope`"),
        "{}",
        missing.stderr
    );
    assert_eq!(
        policyc(&dir, &["check", "--format", "yaml", "clean"]).code,
        2
    );
}

#[test]
fn directories_are_searched_recursively_for_policy_files_only() {
    let dir = scratch("recursive");
    write(&dir, "a/b/c/deep.policy", "tool a read;\nallow b;\n");
    write(&dir, "a/notes.txt", "not a policy at all {{{");
    write(&dir, ".hidden/x.policy", "garbage");
    let doc = json(&policyc(&dir, &["check", "--format", "json", "."]));
    assert_eq!(doc["files"], 1);
    assert_eq!(doc["errors"], 1);
    let d = &doc["diagnostics"][0];
    assert_eq!(
        (
            d["line"].as_u64(),
            d["column"].as_u64(),
            d["end_column"].as_u64()
        ),
        (Some(2), Some(7), Some(8))
    );
    assert!(d["file"]
        .as_str()
        .is_some_and(|f| f.ends_with("deep.policy")));
}

#[test]
fn hostile_inputs_get_diagnostics_never_a_crash() {
    let dir = scratch("hostile");
    write(&dir, "empty.policy", "");
    write(&dir, "binary.policy", [0u8, 159, 146, 150, 255, 0, 1, 2]);
    write(
        &dir,
        "deep_parens.policy",
        format!(
            "tool a read;\nallow a when {}x{};\n",
            "(".repeat(50_000),
            ")".repeat(50_000)
        ),
    );
    write(
        &dir,
        "deep_nots.policy",
        format!("tool a read;\nallow a when {}x;\n", "not ".repeat(50_000)),
    );
    write(
        &dir,
        "deep_types.policy",
        format!(
            "tool a read {{ x: {}string{} }};\n",
            "list<".repeat(10_000),
            ">".repeat(10_000)
        ),
    );
    write(
        &dir,
        "long_line.policy",
        format!(
            "tool a read;\nallow a when args.x == \"{}\";\n",
            "y".repeat(1_000_000)
        ),
    );
    write(&dir, "garbage.policy", "}{)(;;\"\\".repeat(100_000));
    let run = policyc(&dir, &["check", "--format", "json", "."]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let doc = json(&run);
    assert_eq!(doc["files"], 7);
    let by_file = |name: &str| -> Vec<String> {
        doc["diagnostics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["file"].as_str().is_some_and(|f| f.ends_with(name)))
            .map(|d| d["code"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert!(by_file("empty.policy").is_empty());
    assert_eq!(by_file("binary.policy"), ["toolgate::syntax::invalid_utf8"]);
    for deep in [
        "deep_parens.policy",
        "deep_nots.policy",
        "deep_types.policy",
    ] {
        let codes = by_file(deep);
        assert!(
            !codes.is_empty() && codes.iter().all(|c| c.starts_with("toolgate::syntax::")),
            "{deep}: {codes:?}"
        );
    }
    assert!(by_file("long_line.policy").is_empty());
    assert!(!by_file("garbage.policy").is_empty());
}

#[test]
fn a_ten_megabyte_policy_is_checked() {
    let dir = scratch("big");
    let mut src = String::from("tool kb.read read { q: string };\n");
    let mut i = 0;
    while src.len() < 10 * 1024 * 1024 {
        src.push_str(&format!(
            "allow kb.read when args.q == \"query number {i}\";\n"
        ));
        i += 1;
    }
    write(&dir, "big.policy", &src);
    let run = policyc(&dir, &["check", "big.policy"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("0 errors, 0 warnings"),
        "{}",
        run.stderr
    );
}

#[test]
fn fmt_rewrites_checks_and_refuses_broken_files() {
    let dir = scratch("fmt");
    write(
        &dir,
        "messy.policy",
        "tool   a   read ;  allow a when (args.x==1) ; // keep me\n",
    );
    write(&dir, "broken.policy", "tool a read\n");
    let check = policyc(&dir, &["fmt", "--check", "messy.policy"]);
    assert_eq!((check.code, check.stdout.trim()), (1, "messy.policy"));
    assert_eq!(policyc(&dir, &["fmt", "messy.policy"]).code, 0);
    let formatted = std::fs::read_to_string(dir.join("messy.policy")).expect("read back");
    assert_eq!(
        formatted,
        "tool a read;\nallow a when (args.x == 1); // keep me\n"
    );
    assert_eq!(policyc(&dir, &["fmt", "--check", "messy.policy"]).code, 0);
    let broken = policyc(&dir, &["fmt", "broken.policy"]);
    assert_eq!(broken.code, 1);
    assert!(
        broken
            .stderr
            .contains("cannot format `broken.policy`: it has syntax errors"),
        "{}",
        broken.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("broken.policy")).expect("read back"),
        "tool a read\n"
    );
}

#[test]
fn eval_prints_one_decision_line_per_request_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = policyc(
        &root,
        &[
            "eval",
            "policies/support-desk.policy",
            "--requests",
            "policies/requests/support-desk.jsonl",
        ],
    );
    assert_eq!(run.code, 1, "one line is malformed: {}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let input =
        std::fs::read_to_string(root.join("policies/requests/support-desk.jsonl")).expect("read");
    assert_eq!(lines.len(), input.lines().count());
    let got: Vec<&str> = lines
        .iter()
        .map(|d| d["decision"].as_str().unwrap_or("error"))
        .collect();
    assert_eq!(
        got,
        [
            "allow",
            "allow",
            "approval_required",
            "deny",
            "deny",
            "deny",
            "allow",
            "deny",
            "deny",
            "deny",
            "deny",
            "deny",
            "error"
        ]
    );
    let budgeted = &lines[1];
    assert_eq!(budgeted["budget"]["limit"], 10);
    assert_eq!(budgeted["budget"]["key"]["tenant"], "acme");
    assert_eq!(budgeted["fallback"]["decision"], "approval_required");
    assert_eq!(lines[2]["approval"]["group"], "support-leads");
    assert_eq!(lines[2]["rule"]["line"], 25);
    assert_eq!(
        lines[2]["scope"],
        serde_json::json!({ "tenant": "acme", "env": "prod" })
    );
    assert_eq!(lines[4]["reason"], "unknown argument `tenant_id`");
    assert_eq!(lines[12]["line"], 13);
    assert!(lines[12]["error"]
        .as_str()
        .is_some_and(|e| e.contains("line 1 column")));
}

#[test]
fn eval_and_explain_a_single_request() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let req = "policies/requests/close-ticket-prod.json";
    let run = policyc(
        &root,
        &["eval", "policies/support-desk.policy", "--request", req],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let d: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!(d["decision"], "approval_required");
    let explain = policyc(
        &root,
        &["explain", "policies/support-desk.policy", "--request", req],
    );
    assert_eq!(explain.code, 0, "{}", explain.stderr);
    assert!(
        explain
            .stdout
            .contains("-> does not match: `env == \"dev\"` is false"),
        "{}",
        explain.stdout
    );
    assert!(
        explain
            .stdout
            .contains("-> does not match: `has args.tenant_id` is false"),
        "{}",
        explain.stdout
    );
    assert!(
        explain.stdout.contains("decision: approval_required"),
        "{}",
        explain.stdout
    );
}

#[test]
fn eval_refuses_a_policy_with_errors() {
    let dir = scratch("eval_bad_policy");
    write(&dir, "bad.policy", "tool a read;\nallow b;\n");
    write(
        &dir,
        "r.json",
        r#"{"agent": "x", "tool": "a", "context": {"tenant": "t", "env": "e"}}"#,
    );
    let run = policyc(&dir, &["eval", "bad.policy", "--request", "r.json"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("nothing was evaluated"),
        "{}",
        run.stderr
    );
}

#[test]
fn audit_verify_reports_the_head_or_the_first_broken_record() {
    use toolgate_runtime::journal::{sha256_hex, GENESIS};
    let dir = scratch("audit_verify");
    let mut prev = GENESIS.to_string();
    let mut text = String::new();
    for seq in 1..=3 {
        let line =
            format!(r#"{{"seq":{seq},"ts_ms":0,"kind":"test","prev":"{prev}","body":{{}}}}"#);
        prev = sha256_hex(line.as_bytes());
        text.push_str(&line);
        text.push('\n');
    }
    write(&dir, "ok.jsonl", &text);
    let ok = policyc(&dir, &["audit", "verify", "ok.jsonl"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stdout
            .contains(&format!("chain valid up to record 3 (sha256 {prev})")),
        "{}",
        ok.stdout
    );
    write(
        &dir,
        "tampered.jsonl",
        text.replacen("\"kind\":\"test\"", "\"kind\":\"tset\"", 1),
    );
    let tampered = policyc(&dir, &["audit", "verify", "tampered.jsonl"]);
    assert_eq!(tampered.code, 1);
    assert!(
        tampered.stderr.contains("line 2: hash chain broken"),
        "{}",
        tampered.stderr
    );
    write(&dir, "torn.jsonl", &text[..text.len() - 5]);
    let torn = policyc(&dir, &["audit", "verify", "torn.jsonl"]);
    assert_eq!(torn.code, 1);
    assert!(
        torn.stderr.contains("line 3: torn last record"),
        "{}",
        torn.stderr
    );
}

/// Writes a sealed journal of 6 records in `dir` (key `audit.key`,
/// checkpoints `cp.jsonl`) and shuts it down cleanly.
fn sealed_journal(dir: &Path) {
    use toolgate_runtime::journal::{
        Journal, JournalConfig, NoState, SealConfig, SigningKeySource,
    };
    let config = JournalConfig {
        seal: Some(SealConfig::new(
            SigningKeySource::File(dir.join("audit.key")),
            dir.join("cp.jsonl"),
        )),
        ..JournalConfig::default()
    };
    let (journal, _) =
        Journal::open(&dir.join("audit.jsonl"), config, Box::new(NoState)).expect("opens");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for i in 0..6 {
            journal
                .append("test", i, serde_json::json!({ "i": i }))
                .await
                .expect("appends");
        }
    });
}

/// The journal's lines re-chained from the first (an attacker who edits a
/// record and recomputes every hash after it).
fn rechain(lines: &mut [String]) {
    let mut prev = toolgate_runtime::journal::GENESIS.to_string();
    for l in lines.iter_mut() {
        let mut v: serde_json::Value = serde_json::from_str(l).expect("JSON");
        v["prev"] = serde_json::json!(prev);
        *l = v.to_string();
        prev = toolgate_runtime::journal::sha256_hex(l.as_bytes());
    }
}

/// H1 (failed before the fix: every tampered journal verified, and there
/// were no checkpoints, `keygen` or `head`).
#[test]
fn audit_verify_with_checkpoints_detects_every_tampering() {
    let dir = scratch("audit_sealed");
    let keygen = policyc(&dir, &["audit", "keygen", "--out", "audit.key"]);
    assert_eq!(keygen.code, 0, "{}", keygen.stderr);
    let public = std::fs::read_to_string(dir.join("audit.key.pub")).expect("public key");
    assert_eq!(keygen.stdout.trim(), public.trim());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("audit.key"))
            .expect("key")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    sealed_journal(&dir);
    let verify = |log: &str, extra: &[&str]| {
        let mut args = vec!["audit", "verify", log, "--checkpoints", "cp.jsonl"];
        args.extend(["--public-key", "audit.key.pub"]);
        args.extend(extra);
        policyc(&dir, &args)
    };
    let clean = verify("audit.jsonl", &[]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    assert!(
        clean.stdout.contains("chain valid up to record 6"),
        "{}",
        clean.stdout
    );
    assert!(
        clean.stdout.contains("last checkpoint matched: record 6"),
        "{}",
        clean.stdout
    );
    let text = std::fs::read_to_string(dir.join("audit.jsonl")).expect("journal");
    let lines: Vec<String> = text.lines().map(String::from).collect();
    let tamper = |name: &str, edit: &dyn Fn(&mut Vec<String>)| {
        let mut l = lines.clone();
        edit(&mut l);
        write(
            &dir,
            name,
            l.iter().map(|l| format!("{l}\n")).collect::<String>(),
        );
        verify(name, &[])
    };
    type Edit<'a> = &'a dyn Fn(&mut Vec<String>);
    let cases: [(&str, Edit<'_>, &str); 5] = [
        (
            "cut.jsonl",
            &|l| l.truncate(4),
            "toolgate::audit::truncated",
        ),
        (
            "edited.jsonl",
            &|l| l[5] = l[5].replace("\"i\":5", "\"i\":7"),
            "toolgate::audit::rewritten",
        ),
        (
            "rechained.jsonl",
            &|l| {
                l[1] = l[1].replace("\"i\":1", "\"i\":9");
                rechain(l)
            },
            "toolgate::audit::rewritten",
        ),
        (
            "forged.jsonl",
            &|l| {
                let extra = l[5].replace("\"seq\":6", "\"seq\":7");
                l.push(extra);
                rechain(l)
            },
            "toolgate::audit::",
        ),
        ("empty.jsonl", &|l| l.clear(), "toolgate::audit::truncated"),
    ];
    for (name, edit, code) in cases {
        let run = tamper(name, edit);
        assert_eq!(run.code, 1, "{name}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(code), "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains("help:"),
            "rendered by miette: {}",
            run.stderr
        );
    }
    let mut appended = lines.clone();
    let last: serde_json::Value = serde_json::from_str(&lines[5]).expect("JSON");
    let forged = serde_json::json!({"seq": 7, "ts_ms": 9, "kind": "kill_switch",
        "prev": toolgate_runtime::journal::sha256_hex(last.to_string().as_bytes()), "body": {}});
    appended.push(forged.to_string());
    write(
        &dir,
        "appended.jsonl",
        appended
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    let run = verify("appended.jsonl", &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("toolgate::audit::unsealed"),
        "{}",
        run.stderr
    );
    let missing = policyc(&dir, &["audit", "verify", "deleted.jsonl"]);
    assert_eq!(
        missing.code, 2,
        "no anchor: a missing file is a usage error"
    );
    let deleted = verify("deleted.jsonl", &[]);
    assert_eq!(deleted.code, 1, "{}", deleted.stderr);
    assert!(
        deleted.stderr.contains("toolgate::audit::truncated"),
        "{}",
        deleted.stderr
    );
    // A head kept elsewhere catches a cut without any checkpoint.
    let head = policyc(&dir, &["audit", "head", "audit.jsonl"]);
    assert_eq!(head.code, 0, "{}", head.stderr);
    assert!(head.stdout.starts_with("6:"), "{}", head.stdout);
    let cut = policyc(
        &dir,
        &["audit", "verify", "cut.jsonl", "--head", head.stdout.trim()],
    );
    assert_eq!(cut.code, 1);
    assert!(
        cut.stderr.contains("toolgate::audit::truncated"),
        "{}",
        cut.stderr
    );
    // Checkpoints signed by another key prove nothing.
    let other = policyc(&dir, &["audit", "keygen", "--out", "other.key"]);
    assert_eq!(other.code, 0);
    let wrong = policyc(
        &dir,
        &[
            "audit",
            "verify",
            "audit.jsonl",
            "--checkpoints",
            "cp.jsonl",
            "--public-key",
            "other.key.pub",
        ],
    );
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("toolgate::audit::bad_checkpoint"),
        "{}",
        wrong.stderr
    );
}

/// M2 (failed before the fix: there was no `audit repair`).
#[test]
fn audit_repair_cuts_only_a_torn_tail_and_keeps_what_it_cuts() {
    let dir = scratch("audit_repair");
    sealed_journal(&dir);
    let log = dir.join("audit.jsonl");
    let text = std::fs::read_to_string(&log).expect("journal");
    let clean = policyc(&dir, &["audit", "repair", "audit.jsonl"]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    assert!(
        clean.stdout.contains("nothing to repair"),
        "{}",
        clean.stdout
    );
    let torn = format!("{text}{{\"seq\":7,\"body\":{{\"na");
    write(&dir, "audit.jsonl", &torn);
    let repaired = policyc(&dir, &["audit", "repair", "audit.jsonl"]);
    assert_eq!(repaired.code, 0, "{}", repaired.stderr);
    assert!(
        repaired.stdout.contains(&format!(
            "removed the torn record at line 7 of `audit.jsonl`: cut 20 bytes (the file now ends at byte {})",
            text.len()
        )),
        "{}",
        repaired.stdout
    );
    assert_eq!(std::fs::read_to_string(&log).expect("journal"), text);
    let backup = repaired
        .stdout
        .rsplit("saved them to `")
        .next()
        .and_then(|b| b.trim().strip_suffix('`'))
        .expect("backup named");
    assert_eq!(
        std::fs::read_to_string(dir.join(backup)).expect("backup"),
        "{\"seq\":7,\"body\":{\"na"
    );
    let broken = text.replacen("\"i\":1", "\"i\":8", 1);
    write(&dir, "audit.jsonl", &broken);
    let refused = policyc(&dir, &["audit", "repair", "audit.jsonl"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("toolgate::journal::broken"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&log).expect("journal"),
        broken,
        "left alone"
    );
}

#[test]
fn replaying_the_incident_shows_the_budget_holding() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = scratch("replay");
    let audit = dir.join("audit.jsonl");
    let audit_arg = audit.display().to_string();
    let run = policyc(
        &root,
        &[
            "replay",
            "policies/support-desk.policy",
            "--trace",
            "policies/traces/support-incident.jsonl",
            "--audit",
            &audit_arg,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 42, "one line per call and a summary");
    let outcomes = &lines[41]["summary"]["outcomes"];
    assert_eq!(
        outcomes["executed"], 10,
        "at most the budget's worth closed without a human: {outcomes}"
    );
    assert_eq!(outcomes["approved_executed"], 2);
    let total: u64 = outcomes
        .as_object()
        .expect("object")
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    assert_eq!(total, 41);
    assert_eq!(lines[0]["rule"], "policies/support-desk.policy:28:3");
    let verify = policyc(&root, &["audit", "verify", &audit_arg]);
    assert_eq!(verify.code, 0, "{}", verify.stderr);
}

#[test]
fn a_bad_trace_line_is_reported_and_the_replay_goes_on() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = scratch("replay_bad");
    let trace = dir.join("trace.jsonl");
    let good = r#"{"at": "2026-11-21T10:00:00Z", "id": "c1", "agent": "support-bot", "tool": "kb.read", "args": {}, "context": {"tenant": "acme", "env": "prod", "account_id": "A1"}}"#;
    std::fs::write(
        &trace,
        format!(
            "{good}\n{{\"at\": \"yesterday\"}}\nnot json\n{}\n",
            good.replace("c1", "c2")
        ),
    )
    .expect("write");
    let trace_arg = trace.display().to_string();
    let run = policyc(
        &root,
        &[
            "replay",
            "policies/support-desk.policy",
            "--trace",
            &trace_arg,
        ],
    );
    assert_eq!(run.code, 1);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines[0]["line"], 2);
    assert!(lines[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("RFC 3339")));
    assert_eq!(lines[1]["line"], 3);
    assert_eq!(
        (lines[2]["outcome"].as_str(), lines[3]["outcome"].as_str()),
        (Some("executed"), Some("executed"))
    );
}
