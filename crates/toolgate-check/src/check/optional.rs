//! Pass 3's `unguarded_optional` warning: a `deny` (or an approval floor)
//! whose condition reads an optional (or nullable) argument without a `has`
//! guard. A call that omits it makes the condition an error, and an error
//! makes a deny apply: the rule denies every such call, which is rarely meant.

use super::Checker;
use crate::err::CheckError;
use crate::ir;
use toolgate_syntax::ast::Span;

/// An unguarded read: the path as written and where.
type Read = (Vec<String>, Span);

impl Checker<'_> {
    pub(super) fn unguarded_optionals(&mut self) {
        let mut found: Vec<(Read, &'static str)> = Vec::new();
        for r in &self.rules {
            let kind = match r.effect {
                ir::Effect::Deny => "deny",
                ir::Effect::Floor(_) => "approval floor",
                _ => continue,
            };
            let Some(cond) = &r.condition else { continue };
            let mut reads = Vec::new();
            unguarded(cond, &mut Vec::new(), &mut reads);
            for read in reads {
                let omittable = r.tools.iter().any(|t| {
                    let schema = self.tools.get(t.0 as usize).and_then(|t| t.schema.as_ref());
                    schema.is_some_and(|s| may_be_missing(s, &read.0))
                });
                if omittable && !found.iter().any(|(f, _)| f.1 == read.1) {
                    found.push((read, kind));
                }
            }
        }
        for ((path, span), kind) in found {
            let arg = format!("args.{}", path.join("."));
            self.diags.push(CheckError::UnguardedOptional {
                help: format!(
                    "a call without `{arg}` makes this condition an error, and an error makes a {kind} apply, \
                     so it applies to every such call; guard the read: `has {arg} and ...` \
                     (or write `not has {arg} or ...` if that is what you mean)"
                ),
                kind,
                arg,
                span: span.into(),
            });
        }
    }
}

/// Collects the `args` paths `e` reads as values that no `has` earlier in an
/// enclosing `and` chain (or `not has` earlier in an `or` chain) guards.
/// `has P` and `P == null` never fail on a missing value, so they read nothing.
fn unguarded(e: &ir::Expr, guards: &mut Vec<Vec<String>>, out: &mut Vec<Read>) {
    use ir::ExprKind as K;
    match &e.kind {
        K::Path(ir::Path::Args(p)) if !guards.iter().any(|g| p.starts_with(g)) => {
            out.push((p.clone(), e.span));
        }
        K::Lit(_)
        | K::Path(_)
        | K::Elem
        | K::Has(_)
        | K::IsNull(_)
        | K::Now
        | K::Duration(_)
        | K::SessionTainted
        | K::SessionCalls(_) => {}
        K::And(xs) | K::Or(xs) => {
            let before = guards.len();
            let is_and = matches!(e.kind, K::And(_));
            for x in xs {
                unguarded(x, guards, out);
                if let Some(p) = presence(x, is_and) {
                    guards.push(p.clone());
                }
            }
            guards.truncate(before);
        }
        K::Len(x)
        | K::Lower(x)
        | K::Text(_, x)
        | K::Url(_, x)
        | K::Not(x)
        | K::Glob(x, _)
        | K::Regex(x, _)
        | K::From(x, _)
        | K::Extract(_, x)
        | K::Time(_, x) => unguarded(x, guards, out),
        K::Binary(_, l, r) | K::Quant(_, l, r) | K::Within(l, r) | K::Arith(_, l, r) => {
            unguarded(l, guards, out);
            unguarded(r, guards, out);
        }
    }
}

/// The `args` path a part of an `and` chain (`has P`, `P != null`) or of an
/// `or` chain (`not has P`, `P == null`) makes present for the parts after it.
fn presence(part: &ir::Expr, in_and: bool) -> Option<&Vec<String>> {
    use ir::ExprKind as K;
    let (negated, inner) = match &part.kind {
        K::Not(inner) => (true, &inner.kind),
        other => (false, other),
    };
    match inner {
        K::Has(ir::Path::Args(p)) if negated != in_and => Some(p),
        K::IsNull(x) if negated == in_and => match &x.kind {
            K::Path(ir::Path::Args(p)) => Some(p),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a field on `path` may be left out or sent as `null`.
fn may_be_missing(fields: &[ir::Field], path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let Some(f) = fields.iter().find(|f| f.name == *first) else {
        return false;
    };
    if f.optional {
        return true;
    }
    match &f.ty {
        ir::Type::Nullable(_) => true,
        ir::Type::Record(inner) | ir::Type::OpenRecord(inner) => may_be_missing(inner, rest),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
