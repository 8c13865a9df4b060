//! Argument types at JSON-Schema level: unions, literal types, `any`, open
//! records, and the checks conditions make against them.

use super::super::tests::{codes, policy};
use crate::ir;

const TRAVEL: &str = "\
context { plan?: \"free\" | \"pro\" }
tool travel.book write { cabin: \"economy\" | \"business\", seats: 1 | 2 | 3, note: string | null, \
meta?: { to: string, .. }, people: list<{ email: string, name?: string } | null>, extra: any, more?: int };
tool travel.open read { id: string, .. };
writes enabled;
agent a {
";

/// The diagnostics of `rules` in agent `a`'s block (the context field is
/// used by some cases only).
fn travel(rules: &str) -> Vec<String> {
    let mut c = codes(&format!("{TRAVEL}{rules}\n}}\n"));
    c.retain(|c| !c.starts_with("unused_context_field"));
    c
}

#[test]
fn unions_lower_to_nullable_and_enum_types() {
    let p = policy(&format!("{TRAVEL}}}\n"));
    let schema = p.tools[0].schema.as_ref().expect("a schema");
    let ty = |name: &str| &schema.iter().find(|f| f.name == name).expect("field").ty;
    assert_eq!(
        ty("cabin"),
        &ir::Type::OneOf(vec![
            ir::Value::Str("economy".into()),
            ir::Value::Str("business".into())
        ])
    );
    assert_eq!(ty("note"), &ir::Type::Nullable(Box::new(ir::Type::String)));
    assert_eq!(ty("extra"), &ir::Type::Any);
    assert!(matches!(ty("meta"), ir::Type::OpenRecord(f) if f.len() == 1));
    assert!(p.tools[1].open && !p.tools[0].open);
}

#[test]
fn unions_the_language_cannot_say_are_errors() {
    let c = |t: &str| codes(&format!("tool t read {{ x: {t} }};"));
    assert_eq!(c("string | int"), ["invalid_union @ int"]);
    assert_eq!(c("\"a\" | 1"), ["invalid_union @ 1"]);
    assert_eq!(c("\"a\" | string"), ["invalid_union @ string"]);
    assert_eq!(c("null | null"), ["invalid_union @ null | null"]);
    assert_eq!(c("null"), ["unknown_type @ null"]);
    assert_eq!(c("\"a\" | \"a\""), ["duplicate_declaration @ \"a\""]);
    assert_eq!(c("any | null"), Vec::<String>::new());
    assert_eq!(c("\"a\" | \"b\" | null"), Vec::<String>::new());
}

#[test]
fn null_is_compared_only_where_a_value_may_be_missing() {
    let ok: Vec<String> = Vec::new();
    assert_eq!(travel("write travel.book when args.note == null;"), ok);
    assert_eq!(travel("write travel.book when null != args.more;"), ok);
    assert_eq!(travel("write travel.book when args.meta.to == null;"), ok);
    assert_eq!(travel("write travel.book when args.extra == null;"), ok);
    assert_eq!(travel("write travel.book when ctx.plan != null;"), ok);
    assert_eq!(
        travel("write travel.book when any p in args.people: p == null or p.name == null;"),
        ok
    );
    assert_eq!(
        travel("write travel.book when args.cabin == null;"),
        ["type_mismatch @ args.cabin"]
    );
    assert_eq!(
        travel("write travel.book when args.note in null;"),
        ["type_mismatch @ in"]
    );
    assert_eq!(
        travel("write travel.book when args.note in [\"a\", null];"),
        ["type_mismatch @ null"]
    );
    assert_eq!(
        travel("write travel.book when null;"),
        ["type_mismatch @ null"]
    );
    assert_eq!(
        codes("let x = null;"),
        ["unused_constant @ x", "type_mismatch @ null"]
    );
}

#[test]
fn enum_literals_must_be_declared_values() {
    assert_eq!(
        travel("write travel.book when args.cabin == \"ecnomy\";"),
        ["unknown_enum_value @ \"ecnomy\""]
    );
    assert_eq!(
        travel("write travel.book when args.cabin in [\"economy\", \"first\"] or args.seats == 4;"),
        ["unknown_enum_value @ \"first\"", "unknown_enum_value @ 4"]
    );
    assert_eq!(
        travel("write travel.book when ctx.plan == \"pro\" and args.seats <= 2 and \"business\" == args.cabin;"),
        Vec::<String>::new()
    );
    let tags = "tool t read { tags: list<\"a\" | \"b\"> };\nagent x {\n  allow t when ";
    let c = |cond: &str| codes(&format!("{tags}{cond};\n}}\n"));
    assert_eq!(c("any args.tags == \"c\""), ["unknown_enum_value @ \"c\""]);
    assert_eq!(
        c("args.tags contains \"c\""),
        ["unknown_enum_value @ \"c\""]
    );
    assert_eq!(c("all x in args.tags: x != \"a\""), Vec::<String>::new());
}

#[test]
fn open_records_and_any_read_fields_the_schema_does_not_name() {
    assert_eq!(
        travel("write travel.book when args.extra.deep.x == 1 and has args.meta.cc and args.meta.cc == \"a\";"),
        Vec::<String>::new()
    );
    assert_eq!(
        travel("write travel.book when args.meta.cc == \"a\";"),
        ["unknown_argument @ args.meta.cc"]
    );
    assert_eq!(
        codes("tool t read { id: string, .. };\nagent a {\n  allow t when has args.q and args.q == 1;\n}\n"),
        Vec::<String>::new()
    );
}
