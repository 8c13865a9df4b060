//! Parser tests: one helper per concern (`parse_ok`, `errors`), asserting the
//! tree's shape or the message and underlined text, not raw offsets.

use crate::ast::{self, CmpOp, Expr, Item};
use crate::{parse, print};

/// Parses `src`, asserting there is no syntax error.
fn parse_ok(src: &str) -> ast::File {
    let parsed = parse(src);
    assert!(
        parsed.errors.is_empty(),
        "unexpected errors for {src:?}: {:?}",
        parsed.errors
    );
    parsed.file
}

/// Every syntax error as `message @ underlined text`.
fn errors(src: &str) -> Vec<String> {
    use miette::Diagnostic as _;
    parse(src)
        .errors
        .iter()
        .map(|e| {
            let label = e.labels().and_then(|mut l| l.next());
            let text = label.map_or("", |l| &src[l.offset()..l.offset() + l.len()]);
            format!("{e} @ {text:?}")
        })
        .collect()
}

/// The condition of the first rule in `src`, as a tree.
fn condition(cond: &str) -> Expr {
    let file = parse_ok(&format!("allow t when {cond};"));
    let Some(Item::Rule(rule)) = file.items.first().map(|i| &i.node) else {
        panic!("a rule")
    };
    match rule.clauses.first().map(|c| &c.node) {
        Some(ast::Clause::When(e)) => e.node.clone(),
        other => panic!("expected a when clause, got {other:?}"),
    }
}

