//! The command line as CI uses it: exit codes, directories, formats, and
//! inputs built to break a parser (huge, deep, binary, empty).

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly on broken fixtures"
)]

use std::path::Path;
use std::process::Command;

use crate::support::run;
use run::{policyc, scratch, write, Run};

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
    write(
        &dir,
        "a/b/c/deep.policy",
        "tool a read;\nallow b;\nagent x {}\n",
    );
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
            "tool a read;\nagent x {{}}\nallow a when args.x == \"{}\";\n",
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
    let mut src = String::from("tool kb.read read { q: string };\nagent assistant {}\n");
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
    assert_eq!(
        lines.len(),
        43,
        "one line per call, the refused late approval, a summary"
    );
    // The approval at 10:25 of a call the kill switch cancelled at 10:20 is
    // refused in place: an outcome of that event, not a malformed line.
    assert!(lines
        .iter()
        .any(|l| l["event"] == "approve" && l["call"] == "c22" && l["refused"].is_string()));
    assert_eq!(
        lines.iter().filter(|l| l["outcome"] == "cancelled").count(),
        14,
        "every call waiting at 10:20 is cancelled by the kill switch"
    );
    let outcomes = &lines[42]["summary"]["outcomes"];
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
    // Lines are printed in trace order as each outcome becomes final.
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"]
        .as_str()
        .is_some_and(|e| e.contains("RFC 3339")));
    assert_eq!(lines[2]["line"], 3);
    assert_eq!(
        (lines[0]["outcome"].as_str(), lines[3]["outcome"].as_str()),
        (Some("executed"), Some("executed"))
    );
}

