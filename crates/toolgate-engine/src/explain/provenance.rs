//! `explain` for provenance: for each `x from SOURCE` of the considered
//! rules, the value it read and which source satisfied it, or where the
//! value was seen instead (only in untrusted output, nowhere).

use crate::ireval;
use crate::provenance::decide::{self as prov, Src};
use crate::provenance::{Key, Sources, Witness};
use crate::request::Request;
use crate::value::{EvalError, Val};
use toolgate_check::ir;
use toolgate_syntax::ast::Span;

/// One `from` condition as evaluated (once per element inside a quantifier).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenanceTrace {
    /// The rule.
    pub rule: ir::RuleId,
    /// The `x from SOURCE` condition.
    pub at: Span,
    /// The value it read, as text (`None`: it could not be read).
    pub value: Option<String>,
    /// What was found.
    pub finding: Finding,
}

/// What a `from` condition found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// It holds; these sources satisfy it ("user turn 2", "the call's context", ...).
    Holds(Vec<String>),
    /// It does not hold; where the value was seen instead (empty: nowhere).
    Fails(Vec<String>),
    /// It cannot be evaluated (no session, a session that cannot answer, a missing value).
    Error(String),
}

/// The `from` conditions of `rules`, each with what it found.
pub fn provenance(
    policy: &ir::Policy,
    req: &Request<'_>,
    rules: &[ir::RuleId],
) -> Vec<ProvenanceTrace> {
    let mut out = Vec::new();
    for &id in rules {
        let rule = policy.rules.get(id.0 as usize);
        if let Some(cond) = rule.and_then(|r| r.condition.as_ref()) {
            walk(policy, req, id, cond, None, &mut out);
        }
    }
    out
}

fn walk<'a>(
    p: &'a ir::Policy,
    req: &'a Request<'a>,
    rule: ir::RuleId,
    e: &'a ir::Expr,
    elem: Option<&Val<'a>>,
    out: &mut Vec<ProvenanceTrace>,
) {
    use ir::ExprKind as K;
    match &e.kind {
        K::From(x, source) => out.push(trace(p, req, rule, (e.span, x, *source), elem)),
        K::Quant(_, list, pred) => {
            let items = ireval::val(list, p, req, elem).and_then(|l| l.elements());
            for item in items.into_iter().flatten().flatten() {
                walk(p, req, rule, pred, Some(&item), out);
            }
        }
        K::Not(x) => walk(p, req, rule, x, elem, out),
        K::And(xs) | K::Or(xs) => xs.iter().for_each(|x| walk(p, req, rule, x, elem, out)),
        _ => {}
    }
}

fn trace<'a>(
    p: &'a ir::Policy,
    req: &'a Request<'a>,
    rule: ir::RuleId,
    (at, x, source): (Span, &'a ir::Expr, ir::Source),
    elem: Option<&Val<'a>>,
) -> ProvenanceTrace {
    let value = ireval::val(x, p, req, elem);
    let shown = value.as_ref().ok().and_then(text);
    let finding = match value {
        Ok(v) => finding(p, req, &v, source),
        Err(e) => Finding::Error(why(&e)),
    };
    ProvenanceTrace {
        rule,
        at,
        value: shown,
        finding,
    }
}

fn finding(p: &ir::Policy, req: &Request<'_>, v: &Val<'_>, source: ir::Source) -> Finding {
    let src = match source {
        ir::Source::User => Src::User,
        ir::Source::Ctx => Src::Ctx,
        ir::Source::Trusted => Src::Trusted,
        ir::Source::Tool(t) => match p.tools.get(t.0 as usize) {
            Some(t) => Src::Tool(&t.name),
            None => return Finding::Error("an unknown tool".into()),
        },
    };
    let is_constant = |k: &Key| {
        let mut found = false;
        prov::constant_keys(&p.constants, &mut |c| found |= c == *k);
        found
    };
    let holds = match prov::holds(src, v, req, &is_constant) {
        Ok(h) => h,
        Err(e) => return Finding::Error(why(&e)),
    };
    let Ok(Some(key)) = prov::value_key(v) else {
        return Finding::Fails(vec!["too short to occur (fewer than 3 characters)".into()]);
    };
    let mut own = Vec::new();
    if prov::in_context(&key, req.context) {
        own.push("the call's context".to_string());
    }
    if is_constant(&key) {
        own.push("a policy constant".to_string());
    }
    describe(req, &key, src, holds, own)
}

/// The finding in words: the session's witnesses (those of the kind `src`
/// accepts, when it holds) and the engine's own sources (context, constants).
fn describe(req: &Request<'_>, key: &Key, src: Src<'_>, holds: bool, own: Vec<String>) -> Finding {
    let mut seen: Vec<Witness> = req.session.map(|s| s.witnesses(key)).unwrap_or_default();
    if !holds {
        let mut all: Vec<String> = seen.iter().map(ToString::to_string).collect();
        if all.is_empty() {
            all.extend(kinds_seen(req, key));
        }
        all.extend(own);
        return Finding::Fails(all);
    }
    seen.retain(|w| satisfies(w, src));
    let mut by: Vec<String> = seen.iter().map(ToString::to_string).collect();
    match src {
        Src::Ctx => by = own,
        Src::Trusted => by.extend(own),
        _ => {}
    }
    if by.is_empty() {
        by.push(source_word(req, key));
    }
    Finding::Holds(by)
}

/// Whether a witness is of the kind `src` accepts.
fn satisfies(w: &Witness, src: Src<'_>) -> bool {
    match (w, src) {
        (Witness::UserTurn(_), Src::User | Src::Trusted) => true,
        (Witness::Output { trust, .. }, Src::Trusted) => *trust == ir::Trust::Trusted,
        (Witness::Output { tool, .. }, Src::Tool(t)) => tool == t,
        (Witness::Endorsed { .. }, Src::Trusted) => true,
        _ => false,
    }
}

/// Where a session that keeps no witnesses (a store of digests) saw a
/// value, by kind: a failed condition still says "untrusted output".
fn kinds_seen(req: &Request<'_>, key: &Key) -> Vec<String> {
    let sources = req
        .session
        .and_then(|s| s.sources(key).ok())
        .unwrap_or(Sources::NONE);
    [
        (Sources::USER, "a user turn"),
        (Sources::TRUSTED_OUTPUT, "a trusted output of the session"),
        (
            Sources::UNTRUSTED_OUTPUT,
            "an untrusted output of the session",
        ),
        (Sources::ENDORSED, "an endorsement"),
    ]
    .into_iter()
    .filter(|(s, _)| sources.any_of(*s))
    .map(|(_, word)| word.to_string())
    .collect()
}

/// The session's own word when it keeps no witnesses (a store of digests).
fn source_word(req: &Request<'_>, key: &Key) -> String {
    let sources = req
        .session
        .and_then(|s| s.sources(key).ok())
        .unwrap_or(Sources::NONE);
    if sources.any_of(Sources::USER) {
        "a user turn".into()
    } else if sources.any_of(Sources::ENDORSED) {
        "an endorsement".into()
    } else {
        "an output of the session".into()
    }
}

fn text(v: &Val<'_>) -> Option<String> {
    match v {
        Val::Str(s) => Some(s.to_string()),
        Val::Int(i) => Some(i.to_string()),
        Val::Num(n) => Some(n.to_string()),
        _ => None,
    }
}

fn why(e: &EvalError) -> String {
    match e {
        EvalError::Session => "the call has no session, or its session cannot answer".into(),
        EvalError::Missing => "it reads a value the request does not have".into(),
        EvalError::Type => "it reads a value of the wrong type".into(),
    }
}
