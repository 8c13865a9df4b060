//! Dates, datetimes, durations and `now`: typing and lowering.
//!
//! A value declared `date` or `datetime` is a JSON string that is parsed
//! where a condition reads it (`ir::ExprKind::Time` wraps the read), so the
//! engine never needs the schema. `date` and `datetime` never compare with
//! each other: `date(now)` is the current UTC date.

use super::expr::{label, node, Scope, Ty, Typed};
use super::Checker;
use crate::err::CheckError;
use crate::ir;
use crate::time;
use toolgate_syntax::ast::{self, Span, Spanned};

const DAY: i64 = 86_400;

/// A read of a value of type `ty`: dates and datetimes are parsed there.
pub(super) fn wrap(e: ir::Expr, ty: &Ty) -> ir::Expr {
    let f = match ty.base() {
        Ty::Date => ir::TimeFn::Date,
        Ty::Datetime => ir::TimeFn::Datetime,
        _ => return e,
    };
    let span = e.span;
    node(ir::ExprKind::Time(f, Box::new(e)), span)
}

/// Whether `<`, `<=`, `>`, `>=` may order the two: two dates, two
/// datetimes or two durations (or one of them and a value known at run time).
pub(super) fn ordered(l: &Ty, r: &Ty) -> bool {
    match (l.base(), r.base()) {
        (Ty::Any, t) | (t, Ty::Any) => t.is_time(),
        (a, b) => a == b && a.is_time(),
    }
}

/// Why a comparison of these types is refused although their types match:
/// dates inside lists compare as text, so membership and list equality on
/// them are not offered.
pub(super) fn unsupported(op: ast::CmpOp, l: &Ty, r: &Ty) -> Option<&'static str> {
    use ast::CmpOp as C;
    let (l, r) = (l.base(), r.base());
    let listed = |t: &Ty| matches!(t, Ty::List(e) if e.is_time() && **e != Ty::Duration);
    let time_in_list = match op {
        C::In | C::NotIn => listed(r),
        C::Contains => listed(l),
        C::Eq | C::Ne => listed(l) || listed(r),
        _ => false,
    };
    if time_in_list {
        return Some("dates in a list are compared one by one: write `any d in LIST: d == x`");
    }
    let text = matches!(
        (l, r),
        (Ty::Date | Ty::Datetime, Ty::Str) | (Ty::Str, Ty::Date | Ty::Datetime)
    );
    if text {
        return Some("a date is not a string: write `date(\"2026-11-22\")` or `datetime(\"2026-11-22T10:00:00Z\")`");
    }
    let mixed = matches!((l, r), (Ty::Date, Ty::Datetime) | (Ty::Datetime, Ty::Date));
    mixed.then_some("a `date` never compares with a `datetime`: `date(now)` is today's UTC date, `date(x)` a datetime's")
}

impl Ty {
    /// `date`, `datetime` or a duration.
    pub(super) fn is_time(&self) -> bool {
        matches!(self, Ty::Date | Ty::Datetime | Ty::Duration)
    }
}

