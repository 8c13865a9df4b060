//! Checker tests through two helpers: `codes` (what is reported) and
//! `policy` (the IR of a clean policy).

use crate::ir;
use crate::{check, CheckError};
use miette::Diagnostic as _;

/// Checks `src`. A policy without an agent block gets `agent tester {}`
/// appended (spans unchanged): without any agent every call is denied
/// (`no_agents`, tested in `tests/it/lints_v2.rs`), which these tests are not about.
fn run(src: &str) -> crate::Checked {
    let with_agent;
    let src = if src.contains("agent ") {
        src
    } else {
        with_agent = format!("{src}\nagent tester {{}}\n");
        &with_agent
    };
    let parsed = toolgate_syntax::parse(src);
    assert!(
        parsed.errors.is_empty(),
        "syntax errors: {:?}",
        parsed.errors
    );
    check(&parsed.file, src)
}

/// `code @ underlined text` of every diagnostic, in order.
pub(super) fn codes(src: &str) -> Vec<String> {
    run(src)
        .diagnostics
        .iter()
        .map(|d: &CheckError| {
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

pub(super) fn policy(src: &str) -> ir::Policy {
    let checked = run(src);
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| !d.is_warning())
        .collect();
    assert!(errors.is_empty(), "errors: {errors:?}");
    checked.policy.expect("a clean policy has an IR")
}

const SUPPORT_DESK: &str = include_str!("../../../../policies/support-desk.policy");

#[test]
fn support_desk_checks_clean_and_lowers_every_default() {
    assert_eq!(codes(SUPPORT_DESK), Vec::<String>::new());
    let p = policy(SUPPORT_DESK);
    assert_eq!(p.writes, ir::Writes::Enabled);
    assert_eq!(p.tools.len(), 7);
    assert_eq!(
        p.agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["support-bot", "browser"]
    );
    let deny_all = &p.rules[0];
    assert_eq!(
        (deny_all.agent, deny_all.tools.len(), deny_all.line),
        (None, 7, 19)
    );
    let close = p.tool_id("ticket.close").expect("declared");
    let writes: Vec<&ir::Effect> = p
        .rules
        .iter()
        .filter(|r| r.tools == [close])
        .map(|r| &r.effect)
        .collect();
    assert_eq!(
        writes,
        [
            &ir::Effect::Write {
                approval: ir::Approval::Human(ir::HumanApproval {
                    group: Some("support-leads".into()),
                    count: 1,
                    expires_secs: Some(900)
                }),
                scope: vec![ir::ScopeItem::Tenant, ir::ScopeItem::Env],
            },
            &ir::Effect::Write {
                approval: ir::Approval::Auto(ir::Budget {
                    limit: 10,
                    window_secs: 3600,
                    key: ir::BudgetKey::AgentToolTenant
                }),
                scope: ir::default_scope(),
            },
        ]
    );
}

#[test]
fn has_guards_the_rest_of_an_and_chain_only() {
    let tools = "tool a read { x: string };\n";
    assert!(codes(&format!(
        "{tools}allow a when has args.t and args.t == \"1\";"
    ))
    .is_empty());
    assert!(codes(&format!(
        "{tools}allow a when has args.t and args.t.u == \"1\";"
    ))
    .is_empty());
    assert_eq!(
        codes(&format!(
            "{tools}allow a when has args.t or args.t == \"1\";"
        )),
        ["unknown_argument @ args.t"]
    );
    assert_eq!(
        codes(&format!(
            "{tools}allow a when args.t == \"1\" and has args.t;"
        )),
        ["unknown_argument @ args.t"]
    );
}

#[test]
fn conditions_are_typed_against_each_named_tools_schema() {
    let tools = "tool a read { n: int };\ntool b read { n: string };\ntool c read;\n";
    assert_eq!(
        codes(&format!("{tools}allow a, b when args.n > 1;")),
        ["type_mismatch @ args.n"]
    );
    assert!(codes(&format!("{tools}allow c when args.anything.at.all == 1;")).is_empty());
    assert_eq!(
        codes(&format!("{tools}allow a when args.n == \"1\" and args.n in [\"x\"] and args.n starts_with \"1\";")),
        ["type_mismatch @ args.n", "type_mismatch @ args.n", "type_mismatch @ args.n"]
    );
    assert_eq!(
        codes(&format!("{tools}allow a when args.n;")),
        ["type_mismatch @ args.n"]
    );
}

#[test]
fn quantifiers_need_lists_and_type_their_elements() {
    let tools = "tool e write { to: list<string>, n: int };\nwrites enabled;\n";
    assert!(codes(&format!(
        "{tools}write e when all args.to ends_with \"@x.com\";"
    ))
    .is_empty());
    assert_eq!(
        codes(&format!("{tools}write e when any args.to > 1;")),
        ["type_mismatch @ args.to"]
    );
    assert_eq!(
        codes(&format!("{tools}write e when any args.n == 1;")),
        ["type_mismatch @ args.n"]
    );
}

#[test]
fn constants_are_inlined_and_checked() {
    let src = "let payees = [\"A\", \"B\"];\nlet max = 1000;\ntool pay write { to: string, amount: int };\nwrites enabled;\n\
               write pay when args.to in payees and args.amount <= max;";
    let p = policy(src);
    let cond = p.rules[0].condition.as_ref().expect("condition");
    let ir::ExprKind::And(parts) = &cond.kind else {
        panic!("and")
    };
    let ir::ExprKind::Binary(ir::BinOp::In, _, rhs) = &parts[0].kind else {
        panic!("in")
    };
    assert_eq!(
        rhs.kind,
        ir::ExprKind::Lit(ir::Value::List(vec![
            ir::Value::Str("A".into()),
            ir::Value::Str("B".into())
        ]))
    );
    assert_eq!(
        codes("let l = [1, \"a\"];"),
        ["unused_constant @ l", "type_mismatch @ 1"]
    );
}

#[test]
fn tool_patterns_expand_to_the_rules_class() {
    let src = "tool t.r read;\ntool t.w write;\nwrites enabled;\nallow t.*;\nwrite t.*;\ndeny t.*;";
    let p = policy(src);
    let names = |r: &ir::Rule| {
        r.tools
            .iter()
            .map(|t| p.tools[t.0 as usize].name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&p.rules[0]), ["t.r"]);
    assert_eq!(names(&p.rules[1]), ["t.w"]);
    assert_eq!(names(&p.rules[2]), ["t.r", "t.w"]);
}

#[test]
fn writes_statement_decides_dead_write_warnings() {
    let rules = "tool w write;\nwrite w;\n";
    assert_eq!(codes(rules), ["dead_write @ write w;"]);
    assert!(codes(&format!("writes disabled;\n{rules}")).is_empty());
    assert_eq!(
        policy(&format!("writes disabled;\n{rules}")).writes,
        ir::Writes::Disabled
    );
}

#[test]
fn every_error_is_reported_in_one_run_and_errors_withhold_the_ir() {
    let src = "envs dev, prod;\ntool a read;\nallow b;\nallow a when env == \"prdo\";\nallow a scope args.x;";
    assert_eq!(
        codes(src),
        [
            "unknown_tool @ b",
            "unknown_env @ \"prdo\"",
            "scope_from_args @ args.x"
        ]
    );
    assert!(run(src).policy.is_none());
    assert!(
        run("tool a read;\nallow *;").policy.is_some(),
        "warnings alone keep the IR"
    );
}

#[test]
fn scope_is_never_taken_from_arguments() {
    let src = "context { region: string; }\ntool a read { region: string };\nallow a scope tenant, ctx.region;";
    let p = policy(src);
    assert_eq!(
        p.rules[0].effect,
        ir::Effect::Allow {
            scope: vec![ir::ScopeItem::Tenant, ir::ScopeItem::Ctx("region".into())]
        }
    );
    assert_eq!(
        codes("tool a read;\nallow a scope args.region;"),
        ["scope_from_args @ args.region"]
    );
}

#[test]
fn unreachable_grants_are_found_per_agent() {
    let src = "tool a read;\ntool b read;\nagent x {\n  deny a;\n  allow a;\n  allow a, b;\n}\nagent y {\n  allow a;\n}";
    assert_eq!(codes(src), ["unreachable_rule @ allow a;"]);
}

#[test]
fn url_functions_are_typed_and_named_in_unknown_function_help() {
    let src = "tool h read { url: string };\nallow h when host(args.url) == \"a.test\" and port(args.url) == 443 and scheme(args.url) == \"https\" and path(args.url) starts_with \"/\";";
    assert_eq!(codes(src), Vec::<String>::new());
    assert_eq!(
        codes("tool h read { url: string };\nallow h when port(args.url) == \"443\";"),
        ["type_mismatch @ port(args.url)"]
    );
    let help = run("tool h read;\nallow h when hots(args.url) == \"a\";").diagnostics[0]
        .help()
        .map(|h| h.to_string());
    assert_eq!(help.as_deref(), Some("did you mean `host`?"));
}

#[test]
fn raw_url_patterns_are_flagged_where_a_rule_reads_the_argument_as_a_url() {
    let tools = "tool h read { url: string };\ntool g read { url: string };\n";
    let src = format!(
        "{tools}deny h when host(args.url) == \"evil.test\";\nallow h when args.url starts_with \"https://docs.test/\";\nallow h when lower(args.url) matches \"https://*\";\nallow h when args.url matches regex \"^https://\";\nallow g when args.url starts_with \"https://\";\nallow h when path(args.url) starts_with \"/a\";"
    );
    assert_eq!(
        codes(&src),
        [
            "raw_url_match @ args.url starts_with \"https://docs.test/\"",
            "raw_url_match @ lower(args.url) matches \"https://*\"",
            "raw_url_match @ args.url matches regex \"^https://\"",
        ],
        "not for tool g, which no URL function reads, nor for path()"
    );
    let same_rule = format!(
        "{tools}allow h when host(args.url) == \"a.test\" and args.url starts_with \"https://\";"
    );
    assert_eq!(
        codes(&same_rule),
        ["raw_url_match @ args.url starts_with \"https://\""]
    );
}

#[test]
fn host_suffixes_need_their_leading_dot() {
    let src = "let corp = \"example.com\";\ntool h read { url: string };\nallow h when host(args.url) ends_with \"example.com\";\nallow h when host(args.url) ends_with corp;\nallow h when host(args.url) ends_with \".example.com\" or host(args.url) == \"example.com\";";
    assert_eq!(
        codes(src),
        [
            "host_suffix_without_dot @ \"example.com\"",
            "host_suffix_without_dot @ corp",
        ]
    );
}

#[test]
fn numbers_compare_with_ints_and_decimals_by_value() {
    let head = "tool pay.send write { amount: number, n: int, s: string };\nwrites enabled;\n";
    let ok = format!(
        "{head}write pay.send when args.amount <= 100.00 and args.n > 2.5 and args.amount == 4 \
         and args.n in [1, 2.5];"
    );
    assert_eq!(codes(&ok), Vec::<String>::new());
    let p = policy(&ok);
    let cond = p.rules[0].condition.as_ref().expect("a condition");
    let ir::ExprKind::And(parts) = &cond.kind else {
        panic!("an `and`: {cond:?}");
    };
    let ir::ExprKind::Binary(ir::BinOp::Le, _, rhs) = &parts[0].kind else {
        panic!("a comparison: {:?}", parts[0]);
    };
    assert_eq!(
        rhs.kind,
        ir::ExprKind::Lit(ir::Value::Num(ir::Number::new(100.0).expect("finite")))
    );
    assert_eq!(
        codes(&format!("{head}write pay.send when args.s < 1.5;")),
        ["type_mismatch @ args.s"]
    );
    assert_eq!(
        codes(&format!(
            "{head}write pay.send when args.amount == \"1.5\";"
        )),
        ["type_mismatch @ args.amount"]
    );
    assert_eq!(codes("tool t read { n: numbr };"), ["unknown_type @ numbr"]);
}

#[test]
fn rule_ids_are_well_formed_and_unique() {
    let head = "tool t.r read;\nagent bot {\n";
    let p = policy(&format!("{head}  @id(\"read-all\") allow t.r;\n}}\n"));
    assert_eq!(p.rules[0].name.as_deref(), Some("read-all"));
    assert_eq!(p.rules[0].identity, "@id(read-all)");
    assert_eq!(
        codes(&format!(
            "{head}  @id(\"a\") allow t.r;\n  @id(\"a\") deny t.r when tenant == \"w\";\n  @id(\"\") deny t.r when tenant == \"x\";\n  @id(\"has space\") deny t.r when tenant == \"y\";\n}}\n"
        )),
        [
            "duplicate_declaration @ \"a\"",
            "invalid_rule_id @ \"\"",
            "invalid_rule_id @ \"has space\""
        ]
    );
}

#[test]
fn approval_floors_name_any_tool_and_stricter_shadowed_approvals_warn() {
    let head =
        "tool r.get read;\ntool refund.issue write { amount_cents: int };\nwrites enabled;\n";
    let floor =
        "require 2 approvals from \"finance\" on refund.issue when args.amount_cents > 10000;";
    let p = policy(&format!("{head}write refund.issue;\n{floor}\n"));
    assert_eq!(
        p.rules[1].effect,
        ir::Effect::Floor(ir::HumanApproval {
            group: Some("finance".into()),
            count: 2,
            expires_secs: None
        })
    );
    assert_eq!(
        codes(&format!("{head}require approval on r.get scope tenant;\n")),
        ["clause_not_allowed @ scope tenant"]
    );
    // The issue's example: the stricter conditional approval is shadowed.
    assert_eq!(
        codes(&format!(
            "{head}write refund.issue require 2 approvals when args.amount_cents > 10000;\n\
             write refund.issue require approval from \"finance\";\n"
        )),
        ["shadowed_approval @ write refund.issue require 2 approvals when args.amount_cents > 10000;"]
    );
    // Written as a floor instead: clean.
    assert_eq!(
        codes(&format!(
            "{head}{floor}\nwrite refund.issue require approval from \"finance\";\n"
        )),
        Vec::<String>::new()
    );
}

#[test]
fn reads_take_budgets_approvals_and_floors_like_writes() {
    let head = "tool r.get read;\ntool r.list read;\ntool w.put write;\nagent bot {}\n";
    let p = policy(&format!(
        "{head}allow r.get auto-approve limit 5 per hour per tenant;\n\
         allow r.list require 2 approvals from \"ops\" expires 1h scope tenant;\n\
         require approval on r.*;\n"
    ));
    let budget = ir::Budget {
        limit: 5,
        window_secs: 3600,
        key: ir::BudgetKey::ToolTenant,
    };
    assert_eq!(
        p.rules[0].effect,
        ir::Effect::Write {
            approval: ir::Approval::Auto(budget),
            scope: ir::default_scope()
        }
    );
    assert_eq!(
        p.rules[1].effect,
        ir::Effect::Write {
            approval: ir::Approval::Human(ir::HumanApproval {
                group: Some("ops".into()),
                count: 2,
                expires_secs: Some(3600)
            }),
            scope: vec![ir::ScopeItem::Tenant]
        }
    );
    assert_eq!(
        p.rules[2].tools,
        [ir::ToolId(0), ir::ToolId(1)],
        "a floor's pattern expands to reads"
    );
    // No `writes` statement: an approved read is no dead write; no other warning either.
    assert_eq!(
        codes(&format!("{head}allow r.get require approval;\n")),
        Vec::<String>::new()
    );
    assert_eq!(
        codes(&format!(
            "{head}allow r.get auto-approve;\nallow r.list auto-approve limit 1 per day require approval;\n"
        )),
        [
            "auto_approve_without_limit @ auto-approve",
            "conflicting_approval @ require approval"
        ]
    );
    // A plain allow is tried first: an approval of the same read is never asked for.
    assert_eq!(
        codes(&format!(
            "{head}allow r.get;\nallow r.get require approval when has args.x;\n"
        )),
        ["shadowed_approval @ allow r.get require approval when has args.x;"]
    );
    assert_eq!(
        codes("tool r.get read irreversible;\nagent bot { allow r.get auto-approve limit 1 per day; }\n"),
        ["irreversible_auto_approve @ auto-approve limit 1 per day"]
    );
}

#[test]
fn a_star_inside_a_segment_expands_within_the_segment() {
    let head = "tool get_user read;\ntool get_user.audit read;\ntool crm.get read;\nagent bot {}\n";
    let p = policy(&format!("{head}allow get_*;\n"));
    assert_eq!(p.rules[0].tools, [ir::ToolId(0)]);
    let checked = run(&format!("{head}allow crm*;\n"));
    let help: Vec<String> = checked
        .diagnostics
        .iter()
        .filter_map(|d| d.help().map(|h| h.to_string()))
        .collect();
    assert_eq!(
        codes(&format!("{head}allow crm*;\n")),
        ["empty_pattern @ crm*"]
    );
    assert_eq!(
        help,
        ["a `*` inside a segment does not cross dots: did you mean `crm.*`?"]
    );
}

#[test]
fn element_wise_quantifiers_type_the_element() {
    let head = "tool t.w write { people: list<{ email: string, age?: int }>, tags: list<string> };\nwrites enabled;\n";
    let ok = format!(
        "{head}write t.w when any p in args.people: p.email ends_with \"@a.com\" and (has p.age and p.age > 3);\n\
         write t.w require 2 approvals when all t in args.tags: t != \"x\";\n"
    );
    assert_eq!(codes(&ok), Vec::<String>::new());
    assert_eq!(
        codes(&format!(
            "{head}write t.w when any p in args.people: p.emial == \"x\";\n"
        )),
        ["type_mismatch @ emial"]
    );
    assert_eq!(
        codes(&format!(
            "{head}write t.w when any p in args.people: p.email > 3;\n"
        )),
        ["type_mismatch @ p.email"]
    );
    // Only the innermost element can be read; the old form's right side is per element.
    assert_eq!(
        codes(&format!(
            "{head}write t.w when any p in args.people: all t in args.tags: t == p.email;\n"
        )),
        ["type_mismatch @ p.email"]
    );
    assert_eq!(
        codes(&format!(
            "{head}write t.w when any p in args.people: all args.tags != p.email;\n"
        )),
        ["type_mismatch @ p.email"]
    );
    assert_eq!(
        codes(&format!(
            "{head}write t.w when any args in args.tags: args == \"x\";\n"
        )),
        ["type_mismatch @ args"]
    );
}

#[test]
fn functions_take_their_arguments() {
    let head = "tool fs.read read { path: string, to: string };\nagent bot {}\n";
    let ok = format!(
        "{head}allow fs.read when within(args.path, \"/srv/work\") and email_domain(trim(args.to)) == \"acme.com\" and compact(args.to) != \"\";\n"
    );
    assert_eq!(codes(&ok), Vec::<String>::new());
    assert_eq!(
        codes(&format!("{head}allow fs.read when within(args.path);\n")),
        ["type_mismatch @ within(args.path)"]
    );
    assert_eq!(
        codes(&format!(
            "{head}allow fs.read when trim(args.path, args.to) == \"\";\n"
        )),
        ["type_mismatch @ trim(args.path, args.to)"]
    );
    assert_eq!(
        codes(&format!(
            "{head}allow fs.read when email_domian(args.to) == \"x\";\n"
        )),
        ["unknown_function @ email_domian"]
    );
}

#[test]
fn tenants_and_groups_make_strings_checkable() {
    let head = "tenants acme, globex;\ngroups support-leads;\ntool t.w write;\nwrites enabled;\nagent bot {}\n";
    assert_eq!(
        codes(&format!(
            "{head}write t.w require approval from \"suport-leads\" when tenant in [\"acme\", \"glbex\"];\n"
        )),
        ["unknown_group @ from \"suport-leads\"", "unknown_tenant @ \"glbex\""]
    );
    assert_eq!(
        codes(&format!(
            "{head}write t.w require approval from \"support-leads\" when tenant == \"globex\";\n"
        )),
        Vec::<String>::new()
    );
}

#[test]
fn a_default_scope_is_the_scope_of_grants_without_their_own() {
    let head = "context { iban: string; }\ntool t.r read;\ntool t.w write;\nwrites enabled;\nagent bot {}\n";
    let p = policy(&format!(
        "{head}allow t.r;\nscope default tenant, ctx.iban;\nwrite t.w scope env;\ndeny t.w when tenant == \"x\";\n"
    ));
    let scopes: Vec<Option<&Vec<ir::ScopeItem>>> = p
        .rules
        .iter()
        .map(|r| match &r.effect {
            ir::Effect::Allow { scope } | ir::Effect::Write { scope, .. } => Some(scope),
            _ => None,
        })
        .collect();
    let default = vec![ir::ScopeItem::Tenant, ir::ScopeItem::Ctx("iban".into())];
    assert_eq!(
        scopes,
        [Some(&default), Some(&vec![ir::ScopeItem::Env]), None]
    );
    assert_eq!(
        codes(&format!(
            "{head}scope default tenant;\nscope default env;\nallow t.r;\n"
        )),
        [
            "unused_context_field @ iban",
            "duplicate_declaration @ scope default env;"
        ]
    );
    assert_eq!(
        codes(&format!(
            "{head}scope default args.iban, ctx.ibn, user;\nallow t.r;\n"
        )),
        [
            "unused_context_field @ iban",
            "scope_from_args @ args.iban",
            "unknown_context_field @ ibn",
            "unknown_scope @ user"
        ]
    );
}

#[test]
fn accepted_risks_silence_irreversible_warnings_and_must_be_needed() {
    let head =
        "tool mail.send write irreversible;\ntool kb.read read;\nwrites enabled;\nagent bot {}\n";
    let auto = "write mail.send auto-approve limit 5 per day;";
    assert_eq!(
        codes(&format!("{head}{auto}\n")),
        ["irreversible_auto_approve @ auto-approve limit 5 per day"]
    );
    let accepted = format!("{head}@accepted_risk(\"reviewed: colleagues only\")\n{auto}\n");
    assert_eq!(codes(&accepted), Vec::<String>::new());
    assert_eq!(
        policy(&accepted).rules[0].accepted_risk.as_deref(),
        Some("reviewed: colleagues only")
    );
    // Approvable by anyone with no expiry (the default approval included).
    assert_eq!(
        codes(&format!("{head}write mail.send;\n")),
        ["irreversible_open_approval @ write mail.send;"]
    );
    for bounded in [
        "write mail.send require approval from \"ops\";",
        "write mail.send require 2 approvals expires 1h;",
        "write mail.send;\nrequire approval expires 30m on mail.send;",
        "@accepted_risk(\"two people approve in the office\") write mail.send require 2 approvals;",
    ] {
        assert_eq!(
            codes(&format!("{head}{bounded}\n")),
            Vec::<String>::new(),
            "{bounded}"
        );
    }
    // A conditional floor does not always apply.
    assert_eq!(
        codes(&format!(
            "{head}write mail.send;\nrequire approval from \"ops\" on mail.send when env == \"prod\";\n"
        )),
        ["irreversible_open_approval @ write mail.send;"]
    );
    assert_eq!(
        codes(&format!("{head}@accepted_risk(\"fine\") allow kb.read;\n")),
        ["unneeded_accepted_risk @ \"fine\""]
    );
    assert_eq!(
        codes(&format!("{head}@accepted_risk(\"\") {auto}\n")),
        ["invalid_accepted_risk @ \"\""]
    );
}
