//! Property: for generated policies `p`, `parse(fmt(p)) == parse(p)` (spans
//! ignored), no comment is lost, and `fmt` is idempotent. Policies are built
//! as random trees, printed, and sprinkled with comments between lines.

use proptest::prelude::*;
use toolgate_syntax::ast::{self, Spanned};
use toolgate_syntax::{parse, print};

fn sp<T>(node: T) -> Spanned<T> {
    Spanned::new(node, ast::Span::default())
}

fn ident() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a",
        "b_c",
        "x1",
        "account_id",
        "url",
        "from",
        "tenant_id",
    ])
    .prop_map(String::from)
}

fn constant() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["known", "limit_a", "hosts"]).prop_map(String::from)
}

fn tool_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "kb.read",
        "ticket.close",
        "http.get",
        "db-x.write_all",
        "t",
    ])
    .prop_map(String::from)
}

fn text() -> impl Strategy<Value = String> {
    "[a-z \"\\\\\n\té✓*?.]{0,8}"
}

fn literal(depth: u32) -> BoxedStrategy<ast::Literal> {
    let leaf = prop_oneof![
        text().prop_map(ast::Literal::Str),
        any::<i64>().prop_map(ast::Literal::Int),
        "-?[0-9]{1,6}\\.[0-9]{1,4}".prop_map(ast::Literal::Num),
        any::<bool>().prop_map(ast::Literal::Bool),
        Just(ast::Literal::Null),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![3 => leaf, 1 => prop::collection::vec(literal(depth - 1).prop_map(sp), 0..3).prop_map(ast::Literal::List)]
        .boxed()
}

fn path() -> impl Strategy<Value = ast::Path> {
    let root = prop::sample::select(vec![
        "args", "ctx", "tenant", "env", "agent", "tool", "known",
    ]);
    (root, prop::collection::vec(ident(), 0..3)).prop_map(|(r, fields)| ast::Path {
        root: sp(r.to_string()),
        fields: fields.into_iter().map(sp).collect(),
    })
}

fn op() -> impl Strategy<Value = ast::CmpOp> {
    use ast::CmpOp::*;
    prop::sample::select(vec![
        Eq,
        Ne,
        Lt,
        Le,
        Gt,
        Ge,
        In,
        NotIn,
        StartsWith,
        EndsWith,
        Contains,
        Matches,
        MatchesRegex,
    ])
}

/// Wraps condition-level trees in parentheses so they are valid operands.
fn operand(e: ast::Expr) -> Spanned<ast::Expr> {
    match e {
        ast::Expr::Call(..)
        | ast::Expr::Paren(_)
        | ast::Expr::Path(_)
        | ast::Expr::Literal(_)
        | ast::Expr::SessionCalls(_)
        | ast::Expr::Duration(_) => sp(e),
        other => sp(ast::Expr::Paren(Box::new(sp(other)))),
    }
}

/// A side of a comparison: an operand or an unparenthesised `a + b - c`.
fn side(e: ast::Expr) -> Spanned<ast::Expr> {
    match e {
        ast::Expr::Arith(..) => sp(e),
        other => operand(other),
    }
}

fn duration() -> impl Strategy<Value = ast::Duration> {
    let unit = prop::sample::select(vec![
        ast::DurationUnit::Seconds,
        ast::DurationUnit::Minutes,
        ast::DurationUnit::Hours,
        ast::DurationUnit::Days,
        ast::DurationUnit::Weeks,
    ]);
    (0u64..1000, unit).prop_map(|(value, unit)| ast::Duration { value, unit })
}

fn expr() -> impl Strategy<Value = ast::Expr> {
    let leaf = prop_oneof![
        path().prop_map(ast::Expr::Path),
        literal(1).prop_map(ast::Expr::Literal),
        path().prop_map(|p| ast::Expr::Has(sp(p))),
        duration().prop_map(ast::Expr::Duration),
        tool_name().prop_map(|t| ast::Expr::SessionCalls(sp(t))),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone().prop_map(sp), 2..4).prop_map(ast::Expr::Or),
            prop::collection::vec(inner.clone().prop_map(sp), 2..4).prop_map(ast::Expr::And),
            inner.clone().prop_map(|e| ast::Expr::Not(Box::new(sp(e)))),
            (inner.clone(), op(), inner.clone()).prop_map(|(l, o, r)| ast::Expr::Compare(
                Box::new(side(l)),
                sp(o),
                Box::new(side(r))
            )),
            (inner.clone(), any::<bool>(), inner.clone()).prop_map(|(l, add, r)| {
                let o = if add {
                    ast::ArithOp::Add
                } else {
                    ast::ArithOp::Sub
                };
                ast::Expr::Arith(Box::new(side(l)), sp(o), Box::new(operand(r)))
            }),
            (any::<bool>(), inner.clone(), op(), inner.clone()).prop_map(|(all, l, o, r)| {
                let q = if all {
                    ast::Quantifier::All
                } else {
                    ast::Quantifier::Any
                };
                ast::Expr::Quantified(sp(q), Box::new(operand(l)), sp(o), Box::new(side(r)))
            }),
            (
                prop::sample::select(vec![
                    "len", "lower", "host", "port", "scheme", "path", "other"
                ]),
                inner.clone()
            )
                .prop_map(|(f, a)| ast::Expr::Call(sp(f.to_string()), vec![operand(a)])),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| ast::Expr::Call(
                sp("within".to_string()),
                vec![operand(a), operand(b)]
            )),
            (any::<bool>(), inner.clone(), inner.clone()).prop_map(|(all, l, body)| {
                let q = if all {
                    ast::Quantifier::All
                } else {
                    ast::Quantifier::Any
                };
                ast::Expr::ForEach {
                    quantifier: sp(q),
                    var: sp("x".to_string()),
                    list: Box::new(operand(l)),
                    body: Box::new(sp(body)),
                }
            }),
            (inner.clone(), source()).prop_map(|(v, s)| ast::Expr::From(Box::new(side(v)), sp(s))),
            inner.prop_map(|e| ast::Expr::Paren(Box::new(sp(e)))),
        ]
    })
}

