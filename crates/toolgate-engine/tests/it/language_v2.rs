//! Decisions for the additions of language v2 (numbers, rule ids, approval
//! floors, ...), each through one helper that checks the compiled engine
//! against the reference interpreter as well.

use serde_json::{json, Value as Json};
use support::decide;
use toolgate_engine::{reference, Engine, Outcome};

use crate::support;

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

/// The decision for `bot` calling `tool` with `args` (engine only).
fn decision_json(src: &str, tool: &str, args: Json) -> (Json, Option<String>, Option<String>) {
    let (_, engine) = support::compiled(src);
    let req = support::request(tool, args);
    let d = engine.decide(&req.as_request());
    let key = d
        .rule()
        .zip(d.budgeted())
        .map(|(rule, b)| b.key(rule, &req.as_request()).rule_identity.to_string());
    (
        d.to_json(&req.as_request()),
        d.rule().map(ToString::to_string),
        key,
    )
}

#[test]
fn rule_ids_name_the_rule_in_decisions_and_key_its_budget() {
    let v1 = "tool t.close write { n: int };\nwrites enabled;\nagent bot {\n  \
              @id(\"close-budget\")\n  write t.close auto-approve limit 3 per hour when args.n > 1;\n}\n";
    let (json, shown, key) = decision_json(v1, "t.close", json!({ "n": 2 }));
    assert_eq!(
        json["rule"],
        json!({ "file": "p.policy", "line": 4, "column": 3, "id": "close-budget" })
    );
    assert_eq!(shown.as_deref(), Some("close-budget (p.policy:4:3)"));
    // Moved to the top level, its condition changed: the same budget window.
    let v2 = "tool t.close write { n: int };\nwrites enabled;\nagent bot {}\n\
              @id(\"close-budget\") write t.close auto-approve limit 5 per hour when args.n > 0;\n";
    let (_, _, key2) = decision_json(v2, "t.close", json!({ "n": 2 }));
    assert_eq!(key, key2);
    assert_eq!(key.as_deref(), Some("@id(close-budget)"));
    // Without an id, the rule is named by its place, as before.
    let plain = "tool t.r read;\nagent bot {\n  allow t.r;\n}\n";
    let (json, shown, _) = decision_json(plain, "t.r", json!({}));
    assert_eq!(
        json["rule"],
        json!({ "file": "p.policy", "line": 3, "column": 3 })
    );
    assert_eq!(shown.as_deref(), Some("p.policy:3:3"));
}

const REFUNDS: &str = r#"
tool refund.issue write { amount_cents: int, note?: string };
writes enabled;
agent bot {
  write refund.issue auto-approve limit 5 per day when args.amount_cents <= 2000;
  write refund.issue require approval from "support";
  @id("big-refunds")
  require 2 approvals from "finance" on refund.issue when args.amount_cents > 10000;
}
"#;

#[test]
fn an_approval_floor_raises_whichever_grant_matched() {
    let (ir, engine) = support::compiled(REFUNDS);
    let ask = |cents: i64| support::request("refund.issue", json!({ "amount_cents": cents }));
    let small = ask(1500);
    let d = engine.decide(&small.as_request());
    assert_eq!(
        (d.outcome(), d.budgeted().is_some()),
        (Outcome::Allow, true)
    );
    // 9,000 dollars: one approval from support was enough before the floor.
    let big = ask(900_000);
    let d = engine.decide(&big.as_request());
    assert_eq!(d.outcome(), Outcome::ApprovalRequired);
    assert_eq!(
        d.approval(),
        Some(&toolgate_check::ir::HumanApproval {
            group: Some("finance".into()),
            count: 2,
            expires_secs: None
        })
    );
    assert_eq!(
        d.rule().and_then(|r| r.name.as_deref()),
        Some("big-refunds")
    );
    let want = reference::decide(&ir, &big.as_request());
    assert!(reference::agrees(&d, &want), "{d:?} vs {want:?}");
    // A floor whose condition cannot be evaluated applies (fail closed).
    let (out, _) = decide(
        &REFUNDS.replace("args.amount_cents > 10000", "args.note == \"x\""),
        "refund.issue",
        json!({ "amount_cents": 1500 }),
    );
    assert_eq!(out, Outcome::ApprovalRequired);
}

const MEETINGS: &str = r#"
context { contacts: list<string> };
tool cal.invite write { participants: list<{ email: string, name?: string }> };
writes enabled;
agent bot {
  write cal.invite auto-approve limit 5 per day
    when all p in args.participants: p.email ends_with "@acme.com" or p.email in ctx.contacts;
  deny cal.invite when any p in args.participants: has p.name and p.name == "";
}
"#;

