//! Provenance checks: labels, `from`, session values, extraction, `endorse`.

use crate::check::tests::{codes, policy};
use crate::ir;

const TOOLS: &str = "writes enabled;
tool contacts.find read trusted { name: string } output { [].email: trusted, [].note: untrusted };
tool pay write { iban: string, amount: number, to: list<string>, rec: list<{ iban: string }>, ok: bool };
";

fn with(rules: &str) -> String {
    format!("{TOOLS}agent a {{ {rules} }}")
}

#[test]
fn labels_and_endorse_paths_reach_the_ir() {
    let p = policy(&with(
        "write pay when args.iban from trusted require approval endorse args.iban, args.to, args.rec.iban;",
    ));
    let find = &p.tools[0];
    assert_eq!(find.trust, ir::Trust::Trusted);
    assert_eq!(
        find.outputs
            .iter()
            .map(|o| (toolgate_syntax::ast::output_path_text(&o.path), o.trust))
            .collect::<Vec<_>>(),
        [
            ("[].email".to_string(), ir::Trust::Trusted),
            ("[].note".to_string(), ir::Trust::Untrusted)
        ]
    );
    assert_eq!(p.tools[1].trust, ir::Trust::Untrusted);
    assert_eq!(
        p.rules[0].endorse,
        [
            vec!["iban".to_string()],
            vec!["to".into()],
            vec!["rec".into(), "iban".into()]
        ]
    );
}

#[test]
fn let_values_and_in_lists_are_trusted_constants_but_bounds_are_not() {
    let p = policy(&format!(
        "let boss = \"boss@acme.com\";\n{}",
        with("write pay when args.iban in [\"DE89\", \"FR76\"] and args.amount <= 1000 and args.iban != boss;")
    ));
    assert_eq!(
        p.constants,
        [
            ir::Value::Str("boss@acme.com".into()),
            ir::Value::List(vec![
                ir::Value::Str("DE89".into()),
                ir::Value::Str("FR76".into())
            ])
        ]
    );
}

#[test]
fn from_takes_strings_and_numbers_only() {
    assert_eq!(
        codes(&with(
            "write pay when args.to from user and args.ok from user;"
        )),
        ["type_mismatch @ args.to", "type_mismatch @ args.ok"]
    );
    assert_eq!(
        codes(&with(
            "write pay when all t in args.to: t from tool contacts.find and args.amount from ctx;"
        )),
        Vec::<String>::new()
    );
}

#[test]
fn tool_names_in_from_and_session_calls_are_declared() {
    assert_eq!(
        codes(&with(
            "write pay when args.iban from tool contacts.fnd or session.calls(contact.find) > 1;"
        )),
        ["unknown_tool @ contacts.fnd", "unknown_tool @ contact.find"]
    );
}

#[test]
fn session_offers_tainted_only_as_a_path() {
    assert_eq!(
        codes(&with("write pay when session.tainte;")),
        ["unknown_name @ session.tainte"]
    );
    assert_eq!(
        codes(&with("deny pay when session.tainted and len(urls(args.iban)) > 0 and all e in emails(args.iban): e from user;")),
        Vec::<String>::new()
    );
    assert_eq!(
        codes(&with("deny pay when len(urls(args.amount)) > 0;")),
        ["type_mismatch @ args.amount"]
    );
}

#[test]
fn endorse_needs_a_human_approval_and_argument_values() {
    assert_eq!(
        codes(&with(
            "write pay auto-approve limit 3 per hour endorse args.iban;"
        )),
        ["endorse_without_approval @ endorse args.iban"]
    );
    assert_eq!(
        codes(&with("deny pay endorse args.iban;")),
        ["clause_not_allowed @ endorse args.iban"]
    );
    assert_eq!(
        codes(&with("require approval on pay endorse args.iban;")),
        ["clause_not_allowed @ endorse args.iban"]
    );
    assert_eq!(
        codes(&with("write pay endorse args.ibn, args.ok, ctx.x;")),
        [
            "unknown_argument @ args.ibn",
            "invalid_endorse_path @ args.ok",
            "invalid_endorse_path @ ctx.x"
        ]
    );
}

#[test]
fn an_output_path_labelled_twice_is_a_duplicate() {
    assert_eq!(
        codes("tool t read output { [].a: trusted, [].a: untrusted };"),
        ["duplicate_declaration @ [].a"]
    );
}
