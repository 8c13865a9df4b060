//! `now` on the command line: `eval`/`explain --now`, `policyc test` cases'
//! `now`, and `replay --journal` deciding at each record's own time.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use crate::support::run::{policyc, scratch, write};

const POLICY: &str = "tool cal.read read { start: datetime };
agent bot {
  allow cal.read when args.start > now and args.start <= now + 2w;
}
";

const REQUEST: &str = r#"{"agent": "bot", "tool": "cal.read", "args": {"start": "2020-01-10T12:00:00Z"}, "context": {"tenant": "acme", "env": "prod"}}"#;

fn decision(out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out).expect("a decision");
    v["decision"].as_str().unwrap_or_default().to_string()
}

#[test]
fn eval_and_explain_decide_at_the_given_now() {
    let dir = scratch("dates_eval");
    write(&dir, "p.policy", POLICY);
    write(&dir, "r.json", REQUEST);
    let at = |now: &str| {
        policyc(
            &dir,
            &["eval", "p.policy", "--request", "r.json", "--now", now],
        )
    };
    let before = at("2020-01-01T00:00:00Z");
    assert_eq!(before.code, 0, "{}", before.stderr);
    assert_eq!(decision(&before.stdout), "allow");
    assert_eq!(
        decision(&at("2020-01-10T13:00:00+01:00").stdout),
        "deny",
        "12:00Z is not after 12:00Z"
    );
    assert_eq!(
        decision(&at("2019-12-27T11:59:59Z").stdout),
        "deny",
        "more than 2 weeks ahead"
    );
    // The default is the system clock, long past 2020.
    let now = policyc(&dir, &["eval", "p.policy", "--request", "r.json"]);
    assert_eq!(decision(&now.stdout), "deny");

    let bad = at("2020-01-01T00:00:00");
    assert_eq!(bad.code, 2, "a time without an offset is a usage error");
    assert!(
        bad.stderr
            .contains("`--now` must be an RFC 3339 datetime with an offset"),
        "{}",
        bad.stderr
    );

    let explained = policyc(
        &dir,
        &[
            "explain",
            "p.policy",
            "--request",
            "r.json",
            "--now",
            "2020-01-01T01:00:00+01:00",
        ],
    );
    assert_eq!(explained.code, 0, "{}", explained.stderr);
    assert!(
        explained.stdout.contains("now: 2020-01-01T00:00:00Z"),
        "{}",
        explained.stdout
    );
    assert!(
        explained.stdout.contains("decision: allow"),
        "{}",
        explained.stdout
    );
}

#[test]
fn test_cases_fix_now_and_a_malformed_now_breaks_the_file() {
    let dir = scratch("dates_test_cmd");
    write(&dir, "p.policy", POLICY);
    let case = |now_line: &str, want: &str| {
        format!(
            "policy = \"p.policy\"\n[defaults]\ncontext = {{ tenant = \"acme\", env = \"prod\" }}\n{now_line}\n\
             [[case]]\nname = \"c\"\nrequest = {{ agent = \"bot\", tool = \"cal.read\", args = {{ start = \"2020-01-10T12:00:00Z\" }} }}\n\
             expect = {{ decision = \"{want}\" }}\n"
        )
    };
    write(
        &dir,
        "a.test.toml",
        case("now = \"2020-01-10T11:00:00Z\"", "allow"),
    );
    write(
        &dir,
        "b.test.toml",
        case("now = 2020-01-10T12:00:00Z", "deny"),
    );
    write(&dir, "c.test.toml", case("", "deny"));
    let run = policyc(&dir, &["test", "a.test.toml", "b.test.toml", "c.test.toml"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    write(
        &dir,
        "bad/x.test.toml",
        case("now = \"2020-01-10 11:00\"", "allow").replace("\"p.policy\"", "\"../p.policy\""),
    );
    let bad = policyc(&dir, &["test", "bad"]);
    assert_eq!(bad.code, 2, "{}{}", bad.stdout, bad.stderr);
    assert!(
        bad.stderr
            .contains("`now` must be an RFC 3339 time with an offset"),
        "{}",
        bad.stderr
    );
}

#[test]
fn a_journal_replay_decides_at_each_records_own_time() {
    let dir = scratch("dates_replay");
    write(&dir, "p.policy", POLICY);
    let line = |at: &str, id: &str| {
        format!(
            r#"{{"at": "{at}", "id": "{id}", "agent": "bot", "tool": "cal.read", "args": {{"start": "2020-01-10T12:00:00Z"}}, "context": {{"tenant": "acme", "env": "prod"}}}}"#
        )
    };
    let trace = [
        line("2020-01-01T00:00:00Z", "early"),
        line("2020-01-11T00:00:00Z", "late"),
    ]
    .join("\n");
    write(&dir, "trace.jsonl", trace + "\n");
    let run = policyc(
        &dir,
        &[
            "replay",
            "p.policy",
            "--trace",
            "trace.jsonl",
            "--audit",
            "audit.jsonl",
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let journal = std::fs::read_to_string(dir.join("audit.jsonl")).expect("journal");
    assert!(
        journal.contains(r#""decision":"allow""#) && journal.contains(r#""decision":"deny""#),
        "{journal}"
    );
    // Re-decided by the same policy at the records' times: nothing flips
    // (at today's clock both would be denied).
    let again = policyc(
        &dir,
        &[
            "replay",
            "--journal",
            "audit.jsonl",
            "--policy",
            "p.policy",
            "--format",
            "json",
        ],
    );
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    let doc: serde_json::Value = serde_json::from_str(&again.stdout).expect("json");
    assert_eq!(doc["decisions"], 2, "{doc}");
    assert_eq!(doc["same"], 2, "{doc}");
}
