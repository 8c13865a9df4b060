//! JSON-Schema-level argument types: unions (`T | null`, `"a" | "b"`),
//! literal types, and the checks conditions make against them (`== null`
//! only where a value may be absent or `null`; a literal compared with an
//! enum must be one of its values).

use super::expr::{Scope, Ty};
use super::Checker;
use crate::err::CheckError;
use crate::ir;
use crate::suggest;
use toolgate_syntax::ast::{self, Span, Spanned};

/// The help of `unknown_type`.
pub(super) fn unknown_type_help(name: &str) -> String {
    if name == "null" {
        return "`null` is a type only in a union: `string | null` is a string or `null`".into();
    }
    suggest::did_you_mean(name, ["string", "int", "number", "bool", "any", "date", "datetime"])
        .unwrap_or_else(|| {
        "the types are `string`, `int`, `number`, `bool`, `any`, `date`, `datetime`, `list<T>`, records `{ f: T }` \
         and `{ f: T, .. }`, literal values (`\"a\" | \"b\"`) and `T | null`"
            .to_string()
    })
}

/// A literal as a value of an enum type (strings and integers only).
fn enum_value(l: &ast::Literal) -> Option<ir::Value> {
    match l {
        ast::Literal::Str(s) => Some(ir::Value::Str(s.clone())),
        ast::Literal::Int(i) => Some(ir::Value::Int(*i)),
        _ => None,
    }
}

/// `"a" | "b"` as written.
pub(super) fn values_text(values: &[ir::Value]) -> String {
    let parts: Vec<String> = values.iter().map(value_text).collect();
    parts.join(" | ")
}

