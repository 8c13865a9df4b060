//! Decisions for the additions of language v2 (numbers, rule ids, approval
//! floors, ...), each through one helper that checks the compiled engine
//! against the reference interpreter as well.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use serde_json::{json, Value as Json};
use toolgate_engine::{reference, Engine, Outcome, OwnedRequest};

/// The outcome and reason for `agent` calling `tool` with `args`, after
/// asserting that the engine and the reference agree.
fn decide(src: &str, tool: &str, args: Json) -> (Outcome, String) {
    let parsed = toolgate_syntax::parse(src);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let checked = toolgate_check::check(&parsed.file, src);
    assert!(
        checked.policy.is_some(),
        "does not check: {:?}",
        checked.diagnostics
    );
    let ir = checked.policy.expect("checked above");
    let engine = Engine::new(&ir, "p.policy").expect("compiles");
    let text = json!({
        "agent": "bot", "tool": tool, "args": args,
        "context": { "tenant": "acme", "env": "prod" },
    });
    let req = OwnedRequest::from_json(&text.to_string()).expect("a request");
    let d = engine.decide(&req.as_request());
    let want = reference::decide(&ir, &req.as_request());
    assert!(reference::agrees(&d, &want), "{d:?} vs {want:?}");
    (d.outcome, d.reason.to_string())
}

const BANK: &str = r#"
tool pay.send write { to: string, amount: number, count?: int };
writes enabled;
agent bot {
  deny pay.send when args.amount > 5000;
  write pay.send auto-approve limit 5 per day when args.amount <= 100.00;
}
"#;

#[test]
fn a_cap_on_an_integer_no_longer_denies_fractional_amounts() {
    let out = |amount: Json| decide(BANK, "pay.send", json!({ "to": "x", "amount": amount })).0;
    assert_eq!(out(json!(98.7)), Outcome::Allow);
    assert_eq!(out(json!(100)), Outcome::Allow);
    assert_eq!(out(json!(100.0)), Outcome::Allow);
    assert_eq!(out(json!(100.01)), Outcome::Deny, "no grant above 100.00");
    assert_eq!(out(json!(5000.01)), Outcome::Deny);
    assert_eq!(out(json!("98.7")), Outcome::Deny, "a string is no number");
}

#[test]
fn int_accepts_integral_numbers_as_json_schema_does() {
    let args = |count: Json| json!({ "to": "x", "amount": 1, "count": count });
    assert_eq!(decide(BANK, "pay.send", args(json!(4.0))).0, Outcome::Allow);
    let (out, why) = decide(BANK, "pay.send", args(json!(4.5)));
    assert_eq!(out, Outcome::Deny);
    assert!(why.contains("must be an integer"), "{why}");
}
