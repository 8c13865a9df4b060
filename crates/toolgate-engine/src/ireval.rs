//! Evaluation of conditions straight over the IR, with no compilation: the
//! reference interpreter's evaluator, also used by `explain` to say which
//! part of a condition did not hold.

use crate::dates;
use crate::eval;
use crate::provenance::decide::{self as prov, Src};
use crate::provenance::Key;
use crate::request::Request;
use crate::value::{self, EvalError, Val};
use std::borrow::Cow;
use toolgate_check::ir;

/// Evaluates a condition over the IR.
pub(crate) fn truth<'a>(
    e: &'a ir::Expr,
    p: &'a ir::Policy,
    req: &'a Request<'a>,
    elem: Option<&Val<'a>>,
) -> Result<bool, EvalError> {
    use ir::ExprKind as K;
    match &e.kind {
        K::Not(x) => Ok(!truth(x, p, req, elem)?),
        K::And(xs) => {
            for x in xs {
                if !truth(x, p, req, elem)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        K::Or(xs) => {
            for x in xs {
                if truth(x, p, req, elem)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        K::Has(ir::Path::Args(p)) => Ok(eval::arg(req.args, p).is_some()),
        K::Has(ir::Path::Ctx(f)) => Ok(req.context.fields.get(f).is_some_and(|v| !v.is_null())),
        K::Has(ir::Path::Elem(p)) => {
            // Present: a value or an object; absent or `null`: false.
            let Some(e) = elem else {
                return Err(EvalError::Missing);
            };
            match e.field(p) {
                Ok(_) => Ok(true),
                Err(EvalError::Missing) => Ok(false),
                Err(other) => Err(other),
            }
        }
        K::Has(_) => Ok(true),
        K::Binary(op, l, r) => value::binary(*op, &val(l, p, req, elem)?, &val(r, p, req, elem)?),
        K::IsNull(x) => value::is_null(val(x, p, req, elem)),
        K::Within(path, r) => value::within(
            val(path, p, req, elem)?.as_str()?,
            val(r, p, req, elem)?.as_str()?,
        ),
        K::Glob(x, g) => {
            let re = regex::Regex::new(&value::glob_regex(g)).map_err(|_| EvalError::Type)?;
            Ok(re.is_match(val(x, p, req, elem)?.as_str()?))
        }
        K::Regex(x, r) => {
            let re = regex::Regex::new(r).map_err(|_| EvalError::Type)?;
            Ok(re.is_match(val(x, p, req, elem)?.as_str()?))
        }
        K::Quant(q, list, pred) => {
            let items = val(list, p, req, elem)?.elements()?;
            let mut results = Vec::new();
            for item in items {
                results.push(truth(pred, p, req, Some(&item?))?);
                let decided = match q {
                    ir::Quantifier::All => results.last() == Some(&false),
                    ir::Quantifier::Any => results.last() == Some(&true),
                };
                if decided {
                    break;
                }
            }
            Ok(match q {
                ir::Quantifier::All => results.iter().all(|t| *t),
                ir::Quantifier::Any => results.iter().any(|t| *t),
            })
        }
        K::From(x, source) => {
            let src = match source {
                ir::Source::User => Src::User,
                ir::Source::Ctx => Src::Ctx,
                ir::Source::Trusted => Src::Trusted,
                ir::Source::Tool(t) => Src::Tool(tool_name(p, *t)?),
            };
            // Literally: every constant normalised again, on each question.
            let is_constant = |k: &Key| {
                let mut found = false;
                prov::constant_keys(&p.constants, &mut |c| found |= c == *k);
                found
            };
            prov::holds(src, &val(x, p, req, elem)?, req, &is_constant)
        }
        K::SessionTainted => prov::tainted(req),
        _ => match val(e, p, req, elem)? {
            Val::Bool(b) => Ok(b),
            _ => Err(EvalError::Type),
        },
    }
}

/// Evaluates an operand over the IR.
pub(crate) fn val<'a>(
    e: &'a ir::Expr,
    p: &'a ir::Policy,
    req: &'a Request<'a>,
    elem: Option<&Val<'a>>,
) -> Result<Val<'a>, EvalError> {
    use ir::ExprKind as K;
    let ctx = req.context;
    match &e.kind {
        K::Lit(v) => Ok(Val::from_const(v)),
        K::Path(ir::Path::Args(p)) => {
            Val::from_json(eval::arg(req.args, p).ok_or(EvalError::Missing)?)
        }
        K::Path(ir::Path::Ctx(f)) => Val::from_json(eval::ctx_field(ctx, f)?),
        K::Path(ir::Path::Tenant) => Ok(Val::Str(Cow::Borrowed(&ctx.tenant))),
        K::Path(ir::Path::Env) => Ok(Val::Str(Cow::Borrowed(&ctx.env))),
        K::Path(ir::Path::Agent) => Ok(Val::Str(Cow::Borrowed(req.agent))),
        K::Path(ir::Path::Tool) => Ok(Val::Str(Cow::Borrowed(req.tool))),
        K::Elem => elem.cloned().ok_or(EvalError::Missing),
        K::Path(ir::Path::Elem(p)) => elem.ok_or(EvalError::Missing)?.field(p),
        K::Len(x) => value::len(&val(x, p, req, elem)?).map(Val::Int),
        K::Lower(x) => Ok(Val::Str(Cow::Owned(
            val(x, p, req, elem)?.as_str()?.to_lowercase(),
        ))),
        K::Url(part, x) => value::url_part(*part, val(x, p, req, elem)?.as_str()?),
        K::Text(f, x) => value::text_fn(*f, val(x, p, req, elem)?.as_str()?),
        K::Now => req.now.map(Val::Time).ok_or(EvalError::Missing),
        K::Duration(secs) => Ok(dates::duration(*secs)),
        K::Time(f, x) => dates::convert(*f, val(x, p, req, elem)?),
        K::Arith(op, l, r) => dates::arith(*op, &val(l, p, req, elem)?, &val(r, p, req, elem)?),
        K::SessionCalls(t) => prov::calls(req, tool_name(p, *t)?),
        K::Extract(f, x) => Ok(prov::extract(*f, val(x, p, req, elem)?.as_str()?)),
        _ => truth(e, p, req, elem).map(Val::Bool),
    }
}

/// The name of tool `id` (a checked policy always has it).
fn tool_name(p: &ir::Policy, id: ir::ToolId) -> Result<&str, EvalError> {
    p.tools
        .get(id.0 as usize)
        .map(|t| t.name.as_str())
        .ok_or(EvalError::Type)
}
