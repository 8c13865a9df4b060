//! Decisions, borrowed from the engine (no allocation on the allow path).

use crate::request::Request;
use serde_json::{json, Value as Json};
use std::borrow::Cow;
use std::sync::Arc;
use toolgate_check::ir;

/// What to do with a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Call the tool (within the budget, if the decision names one).
    Allow,
    /// Do not call it.
    Deny,
    /// Call it only after the approval the decision names.
    ApprovalRequired,
}

impl Outcome {
    /// `allow`, `deny` or `approval_required`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::ApprovalRequired => "approval_required",
        }
    }
}

/// Where a rule was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    /// The rule.
    pub id: ir::RuleId,
    /// Its identity across unrelated edits (`ir::Rule::identity`).
    pub identity: Arc<str>,
    /// Its `@id("...")`, if written (`ir::Rule::name`).
    pub name: Option<Arc<str>>,
    /// Its `@accepted_risk("...")`, if written (`ir::Rule::accepted_risk`).
    pub accepted_risk: Option<Arc<str>>,
    /// Its `endorse` paths (`ir::Rule::endorse`, after `args`): when the
    /// approval this rule asks for is granted, the runtime endorses the
    /// call's values there (`provenance::endorsed_keys`). Empty for every
    /// other rule, an approval floor included.
    pub endorse: Arc<[Vec<String>]>,
    /// The policy file.
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// `NAME (file:line:col)` for a rule with an `@id`, else `file:line:col`: how
/// decisions, `explain`, replay output and audit records name a rule.
impl std::fmt::Display for RuleInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (file, line, column) = (&self.file, self.line, self.column);
        match &self.name {
            Some(name) => write!(f, "{name} ({file}:{line}:{column})"),
            None => write!(f, "{file}:{line}:{column}"),
        }
    }
}

/// A decision and everything needed to enforce it: each outcome carries
/// exactly the data its enforcement reads, so a granted call always names
/// its rule and an approval-required one always names its approval.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision<'e> {
    /// Call the tool (within the budget, if one is named).
    Allow {
        /// Why, for humans.
        reason: Cow<'e, str>,
        /// The granting rule.
        rule: &'e RuleInfo,
        /// The credential scope.
        scope: &'e [ir::ScopeItem],
        /// For a budgeted allow: the budget that must still have room, and
        /// what applies when it has none.
        budget: Option<Budgeted<'e>>,
    },
    /// Do not call it.
    Deny {
        /// Why, for humans.
        reason: Cow<'e, str>,
        /// The deciding rule, if a rule decided.
        rule: Option<&'e RuleInfo>,
    },
    /// Call it only after this approval.
    ApprovalRequired {
        /// Why, for humans.
        reason: Cow<'e, str>,
        /// The granting rule, or the approval floor that raised it.
        rule: &'e RuleInfo,
        /// The credential scope of the approved call.
        scope: &'e [ir::ScopeItem],
        /// Who must approve, how many, for how long (owned when an approval
        /// floor raised the grant's approval).
        approval: Cow<'e, ir::HumanApproval>,
    },
}

/// A budgeted allow's budget and the decision when it is exhausted.
#[derive(Clone, Debug, PartialEq)]
pub struct Budgeted<'e> {
    /// The budget that must still have room.
    pub budget: &'e ir::Budget,
    /// What applies when the budget is exhausted (the next matching grant,
    /// or a deny).
    pub fallback: Box<Decision<'e>>,
}

/// `{file, line, column}`, `id` for a rule with an `@id`, and
/// `accepted_risk` for a rule with an `@accepted_risk`.
fn rule_json(r: &RuleInfo) -> Json {
    let mut out = json!({ "file": &*r.file, "line": r.line, "column": r.column });
    if let Some(name) = &r.name {
        out["id"] = json!(&**name);
    }
    if let Some(risk) = &r.accepted_risk {
        out["accepted_risk"] = json!(&**risk);
    }
    out
}

/// The key a budget is counted under for one request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BudgetKey {
    /// The rule that grants the budget.
    pub rule: ir::RuleId,
    /// That rule's identity across unrelated edits: what a budget window is keyed by.
    pub rule_identity: Arc<str>,
    /// The agent, unless the budget is shared by all agents (`per tenant`).
    pub agent: Option<String>,
    /// The tool.
    pub tool: String,
    /// The tenant, unless the budget is shared by all tenants (`per agent`).
    pub tenant: Option<String>,
}

