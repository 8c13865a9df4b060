//! Pass 3 warnings about URLs (issue #7, C1): a prefix or pattern on the raw
//! text of an argument that a rule reads with a URL function, and a host
//! suffix without its leading dot.

use super::Checker;
use crate::err::CheckError;
use crate::ir;
use toolgate_syntax::ast::Span;

/// An argument passed to a URL function: its path, the call, the rule's tools.
struct UrlArg<'a> {
    path: &'a [String],
    call: Span,
    tools: &'a [ir::ToolId],
}

impl Checker<'_> {
    pub(super) fn url_lints(&mut self) {
        let mut url_args = Vec::new();
        for rule in &self.rules {
            if let Some(cond) = &rule.condition {
                cond.visit(&mut |e| {
                    if let ir::ExprKind::Url(_, x) = &e.kind {
                        if let Some(path) = raw_arg(x) {
                            url_args.push(UrlArg {
                                path,
                                call: e.span,
                                tools: &rule.tools,
                            });
                        }
                    }
                });
            }
        }
        let mut found = Vec::new();
        for rule in &self.rules {
            if let Some(cond) = &rule.condition {
                cond.visit(&mut |e| {
                    found.extend(raw_match(e, &rule.tools, &url_args));
                    found.extend(suffix_without_dot(e));
                });
            }
        }
        self.diags.extend(found);
    }
}

/// `starts_with`/`matches` on an argument that a rule sharing a tool reads as a URL.
fn raw_match(e: &ir::Expr, tools: &[ir::ToolId], url_args: &[UrlArg<'_>]) -> Option<CheckError> {
    let (op, lhs) = match &e.kind {
        ir::ExprKind::Binary(ir::BinOp::StartsWith, l, _) => ("starts_with", l),
        ir::ExprKind::Glob(l, _) => ("matches", l),
        ir::ExprKind::Regex(l, _) => ("matches regex", l),
        _ => return None,
    };
    let path = raw_arg(lhs)?;
    let url = url_args
        .iter()
        .filter(|u| u.path == path && u.tools.iter().any(|t| tools.contains(t)))
        .min_by_key(|u| u.call.start)?;
    let arg = format!("args.{}", path.join("."));
    Some(CheckError::RawUrlMatch {
        op,
        help: format!(
            "compare the parts a client uses: `scheme({arg})`, `host({arg})`, `port({arg})`, \
             `path({arg})`; a prefix or pattern on the text can hold for a URL that goes elsewhere"
        ),
        arg,
        span: e.span.into(),
        url: url.call.into(),
    })
}

/// `host(...) ends_with "example.com"` (a literal not starting with `.`).
fn suffix_without_dot(e: &ir::Expr) -> Option<CheckError> {
    let ir::ExprKind::Binary(ir::BinOp::EndsWith, l, r) = &e.kind else {
        return None;
    };
    let (ir::ExprKind::Url(ir::UrlPart::Host, _), ir::ExprKind::Lit(ir::Value::Str(suffix))) =
        (&l.kind, &r.kind)
    else {
        return None;
    };
    if suffix.is_empty() || suffix.starts_with('.') {
        return None;
    }
    Some(CheckError::HostSuffixWithoutDot {
        help: format!(
            "write `ends_with \".{suffix}\"` for its subdomains, `== \"{suffix}\"` for the host \
             itself, or both joined with `or`"
        ),
        suffix: suffix.clone(),
        span: r.span.into(),
    })
}

/// The argument path of `args.p` or `lower(args.p)`.
fn raw_arg(e: &ir::Expr) -> Option<&[String]> {
    match &e.kind {
        ir::ExprKind::Path(ir::Path::Args(path)) => Some(path),
        ir::ExprKind::Lower(x) => raw_arg(x),
        _ => None,
    }
}
