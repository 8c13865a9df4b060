//! Item-13 warnings of language v2: `unreachable_rule` only for denies that
//! always apply, `name_denylist_without_schema`, `rules_without_agents`.

use miette::Diagnostic as _;

/// `code @ underlined text` of every diagnostic, in order.
fn codes(src: &str) -> Vec<String> {
    let parsed = toolgate_syntax::parse(src);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    toolgate_check::check(&parsed.file, src)
        .diagnostics
        .iter()
        .map(|d| {
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            let code = code.trim_start_matches("toolgate::check::").to_string();
            let label = d
                .labels()
                .and_then(|mut l| l.find(|l| l.primary()).or_else(|| d.labels()?.next()));
            let text = label.map_or("", |l| &src[l.offset()..l.offset() + l.len()]);
            format!("{code} @ {text}")
        })
        .collect()
}

#[test]
fn a_grant_after_a_conditional_deny_whose_condition_fails_is_not_unreachable() {
    // The deny's condition has an error, so its IR has no condition; it is
    // still conditional, and the grant is not reported unreachable.
    assert_eq!(
        codes("tool t read { n: int };\ndeny t when args.nope == 1;\nagent a { allow t; }\n"),
        ["unknown_argument @ args.nope"]
    );
    assert_eq!(
        codes("tool t read { n: int };\ndeny t when args.n == \"x\";\nagent a { allow t; }\n"),
        ["type_mismatch @ args.n"]
    );
    assert_eq!(
        codes("tool t read;\ndeny t when args.n == 1;\nagent a { allow t; }\n"),
        Vec::<String>::new()
    );
    // An unconditional deny still makes the grant unreachable.
    assert_eq!(
        codes("tool t read;\ndeny t;\nagent a { allow t; }\n"),
        ["unreachable_rule @ allow t;"]
    );
}

#[test]
fn a_deny_on_an_argument_name_of_a_tool_without_schema_is_reported() {
    assert_eq!(
        codes("tool t read;\ndeny t when has args.password;\nagent a { allow t; }\n"),
        ["name_denylist_without_schema @ has args.password"]
    );
    assert_eq!(
        codes("tool t read;\ndeny t when args.x == 1 or (has args.token and has args.secret);\nagent a { allow t; }\n"),
        [
            "name_denylist_without_schema @ has args.token",
            "name_denylist_without_schema @ has args.secret"
        ]
    );
    // With a schema, a differently spelled name is refused: nothing to report.
    assert_eq!(
        codes("tool t read { password?: string };\ndeny t when has args.password;\nagent a { allow t; }\n"),
        Vec::<String>::new()
    );
    // `not has` requires the argument: not a deny-list.
    assert_eq!(
        codes("tool t read;\ndeny t when not has args.ticket;\nagent a { allow t; }\n"),
        Vec::<String>::new()
    );
}

#[test]
fn grants_without_any_agent_block_are_reported() {
    assert_eq!(codes("tool t read;\nallow t;\n"), ["no_agents @ allow t;"]);
    assert_eq!(codes("tool t read;\ndeny t;\n"), Vec::<String>::new());
    assert_eq!(
        codes("tool t read;\nallow t;\nagent a {}\n"),
        Vec::<String>::new()
    );
}

#[test]
fn a_decimal_number_checks_as_a_number() {
    assert_eq!(
        codes("tool t read { n: number };\nagent a { allow t when args.n <= 1.5; }\n"),
        Vec::<String>::new()
    );
    assert_eq!(
        codes("tool t read { s: string };\nagent a { allow t when args.s == 1.5; }\n"),
        ["type_mismatch @ args.s"]
    );
}