impl Checker<'_> {
    /// `now`: the trusted clock's time.
    pub(super) fn now(&mut self, span: Span) -> Typed {
        (node(ir::ExprKind::Now, span), Ty::Datetime)
    }

    /// A duration literal (`30d`).
    pub(super) fn duration(&mut self, d: ast::Duration, span: Span) -> Typed {
        let secs = i64::try_from(d.seconds()).unwrap_or(i64::MAX);
        (node(ir::ExprKind::Duration(secs), span), Ty::Duration)
    }

    /// `date(x)` / `datetime(x)`: one `string` (a literal is checked here),
    /// a `datetime` (for `date`), or a value known at run time.
    pub(super) fn time_call(
        &mut self,
        f: ir::TimeFn,
        args: &[Spanned<ast::Expr>],
        span: Span,
        scope: &mut Scope,
    ) -> Option<Typed> {
        let (name, result) = match f {
            ir::TimeFn::Date => ("date", Ty::Date),
            ir::TimeFn::Datetime => ("datetime", Ty::Datetime),
        };
        let [arg] = args else {
            self.mismatch(
                format!(
                    "`{name}` takes one argument, but this call has {}",
                    args.len()
                ),
                vec![label(span, "this call")],
                Some(format!("write `{name}(\"{}\")`", example(f))),
            );
            return None;
        };
        let (ir_arg, ty) = self.expr(arg, scope)?;
        let fits = matches!(
            (f, &ty),
            (_, Ty::Str | Ty::Any)
                | (ir::TimeFn::Date, Ty::Date | Ty::Datetime)
                | (ir::TimeFn::Datetime, Ty::Datetime)
        );
        if !fits {
            let takes = match f {
                ir::TimeFn::Date => "a `string` or a `datetime`",
                ir::TimeFn::Datetime => "a `string`",
            };
            self.mismatch(
                format!("`{name}` takes {takes}, but this is `{}`", ty.name()),
                vec![label(arg.span, format!("this is `{}`", ty.name()))],
                None,
            );
            return None;
        }
        if let ast::Expr::Literal(ast::Literal::Str(text)) = &arg.node {
            self.date_literal(f, text, arg.span)?;
        }
        if ty == result {
            return Some((ir_arg, result));
        }
        Some((node(ir::ExprKind::Time(f, Box::new(ir_arg)), span), result))
    }

    fn date_literal(&mut self, f: ir::TimeFn, text: &str, span: Span) -> Option<()> {
        let ok = match f {
            ir::TimeFn::Date => time::parse_date(text).is_some(),
            ir::TimeFn::Datetime => time::parse_datetime(text).is_some(),
        };
        if ok {
            return Some(());
        }
        let (kind, help) = match f {
            ir::TimeFn::Date => ("date", "a date is `YYYY-MM-DD`, e.g. `2026-11-22`".to_string()),
            ir::TimeFn::Datetime if time::parse_datetime(&format!("{text}Z")).is_some() => (
                "datetime",
                "a datetime without an offset names no instant: add `Z` (UTC) or an offset such as `+01:00`".to_string(),
            ),
            ir::TimeFn::Datetime => (
                "datetime",
                format!("a datetime is RFC 3339 with an offset, e.g. `{}`", example(f)),
            ),
        };
        self.diags.push(CheckError::InvalidDate {
            kind,
            text: text.to_string(),
            span: span.into(),
            help,
        });
        None
    }

    /// `l + r` / `l - r`.
    pub(super) fn arith(
        &mut self,
        l: &Spanned<ast::Expr>,
        op: &Spanned<ast::ArithOp>,
        r: &Spanned<ast::Expr>,
        span: Span,
        scope: &mut Scope,
    ) -> Option<Typed> {
        let (lt, rt) = (self.expr(l, scope), self.expr(r, scope));
        let ((li, lty), (ri, rty)) = (lt?, rt?);
        let add = op.node == ast::ArithOp::Add;
        let result = match (&lty, &rty) {
            (Ty::Any, t) | (t, Ty::Any) if t.is_time() => Some(Ty::Any),
            (Ty::Date | Ty::Datetime, Ty::Duration) => Some(lty.clone()),
            (Ty::Duration, Ty::Date | Ty::Datetime) if add => Some(rty.clone()),
            (Ty::Date, Ty::Date) | (Ty::Datetime, Ty::Datetime) if !add => Some(Ty::Duration),
            (Ty::Duration, Ty::Duration) => Some(Ty::Duration),
            _ => None,
        };
        let Some(result) = result else {
            self.mismatch(
                format!(
                    "type mismatch: `{}` cannot combine `{}` with `{}`",
                    op.node.as_str(),
                    lty.name(),
                    rty.name()
                ),
                vec![
                    label(l.span, format!("this is `{}`", lty.name())),
                    label(r.span, format!("this is `{}`", rty.name())),
                ],
                Some("`+` and `-` move a `date` or `datetime` by a duration (`now + 30d`) or subtract two of them (`args.end - args.start`)".into()),
            );
            return None;
        };
        self.whole_days(&lty, &rty, &ri, r.span)?;
        self.whole_days(&rty, &lty, &li, l.span)?;
        let kind = ir::ExprKind::Arith(op.node, Box::new(li), Box::new(ri));
        Some((node(kind, span), result))
    }

    /// A `date` moves by whole days: `date(now) + 12h` is refused here (and
    /// a computed duration that is not whole days is an evaluation error).
    fn whole_days(&mut self, base: &Ty, dty: &Ty, d: &ir::Expr, span: Span) -> Option<()> {
        let ir::ExprKind::Duration(secs) = d.kind else {
            return Some(());
        };
        if *base != Ty::Date || *dty != Ty::Duration || secs % DAY == 0 {
            return Some(());
        }
        self.mismatch(
            "a `date` moves by whole days only".into(),
            vec![label(span, "not a whole number of days")],
            Some("write days (`d`) or weeks (`w`), or compare datetimes instead".into()),
        );
        None
    }
}

fn example(f: ir::TimeFn) -> &'static str {
    match f {
        ir::TimeFn::Date => "2026-11-22",
        ir::TimeFn::Datetime => "2026-11-22T10:00:00Z",
    }
}