/// Runs `policyc` through `sh` after `ulimit {limit}` (e.g. `-f 1`: dash counts
/// file sizes in 512-byte blocks, data sizes in KiB), with SIGXFSZ ignored so
/// that a write past a file-size limit fails with `EFBIG` instead of killing.
fn policyc_under(dir: &Path, limit: &str, args: &[&str]) -> Run {
    let script = format!("ulimit {limit} || exit 99; trap '' XFSZ; exec \"$0\" \"$@\"");
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_policyc"))
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

#[test]
fn fmt_that_cannot_write_leaves_the_policy_intact() {
    // M5: `fmt` used to truncate the file in place; a failed write (full
    // disk, here a 512-byte file-size limit) destroyed the policy.
    let dir = scratch("fmt_efbig");
    let mut src = String::from("tool   a   read ;\n");
    for i in 0..40 {
        src.push_str(&format!("allow   a   when args.x  ==  {i} ;\n"));
    }
    write(&dir, "big.policy", &src);
    let run = policyc_under(&dir, "-f 1", &["fmt", "big.policy"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot write `big.policy`"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("big.policy")).expect("read back"),
        src,
        "the original bytes are intact"
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(left.len(), 1, "no temporary file is left behind: {left:?}");
    // Without the limit, the rewrite keeps the file's permissions.
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("big.policy");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    assert_eq!(policyc(&dir, &["fmt", "big.policy"]).code, 0);
    let meta = std::fs::metadata(&path).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert!(std::fs::read_to_string(&path)
        .expect("read back")
        .starts_with("tool a read;\nallow a when args.x == 0;\n"));
}

#[test]
fn replay_refuses_to_replace_an_existing_audit_file_without_force() {
    // M6: `replay --audit PATH` silently replaced an existing journal.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = scratch("replay_existing_audit");
    let audit = dir.join("audit.jsonl");
    let precious = "a real journal, not to be replaced\n";
    std::fs::write(&audit, precious).expect("write");
    let audit_arg = audit.display().to_string();
    let args = [
        "replay",
        "policies/support-desk.policy",
        "--trace",
        "policies/traces/support-incident.jsonl",
        "--audit",
        &audit_arg,
    ];
    let refused = policyc(&root, &args);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("already exists") && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stdout, "", "nothing was replayed");
    assert_eq!(
        std::fs::read_to_string(&audit).expect("read back"),
        precious
    );
    let forced = policyc(&root, &[&args[..], &["--force"]].concat());
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let verify = policyc(&root, &["audit", "verify", &audit_arg]);
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert!(
        verify.stdout.contains("chain valid up to record"),
        "{}",
        verify.stdout
    );
}

/// Runs `policyc` and fails the test if it has not finished within `secs`
/// seconds (the process is killed first).
fn policyc_within(dir: &Path, secs: u64, args: &[&str]) -> Run {
    let child = Command::new(env!("CARGO_BIN_EXE_policyc"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(out) => {
            let out = out.expect("waits");
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!(
                "`policyc {}` did not finish within {secs} s",
                args.join(" ")
            );
        }
    }
}

/// `check` and `fmt --check` on `dir` finish and see each of `real` exactly once.
fn walks_each_real_file_once(dir: &Path, real: &[&str]) {
    let check = policyc_within(dir, 20, &["check", "--format", "json", "."]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert_eq!(json(&check)["files"], real.len(), "{}", check.stdout);
    let fmt = policyc_within(dir, 20, &["fmt", "--check", "."]);
    assert_eq!(fmt.code, 1, "{}", fmt.stderr);
    let mut listed: Vec<&str> = fmt.stdout.lines().collect();
    listed.sort_unstable();
    assert_eq!(listed, real, "each unformatted file listed once");
}

#[test]
fn directory_walks_do_not_follow_symlinks_or_open_fifos() {
    // M7: one self-link made 41 checks of one file; two links made `check`
    // and `fmt` hang; a FIFO named `*.policy` blocked the read forever.
    let messy = "tool   a read;\nallow a;\n";
    let dir = scratch("walk_self_link");
    write(&dir, "sub/a.policy", messy);
    std::os::unix::fs::symlink(".", dir.join("sub/loop")).expect("symlink");
    walks_each_real_file_once(&dir, &["./sub/a.policy"]);

    let dir = scratch("walk_mutual_links");
    write(&dir, "a/x.policy", messy);
    write(&dir, "b/y.policy", messy);
    std::os::unix::fs::symlink("../b", dir.join("a/to_b")).expect("symlink");
    std::os::unix::fs::symlink("../a", dir.join("b/to_a")).expect("symlink");
    walks_each_real_file_once(&dir, &["./a/x.policy", "./b/y.policy"]);

    let dir = scratch("walk_two_self_links");
    write(&dir, "sub/a.policy", messy);
    for name in ["sub/l1", "sub/l2"] {
        std::os::unix::fs::symlink(".", dir.join(name)).expect("symlink");
    }
    walks_each_real_file_once(&dir, &["./sub/a.policy"]);

    let dir = scratch("walk_fifo");
    write(&dir, "a.policy", messy);
    let made = Command::new("mkfifo")
        .arg(dir.join("pipe.policy"))
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    walks_each_real_file_once(&dir, &["./a.policy"]);
    let run = policyc_within(&dir, 20, &["check", "."]);
    assert!(
        run.stderr
            .contains("skipped `./pipe.policy`: not a regular file"),
        "{}",
        run.stderr
    );
}

#[test]
fn explain_escapes_control_characters_from_the_request() {
    // L6: explain echoed request strings raw, so a request could drive the
    // reader's terminal (clear the screen, set the title, write the clipboard).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = scratch("explain_escapes");
    let requests = [
        // Known agent and tool: the tenant, env and an argument name are echoed.
        serde_json::json!({
            "agent": "support-bot", "tool": "ticket.close",
            "args": { "account_id": "A1", "ticket_id": "T-1", "x\u{1b}]52;c;cHdu\u{7}": 1 },
            "context": { "tenant": "ac\u{1b}[2Jme", "env": "prod\u{9b}31m", "account_id": "A1" }
        }),
        // Unknown agent and tool: the names themselves are echoed.
        serde_json::json!({
            "agent": "bot\u{1b}]0;pwned\u{7}", "tool": "t\u{7f}\u{202e}",
            "args": {}, "context": { "tenant": "acme", "env": "prod" }
        }),
    ];
    for (i, req) in requests.iter().enumerate() {
        let path = dir.join(format!("r{i}.json"));
        std::fs::write(&path, req.to_string()).expect("write");
        let path = path.display().to_string();
        let run = policyc(
            &root,
            &[
                "explain",
                "policies/support-desk.policy",
                "--request",
                &path,
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        let raw: Vec<char> = run
            .stdout
            .chars()
            .filter(|c| (c.is_control() && *c != '\n') || ('\u{202a}'..='\u{202e}').contains(c))
            .collect();
        assert!(
            raw.is_empty(),
            "raw control characters {raw:?} in:\n{}",
            run.stdout
        );
        assert!(run.stdout.contains("\\u{1b}"), "{}", run.stdout);
    }
}

#[test]
fn eval_caps_the_length_of_a_request_line() {
    // L7: `eval --requests` buffered a line of any length (an endless line
    // grew until the process ran out of memory). A line over 1 MiB is an
    // error for that line, and the lines after it are still decided.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = scratch("eval_long_line");
    let request = |q: &str| {
        serde_json::json!({
            "agent": "support-bot", "tool": "kb.read", "args": { "q": q },
            "context": { "tenant": "acme", "env": "prod", "account_id": "A1" }
        })
        .to_string()
    };
    let long = request(&"y".repeat(3 << 20));
    let text = format!("{}\n{long}\n{}\n{long}", request("a"), request("b"));
    std::fs::write(dir.join("reqs.jsonl"), text).expect("write");
    let reqs = dir.join("reqs.jsonl").display().to_string();
    let run = policyc(
        &root,
        &["eval", "policies/support-desk.policy", "--requests", &reqs],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    for (i, n) in [(1, 2), (3, 4)] {
        assert_eq!(lines[i]["line"], n);
        assert!(
            lines[i]["error"]
                .as_str()
                .is_some_and(|e| e.contains("longer than 1 MiB")),
            "{}",
            lines[i]
        );
    }
    assert_eq!(lines[0]["decision"], "allow");
    assert_eq!(lines[2]["decision"], "allow");
}

#[test]
fn replay_memory_does_not_grow_with_the_trace() {
    // L9: replay kept the whole trace, every call and every output line until
    // the end (500k events: 2.1 GB). 12,000 allowed reads used about 30 MB of
    // data before; streaming, the replay fits in 12 MiB (a small trace needs 3).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = scratch("replay_memory");
    let n = 12_000;
    let mut trace = String::new();
    for i in 0..n {
        trace.push_str(&format!(
            r#"{{"at": "2026-11-21T10:00:00Z", "id": "call-{i}", "agent": "support-bot", "tool": "kb.read", "args": {{}}, "context": {{"tenant": "acme", "env": "prod", "account_id": "A1"}}}}"#
        ));
        trace.push('\n');
    }
    std::fs::write(dir.join("trace.jsonl"), trace).expect("write");
    let trace_arg = dir.join("trace.jsonl").display().to_string();
    let args = [
        "replay",
        "policies/support-desk.policy",
        "--trace",
        &trace_arg,
    ];
    let run = policyc_under(&root, "-d 12288", &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let last = run.stdout.lines().last().unwrap_or_default();
    assert_eq!(run.stdout.lines().count(), n + 1);
    let summary: serde_json::Value = serde_json::from_str(last).expect("JSON");
    assert_eq!(summary["summary"]["outcomes"]["executed"], n, "{last}");
}

#[test]
fn explain_shows_each_rule_after_its_annotations() {
    // A rule written under `@id(...)` and `@accepted_risk(...)` was shown by
    // its first source line, the annotation, instead of the rule.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = scratch("explain_annotations");
    let req = serde_json::json!({
        "agent": "banking-assistant", "tool": "payments.transfer",
        "args": { "from_iban": "DE01", "to_iban": "DE02", "amount": 20.5, "currency": "EUR" },
        "context": { "tenant": "bank", "env": "prod", "account_iban": "DE01", "payees": ["DE02"] }
    });
    write(&dir, "r.json", req.to_string());
    let path = dir.join("r.json").display().to_string();
    let run = policyc(
        &root,
        &[
            "explain",
            "policies/personal-banking.policy",
            "--request",
            &path,
            "--now",
            "2026-11-22T10:00:00Z",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "@id(small-transfer-to-payee)  write payments.transfer auto-approve limit 3 per day"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("accepted risk: reviewed: at most 3 a day"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("@accepted_risk("), "{}", run.stdout);
    assert!(run.stdout.contains("decision: allow"), "{}", run.stdout);
}

#[test]
fn a_closed_stdout_ends_the_program_quietly() {
    // Info item of security review 2: `policyc show big.policy | head -1`
    // panicked ("failed printing to stdout: Broken pipe").
    let dir = scratch("closed_stdout");
    let tools: String = (0..3000).map(|i| format!("tool t{i} read;\n")).collect();
    write(
        &dir,
        "big.policy",
        format!("{tools}agent a {{\n  allow t*;\n}}\n"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_policyc"))
        .args(["show", "big.policy"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    // Far more than a pipe holds: the writer meets the closed end.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
