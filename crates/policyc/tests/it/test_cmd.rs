//! `policyc test`: the shipped test files pass, a wrong expectation fails with
//! a reason, a broken test file points into the TOML, and the formats.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use std::path::{Path, PathBuf};

use crate::support::run;
use run::{policyc_with, Run};

fn policyc(dir: &Path, args: &[&str]) -> Run {
    policyc_with(dir, args, &[("NO_COLOR", "1")])
}

fn scratch(name: &str) -> PathBuf {
    let dir = run::scratch(name);
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/support-desk.policy");
    std::fs::copy(policy, dir.join("support-desk.policy")).expect("copy policy");
    dir
}

const HEAD: &str = "policy = \"support-desk.policy\"\n[defaults]\ncontext = { tenant = \"acme\", env = \"prod\", account_id = \"A1\" }\n";

#[test]
fn the_shipped_test_files_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = policyc(&root, &["test", "policies/"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(" 0 failed (9 files)"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("ok   policies/support-desk.test.toml: scenario the incident"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_wrong_expectation_fails_and_says_why() {
    let dir = scratch("test_wrong");
    let text = format!(
        "{HEAD}[[case]]\nname = \"kb\"\nrequest = {{ agent = \"support-bot\", tool = \"kb.read\" }}\nexpect = {{ decision = \"deny\", rule = \"support-desk.policy:30\" }}\n\
         [[scenario]]\nname = \"s\"\nsteps = [ {{ at = \"2026-11-21T10:00:00Z\", call = {{ id = \"c1\", agent = \"support-bot\", tool = \"ticket.close\", args = {{ account_id = \"A1\", ticket_id = \"T\" }} }}, expect = \"executed\" }} ]\n\
         [[never]]\nname = \"n\"\nagent = \"support-bot\"\ntools = \"ticket.close\"\ndecision = \"allow\"\n"
    );
    std::fs::write(dir.join("a.test.toml"), text).expect("write");
    let run = policyc(&dir, &["test", "."]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("expected `deny`, got `allow`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("expected rule `support-desk.policy:30`, got "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("step 1 (`c1`): expected `executed`, got `pending`"),
        "{}",
        run.stdout
    );
    // The never fails on the dev auto-approval, with a request the engine grants.
    assert!(run.stdout.contains("support-desk.policy:28 (conditional) can grant `ticket.close` to `support-bot`; e.g. {"), "{}", run.stdout);
    assert!(run.stdout.contains("\"env\":\"dev\""), "{}", run.stdout);
    assert!(
        run.stdout.contains("0 passed, 3 failed (1 file)"),
        "{}",
        run.stdout
    );

    let json = policyc(&dir, &["test", "--format", "json", "a.test.toml"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(doc["summary"]["failed"], 3);
    assert_eq!(doc["tests"][1]["kind"], "scenario");
    let junit = policyc(&dir, &["test", "--format", "junit", "a.test.toml"]);
    assert!(junit.stdout.starts_with("<?xml"), "{}", junit.stdout);
    assert!(
        junit
            .stdout
            .contains("<testsuites name=\"policyc test\" tests=\"3\" failures=\"3\">"),
        "{}",
        junit.stdout
    );
    assert!(
        junit
            .stdout
            .contains("<failure message=\"expected `deny`, got `allow`"),
        "{}",
        junit.stdout
    );
}

#[test]
fn a_broken_test_file_points_into_the_toml() {
    let dir = scratch("test_broken");
    std::fs::write(
        dir.join("a.test.toml"),
        format!("{HEAD}[[case]]\nname = \"x\"\nrequest = {{ agent = \"support-bot\", tool = \"kb.read\" }}\nexpect = {{ decision = \"allow\", rule = \"tenant-guard\" }}\n"),
    )
    .expect("write");
    let run = policyc(&dir, &["test", "a.test.toml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("policyc::test::invalid"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("is not a rule reference"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("a.test.toml:7:"), "{}", run.stderr);

    std::fs::write(
        dir.join("a.test.toml"),
        format!("{HEAD}[[case]]\nname = \"x\"\nbogus = 1\n"),
    )
    .expect("write");
    let run = policyc(&dir, &["test", "a.test.toml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("unknown field `bogus`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("a.test.toml:6:"), "{}", run.stderr);

    let none = policyc(&dir, &["test", "support-desk.policy"]);
    assert_eq!(none.code, 2);
    let empty = scratch("test_empty");
    std::fs::remove_file(empty.join("support-desk.policy")).expect("rm");
    assert_eq!(policyc(&empty, &["test", "."]).code, 2);
}
