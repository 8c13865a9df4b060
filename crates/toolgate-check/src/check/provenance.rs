//! Provenance: tool and output labels, `x from SOURCE`, `session.tainted`,
//! `session.calls(T)`, `urls(x)` / `emails(x)`, and `endorse` paths.

use super::expr::{label, node, Scope, Ty, Typed};
use super::rules::path_text;
use super::Checker;
use crate::err::CheckError;
use crate::ir;
use crate::suggest;
use toolgate_syntax::ast::{self, Span, Spanned};

impl Checker<'_> {
    /// A tool's label and its output labels; a path labelled twice is reported.
    pub(super) fn tool_labels(&mut self, t: &ast::ToolDecl) -> (ir::Trust, Vec<ir::OutputLabel>) {
        let trust = t.trust.as_ref().map_or(ir::Trust::Untrusted, |t| t.node);
        let mut outputs: Vec<(ir::OutputLabel, Span)> = Vec::new();
        for l in t.outputs.iter().flat_map(|o| &o.node) {
            if let Some((_, first)) = outputs.iter().find(|(o, _)| o.path == l.path.node) {
                let first = *first;
                self.duplicate(
                    "output label",
                    &ast::output_path_text(&l.path.node),
                    l.path.span,
                    first,
                );
                continue;
            }
            let label = ir::OutputLabel {
                path: l.path.node.clone(),
                trust: l.trust.node,
            };
            outputs.push((label, l.path.span));
        }
        (trust, outputs.into_iter().map(|(o, _)| o).collect())
    }

    /// `VALUE from SOURCE`: a string, int or number (lists through quantifiers).
    pub(super) fn provenance_of(
        &mut self,
        value: &Spanned<ast::Expr>,
        source: &Spanned<ast::Source>,
        span: Span,
        scope: &mut Scope,
    ) -> Option<Typed> {
        let typed = self.expr(value, scope);
        let source = self.source(source);
        let (value_ir, ty) = typed?;
        let help = match ty.base() {
            Ty::Str | Ty::Int | Ty::Num | Ty::Any => None,
            Ty::List(_) => Some("test each element: `all x in LIST: x from SOURCE`"),
            _ => Some("`from` traces strings and numbers"),
        };
        if let Some(help) = help {
            self.mismatch(
                format!("`from` takes a string, int or number, not `{}`", ty.name()),
                vec![label(value.span, format!("this is `{}`", ty.name()))],
                Some(help.into()),
            );
            return None;
        }
        let kind = ir::ExprKind::From(Box::new(value_ir), source?);
        Some((node(kind, span), Ty::Bool))
    }

    fn source(&mut self, source: &Spanned<ast::Source>) -> Option<ir::Source> {
        Some(match &source.node {
            ast::Source::User => ir::Source::User,
            ast::Source::Ctx => ir::Source::Ctx,
            ast::Source::Trusted => ir::Source::Trusted,
            ast::Source::Tool(name) => ir::Source::Tool(self.declared_tool(name)?),
        })
    }

    /// A bare tool name (`from tool T`, `session.calls(T)`), which must be declared.
    fn declared_tool(&mut self, name: &ast::Name) -> Option<ir::ToolId> {
        if let Some(&id) = self.tool_index.get(&name.node) {
            return Some(id);
        }
        let help = suggest::did_you_mean(&name.node, self.tool_index.keys());
        self.diags.push(CheckError::UnknownTool {
            name: name.node.clone(),
            span: name.span.into(),
            help: help.or_else(|| Some("name a tool declared with `tool NAME ...;`".into())),
        });
        None
    }

    /// `session.tainted`; any other `session.` path is unknown.
    pub(super) fn session_path(&mut self, p: &ast::Path, span: Span) -> Option<Typed> {
        if let [field] = p.fields.as_slice() {
            if field.node == "tainted" {
                return Some((node(ir::ExprKind::SessionTainted, span), Ty::Bool));
            }
        }
        let help = p
            .fields
            .first()
            .and_then(|f| suggest::did_you_mean(&f.node, ["tainted", "calls"]))
            .map(|h| {
                format!("{h} (the session offers `session.tainted` and `session.calls(TOOL)`)")
            })
            .unwrap_or_else(|| {
                "the session offers `session.tainted` and `session.calls(TOOL)`".into()
            });
        self.diags.push(CheckError::UnknownName {
            name: path_text(p),
            span: span.into(),
            help,
        });
        None
    }

    /// `session.calls(T)`: an `int`.
    pub(super) fn session_calls(&mut self, tool: &ast::Name, span: Span) -> Option<Typed> {
        let id = self.declared_tool(tool)?;
        Some((node(ir::ExprKind::SessionCalls(id), span), Ty::Int))
    }

    /// `urls(x)` / `emails(x)`: one string in, a `list<string>` out.
    pub(super) fn extract_call(
        &mut self,
        f: &ast::Name,
        which: ir::ExtractFn,
        args: &[Spanned<ast::Expr>],
        span: Span,
        scope: &mut Scope,
    ) -> Option<Typed> {
        let [arg] = args else {
            self.mismatch(
                format!(
                    "`{}` takes one argument, but this call has {}",
                    f.node,
                    args.len()
                ),
                vec![label(span, "this call")],
                None,
            );
            return None;
        };
        let (arg_ir, ty) = self.expr(arg, scope)?;
        if !matches!(ty.base(), Ty::Str | Ty::Any) {
            self.mismatch(
                format!("`{}` takes a string, not `{}`", f.node, ty.name()),
                vec![label(arg.span, format!("this is `{}`", ty.name()))],
                None,
            );
            return None;
        }
        let kind = ir::ExprKind::Extract(which, Box::new(arg_ir));
        Some((node(kind, span), Ty::List(Box::new(Ty::Str))))
    }

    /// The `endorse` paths of a rule, checked against each tool's schema.
    /// `needs_human`: the rule's grant is approved by a human.
    pub(super) fn endorse(
        &mut self,
        clause: &Spanned<ast::Clause>,
        needs_human: bool,
        tools: &[ir::ToolId],
    ) -> Vec<Vec<String>> {
        let ast::Clause::Endorse(paths) = &clause.node else {
            return Vec::new();
        };
        if !needs_human {
            self.diags.push(CheckError::EndorseWithoutApproval {
                span: clause.span.into(),
            });
            return Vec::new();
        }
        let mut out = Vec::new();
        for path in paths {
            if path.node.root.node != "args" || path.node.fields.is_empty() {
                self.diags.push(CheckError::InvalidEndorsePath {
                    path: path_text(&path.node),
                    span: path.span.into(),
                    why: "not an argument".into(),
                    help: "endorse the values the approver sees: `endorse args.<field>`".into(),
                });
                continue;
            }
            let ok = tools
                .iter()
                .all(|&t| self.endorse_path_fits(t, &path.node.fields, path.span));
            if ok {
                out.push(path.node.fields.iter().map(|f| f.node.clone()).collect());
            }
        }
        out
    }

    /// Whether `args.<fields>` names strings or numbers in `tool`'s schema
    /// (through lists: every element); reported if not.
    fn endorse_path_fits(&mut self, tool: ir::ToolId, fields: &[ast::Name], span: Span) -> bool {
        let tool = &self.tools[tool.0 as usize];
        let Some(mut level) = tool.schema.clone() else {
            return true;
        };
        let (tool_name, mut open) = (tool.name.clone(), tool.open);
        let mut ty = Ty::Any;
        for (i, seg) in fields.iter().enumerate() {
            let Some(f) = level.iter().find(|f| f.name == seg.node) else {
                if open {
                    return true;
                }
                let walked: Vec<&str> = fields[..=i].iter().map(|f| f.node.as_str()).collect();
                let help = suggest::did_you_mean(&seg.node, level.iter().map(|f| &f.name))
                    .unwrap_or_else(|| format!("`{tool_name}` has no such argument"));
                self.diags.push(CheckError::UnknownArgument {
                    name: format!("args.{}", walked.join(".")),
                    tool: tool_name,
                    span: span.into(),
                    help,
                });
                return false;
            };
            ty = elements(Ty::of(&f.ty));
            (level, open) = match &ty {
                Ty::Record(inner) => (inner.clone(), false),
                Ty::OpenRecord(inner) => (inner.clone(), true),
                Ty::Any => return true,
                _ => (Vec::new(), false),
            };
        }
        if matches!(ty.base(), Ty::Str | Ty::Int | Ty::Num | Ty::Any) {
            return true;
        }
        self.diags.push(CheckError::InvalidEndorsePath {
            path: format!(
                "args.{}",
                fields
                    .iter()
                    .map(|f| f.node.as_str())
                    .collect::<Vec<_>>()
                    .join(".")
            ),
            span: span.into(),
            why: format!("this is `{}`", ty.name()),
            help: "endorse strings and numbers (or lists of them)".into(),
        });
        false
    }

    /// Whether some rule's condition reads `x from trusted` (which reads every constant).
    pub(super) fn reads_from_trusted(&self) -> bool {
        let mut found = false;
        for cond in self.rules.iter().filter_map(|r| r.condition.as_ref()) {
            cond.visit(&mut |e| {
                found |= matches!(e.kind, ir::ExprKind::From(_, ir::Source::Trusted));
            });
        }
        found
    }

    /// Remembers a literal list after `in` / `not in`: its values are trusted constants.
    pub(super) fn note_in_list(&mut self, op: ast::CmpOp, rhs: &Spanned<ast::Expr>) {
        if let (ast::CmpOp::In | ast::CmpOp::NotIn, ast::Expr::Literal(l)) = (op, &rhs.node) {
            if matches!(l, ast::Literal::List(_)) {
                self.trusted_constants.push(super::expr::value(l));
            }
        }
    }
}

/// The element type of (nested) lists and `| null`; anything else itself.
fn elements(ty: Ty) -> Ty {
    match ty {
        Ty::List(inner) => elements(*inner),
        Ty::Nullable(inner) => elements(*inner),
        other => other,
    }
}

#[cfg(test)]
mod tests;
