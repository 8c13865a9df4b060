//! Decisions for argument types at JSON-Schema level (`T | null`, literal
//! enums, open records, lists of records, `any`), each checked against the
//! reference interpreter as well.

use serde_json::{json, Value as Json};
use support::decide;
use toolgate_engine::Outcome;

use crate::support;

const TRAVEL: &str = r#"
tool travel.book read { cabin: "economy" | "business", seats?: 1 | 2, note: string | null,
  card?: { holder: string } | null, meta?: { to: string, .. }, people?: list<{ email: string } | null>,
  extra?: any };
tool travel.open read { id: string, .. };
tool travel.pay read { card: { holder: string } | null };
agent bot {
  deny travel.pay when args.card.holder == "mallory" reason "blocked holder";
  allow travel.pay;
  allow travel.book when args.note == null and args.cabin == "economy";
  allow travel.book when args.note != null and args.note starts_with "ok";
  allow travel.book when has args.people and all p in args.people: p != null and p.email ends_with "@acme.com";
  allow travel.open when has args.tag and args.tag == "x";
}
"#;

fn book(extra: Json) -> Json {
    let mut v = json!({ "cabin": "economy", "note": null });
    if let (Some(v), Json::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
    v
}

#[test]
fn null_is_a_value_of_a_nullable_type_and_equals_null() {
    let out = |args: Json| decide(TRAVEL, "travel.book", args).0;
    assert_eq!(out(book(json!({}))), Outcome::Allow, "note is null");
    assert_eq!(out(book(json!({"note": "ok, thanks"}))), Outcome::Allow);
    assert_eq!(out(book(json!({"note": "no"}))), Outcome::Deny);
    assert_eq!(
        decide(TRAVEL, "travel.book", json!({ "cabin": "economy" })).1,
        "missing argument `note`",
        "a nullable field is still required unless it is optional"
    );
}

#[test]
fn a_field_under_null_is_an_error_so_a_deny_applies() {
    let (outcome, reason) = decide(TRAVEL, "travel.pay", json!({"card": null}));
    assert_eq!(
        (outcome, reason.as_str()),
        (Outcome::Deny, "blocked holder")
    );
    let ok = decide(TRAVEL, "travel.pay", json!({"card": {"holder": "ann"}}));
    assert_eq!(ok.0, Outcome::Allow);
}

#[test]
fn enums_accept_only_their_values() {
    let out = |args: Json| decide(TRAVEL, "travel.book", args);
    assert_eq!(out(book(json!({"seats": 2.0}))).0, Outcome::Allow);
    assert_eq!(
        out(book(json!({"cabin": "first"}))).1,
        "argument `cabin` must be one of \"economy\", \"business\", got a string"
    );
    assert_eq!(out(book(json!({"seats": 3}))).0, Outcome::Deny);
}

#[test]
fn open_records_and_any_accept_what_they_do_not_name() {
    let out = |tool: &str, args: Json| decide(TRAVEL, tool, args).0;
    let meta = json!({"meta": {"to": "x", "cc": ["y"]}, "extra": {"deep": [null]}});
    assert_eq!(out("travel.book", book(meta)), Outcome::Allow);
    assert_eq!(
        out("travel.open", json!({"id": "1", "tag": "x"})),
        Outcome::Allow
    );
    assert_eq!(
        out("travel.open", json!({"id": "1", "tag": 1})),
        Outcome::Deny
    );
    assert_eq!(out("travel.open", json!({"tag": "x"})), Outcome::Deny);
}

#[test]
fn null_elements_of_a_list_of_records_are_tested_with_null() {
    let people = |p: Json| book(json!({"note": "no", "people": p}));
    let out = |p: Json| decide(TRAVEL, "travel.book", people(p)).0;
    assert_eq!(out(json!([{"email": "a@acme.com"}])), Outcome::Allow);
    assert_eq!(out(json!([{"email": "a@acme.com"}, null])), Outcome::Deny);
    assert_eq!(out(json!([{"email": "a@evil.com"}])), Outcome::Deny);
}
