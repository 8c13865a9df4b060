//! `explain`: every rule considered for a request's (agent, tool), whether it
//! matched, and if not, which part of its condition did not hold.

mod provenance;

pub use provenance::{provenance, Finding, ProvenanceTrace};

use crate::ireval;
use crate::request::Request;
use crate::value::EvalError;
use toolgate_check::ir;
use toolgate_syntax::ast::Span;

/// What became of one rule's condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No condition: the rule always matches.
    Unconditional,
    /// The condition held.
    Holds,
    /// The condition did not hold; `at` is the first part that was false.
    False {
        /// The deciding sub-condition.
        at: Span,
    },
    /// The condition could not be evaluated (a deny applies, a grant does not).
    Error {
        /// The part that failed.
        at: Span,
        /// Missing value or wrong type.
        missing: bool,
        /// A provenance or session condition without a session (or with
        /// one that cannot answer).
        session: bool,
    },
}

/// One considered rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleTrace {
    /// The rule.
    pub rule: ir::RuleId,
    /// Its verdict.
    pub verdict: Verdict,
}

/// The rules of the request's cell in decision order (denies and approval
/// floors in source order, then grants most permissive first), each with its verdict. Empty when the
/// agent or tool is unknown.
pub fn explain(policy: &ir::Policy, req: &Request<'_>) -> Vec<RuleTrace> {
    cell_rules(policy, req)
        .iter()
        .map(|r| RuleTrace {
            rule: r.id,
            verdict: verdict(policy, r.condition.as_ref(), req),
        })
        .collect()
}

/// The rules of the request's cell in decision order (see [`explain`]).
fn cell_rules<'p>(policy: &'p ir::Policy, req: &Request<'_>) -> Vec<&'p ir::Rule> {
    let (Some(agent), Some(tool)) = (policy.agent_id(req.agent), policy.tool_id(req.tool)) else {
        return Vec::new();
    };
    let mut rules: Vec<&ir::Rule> = policy
        .rules
        .iter()
        .filter(|r| r.agent.is_none_or(|a| a == agent) && r.tools.contains(&tool))
        .collect();
    rules.sort_by_key(|r| {
        (
            r.effect.is_grant(),
            crate::table::grant_rank(&r.effect),
            r.id,
        )
    });
    rules
}

/// Whether a condition reads provenance (`x from SOURCE` anywhere in it).
pub fn has_from(e: &ir::Expr) -> bool {
    let mut found = false;
    e.visit(&mut |x| found |= matches!(x.kind, ir::ExprKind::From(..)));
    found
}

fn verdict(policy: &ir::Policy, cond: Option<&ir::Expr>, req: &Request<'_>) -> Verdict {
    let Some(e) = cond else {
        return Verdict::Unconditional;
    };
    match ireval::truth(e, policy, req, None) {
        Ok(true) => Verdict::Holds,
        Ok(false) => Verdict::False {
            at: culprit(policy, e, req),
        },
        Err(err) => Verdict::Error {
            at: culprit(policy, e, req),
            missing: err == EvalError::Missing,
            session: err == EvalError::Session,
        },
    }
}

/// The first part of an `and` chain that is not true (recursively), else the whole.
fn culprit(policy: &ir::Policy, e: &ir::Expr, req: &Request<'_>) -> Span {
    if let ir::ExprKind::And(parts) = &e.kind {
        for p in parts {
            if ireval::truth(p, policy, req, None) != Ok(true) {
                return culprit(policy, p, req);
            }
        }
    }
    e.span
}
