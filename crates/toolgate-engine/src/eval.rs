//! Compiled conditions: `ir::Expr` lowered once to a form whose evaluation
//! resolves no policy names (tools, agents, constants) and compiles nothing.
//! Request values are read from the request's JSON (`args`) and context map.

use crate::dates;
use crate::provenance::decide::{self as prov, Constants, Src};
use crate::request::Request;
use crate::value::{self, EvalError, Val};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::sync::Arc;
use toolgate_check::ir;

/// What compiling a condition needs from the policy: tool names (for
/// `from tool T`, `session.calls(T)`) and the trusted constants.
pub(crate) struct Compiler<'p> {
    pub policy: &'p ir::Policy,
    pub constants: Arc<Constants>,
}

/// A compiled condition or operand.
#[derive(Clone, Debug)]
pub(crate) enum Cond {
    Const(ir::Value),
    Arg(Box<[String]>),
    Ctx(String),
    Tenant,
    Env,
    Agent,
    Tool,
    Elem,
    /// `x.a.b`: a field of the current element.
    ElemField(Box<[String]>),
    /// `has x.a.b`.
    HasElem(Box<[String]>),
    Len(Box<Cond>),
    Lower(Box<Cond>),
    Text(ir::TextFn, Box<Cond>),
    Within(Box<Cond>, Box<Cond>),
    Url(ir::UrlPart, Box<Cond>),
    Not(Box<Cond>),
    And(Box<[Cond]>),
    Or(Box<[Cond]>),
    HasArg(Box<[String]>),
    HasCtx(String),
    Binary(ir::BinOp, Box<Cond>, Box<Cond>),
    Match(Box<Cond>, regex::Regex),
    Quant(ir::Quantifier, Box<Cond>, Box<Cond>),
    /// `x == null`: `x` has no value.
    IsNull(Box<Cond>),
    Now,
    Dur(i64),
    Time(ir::TimeFn, Box<Cond>),
    Arith(ir::ArithOp, Box<Cond>, Box<Cond>),
    /// `x from SOURCE`.
    From(Box<Cond>, FromSource),
    /// `session.tainted`.
    Tainted,
    /// `session.calls(T)`.
    Calls(String),
    /// `urls(x)` / `emails(x)`.
    Extract(ir::ExtractFn, Box<Cond>),
}

/// A compiled `from` source.
#[derive(Clone, Debug)]
pub(crate) enum FromSource {
    User,
    Ctx,
    Trusted(Arc<Constants>),
    Tool(String),
}

impl Cond {
    /// Compiles a checked expression. Patterns were checked by the checker,
    /// so a failure here is a bug; it is reported, never unwrapped.
    pub(crate) fn compile(e: &ir::Expr, cx: &Compiler<'_>) -> Result<Cond, String> {
        let b = |e: &ir::Expr| Cond::compile(e, cx).map(Box::new);
        let all = |xs: &[ir::Expr]| {
            xs.iter()
                .map(|x| Cond::compile(x, cx))
                .collect::<Result<Box<[Cond]>, _>>()
        };
        Ok(match &e.kind {
            ir::ExprKind::Lit(v) => Cond::Const(v.clone()),
            ir::ExprKind::Path(p) => match p {
                ir::Path::Args(fields) => Cond::Arg(fields.clone().into()),
                ir::Path::Ctx(f) => Cond::Ctx(f.clone()),
                ir::Path::Tenant => Cond::Tenant,
                ir::Path::Env => Cond::Env,
                ir::Path::Agent => Cond::Agent,
                ir::Path::Tool => Cond::Tool,
                ir::Path::Elem(fields) => Cond::ElemField(fields.clone().into()),
            },
            ir::ExprKind::Elem => Cond::Elem,
            ir::ExprKind::Len(x) => Cond::Len(b(x)?),
            ir::ExprKind::Lower(x) => Cond::Lower(b(x)?),
            ir::ExprKind::Text(f, x) => Cond::Text(*f, b(x)?),
            ir::ExprKind::Within(p, r) => Cond::Within(b(p)?, b(r)?),
            ir::ExprKind::Url(part, x) => Cond::Url(*part, b(x)?),
            ir::ExprKind::Not(x) => Cond::Not(b(x)?),
            ir::ExprKind::And(xs) => Cond::And(all(xs)?),
            ir::ExprKind::Or(xs) => Cond::Or(all(xs)?),
            ir::ExprKind::Has(p) => match p {
                ir::Path::Args(fields) => Cond::HasArg(fields.clone().into()),
                ir::Path::Ctx(f) => Cond::HasCtx(f.clone()),
                ir::Path::Elem(fields) => Cond::HasElem(fields.clone().into()),
                _ => Cond::Const(ir::Value::Bool(true)),
            },
            ir::ExprKind::Binary(op, l, r) => Cond::Binary(*op, b(l)?, b(r)?),
            ir::ExprKind::Glob(x, g) => Cond::Match(b(x)?, regex(&value::glob_regex(g))?),
            ir::ExprKind::Regex(x, r) => Cond::Match(b(x)?, regex(r)?),
            ir::ExprKind::Quant(q, list, pred) => Cond::Quant(*q, b(list)?, b(pred)?),
            ir::ExprKind::IsNull(x) => Cond::IsNull(b(x)?),
            ir::ExprKind::Now => Cond::Now,
            ir::ExprKind::Duration(secs) => Cond::Dur(*secs),
            ir::ExprKind::Time(f, x) => Cond::Time(*f, b(x)?),
            ir::ExprKind::Arith(op, l, r) => Cond::Arith(*op, b(l)?, b(r)?),
            ir::ExprKind::From(x, source) => Cond::From(b(x)?, cx.source(*source)?),
            ir::ExprKind::SessionTainted => Cond::Tainted,
            ir::ExprKind::SessionCalls(t) => Cond::Calls(cx.tool_name(*t)?.to_string()),
            ir::ExprKind::Extract(f, x) => Cond::Extract(*f, b(x)?),
        })
    }