fn source() -> impl Strategy<Value = ast::Source> {
    prop_oneof![
        Just(ast::Source::User),
        Just(ast::Source::Ctx),
        Just(ast::Source::Trusted),
        tool_name().prop_map(|t| ast::Source::Tool(sp(t))),
    ]
}

fn trust() -> impl Strategy<Value = ast::Trust> {
    prop::sample::select(vec![ast::Trust::Trusted, ast::Trust::Untrusted])
}

fn output_path() -> impl Strategy<Value = Vec<ast::OutputSeg>> {
    let seg = (ident(), any::<bool>()).prop_map(|(f, each)| {
        let mut segs = vec![ast::OutputSeg::Field(f)];
        if each {
            segs.push(ast::OutputSeg::Each);
        }
        segs
    });
    (any::<bool>(), prop::collection::vec(seg, 0..3)).prop_map(|(top, segs)| {
        let mut out = if top || segs.is_empty() {
            vec![ast::OutputSeg::Each]
        } else {
            Vec::new()
        };
        out.extend(segs.into_iter().flatten());
        out
    })
}

fn outputs() -> impl Strategy<Value = Vec<ast::OutputLabel>> {
    prop::collection::vec((output_path(), trust()), 0..3).prop_map(|labels| {
        labels
            .into_iter()
            .map(|(path, trust)| ast::OutputLabel {
                path: sp(path),
                trust: sp(trust),
            })
            .collect()
    })
}

