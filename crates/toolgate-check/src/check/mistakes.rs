//! Pass 3 warnings for mistakes people make (issue 10, item 13): a deny-list
//! on argument names for a tool without a schema, and grants in a policy
//! without any agent block.

use super::Checker;
use crate::err::CheckError;
use crate::ir;
use toolgate_syntax::ast;

impl Checker<'_> {
    /// `deny t when has args.password` where `t` has no schema: the deny
    /// catches one spelling; `Password` or `passwd` pass. Reported once per
    /// `has` test, naming the first such tool.
    pub(super) fn name_denylists(&mut self) {
        let mut found = Vec::new();
        for r in self.rules.iter().filter(|r| r.effect == ir::Effect::Deny) {
            let Some(tool) = r
                .tools
                .iter()
                .filter_map(|t| self.tools.get(t.0 as usize))
                .find(|t| t.schema.is_none())
            else {
                continue;
            };
            let mut tests = Vec::new();
            if let Some(c) = &r.condition {
                name_tests(c, &mut tests);
            }
            found.extend(tests.into_iter().map(|(name, span)| {
                CheckError::NameDenylistWithoutSchema {
                    name: name.to_string(),
                    tool: tool.name.clone(),
                    span: span.into(),
                }
            }));
        }
        self.diags.extend(found);
    }

    /// Grants but no `agent` block: every call is denied (an agent without a
    /// block is unknown, top-level grants included). Denies and floors alone
    /// deny everything anyway, so they are not reported.
    pub(super) fn no_agents(&mut self, file: &ast::File) {
        let has_agent = file
            .items
            .iter()
            .any(|i| matches!(i.node, ast::Item::Agent(_)));
        if has_agent {
            return;
        }
        if let Some(grant) = self.rules.iter().find(|r| r.effect.is_grant()) {
            self.diags.push(CheckError::NoAgents {
                span: grant.span.into(),
            });
        }
    }
}

/// The `has args.NAME` tests that make a condition hold (not under `not`):
/// reached through `and`/`or` only. A `has` that guards a test of the same
/// argument's value in its `and` chain (`has args.t and args.t != tenant`)
/// is a guard, not a deny-list.
fn name_tests<'a>(e: &'a ir::Expr, out: &mut Vec<(&'a str, ast::Span)>) {
    match &e.kind {
        ir::ExprKind::Has(ir::Path::Args(path)) => {
            if let Some(name) = path.last() {
                out.push((name, e.span));
            }
        }
        ir::ExprKind::Or(xs) => xs.iter().for_each(|x| name_tests(x, out)),
        ir::ExprKind::And(xs) => {
            for x in xs {
                let guard = match &x.kind {
                    ir::ExprKind::Has(ir::Path::Args(path)) => {
                        xs.iter().any(|y| !std::ptr::eq(x, y) && reads(y, path))
                    }
                    _ => false,
                };
                if !guard {
                    name_tests(x, out);
                }
            }
        }
        _ => {}
    }
}

/// Whether `e` reads the value of `args.PATH` (or a field under it).
fn reads(e: &ir::Expr, path: &[String]) -> bool {
    let mut found = false;
    e.visit(&mut |x| {
        if let ir::ExprKind::Path(ir::Path::Args(p)) = &x.kind {
            found |= p.starts_with(path);
        }
    });
    found
}
