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

/// A decision and everything needed to enforce it.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<'e> {
    /// Allow, deny or approval required.
    pub outcome: Outcome,
    /// Why, for humans.
    pub reason: Cow<'e, str>,
    /// The deciding rule, if a rule decided.
    pub rule: Option<&'e RuleInfo>,
    /// The credential scope (empty for a deny).
    pub scope: &'e [ir::ScopeItem],
    /// For `approval_required`: who must approve, how many, for how long
    /// (owned when an approval floor raised the grant's approval).
    pub approval: Option<Cow<'e, ir::Approval>>,
    /// For a budgeted allow: the budget that must still have room.
    pub budget: Option<&'e ir::Budget>,
    /// For a budgeted allow: what applies when the budget is exhausted.
    pub fallback: Option<Box<Decision<'e>>>,
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
        Decision {
            outcome: Outcome::Deny,
            reason: reason.into(),
            rule,
            scope: &[],
            approval: None,
            budget: None,
            fallback: None,
        }
    }

    /// The credential scope's values, from the trusted context only.
    pub fn scope_values(&self, req: &Request<'_>) -> Vec<(String, Json)> {
        self.scope
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

    /// The budget key for this request, for a budgeted allow.
    pub fn budget_key(&self, req: &Request<'_>) -> Option<BudgetKey> {
        let budget = self.budget?;
        let info = self.rule?;
        let rule = info.id;
        let (agent, tenant) = match budget.key {
            ir::BudgetKey::AgentToolTenant => (Some(req.agent), Some(req.context.tenant.as_str())),
            ir::BudgetKey::ToolTenant => (None, Some(req.context.tenant.as_str())),
            ir::BudgetKey::AgentTool => (Some(req.agent), None),
        };
        Some(BudgetKey {
            rule,
            rule_identity: info.identity.clone(),
            agent: agent.map(String::from),
            tool: req.tool.to_string(),
            tenant: tenant.map(String::from),
        })
    }

    /// The decision as `policyc eval` prints it.
    pub fn to_json(&self, req: &Request<'_>) -> Json {
        let scope: serde_json::Map<String, Json> = self.scope_values(req).into_iter().collect();
        let approval = match self.approval.as_deref() {
            Some(ir::Approval::Human {
                group,
                count,
                expires_secs,
            }) => {
                json!({ "group": group, "count": count, "expires_secs": expires_secs })
            }
            _ => Json::Null,
        };
        let budget = match (self.budget, self.budget_key(req)) {
            (Some(b), Some(key)) => json!({
                "limit": b.limit, "window_secs": b.window_secs,
                "key": { "rule": key.rule.0, "agent": key.agent, "tool": key.tool, "tenant": key.tenant },
            }),
            _ => Json::Null,
        };
        let mut out = json!({
            "decision": self.outcome.as_str(),
            "reason": self.reason,
            "rule": self.rule.map(rule_json),
            "scope": scope,
            "approval": approval,
            "budget": budget,
        });
        if let Some(f) = &self.fallback {
            out["fallback"] = f.to_json(req);
        }
        out
    }
}
