//! `policyc show`: the permission matrix of every shipped policy, as golden
//! files (`tests/show/*`; `UPDATE_GOLDEN=1` rewrites them).

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use std::path::Path;
use std::process::Command;

fn show(args: &[&str]) -> (i32, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO_BIN_EXE_policyc"))
        .arg("show")
        .args(args)
        .current_dir(root)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn golden(name: &str, actual: &str) -> Result<(), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/show")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("golden file is writable");
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected == actual {
        return Ok(());
    }
    Err(format!(
        "{name} differs\n--- expected\n{expected}\n--- actual\n{actual}\n(UPDATE_GOLDEN=1 accepts)"
    ))
}

#[test]
fn the_matrix_of_each_shipped_policy_matches_its_golden_file() {
    let mut failures = Vec::new();
    for policy in ["support-desk", "safe-default", "multi-tenant"] {
        let path = format!("policies/{policy}.policy");
        for (format, ext) in [("human", "txt"), ("markdown", "md")] {
            let (code, out) = show(&[&path, "--format", format]);
            assert_eq!(code, 0, "{out}");
            failures.extend(golden(&format!("{policy}.{ext}"), &out).err());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_json_matrix_names_rules_and_conditions() {
    let (code, out) = show(&[
        "policies/support-desk.policy",
        "--agent",
        "support-bot",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    let cells = doc["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 7, "one agent × seven tools");
    let close = cells
        .iter()
        .find(|c| c["tool"] == "ticket.close")
        .expect("ticket.close");
    assert_eq!(close["grants"][0]["grant"], "budget 10/hour");
    assert_eq!(
        close["grants"][0]["rule"],
        "policies/support-desk.policy:28"
    );
    assert_eq!(
        close["grants"][0]["condition"],
        "env == \"dev\" and args.account_id == ctx.account_id"
    );
    assert_eq!(
        close["grants"][1]["grant"],
        "approval (support-leads × 1, 15m)"
    );
    let db = cells
        .iter()
        .find(|c| c["tool"] == "db.write")
        .expect("db.write");
    assert_eq!(
        (db["always_denied"].as_bool(), db["denied_by"].as_str()),
        (Some(true), Some("policies/support-desk.policy:30"))
    );
    assert_eq!(
        show(&["policies/support-desk.policy", "--agent", "nobody"]).0,
        2
    );
}

#[test]
fn labels_provenance_conditions_and_endorsements_are_shown() {
    let (code, out) = show(&["crates/policyc/tests/show/provenance.policy"]);
    assert_eq!(code, 0, "{out}");
    let failure = golden("provenance.txt", &out).err();
    assert!(failure.is_none(), "{}", failure.unwrap_or_default());
    let (code, out) = show(&[
        "crates/policyc/tests/show/provenance.policy",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["labels"][0]["label"], "trusted");
    assert_eq!(doc["labels"][0]["outputs"][1]["path"], "[].note");
    assert_eq!(doc["endorse"][0]["endorse"][0], "args.to");
}

/// `policyc explain --session`: which source satisfied each `from`, or
/// where the value was seen instead; without a session, why nothing holds.
#[test]
fn explain_says_which_source_satisfied_each_provenance_condition() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let explain = |session: Option<&str>| {
        let dir = "crates/policyc/tests/show";
        let mut args = vec![
            "explain".to_string(),
            format!("{dir}/provenance.policy"),
            "--request".into(),
            format!("{dir}/provenance.request.json"),
            "--now".into(),
            "2026-11-22T10:00:00Z".into(),
        ];
        if let Some(s) = session {
            args.extend(["--session".into(), format!("{dir}/{s}")]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_policyc"))
            .args(&args)
            .current_dir(&root)
            .output()
            .expect("runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = explain(Some("provenance.session.json"));
    assert!(
        out.contains("`r from trusted` with `ann@corp.test` holds: trusted output of call c1 (`contacts.find`) field `[].email`"),
        "{out}"
    );
    assert!(
        out.contains("`r from trusted` with `eve@evil.test` fails: found only in untrusted output of call c1 (`contacts.find`) field `[].note`"),
        "{out}"
    );
    assert!(out.contains("decision: approval_required"), "{out}");
    let out = explain(None);
    assert!(
        out.contains("`session.tainted` (13:23) needs the call's session, which it does not have, so this deny applies"),
        "{out}"
    );
    assert!(out.contains("decision: deny"), "{out}");
}
