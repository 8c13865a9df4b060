//! The reference interpreter: `docs/semantics.md` written as directly as
//! possible over the IR, with no table, no compiled conditions and no care
//! for speed. Tests compare the engine with it; nothing else should use it.

use crate::request::Request;
use crate::value::EvalError;
use crate::{ireval, schema};
use toolgate_check::ir;

/// A decision as the reference sees it: outcome, deciding rule, reason, and
/// the fallback of a budgeted allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefDecision {
    /// Call the tool.
    Allow {
        /// The granting rule.
        rule: ir::RuleId,
        /// Why.
        reason: String,
        /// For a budgeted allow: what applies when the budget is exhausted.
        fallback: Option<Box<RefDecision>>,
    },
    /// Do not call it.
    Deny {
        /// The deciding rule, if a rule decided.
        rule: Option<ir::RuleId>,
        /// Why.
        reason: String,
    },
    /// Call it after this approval.
    ApprovalRequired {
        /// The granting rule or the floor that raised it.
        rule: ir::RuleId,
        /// Why.
        reason: String,
        /// The approval.
        approval: ir::HumanApproval,
    },
}

/// Whether the engine's decision is the reference's: outcome, deciding rule,
/// reason, budget, approval, and the same recursively for the fallback.
pub fn agrees(d: &crate::Decision<'_>, r: &RefDecision) -> bool {
    use crate::Decision as D;
    match (d, r) {
        (
            D::Allow {
                rule,
                reason,
                budget,
                ..
            },
            RefDecision::Allow {
                rule: r_rule,
                reason: r_reason,
                fallback,
            },
        ) => {
            rule.id == *r_rule
                && reason == r_reason
                && match (budget, fallback) {
                    (None, None) => true,
                    (Some(b), Some(f)) => agrees(&b.fallback, f),
                    _ => false,
                }
        }
        (
            D::Deny { rule, reason },
            RefDecision::Deny {
                rule: r_rule,
                reason: r_reason,
            },
        ) => rule.map(|i| i.id) == *r_rule && reason == r_reason,
        (
            D::ApprovalRequired {
                rule,
                reason,
                approval,
                ..
            },
            RefDecision::ApprovalRequired {
                rule: r_rule,
                reason: r_reason,
                approval: r_approval,
            },
        ) => rule.id == *r_rule && reason == r_reason && **approval == *r_approval,
        _ => false,
    }
}

fn deny(reason: impl Into<String>, rule: Option<ir::RuleId>) -> RefDecision {
    RefDecision::Deny {
        rule,
        reason: reason.into(),
    }
}

/// Decides `req` against `policy` by the written semantics.
pub fn decide(policy: &ir::Policy, req: &Request<'_>) -> RefDecision {
    // 1. The agent must be declared (have a block).
    let Some(agent) = policy.agents.iter().position(|a| a.name == req.agent) else {
        return deny(format!("unknown agent `{}`", req.agent), None);
    };
    // 2. The tool must be declared.
    let Some(tool_index) = policy.tools.iter().position(|t| t.name == req.tool) else {
        return deny(format!("undeclared tool `{}`", req.tool), None);
    };
    let tool = &policy.tools[tool_index];
    // 3. The trusted context must be complete and well typed.
    if let Err(why) = schema::context(&policy.envs, &policy.context, req.context) {
        return deny(why, None);
    }
    // 4. Arguments must conform to the tool's schema, if it has one (by the
    //    explaining walk alone, not the engine's fast one).
    if let Some(fields) = &tool.schema {
        if let Err(why) = schema::explain(req.args, fields, tool.open) {
            return deny(why, None);
        }
    }
    let applies = |r: &&ir::Rule| {
        r.agent.is_none_or(|a| a.0 as usize == agent)
            && r.tools.iter().any(|t| t.0 as usize == tool_index)
    };
    // 5. Any deny whose condition holds, or cannot be evaluated, denies.
    //    (Floors whose condition holds or cannot be evaluated are kept for step 8.)
    let mut floors: Vec<&ir::Rule> = Vec::new();
    for r in policy.rules.iter().filter(applies) {
        if let ir::Effect::Floor(_) = r.effect {
            if condition(policy, r, req).unwrap_or(true) {
                floors.push(r);
            }
        }
    }
    for r in policy
        .rules
        .iter()
        .filter(applies)
        .filter(|r| r.effect == ir::Effect::Deny)
    {
        if condition(policy, r, req).unwrap_or(true) {
            let why = r.reason.clone().unwrap_or_else(|| "denied by rule".into());
            return deny(why, Some(r.id));
        }
    }
    // 6. Writes need `writes enabled;`.
    if tool.class == ir::ToolClass::Write && policy.writes != ir::Writes::Enabled {
        return deny(
            "writes are not enabled in this policy (`writes enabled;`)",
            None,
        );
    }
    // 7. The most permissive grant whose condition holds (errors: does not hold).
    let mut grants: Vec<&ir::Rule> = policy
        .rules
        .iter()
        .filter(applies)
        .filter(|r| r.effect.is_grant())
        .filter(|r| condition(policy, r, req).unwrap_or(false))
        .collect();
    grants.sort_by_key(|r| (rank(&r.effect), r.id));
    // 8. The floors that apply raise the decision to at least their approval.
    with_floors(chain(&grants), grants.first().copied(), &floors)
}