    /// Evaluates a condition: `Err` when it cannot be evaluated (fail closed
    /// is the caller's job). `and`/`or` go left to right and stop at the
    /// first value that decides them or at the first error.
    pub(crate) fn truth<'a>(&'a self, env: &Scope<'a>) -> Result<bool, EvalError> {
        match self {
            Cond::Not(x) => x.truth(env).map(|t| !t),
            Cond::And(xs) => {
                for x in xs.iter() {
                    if !x.truth(env)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Cond::Or(xs) => {
                for x in xs.iter() {
                    if x.truth(env)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Cond::HasArg(path) => Ok(arg(env.req.args, path).is_some()),
            Cond::HasCtx(f) => Ok(env.req.context.fields.get(f).is_some_and(|v| !v.is_null())),
            Cond::HasElem(path) => match env.elem.as_ref().map(|e| e.field(path)) {
                Some(Ok(_)) => Ok(true),
                Some(Err(EvalError::Missing)) => Ok(false),
                Some(Err(e)) => Err(e),
                None => Err(EvalError::Missing),
            },
            Cond::Binary(op, l, r) => value::binary(*op, &l.value(env)?, &r.value(env)?),
            Cond::IsNull(x) => value::is_null(x.value(env)),
            Cond::Match(x, re) => Ok(re.is_match(x.value(env)?.as_str()?)),
            Cond::Within(p, r) => value::within(p.value(env)?.as_str()?, r.value(env)?.as_str()?),
            Cond::From(x, source) => {
                let src = match source {
                    FromSource::User => Src::User,
                    FromSource::Ctx => Src::Ctx,
                    FromSource::Trusted(_) => Src::Trusted,
                    FromSource::Tool(t) => Src::Tool(t),
                };
                let consts = |k: &crate::provenance::Key| match source {
                    FromSource::Trusted(c) => c.contains(k),
                    _ => false,
                };
                prov::holds(src, &x.value(env)?, env.req, &consts)
            }
            Cond::Tainted => prov::tainted(env.req),
            Cond::Quant(q, list, pred) => {
                for item in list.value(env)?.elements()? {
                    let inner = Scope {
                        req: env.req,
                        elem: Some(item?),
                    };
                    let t = pred.truth(&inner)?;
                    match q {
                        ir::Quantifier::All if !t => return Ok(false),
                        ir::Quantifier::Any if t => return Ok(true),
                        _ => {}
                    }
                }
                Ok(*q == ir::Quantifier::All)
            }
            other => match other.value(env)? {
                Val::Bool(b) => Ok(b),
                _ => Err(EvalError::Type),
            },
        }
    }

    /// Calls `f` on each condition or operand directly under this one.
    pub(crate) fn each_operand<'a>(&'a self, f: &mut dyn FnMut(&'a Cond)) {
        match self {
            Cond::Len(x)
            | Cond::Lower(x)
            | Cond::Text(_, x)
            | Cond::Time(_, x)
            | Cond::Url(_, x)
            | Cond::Not(x)
            | Cond::Match(x, _)
            | Cond::Extract(_, x)
            | Cond::IsNull(x)
            | Cond::From(x, _) => f(x),
            Cond::And(xs) | Cond::Or(xs) => xs.iter().for_each(f),
            Cond::Binary(_, l, r)
            | Cond::Quant(_, l, r)
            | Cond::Within(l, r)
            | Cond::Arith(_, l, r) => {
                f(l);
                f(r);
            }
            Cond::Const(_)
            | Cond::Arg(_)
            | Cond::Ctx(_)
            | Cond::Tenant
            | Cond::Env
            | Cond::Agent
            | Cond::Tool
            | Cond::Elem
            | Cond::ElemField(_)
            | Cond::HasElem(_)
            | Cond::HasArg(_)
            | Cond::HasCtx(_)
            | Cond::Now
            | Cond::Dur(_)
            | Cond::Tainted
            | Cond::Calls(_) => {}
        }
    }

    pub(crate) fn value<'a>(&'a self, env: &Scope<'a>) -> Result<Val<'a>, EvalError> {
        let ctx = env.req.context;
        match self {
            Cond::Const(v) => Ok(Val::from_const(v)),
            Cond::Arg(path) => Val::from_json(arg(env.req.args, path).ok_or(EvalError::Missing)?),
            Cond::Ctx(f) => Val::from_json(ctx_field(ctx, f)?),
            Cond::Tenant => Ok(Val::Str(Cow::Borrowed(&ctx.tenant))),
            Cond::Env => Ok(Val::Str(Cow::Borrowed(&ctx.env))),
            Cond::Agent => Ok(Val::Str(Cow::Borrowed(env.req.agent))),
            Cond::Tool => Ok(Val::Str(Cow::Borrowed(env.req.tool))),
            Cond::Elem => env.elem.clone().ok_or(EvalError::Missing),
            Cond::ElemField(path) => env.elem.as_ref().ok_or(EvalError::Missing)?.field(path),
            Cond::Len(x) => value::len(&x.value(env)?).map(Val::Int),
            Cond::Lower(x) => Ok(Val::Str(Cow::Owned(x.value(env)?.as_str()?.to_lowercase()))),
            Cond::Url(part, x) => value::url_part(*part, x.value(env)?.as_str()?),
            Cond::Text(f, x) => value::text_fn(*f, x.value(env)?.as_str()?),
            Cond::Now => env.req.now.map(Val::Time).ok_or(EvalError::Missing),
            Cond::Dur(secs) => Ok(dates::duration(*secs)),
            Cond::Time(f, x) => dates::convert(*f, x.value(env)?),
            Cond::Arith(op, l, r) => dates::arith(*op, &l.value(env)?, &r.value(env)?),
            Cond::Calls(t) => prov::calls(env.req, t),
            Cond::Extract(f, x) => Ok(prov::extract(*f, x.value(env)?.as_str()?)),
            cond => cond.truth(env).map(Val::Bool),
        }
    }
}

impl Compiler<'_> {
    fn tool_name(&self, id: ir::ToolId) -> Result<&str, String> {
        self.policy
            .tools
            .get(id.0 as usize)
            .map(|t| t.name.as_str())
            .ok_or_else(|| format!("no tool with id {}", id.0))
    }

    fn source(&self, source: ir::Source) -> Result<FromSource, String> {
        Ok(match source {
            ir::Source::User => FromSource::User,
            ir::Source::Ctx => FromSource::Ctx,
            ir::Source::Trusted => FromSource::Trusted(self.constants.clone()),
            ir::Source::Tool(t) => FromSource::Tool(self.tool_name(t)?.to_string()),
        })
    }
}

fn regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|e| format!("pattern `{pattern}` does not compile: {e}"))
}

/// A context field with a value (`null` is none).
pub(crate) fn ctx_field<'a>(ctx: &'a crate::Context, f: &str) -> Result<&'a Json, EvalError> {
    ctx.fields
        .get(f)
        .filter(|v| !v.is_null())
        .ok_or(EvalError::Missing)
}

/// `args.a.b...`, if present.
pub(crate) fn arg<'a>(args: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter()
        .try_fold(args, |v, key| v.as_object()?.get(key))
        .filter(|v| !v.is_null())
}

/// What a condition is evaluated against.
pub(crate) struct Scope<'a> {
    pub req: &'a Request<'a>,
    /// The current element inside `all` / `any`.
    pub elem: Option<Val<'a>>,
}