fn value_text(v: &ir::Value) -> String {
    match v {
        ir::Value::Str(s) => toolgate_syntax::string_text(s),
        ir::Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

impl Checker<'_> {
    /// `"economy"` or `3` alone: a type with exactly one value.
    pub(super) fn literal_only_type(&mut self, l: &ast::Literal) -> Option<ir::Type> {
        enum_value(l).map(|v| ir::Type::OneOf(vec![v]))
    }

    /// `T | null`, or literal values of one type, optionally `| null`.
    pub(super) fn union_type(
        &mut self,
        parts: &[Spanned<ast::Type>],
        span: Span,
    ) -> Option<ir::Type> {
        let mut nullable = false;
        let mut values: Vec<(ir::Value, Span)> = Vec::new();
        let mut others: Vec<&Spanned<ast::Type>> = Vec::new();
        for p in parts {
            match &p.node {
                ast::Type::Named(n) if n == "null" => nullable = true,
                ast::Type::Literal(l) => {
                    let v = enum_value(l)?;
                    if let Some((_, first)) = values.iter().find(|(x, _)| *x == v) {
                        let first = *first;
                        self.duplicate("enum value", &value_text(&v), p.span, first);
                        continue;
                    }
                    values.push((v, p.span));
                }
                _ => others.push(p),
            }
        }
        let base = self.union_base(&values, &others, span)?;
        Some(match (nullable, base) {
            (_, ir::Type::Any) => ir::Type::Any,
            (true, base) => ir::Type::Nullable(Box::new(base)),
            (false, base) => base,
        })
    }

    /// The non-`null` part of a union: one type, or an enum of literal values.
    fn union_base(
        &mut self,
        values: &[(ir::Value, Span)],
        others: &[&Spanned<ast::Type>],
        span: Span,
    ) -> Option<ir::Type> {
        let invalid = |message: &str, at: Span, label: &str| CheckError::InvalidUnion {
            message: message.into(),
            span: at.into(),
            label: label.into(),
            help: "a union is `T | null` (a `T` or `null`) or literal values of one type \
                   (`\"economy\" | \"business\"`, `1 | 2`), either of them optionally `| null`; \
                   for anything else use `any`"
                .into(),
        };
        match (values, others) {
            ([], []) => {
                self.diags.push(invalid(
                    "a union of only `null`",
                    span,
                    "nothing but `null`",
                ));
                None
            }
            ([], [one]) => self.ty(one),
            ([], [_, second, ..]) => {
                self.diags.push(invalid(
                    "a union may hold one type besides `null`",
                    second.span,
                    "a second type",
                ));
                None
            }
            ([..], [first, ..]) => {
                self.diags.push(invalid(
                    "a union mixes literal values with a type",
                    first.span,
                    "not a literal value",
                ));
                None
            }
            ([(first, _), rest @ ..], []) => {
                let is_str = matches!(first, ir::Value::Str(_));
                if let Some((_, at)) = rest
                    .iter()
                    .find(|(v, _)| matches!(v, ir::Value::Str(_)) != is_str)
                {
                    self.diags.push(invalid(
                        "a union mixes strings and integers",
                        *at,
                        "not the same type as the first value",
                    ));
                    return None;
                }
                Some(ir::Type::OneOf(
                    values.iter().map(|(v, _)| v.clone()).collect(),
                ))
            }
        }
    }

    /// Whether `e` (of type `ty`) may have no value at run time, so that
    /// `e == null` can hold: a `T | null` or `any`, or a path through an
    /// optional field.
    pub(super) fn may_be_null(&self, e: &ir::Expr, ty: &Ty, scope: &Scope) -> bool {
        if matches!(ty, Ty::Nullable(_) | Ty::Any) {
            return true;
        }
        match &e.kind {
            ir::ExprKind::Path(ir::Path::Args(path)) => {
                let schema = scope
                    .tool
                    .and_then(|t| self.tools.get(t.0 as usize))
                    .and_then(|t| t.schema.as_deref());
                schema.is_none_or(|fields| optional_on_the_way(fields, path))
            }
            ir::ExprKind::Path(ir::Path::Ctx(f)) => {
                self.context.iter().any(|c| c.name == *f && c.optional)
            }
            ir::ExprKind::Path(ir::Path::Elem(path)) => match scope.vars.last() {
                Some((_, t)) => match t.without_null() {
                    Ty::Record(fields) | Ty::OpenRecord(fields) => {
                        optional_on_the_way(fields, path)
                    }
                    _ => true,
                },
                None => true,
            },
            _ => false,
        }
    }

    /// `lhs == null` / `lhs != null` (either side may be the `null`): typed
    /// and lowered to `IsNull`.
    pub(super) fn null_compare(
        &mut self,
        op: &Spanned<ast::CmpOp>,
        (l, lty, lhs_span): (ir::Expr, Ty, Span),
        (r, rty, rhs_span): (ir::Expr, Ty, Span),
        span: Span,
        scope: &Scope,
    ) -> Option<(ir::Expr, Ty)> {
        let (value, ty, value_span) = if lty == Ty::Null {
            (r, rty, rhs_span)
        } else {
            (l, lty, lhs_span)
        };
        let label = |at: Span, text: String| miette::LabeledSpan::new_with_span(Some(text), at);
        if !matches!(op.node, ast::CmpOp::Eq | ast::CmpOp::Ne) {
            self.diags.push(CheckError::TypeMismatch {
                message: format!("`{}` cannot take `null`", op.node.as_str()),
                labels: vec![label(op.span, "operator".into())],
                help: Some("test for `null` with `== null` or `!= null`".into()),
            });
            return None;
        }
        if !self.may_be_null(&value, &ty, scope) {
            self.diags.push(CheckError::TypeMismatch {
                message: format!("this is `{}`, which is never `null`", ty.name()),
                labels: vec![label(value_span, format!("this is `{}`", ty.name()))],
                help: Some(
                    "only a `T | null`, an `any` or an optional field (`f?: T`) can be `null`"
                        .into(),
                ),
            });
            return None;
        }
        // A `date`/`datetime` read is wrapped to be parsed; `== null` looks
        // at the raw value, so a missing or `null` one is not an error.
        let value = match value.kind {
            ir::ExprKind::Time(_, inner) => *inner,
            other => ir::Expr {
                kind: other,
                span: value.span,
            },
        };
        let is_null = ir::Expr {
            kind: ir::ExprKind::IsNull(Box::new(value)),
            span,
        };
        Some(match op.node {
            ast::CmpOp::Eq => (is_null, Ty::Bool),
            _ => (
                ir::Expr {
                    kind: ir::ExprKind::Not(Box::new(is_null)),
                    span,
                },
                Ty::Bool,
            ),
        })
    }

    /// Literals compared with a value of an enum type must be among its values.
    pub(super) fn enum_literals(
        &mut self,
        value: &ir::Expr,
        ty: &Ty,
        op: ast::CmpOp,
        other: &Spanned<ast::Expr>,
    ) {
        use ast::CmpOp as C;
        let values = match (ty.without_null(), op) {
            (Ty::OneOf(v), C::Eq | C::Ne | C::In | C::NotIn) => v,
            (Ty::List(elem), C::Contains) => match elem.without_null() {
                Ty::OneOf(v) => v,
                _ => return,
            },
            _ => return,
        };
        let literals: Vec<(&ast::Literal, Span)> = match &other.node {
            ast::Expr::Literal(ast::Literal::List(items)) if matches!(op, C::In | C::NotIn) => {
                items.iter().map(|i| (&i.node, i.span)).collect()
            }
            ast::Expr::Literal(l) => vec![(l, other.span)],
            _ => return,
        };
        for (lit, at) in literals {
            let Some(v) = enum_value(lit) else { continue };
            if values.contains(&v) {
                continue;
            }
            let shown = value_text(&v);
            let names = values.iter().map(value_text);
            let help = suggest::did_you_mean(&shown, names)
                .unwrap_or_else(|| format!("the declared values are {}", values_text(values)));
            self.diags.push(CheckError::UnknownEnumValue {
                value: shown,
                of: subject(value),
                span: at.into(),
                values: format!("`{}`", values_text(values)),
                help,
            });
        }
    }
}

/// How a diagnostic names the value a literal is compared with.
fn subject(e: &ir::Expr) -> String {
    match &e.kind {
        ir::ExprKind::Path(ir::Path::Args(p)) => format!("`args.{}`", p.join(".")),
        ir::ExprKind::Path(ir::Path::Ctx(f)) => format!("`ctx.{f}`"),
        ir::ExprKind::Path(ir::Path::Elem(p)) => format!("the element's `{}`", p.join(".")),
        _ => "the list's elements".into(),
    }
}

/// Whether a field on `path` under `fields` is optional, nullable, `any`, or
/// not declared (an open record's other fields).
fn optional_on_the_way(fields: &[ir::Field], path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let Some(f) = fields.iter().find(|f| f.name == *first) else {
        return true;
    };
    if f.optional {
        return true;
    }
    match &f.ty {
        ir::Type::Nullable(_) | ir::Type::Any => true,
        ir::Type::Record(inner) | ir::Type::OpenRecord(inner) => optional_on_the_way(inner, rest),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