fn with_floors(d: RefDecision, grant: Option<&ir::Rule>, floors: &[&ir::Rule]) -> RefDecision {
    let Some(first) = floors.first() else {
        return d;
    };
    if let RefDecision::Deny { .. } = d {
        return d;
    }
    let approvals: Vec<&ir::HumanApproval> = floors
        .iter()
        .filter_map(|f| match &f.effect {
            ir::Effect::Floor(a) => Some(a),
            _ => None,
        })
        .collect();
    let granted = grant.and_then(|g| match &g.effect {
        ir::Effect::Write {
            approval: ir::Approval::Human(approval),
            ..
        } => Some(approval),
        _ => None,
    });
    match crate::floor::raise(granted, &approvals) {
        crate::floor::Raised::Unchanged => d,
        crate::floor::Raised::Conflict(why) => deny(why, Some(first.id)),
        crate::floor::Raised::To(approval) => RefDecision::ApprovalRequired {
            rule: first.id,
            reason: first
                .reason
                .clone()
                .unwrap_or_else(|| "needs approval: raised by an approval floor".into()),
            approval,
        },
    }
}

fn rank(effect: &ir::Effect) -> (u8, u32) {
    match effect {
        ir::Effect::Allow { .. } => (0, 0),
        ir::Effect::Write {
            approval: ir::Approval::Auto(_),
            ..
        } => (1, 0),
        ir::Effect::Write {
            approval: ir::Approval::Human(ir::HumanApproval { count, .. }),
            ..
        } => (2, *count),
        ir::Effect::Deny | ir::Effect::Floor(_) => (3, 0),
    }
}

fn chain(grants: &[&ir::Rule]) -> RefDecision {
    let Some((r, rest)) = grants.split_first() else {
        return deny("no rule grants this call", None);
    };
    let said = |default: &str| r.reason.clone().unwrap_or_else(|| default.to_string());
    match &r.effect {
        ir::Effect::Allow { .. } => RefDecision::Allow {
            rule: r.id,
            reason: said("allowed by rule"),
            fallback: None,
        },
        ir::Effect::Write {
            approval: ir::Approval::Auto(_),
            ..
        } => {
            let mut next = chain(rest);
            if let RefDecision::Deny { reason, .. } = &mut next {
                *reason =
                    "the auto-approval budget is exhausted and no other rule grants this call"
                        .into();
            }
            RefDecision::Allow {
                rule: r.id,
                reason: said("auto-approved within budget"),
                fallback: Some(Box::new(next)),
            }
        }
        ir::Effect::Write {
            approval: ir::Approval::Human(approval),
            ..
        } => RefDecision::ApprovalRequired {
            rule: r.id,
            reason: said("needs human approval"),
            approval: approval.clone(),
        },
        ir::Effect::Deny | ir::Effect::Floor(_) => deny(said("denied by rule"), Some(r.id)),
    }
}

fn condition(policy: &ir::Policy, r: &ir::Rule, req: &Request<'_>) -> Result<bool, EvalError> {
    match &r.condition {
        None => Ok(true),
        Some(e) => ireval::truth(e, policy, req, None),
    }
}