fn clause() -> impl Strategy<Value = ast::Clause> {
    let unit = prop::sample::select(vec![
        ast::DurationUnit::Seconds,
        ast::DurationUnit::Minutes,
        ast::DurationUnit::Hours,
        ast::DurationUnit::Days,
        ast::DurationUnit::Weeks,
    ]);
    let option = prop_oneof![
        text().prop_map(ast::ApprovalOption::From),
        (0u64..1000, unit)
            .prop_map(|(value, unit)| ast::ApprovalOption::Expires(ast::Duration { value, unit })),
    ];
    let window = prop::sample::select(vec![
        ast::Window::Minute,
        ast::Window::Hour,
        ast::Window::Day,
    ]);
    let key = prop::option::of(prop::sample::select(vec![
        ast::BudgetKey::Tenant,
        ast::BudgetKey::Agent,
    ]));
    prop_oneof![
        (
            prop::option::of(0u64..5),
            prop::collection::vec(option, 0..3)
        )
            .prop_map(|(count, options)| ast::Clause::Require(ast::Require {
                count: count.map(sp),
                options: options.into_iter().map(sp).collect(),
            })),
        prop::option::of((0u64..100, window, key)).prop_map(|b| {
            ast::Clause::AutoApprove(b.map(|(limit, window, key)| ast::Budget {
                limit: sp(limit),
                window,
                key,
            }))
        }),
        prop::collection::vec(path().prop_map(sp), 1..3).prop_map(ast::Clause::Scope),
        expr().prop_map(|e| ast::Clause::When(sp(e))),
        text().prop_map(|t| ast::Clause::Reason(sp(t))),
        prop::collection::vec(path().prop_map(sp), 1..3).prop_map(ast::Clause::Endorse),
    ]
}

fn rule() -> impl Strategy<Value = ast::Rule> {
    let kind = prop::sample::select(vec![
        ast::RuleKind::Allow,
        ast::RuleKind::Write,
        ast::RuleKind::Deny,
    ]);
    let pattern = prop_oneof![
        tool_name(),
        Just("*".to_string()),
        Just("ticket.*".to_string()),
        Just("get_*".to_string()),
        Just("crm.*_file".to_string())
    ];
    (
        kind,
        prop::collection::vec(pattern, 1..3),
        prop::collection::vec(clause(), 0..4),
        (
            prop::option::of("[a-z][a-z0-9-]{0,12}"),
            prop::option::of("[a-z \"\\\\:]{0,20}"),
        ),
        prop::option::of(0u64..4),
    )
        .prop_map(|(kind, tools, clauses, (id, risk), floor)| {
            let mut clauses: Vec<_> = clauses.into_iter().map(sp).collect();
            let kind = match floor {
                // An approval floor: its `require` clause comes first.
                Some(n) => {
                    let require = ast::Require {
                        count: (n > 0).then(|| sp(n)),
                        options: Vec::new(),
                    };
                    clauses.insert(0, sp(ast::Clause::Require(require)));
                    ast::RuleKind::Floor
                }
                None => kind,
            };
            ast::Rule {
                id: id.map(sp),
                accepted_risk: risk.map(sp),
                kind: sp(kind),
                tools: tools.into_iter().map(sp).collect(),
                clauses,
            }
        })
}

fn ty(depth: u32) -> BoxedStrategy<ast::Type> {
    let atom = atom(depth);
    prop_oneof![
        4 => atom.clone(),
        1 => prop::collection::vec(atom.prop_map(sp), 2..4).prop_map(ast::Type::Union),
    ]
    .boxed()
}

/// A type that is not a union (a union's parts).
fn atom(depth: u32) -> BoxedStrategy<ast::Type> {
    let leaf = prop_oneof![
        4 => prop::sample::select(vec!["string", "int", "bool", "strng", "null", "any"])
            .prop_map(|n| ast::Type::Named(n.into())),
        1 => text().prop_map(|t| ast::Type::Literal(ast::Literal::Str(t))),
        1 => any::<i64>().prop_map(|i| ast::Type::Literal(ast::Literal::Int(i))),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => ty(depth - 1).prop_map(|t| ast::Type::List(Box::new(sp(t)))),
        1 => fields(depth - 1).prop_map(ast::Type::Record),
        1 => fields(depth - 1).prop_map(ast::Type::OpenRecord),
    ]
    .boxed()
}