fn shape(e: &Expr) -> String {
    match e {
        Expr::Or(p) => format!(
            "or({})",
            p.iter()
                .map(|p| shape(&p.node))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Expr::And(p) => format!(
            "and({})",
            p.iter()
                .map(|p| shape(&p.node))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Expr::Not(i) => format!("not({})", shape(&i.node)),
        Expr::Paren(i) => format!("({})", shape(&i.node)),
        other => crate::expr_text(other),
    }
}

#[test]
fn precedence_is_or_then_and_then_not() {
    assert_eq!(
        shape(&condition("a or b and not c")),
        "or(a, and(b, not(c)))"
    );
    assert_eq!(
        shape(&condition("not a == 1 and (b or c)")),
        "and(not(a == 1), (or(b, c)))"
    );
    assert_eq!(shape(&condition("not not x")), "not(not(x))");
}

#[test]
fn not_in_is_one_operator() {
    let Expr::Compare(_, op, _) = condition("args.x not in [1, 2]") else {
        panic!("comparison")
    };
    assert_eq!(op.node, CmpOp::NotIn);
    let Expr::Compare(_, op, _) = condition("args.x matches regex \"a\"") else {
        panic!("comparison")
    };
    assert_eq!(op.node, CmpOp::MatchesRegex);
}

#[test]
fn quantifiers_and_calls_parse() {
    let Expr::Quantified(q, list, op, _) = condition("all args.to ends_with \"@x\"") else {
        panic!("quantifier")
    };
    assert_eq!((q.node, op.node), (ast::Quantifier::All, CmpOp::EndsWith));
    assert_eq!(crate::expr_text(&list.node), "args.to");
    assert_eq!(
        crate::expr_text(&condition("len(lower(host(args.u))) > 3")),
        "len(lower(host(args.u))) > 3"
    );
}

#[test]
fn string_escapes_are_decoded() {
    let Expr::Compare(_, _, rhs) = condition(r#"x == "a\"b\\c\n\u{e9}""#) else {
        panic!("comparison")
    };
    assert_eq!(
        rhs.node,
        Expr::Literal(ast::Literal::Str("a\"b\\c\né".into()))
    );
}

#[test]
fn syntax_errors_say_what_was_expected_in_words() {
    assert_eq!(
        errors("tool a read\ntool b read;"),
        ["expected a label, `;`, `irreversible`, `output` or `{`, found `tool` @ \"\""]
    );
    assert_eq!(
        errors("permit a;"),
        ["expected a declaration or rule, found `permit` @ \"permit\""]
    );
    assert_eq!(errors("allow a when x = 1;")[0], "expected a comparison operator, `(`, `;`, `and`, `auto-approve`, `endorse`, `from`, `or`, `reason`, `require`, `scope` or `when`, found `=` @ \"=\"");
    assert_eq!(
        errors("allow a when x == \"abc;"),
        ["expected a value, found an unterminated string @ \"\\\"\""]
    );
    assert_eq!(
        errors("let and = 1;"),
        ["expected a name, found `and` @ \"and\""]
    );
    assert_eq!(
        errors("allow a when x == \"\\q\";"),
        ["unknown escape `\\q` in string @ \"\\\\q\""]
    );
}

#[test]
fn recovery_reports_every_broken_item_once_and_keeps_the_rest() {
    let src =
        "tool a read;\nallow a when x == ;\ntool b read;\ndeny b when (x == 1;\ntool c read;\n";
    let parsed = parse(src);
    assert_eq!(parsed.errors.len(), 2, "{:?}", parsed.errors);
    let names: Vec<String> = parsed
        .file
        .items
        .iter()
        .filter_map(|i| match &i.node {
            Item::Tool(t) => Some(t.name.node.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn spans_cover_exactly_the_node_not_trailing_comments() {
    let src = "tool a read;\nallow a when x == 1 // note\n  ;\n";
    let file = parse_ok(src);
    let rule = &file.items[1];
    assert_eq!(
        &src[rule.span.start..rule.span.end],
        "allow a when x == 1 // note\n  ;"
    );
    let Item::Rule(r) = &rule.node else {
        panic!("rule")
    };
    let clause = &r.clauses[0];
    assert_eq!(&src[clause.span.start..clause.span.end], "when x == 1");
    assert_eq!(file.comments.len(), 1);
}

#[test]
fn nesting_is_limited_without_crashing() {
    let deep = format!(
        "allow t when {}x{};",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    assert!(!parse(&deep).errors.is_empty());
    let nots = format!("allow t when {}x;", "not ".repeat(100_000));
    assert!(errors(&nots)[0].starts_with("nesting is too deep"));
    let lists = format!("let x = {}1{};", "[".repeat(100), "]".repeat(100));
    assert!(errors(&lists)[0].starts_with("nesting is too deep"));
    let ok_depth = format!("allow t when {}x{};", "(".repeat(60), ")".repeat(60));
    parse_ok(&ok_depth);
    assert_eq!(
        errors("allow t when x == \"\\u{+41}\";").len(),
        1,
        "`+` is not a hex digit"
    );
    let long_chain = format!("allow t when x{};", " and x".repeat(50_000));
    parse_ok(&long_chain);
}

#[test]
fn too_many_errors_stop_reading() {
    let src = "tool x;\n".repeat(200);
    let errs = errors(&src);
    assert_eq!(errs.len(), 51);
    assert!(errs[50].starts_with("too many syntax errors"));
}

#[test]
fn invalid_utf8_points_at_the_first_bad_byte() {
    let err = crate::decode(b"tool a read;\n\xff").expect_err("not UTF-8");
    assert_eq!(err.to_string(), "file is not valid UTF-8");
}

fn corpus(dir: &str) -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(root)
        .expect("test_data exists")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
        .iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(p).expect("UTF-8 test data"),
            )
        })
        .collect()
}

#[test]
fn ok_corpus_parses_and_err_corpus_fails() {
    for (name, src) in corpus("ok") {
        assert!(
            parse(&src).errors.is_empty(),
            "{name}: {:?}",
            parse(&src).errors
        );
    }
    for (name, src) in corpus("err") {
        assert!(!parse(&src).errors.is_empty(), "{name} should not parse");
    }
}

#[test]
fn item_by_item_parsing_agrees_with_the_whole_file_rule() {
    use pest::Parser as _;
    for dir in ["ok", "err"] {
        for (name, src) in corpus(dir) {
            let whole = super::PolicyParser::parse(super::Rule::file, &src).is_ok();
            assert_eq!(whole, parse(&src).errors.is_empty(), "{name}");
        }
    }
}

#[test]
fn fmt_is_a_fixed_point_on_the_corpus() {
    for (name, src) in corpus("ok") {
        let file = parse_ok(&src);
        let once = print(&file, &src);
        let again = parse_ok(&once);
        assert_eq!(again.items, file.items, "{name}: fmt changed the meaning");
        assert_eq!(
            again.comments.len(),
            file.comments.len(),
            "{name}: fmt lost a comment"
        );
        assert_eq!(print(&again, &once), once, "{name}: fmt is not idempotent");
    }
}

#[test]
fn argument_types_parse_and_print_canonically() {
    let src =
        "tool t read {a: \"x\"|\"y\" , b : string|null, c?: {d: int,..}, e: list<1|2>, f: any,..};";
    let file = parse_ok(src);
    let Some(Item::Tool(t)) = file.items.first().map(|i| &i.node) else {
        panic!("a tool")
    };
    assert!(t.open);
    let printed = print(&file, src);
    assert_eq!(
        printed,
        "tool t read { a: \"x\" | \"y\", b: string | null, c?: { d: int, .. }, e: list<1 | 2>, f: any, .. };\n"
    );
    assert_eq!(parse_ok(&printed), file);
    let open = "tool t read {..};";
    assert_eq!(print(&parse_ok(open), open), "tool t read { .. };\n");
}

#[test]
fn null_is_a_literal_and_a_reserved_word() {
    assert_eq!(shape(&condition("args.x == null")), "args.x == null");
    assert_eq!(errors("let null = 1;").len(), 1);
}

#[test]
fn accepted_risk_annotates_a_rule_in_either_order_with_its_id() {
    let src = "@accepted_risk(\"reviewed\") @id(\"a\") write t;\n@id(\"b\")\n@accepted_risk(\"x\")\nallow u;\n";
    let file = parse_ok(src);
    let risks: Vec<(Option<&str>, Option<&str>)> = file
        .items
        .iter()
        .filter_map(|i| match &i.node {
            Item::Rule(r) => Some((
                r.id.as_ref().map(|s| s.node.as_str()),
                r.accepted_risk.as_ref().map(|s| s.node.as_str()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        risks,
        [(Some("a"), Some("reviewed")), (Some("b"), Some("x"))]
    );
    assert_eq!(
        print(&file, src),
        "@id(\"a\")\n@accepted_risk(\"reviewed\")\nwrite t;\n@id(\"b\")\n@accepted_risk(\"x\")\nallow u;\n"
    );
    assert!(!errors("@accepted_risk(\"a\") @accepted_risk(\"b\") write t;").is_empty());
}

#[test]
fn provenance_forms_parse_and_print_canonically() {
    let e = condition("args.to from tool contacts.find and session.calls(mail.send) < 3");
    assert_eq!(
        crate::expr_text(&e),
        "args.to from tool contacts.find and session.calls(mail.send) < 3"
    );
    let Expr::And(parts) = e else { panic!("and") };
    let Expr::From(value, source) = &parts[0].node else {
        panic!("from")
    };
    assert_eq!(crate::expr_text(&value.node), "args.to");
    assert_eq!(source.node.text(), "tool contacts.find");
    // `from` binds like a comparison: tighter than `not`.
    let Expr::Not(inner) = condition("not args.a from user") else {
        panic!("not")
    };
    assert!(matches!(inner.node, Expr::From(..)));
}

#[test]
fn endorse_inside_require_becomes_a_clause_after_it() {
    let src = "write t require approval endorse args.iban expires 1h from \"g\";";
    let file = parse_ok(src);
    let printed = crate::print(&file, src);
    assert_eq!(
        printed,
        "write t require approval expires 1h from \"g\" endorse args.iban;\n"
    );
}
