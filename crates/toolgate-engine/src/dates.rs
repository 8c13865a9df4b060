//! Dates, datetimes and durations at run time: the conversions `date(x)` /
//! `datetime(x)` (also applied to every read of a value declared `date` or
//! `datetime`), ordering, and `+`/`-`. Shared by the engine and the
//! reference interpreter. Every failure (a malformed date, a type mix, an
//! overflow, a date moved by part of a day) is an evaluation error.

use crate::value::{EvalError, Val};
use std::cmp::Ordering;
use toolgate_check::ir;
use toolgate_check::time::{self, SignedDuration};

const DAY: i64 = 86_400;

/// `date(x)` or `datetime(x)`: RFC 3339 text (strict), or for `date` a
/// datetime's UTC calendar date. A value already of the target type is kept.
pub fn convert(f: ir::TimeFn, v: Val<'_>) -> Result<Val<'static>, EvalError> {
    match (f, v) {
        (ir::TimeFn::Date, Val::Str(s)) => {
            time::parse_date(&s).map(Val::Date).ok_or(EvalError::Type)
        }
        (ir::TimeFn::Date, Val::Date(d)) => Ok(Val::Date(d)),
        (ir::TimeFn::Date, Val::Time(t)) => Ok(Val::Date(utc_date(t))),
        (ir::TimeFn::Datetime, Val::Str(s)) => time::parse_datetime(&s)
            .map(Val::Time)
            .ok_or(EvalError::Type),
        (ir::TimeFn::Datetime, Val::Time(t)) => Ok(Val::Time(t)),
        _ => Err(EvalError::Type),
    }
}

fn utc_date(t: time::Timestamp) -> time::Date {
    jiff::tz::Offset::UTC.to_datetime(t).date()
}

/// Orders two dates, two datetimes or two durations; anything else is a type error.
pub fn compare(a: &Val<'_>, b: &Val<'_>) -> Result<Ordering, EvalError> {
    match (a, b) {
        (Val::Date(x), Val::Date(y)) => Ok(x.cmp(y)),
        (Val::Time(x), Val::Time(y)) => Ok(x.cmp(y)),
        (Val::Dur(x), Val::Dur(y)) => Ok(x.cmp(y)),
        _ => Err(EvalError::Type),
    }
}

/// A duration literal of `secs` seconds.
pub fn duration(secs: i64) -> Val<'static> {
    Val::Dur(SignedDuration::from_secs(secs))
}

/// `a + b` / `a - b`.
pub fn arith(op: ir::ArithOp, a: &Val<'_>, b: &Val<'_>) -> Result<Val<'static>, EvalError> {
    let add = op == ir::ArithOp::Add;
    let out = match (a, b) {
        (Val::Time(t), Val::Dur(d)) => Val::Time(shift_time(*t, *d, add)?),
        (Val::Dur(d), Val::Time(t)) if add => Val::Time(shift_time(*t, *d, true)?),
        (Val::Date(x), Val::Dur(d)) => Val::Date(shift_date(*x, *d, add)?),
        (Val::Dur(d), Val::Date(x)) if add => Val::Date(shift_date(*x, *d, true)?),
        (Val::Time(x), Val::Time(y)) if !add => Val::Dur(x.duration_since(*y)),
        (Val::Date(x), Val::Date(y)) if !add => Val::Dur(x.duration_since(*y)),
        (Val::Dur(x), Val::Dur(y)) => Val::Dur(
            if add {
                x.checked_add(*y)
            } else {
                x.checked_sub(*y)
            }
            .ok_or(EvalError::Type)?,
        ),
        _ => return Err(EvalError::Type),
    };
    Ok(out)
}

fn shift_time(
    t: time::Timestamp,
    d: SignedDuration,
    add: bool,
) -> Result<time::Timestamp, EvalError> {
    let moved = if add {
        t.checked_add(d)
    } else {
        t.checked_sub(d)
    };
    moved.map_err(|_| EvalError::Type)
}

/// A date moves by whole days only.
fn shift_date(x: time::Date, d: SignedDuration, add: bool) -> Result<time::Date, EvalError> {
    if d.subsec_nanos() != 0 || d.as_secs() % DAY != 0 {
        return Err(EvalError::Type);
    }
    let days = d.as_secs() / DAY;
    let days = if add {
        days
    } else {
        days.checked_neg().ok_or(EvalError::Type)?
    };
    let span = jiff::Span::new()
        .try_days(days)
        .map_err(|_| EvalError::Type)?;
    x.checked_add(span).map_err(|_| EvalError::Type)
}
