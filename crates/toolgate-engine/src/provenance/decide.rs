//! The provenance conditions at run time, shared by the compiled evaluator
//! and the reference interpreter so that both mean the same thing.

use super::{occurs_in_json, occurs_in_text, Key, SessionError, Sources};
use crate::request::{Context, Request};
use crate::value::{EvalError, Val};
use rustc_hash::FxHashSet as HashSet;
use toolgate_check::ir;

/// A `from` source with its tool resolved to a name.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Src<'a> {
    User,
    Ctx,
    Trusted,
    Tool(&'a str),
}

impl From<SessionError> for EvalError {
    fn from(_: SessionError) -> Self {
        EvalError::Session
    }
}

/// The policy's trusted constants, as keys (compiled once per engine).
#[derive(Debug, Default)]
pub(crate) struct Constants(HashSet<Key>);

impl Constants {
    pub(crate) fn of(values: &[ir::Value]) -> Constants {
        let mut set = HashSet::default();
        constant_keys(values, &mut |k| {
            set.insert(k);
        });
        Constants(set)
    }

    pub(crate) fn contains(&self, key: &Key) -> bool {
        self.0.contains(key)
    }
}

/// The keys of constant values: strings as whole values, numbers by value,
/// lists element by element.
pub(crate) fn constant_keys(values: &[ir::Value], f: &mut dyn FnMut(Key)) {
    for v in values {
        match v {
            ir::Value::Str(s) => {
                if let Some(k) = Key::text(s) {
                    f(k);
                }
            }
            ir::Value::Int(i) => f(Key::number(*i as f64)),
            ir::Value::Num(n) => f(Key::number(n.get())),
            ir::Value::Bool(_) => {}
            ir::Value::List(items) => constant_keys(items, f),
        }
    }
}

/// `value from source`. Without a session: an error, whatever the source.
/// A string too short to occur is `false`.
pub(crate) fn holds(
    source: Src<'_>,
    value: &Val<'_>,
    req: &Request<'_>,
    is_constant: &dyn Fn(&Key) -> bool,
) -> Result<bool, EvalError> {
    let session = req.session.ok_or(EvalError::Session)?;
    let Some(key) = value_key(value)? else {
        return Ok(false);
    };
    Ok(match source {
        Src::User => session.sources(&key)?.any_of(Sources::USER),
        Src::Ctx => in_context(&key, req.context),
        // The session first: one lookup, and a session that cannot answer
        // is an error whatever else the value matches.
        Src::Trusted => {
            session.sources(&key)?.any_of(Sources::TRUSTED)
                || is_constant(&key)
                || in_context(&key, req.context)
        }
        Src::Tool(name) => session.in_output_of(&key, name)?,
    })
}

/// The key of a value `from` reads: a string's text, a number's value.
pub(crate) fn value_key(value: &Val<'_>) -> Result<Option<Key>, EvalError> {
    match value {
        Val::Str(s) => Ok(Key::text(s)),
        Val::Int(i) => Ok(Some(Key::number(*i as f64))),
        Val::Num(n) => Ok(Some(Key::number(*n))),
        _ => Err(EvalError::Type),
    }
}

/// Whether `key` occurs in the trusted context: tenant, env, context fields.
pub(crate) fn in_context(key: &Key, ctx: &Context) -> bool {
    occurs_in_text(key, &ctx.tenant)
        || occurs_in_text(key, &ctx.env)
        || ctx.fields.values().any(|v| occurs_in_json(key, v))
}

/// `session.tainted`.
pub(crate) fn tainted(req: &Request<'_>) -> Result<bool, EvalError> {
    Ok(req.session.ok_or(EvalError::Session)?.tainted()?)
}

/// `session.calls(tool)`.
pub(crate) fn calls(req: &Request<'_>, tool: &str) -> Result<Val<'static>, EvalError> {
    let n = req.session.ok_or(EvalError::Session)?.calls(tool)?;
    Ok(Val::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// `urls(x)` / `emails(x)`.
pub(crate) fn extract(f: ir::ExtractFn, text: &str) -> Val<'static> {
    Val::StrList(match f {
        ir::ExtractFn::Urls => super::urls(text),
        ir::ExtractFn::Emails => super::emails(text),
    })
}
