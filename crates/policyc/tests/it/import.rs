//! `policyc import`: the YAML safe-default configuration as a policy that
//! checks clean; unknown keys and unsafe names are errors.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use std::path::Path;
use std::process::Command;

fn import(dir: &Path, yaml: &str, extra: &[&str]) -> (i32, String, String) {
    std::fs::write(dir.join("config.yaml"), yaml).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_policyc"))
        .arg("import")
        .arg("config.yaml")
        .args(extra)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SEED: &str = "tools:\n  allow: [kb.read, search.read]\nwrite_tools:\n  enabled: true\n  require_approval: true\ncredentials:\n  scope:\n    tenant: true\n    environment: false\napprovals:\n  required_for: [email.send]\n";

#[test]
fn the_seed_config_becomes_a_policy_that_checks_clean() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("import_seed");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (code, out, err) = import(&dir, SEED, &["--agent", "helper"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("agent helper {"), "{out}");
    assert!(
        out.contains("  allow kb.read scope tenant; // tools.allow; credentials.scope"),
        "{out}"
    );
    assert!(
        out.contains("  write email.send require approval scope tenant;"),
        "{out}"
    );
    assert!(out.contains("writes enabled;"), "{out}");
    assert!(out.contains("The YAML format has no agents"), "{out}");
    std::fs::write(dir.join("out.policy"), &out).expect("write");
    let check = Command::new(env!("CARGO_BIN_EXE_policyc"))
        .args(["check", "--deny-warnings", "out.policy"])
        .current_dir(&dir)
        .output()
        .expect("runs");
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let (code, _, err) = import(&dir, "tools:\n  allow: [a]\nextra: 1\n", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field `extra`"), "{err}");
    assert!(err.contains("config.yaml:3:1"), "{err}");
    let (code, out, err) = import(&dir, "tools:\n  allow: [\"a; allow *\"]\n", &[]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("is not a plain name"), "{err}");
    let (code, _, err) = import(&dir, "write_tools:\n  enabled: true\n  require_approval: false\napprovals:\n  required_for: [x]\n", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("Toolgate has no unlimited auto-"), "{err}");
}