#[test]
fn element_wise_quantifiers_read_fields_of_each_element() {
    let parsed = toolgate_syntax::parse(MEETINGS);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let checked = toolgate_check::check(&parsed.file, MEETINGS);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let ir = checked.policy.expect("checks");
    let engine = Engine::new(&ir, "p.policy").expect("compiles");
    let ask = |people: Json| {
        let context = json!({ "tenant": "acme", "env": "prod", "contacts": ["bob@gmail.com"] });
        let req = support::request_in("cal.invite", json!({ "participants": people }), context);
        let d = engine.decide(&req.as_request());
        let want = reference::decide(&ir, &req.as_request());
        assert!(reference::agrees(&d, &want), "{d:?} vs {want:?}");
        d.outcome()
    };
    let ann = json!({ "email": "ann@acme.com" });
    let bob = json!({ "email": "bob@gmail.com", "name": "Bob" });
    let eve = json!({ "email": "eve@evil.com" });
    assert_eq!(ask(json!([ann, bob])), Outcome::Allow);
    assert_eq!(ask(json!([ann, eve])), Outcome::Deny);
    assert_eq!(ask(json!([])), Outcome::Allow, "`all` of nothing holds");
    assert_eq!(
        ask(json!([{ "email": "x@acme.com", "name": "" }])),
        Outcome::Deny
    );
}

#[test]
fn undeclared_context_fields_are_ignored() {
    let src = "context { region: string };\ntool t.r read;\nagent bot {\n  allow t.r when ctx.region == \"eu\";\n}\n";
    let (_, engine) = support::compiled(src);
    for extra in [
        json!({}),
        json!({ "admin": true, "tenant_override": "other" }),
    ] {
        let mut context = json!({ "tenant": "acme", "env": "prod", "region": "eu" });
        for (k, v) in extra.as_object().into_iter().flatten() {
            context[k] = v.clone();
        }
        let req = support::request_in("t.r", json!({}), context);
        assert_eq!(engine.decide(&req.as_request()).outcome(), Outcome::Allow);
    }
}

const READS: &str = r#"
tool web.visit read { url: string };
tool user.profile read { id: string };
agent bot {
  allow web.visit auto-approve limit 20 per hour when host(args.url) ends_with ".acme.com";
  allow web.visit require approval from "ops";
  allow user.profile when args.id == "me";
  @id("profiles-need-review")
  require 2 approvals on user.profile when args.id != "me";
}
"#;

/// Outcome, budget limit, fallback outcome and approval of `bot` calling
/// `tool`, engine and reference agreeing.
type Shape = (
    Outcome,
    Option<u64>,
    Option<Outcome>,
    Option<toolgate_check::ir::HumanApproval>,
);

fn shape(src: &str, tool: &str, args: Json) -> Shape {
    let (ir, engine) = support::compiled(src);
    let req = support::request(tool, args);
    let d = engine.decide(&req.as_request());
    let want = reference::decide(&ir, &req.as_request());
    assert!(reference::agrees(&d, &want), "{d:?} vs {want:?}");
    let fallback = d.budgeted().map(|b| b.fallback.outcome());
    let approval = d.approval().cloned();
    let limit = d.budgeted().map(|b| b.budget.limit);
    (d.outcome(), limit, fallback, approval)
}

#[test]
fn reads_take_budgets_approvals_and_floors_like_writes() {
    // No `writes` statement: it switches writes only.
    let human = |group: Option<&str>, count| {
        Some(toolgate_check::ir::HumanApproval {
            group: group.map(String::from),
            count,
            expires_secs: None,
        })
    };
    assert_eq!(
        shape(
            READS,
            "web.visit",
            json!({ "url": "https://docs.acme.com/x" })
        ),
        (
            Outcome::Allow,
            Some(20),
            Some(Outcome::ApprovalRequired),
            None
        ),
        "a budgeted read falls back to the approval when its budget is spent"
    );
    assert_eq!(
        shape(READS, "web.visit", json!({ "url": "https://evil.test/" })),
        (Outcome::ApprovalRequired, None, None, human(Some("ops"), 1))
    );
    assert_eq!(
        shape(READS, "user.profile", json!({ "id": "bob" })).0,
        Outcome::Deny,
        "a floor grants nothing: no grant for another id"
    );
    let every_id = READS.replace("args.id == \"me\";", "has args.id;");
    assert_eq!(
        shape(&every_id, "user.profile", json!({ "id": "bob" })),
        (Outcome::ApprovalRequired, None, None, human(None, 2)),
        "the floor raises a plain allow of a read"
    );
    assert_eq!(
        shape(&every_id, "user.profile", json!({ "id": "me" })).0,
        Outcome::Allow
    );
}
