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