impl<'e> Decision<'e> {
    pub(crate) fn deny(reason: impl Into<Cow<'e, str>>, rule: Option<&'e RuleInfo>) -> Self {
        Decision::Deny {
            reason: reason.into(),
            rule,
        }
    }

    /// Allow, deny or approval required.
    pub fn outcome(&self) -> Outcome {
        match self {
            Decision::Allow { .. } => Outcome::Allow,
            Decision::Deny { .. } => Outcome::Deny,
            Decision::ApprovalRequired { .. } => Outcome::ApprovalRequired,
        }
    }

    /// Why, for humans.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow { reason, .. }
            | Decision::Deny { reason, .. }
            | Decision::ApprovalRequired { reason, .. } => reason,
        }
    }

    /// The deciding rule (always one for a grant; a deny may have none).
    pub fn rule(&self) -> Option<&'e RuleInfo> {
        match self {
            Decision::Allow { rule, .. } | Decision::ApprovalRequired { rule, .. } => Some(rule),
            Decision::Deny { rule, .. } => *rule,
        }
    }

    /// The credential scope (empty for a deny).
    pub fn scope(&self) -> &'e [ir::ScopeItem] {
        match self {
            Decision::Allow { scope, .. } | Decision::ApprovalRequired { scope, .. } => scope,
            Decision::Deny { .. } => &[],
        }
    }

    /// For an approval-required decision: the approval it needs.
    pub fn approval(&self) -> Option<&ir::HumanApproval> {
        match self {
            Decision::ApprovalRequired { approval, .. } => Some(approval),
            _ => None,
        }
    }

    /// For a budgeted allow: its budget and fallback.
    pub fn budgeted(&self) -> Option<&Budgeted<'e>> {
        match self {
            Decision::Allow { budget, .. } => budget.as_ref(),
            _ => None,
        }
    }

    /// The credential scope's values, from the trusted context only.
    pub fn scope_values(&self, req: &Request<'_>) -> Vec<(String, Json)> {
        self.scope()
            .iter()
            .map(|item| match item {
                ir::ScopeItem::Tenant => (
                    "tenant".to_string(),
                    Json::String(req.context.tenant.clone()),
                ),
                ir::ScopeItem::Env => ("env".to_string(), Json::String(req.context.env.clone())),
                ir::ScopeItem::Ctx(f) => (
                    format!("ctx.{f}"),
                    req.context.fields.get(f).cloned().unwrap_or(Json::Null),
                ),
            })
            .collect()
    }

    /// The decision as `policyc eval` prints it.
    pub fn to_json(&self, req: &Request<'_>) -> Json {
        let scope: serde_json::Map<String, Json> = self.scope_values(req).into_iter().collect();
        let (approval, budgeted) = match self {
            Decision::ApprovalRequired { approval, .. } => (
                json!({ "group": approval.group, "count": approval.count, "expires_secs": approval.expires_secs }),
                None,
            ),
            Decision::Allow {
                rule,
                budget: Some(b),
                ..
            } => (Json::Null, Some((rule, b))),
            _ => (Json::Null, None),
        };
        let budget = budgeted.map_or(Json::Null, |(rule, b)| {
            let key = b.key(rule, req);
            json!({
                "limit": b.budget.limit, "window_secs": b.budget.window_secs,
                "key": { "rule": key.rule.0, "agent": key.agent, "tool": key.tool, "tenant": key.tenant },
            })
        });
        let mut out = json!({
            "decision": self.outcome().as_str(),
            "reason": self.reason(),
            "rule": self.rule().map(rule_json),
            "scope": scope,
            "approval": approval,
            "budget": budget,
        });
        if let Some((_, b)) = budgeted {
            out["fallback"] = b.fallback.to_json(req);
        }
        out
    }
}

impl Budgeted<'_> {
    /// The key this budget is counted under for one request granted by `rule`.
    pub fn key(&self, rule: &RuleInfo, req: &Request<'_>) -> BudgetKey {
        let (agent, tenant) = match self.budget.key {
            ir::BudgetKey::AgentToolTenant => (Some(req.agent), Some(req.context.tenant.as_str())),
            ir::BudgetKey::ToolTenant => (None, Some(req.context.tenant.as_str())),
            ir::BudgetKey::AgentTool => (Some(req.agent), None),
        };
        BudgetKey {
            rule: rule.id,
            rule_identity: rule.identity.clone(),
            agent: agent.map(String::from),
            tool: req.tool.to_string(),
            tenant: tenant.map(String::from),
        }
    }
}