fn fields(depth: u32) -> BoxedStrategy<Vec<ast::Field>> {
    prop::collection::vec((ident(), any::<bool>(), ty(depth), any::<bool>()), 0..3)
        .prop_map(|fs| {
            fs.into_iter()
                .map(|(n, optional, t, redact)| ast::Field {
                    name: sp(n),
                    optional,
                    ty: sp(t),
                    redact,
                })
                .collect()
        })
        .boxed()
}

fn item() -> impl Strategy<Value = ast::Item> {
    let class = prop::sample::select(vec![ast::ToolClass::Read, ast::ToolClass::Write]);
    prop_oneof![
        ident().prop_map(|n| ast::Item::Policy(sp(n))),
        prop::collection::vec(ident(), 1..4)
            .prop_map(|e| ast::Item::Envs(e.into_iter().map(sp).collect())),
        prop::collection::vec(ident(), 1..3)
            .prop_map(|e| ast::Item::Tenants(e.into_iter().map(sp).collect())),
        prop::collection::vec(ident(), 1..3)
            .prop_map(|e| ast::Item::Groups(e.into_iter().map(sp).collect())),
        fields(1).prop_map(ast::Item::Context),
        prop::collection::vec(path(), 1..3)
            .prop_map(|p| ast::Item::DefaultScope(p.into_iter().map(sp).collect())),
        (
            tool_name(),
            class,
            any::<bool>(),
            prop::option::of(fields(2)),
            any::<bool>(),
            (prop::option::of(trust()), prop::option::of(outputs())),
        )
            .prop_map(|(n, c, irreversible, schema, open, (trust, outputs))| {
                ast::Item::Tool(ast::ToolDecl {
                    name: sp(n),
                    class: sp(c),
                    irreversible,
                    open: open && schema.is_some(),
                    schema: schema.map(sp),
                    trust: trust.map(sp),
                    outputs: outputs.map(sp),
                })
            }),
        (constant(), literal(2)).prop_map(|(n, v)| ast::Item::Let(ast::LetDecl {
            name: sp(n),
            value: sp(v)
        })),
        any::<bool>().prop_map(|e| ast::Item::Writes(sp(if e {
            ast::WritesMode::Enabled
        } else {
            ast::WritesMode::Disabled
        }))),
        (ident(), prop::collection::vec(rule().prop_map(sp), 0..4))
            .prop_map(|(n, rules)| ast::Item::Agent(ast::AgentBlock { name: sp(n), rules })),
        rule().prop_map(ast::Item::Rule),
    ]
}

/// Puts a comment after every `every`-th line.
fn sprinkle(text: &str, every: usize) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        out.push_str(line);
        out.push('\n');
        if i % every == every - 1 {
            out.push_str(if i % 2 == 0 {
                "// note\n"
            } else {
                "/* block\n   note */\n"
            });
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn fmt_preserves_meaning_and_comments_and_is_idempotent(
        items in prop::collection::vec(item(), 0..8),
        every in 1usize..6,
    ) {
        let file = ast::File { items: items.into_iter().map(sp).collect(), comments: vec![] };
        let p = sprinkle(&print(&file, ""), every);
        let parsed = parse(&p);
        prop_assert!(parsed.errors.is_empty(), "generated text does not parse: {:?}\n{}", parsed.errors, p);
        let formatted = print(&parsed.file, &p);
        let reparsed = parse(&formatted);
        prop_assert!(reparsed.errors.is_empty(), "fmt output does not parse: {:?}\n{}", reparsed.errors, formatted);
        prop_assert_eq!(&reparsed.file.items, &parsed.file.items);
        prop_assert_eq!(reparsed.file.comments.len(), parsed.file.comments.len());
        prop_assert_eq!(print(&reparsed.file, &formatted), formatted);
    }
}
