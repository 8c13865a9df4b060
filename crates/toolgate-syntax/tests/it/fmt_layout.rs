//! `fmt`'s layout of comments inside `context {}` and record types, and of
//! long conditions: exact output, meaning kept, idempotent.

use toolgate_syntax::{parse, print};

/// Formats `src`, checks that the result means the same, keeps every comment
/// and is a fixed point, and returns it.
fn fmt(src: &str) -> String {
    let parsed = parse(src);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let once = print(&parsed.file, src);
    let again = parse(&once);
    assert!(again.errors.is_empty(), "{:?}\n{once}", again.errors);
    assert_eq!(
        again.file.items, parsed.file.items,
        "meaning changed:\n{once}"
    );
    assert_eq!(
        again.file.comments.len(),
        parsed.file.comments.len(),
        "{once}"
    );
    assert_eq!(print(&again.file, &once), once, "not idempotent");
    once
}

#[test]
fn comments_inside_context_stay_between_its_fields() {
    let src = "context { // who calls\n  tenant_id: string; // the caller's\n\n  // the account\n  account_id: string;\n  /* last */\n}\n";
    assert_eq!(
        fmt(src),
        "context { // who calls\n  tenant_id: string; // the caller's\n\n  // the account\n  account_id: string;\n  /* last */\n}\n"
    );
}

#[test]
fn a_context_without_comments_keeps_its_layout() {
    assert_eq!(
        fmt("context {a:string,b?:int}\n"),
        "context {\n  a: string;\n  b?: int;\n}\n"
    );
}

#[test]
fn comments_inside_a_record_type_stay_between_its_fields() {
    let src = "tool mail.send write {\n  to: list<string>, // recipients\n  // the text\n  body: string redact,\n  attachments?: list<{ name: string, /* bytes */ size: int }>,\n};\ntool kb.read read { q: string };\n";
    assert_eq!(
        fmt(src),
        "tool mail.send  write {\n  to: list<string>, // recipients\n  // the text\n  body: string redact,\n  attachments?: list<{\n    name: string, /* bytes */\n    size: int,\n  }>,\n};\ntool kb.read    read  { q: string };\n"
    );
}

#[test]
fn a_record_without_comments_stays_inline() {
    assert_eq!(
        fmt("tool t read {\n  a: string,\n  b: int\n};\n"),
        "tool t read { a: string, b: int };\n"
    );
}

#[test]
fn a_long_condition_wraps_before_and_or() {
    let src = "allow crm.search when args.query == \"customers in europe\" or args.query == \"customers in asia\" or args.query == \"customers in africa\";\n";
    assert_eq!(
        fmt(src),
        "allow crm.search when args.query == \"customers in europe\"\n    or args.query == \"customers in asia\"\n    or args.query == \"customers in africa\";\n"
    );
}

#[test]
fn nested_chains_wrap_two_deeper_and_other_clauses_keep_their_lines() {
    let src = "agent a {\n  write crm.update require approval from \"sales-leads\" when (args.region == \"europe-west\" or args.region == \"europe-north\") and args.account_id == ctx.account_id and args.amount_cents <= 1000000 reason \"regional updates\";\n}\n";
    assert_eq!(
        fmt(src),
        "agent a {\n  write crm.update require approval from \"sales-leads\"\n    when (args.region == \"europe-west\" or args.region == \"europe-north\")\n      and args.account_id == ctx.account_id\n      and args.amount_cents <= 1000000\n    reason \"regional updates\";\n}\n"
    );
}

#[test]
fn a_parenthesised_chain_too_long_for_its_line_wraps_inside() {
    let long = (0..6)
        .map(|i| format!("args.field_number_{i} == \"value number {i}\""))
        .collect::<Vec<_>>()
        .join(" or ");
    let src = format!("deny t when has args.x and ({long});\n");
    let out = fmt(&src);
    assert!(out.lines().all(|l| l.len() <= 100), "{out}");
    assert!(
        out.contains(
            "\n    and (args.field_number_0 == \"value number 0\"\n      or args.field_number_1"
        ),
        "{out}"
    );
}

#[test]
fn tool_declarations_written_on_one_line_are_aligned_at_once() {
    // Found by the parse_check fuzz target: they used to be aligned only by a second `fmt`.
    assert_eq!(
        fmt("tool ticket.close write;tool kb.read read;\n"),
        "tool ticket.close  write;\ntool kb.read       read;\n"
    );
}
