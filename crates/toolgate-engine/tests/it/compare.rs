//! `matrix`, `search` and `compare` on small policies.

#![expect(clippy::expect_used, reason = "test fixtures must compile")]

use toolgate_check::ir;
use toolgate_engine::compare::{compare, Kind, Side};
use toolgate_engine::matrix::{self, GrantKind};
use toolgate_engine::Engine;

fn compile(text: &str) -> ir::Policy {
    let parsed = toolgate_syntax::parse(text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    toolgate_check::check(&parsed.file, text)
        .policy
        .expect("checks")
}

const HEAD: &str = "envs dev, prod;\ntool pay write { amount: int };\nwrites enabled;\n";

#[test]
fn a_cell_ranks_grants_as_the_engine_does() {
    let p = compile(&format!(
        "{HEAD}agent a {{\n  write pay require 2 approvals;\n  write pay require approval when args.amount < 10;\n  write pay auto-approve limit 5 per hour when env == \"dev\";\n}}\n"
    ));
    let cell = matrix::cell(&p, ir::AgentId(0), ir::ToolId(0));
    let kinds: Vec<_> = cell
        .grants
        .iter()
        .map(|g| (g.kind.clone(), g.conditional))
        .collect();
    assert!(
        matches!(kinds[0], (GrantKind::Budget(_), true)),
        "{kinds:?}"
    );
    assert!(
        matches!(kinds[1], (GrantKind::Approval { count: 1, .. }, true)),
        "{kinds:?}"
    );
    assert!(
        matches!(kinds[2], (GrantKind::Approval { count: 2, .. }, false)),
        "{kinds:?}"
    );
    assert!(!cell.always_denied());
}

fn diff(old: &str, new: &str) -> Vec<toolgate_engine::compare::Change> {
    let (op, np) = (compile(old), compile(new));
    let (oe, ne) = (
        Engine::new(&op, "old").expect("old"),
        Engine::new(&np, "new").expect("new"),
    );
    compare(
        &Side {
            policy: &op,
            src: old,
            engine: &oe,
        },
        &Side {
            policy: &np,
            src: new,
            engine: &ne,
        },
        &serde_json::Map::new(),
    )
}

#[test]
fn a_raised_comparison_bound_is_an_escalation_witnessed_at_the_boundary() {
    let old = format!("{HEAD}agent a {{ write pay require approval when args.amount <= 100; }}\n");
    let new = format!("{HEAD}agent a {{ write pay require approval when args.amount <= 200; }}\n");
    let changes = diff(&old, &new);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].kind, Kind::Escalation);
    assert!(
        changes[0].what.starts_with("condition widened"),
        "{}",
        changes[0].what
    );
    let w = changes[0].witness.as_ref().expect("a witness");
    let amount = w.request.args["amount"].as_i64().expect("an int");
    assert!((101..=200).contains(&amount), "{amount}");
    assert_eq!(
        (w.old.as_str(), w.new.starts_with("approval_required")),
        ("deny", true)
    );
    // And the other way round it is a restriction, with no witness.
    let back = diff(&new, &old);
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(
        (back[0].kind, back[0].witness.is_none()),
        (Kind::Restriction, true)
    );
}

#[test]
fn identical_meaning_is_no_change() {
    let a = format!("{HEAD}agent a {{ write pay require approval; }}\n");
    let b = format!("// moved\n{HEAD}\n\nagent a {{\n  write pay require approval;\n}}\n");
    assert!(diff(&a, &b).is_empty());
}

#[test]
fn provenance_widened_a_dropped_taint_guard_and_trusted_labels_escalate() {
    let policy = |label: &str, cond: &str| {
        format!(
            "tool find read {label} output {{ [].note: untrusted }};\ntool pay write {{ iban: string }};\nwrites enabled;\nagent a {{\n  allow find;\n  write pay auto-approve limit 5 per day when {cond};\n}}\n"
        )
    };
    let old = policy("", "not session.tainted and args.iban from user");
    let kinds = |new: &str| -> Vec<(Kind, String)> {
        diff(&old, new)
            .into_iter()
            .map(|c| (c.kind, c.what))
            .collect()
    };
    let widened = kinds(&policy(
        "",
        "not session.tainted and args.iban from trusted",
    ));
    assert!(
        widened
            .iter()
            .any(|(k, w)| *k == Kind::Escalation
                && w.starts_with("condition widened to `from trusted`")),
        "{widened:?}"
    );
    let unguarded = kinds(&policy("", "args.iban from user"));
    assert!(
        unguarded.iter().any(|(k, w)| *k == Kind::Escalation
            && w.contains("`not session.tainted` guard was dropped")),
        "{unguarded:?}"
    );
    let relabelled = kinds(&policy(
        "trusted",
        "not session.tainted and args.iban from user",
    ));
    assert_eq!(
        relabelled,
        [(
            Kind::Escalation,
            "its output labelled `trusted` (was `untrusted`)".to_string()
        )]
    );
}
