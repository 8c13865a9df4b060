//! The permission matrix: for each (agent, tool) cell of a checked policy,
//! the rules that can decide it, in the order the engine applies them
//! (`docs/semantics.md`, "Decision"): denies first, then grants ranked most
//! permissive first (`allow`, budgeted grants, grants needing approval by
//! fewest approvers). Static: a condition is shown as a mark, not evaluated.
//! `policyc show` prints it; `policyc diff` compares two of them.

use toolgate_check::ir;

/// What a grant gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantKind {
    /// A plain `allow` (a read tool, no approval or budget).
    Allow,
    /// `write` or `allow ... auto-approve limit N per W`.
    Budget(ir::Budget),
    /// `write` or `allow ... require N approvals [from G] [expires D]`.
    Approval {
        /// The approvers' group, if one is named.
        group: Option<String>,
        /// Distinct approvers needed.
        count: u32,
        /// How long an approval stays valid.
        expires_secs: Option<u64>,
    },
}

/// A grant rule in a cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The rule.
    pub rule: ir::RuleId,
    /// What it gives.
    pub kind: GrantKind,
    /// Whether it has a condition.
    pub conditional: bool,
    /// Its credential scope.
    pub scope: Vec<ir::ScopeItem>,
}

/// One (agent, tool) cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The agent.
    pub agent: ir::AgentId,
    /// The tool.
    pub tool: ir::ToolId,
    /// The first unconditional deny, which decides every request of the cell.
    pub denied_by: Option<ir::RuleId>,
    /// The conditional denies, in source order.
    pub denies: Vec<ir::RuleId>,
    /// The approval floors (`require ... on`), in source order: whichever grant
    /// decides, the decision needs at least their approval when they apply.
    pub floors: Vec<ir::RuleId>,
    /// A write tool while writes are not enabled: no grant applies.
    pub writes_off: bool,
    /// The grants, in the engine's rank order.
    pub grants: Vec<Grant>,
}

impl Cell {
    /// Whether no request of the cell can be granted.
    pub fn always_denied(&self) -> bool {
        self.denied_by.is_some() || self.writes_off || self.grants.is_empty()
    }
}

/// Whether `rule` applies to the cell.
pub fn applies(rule: &ir::Rule, agent: ir::AgentId, tool: ir::ToolId) -> bool {
    rule.agent.is_none_or(|a| a == agent) && rule.tools.contains(&tool)
}

/// The cell of `agent` calling `tool`.
pub fn cell(policy: &ir::Policy, agent: ir::AgentId, tool: ir::ToolId) -> Cell {
    let rules = policy.rules.iter().filter(|r| applies(r, agent, tool));
    let mut cell = Cell {
        agent,
        tool,
        denied_by: None,
        denies: Vec::new(),
        floors: Vec::new(),
        writes_off: false,
        grants: Vec::new(),
    };
    for r in rules {
        let conditional = r.condition.is_some();
        let (kind, scope) = match &r.effect {
            ir::Effect::Deny if conditional => {
                cell.denies.push(r.id);
                continue;
            }
            ir::Effect::Deny => {
                cell.denied_by = cell.denied_by.or(Some(r.id));
                continue;
            }
            ir::Effect::Floor(_) => {
                cell.floors.push(r.id);
                continue;
            }
            ir::Effect::Allow { scope } => (GrantKind::Allow, scope),
            ir::Effect::Write {
                approval: ir::Approval::Auto(b),
                scope,
            } => (GrantKind::Budget(b.clone()), scope),
            ir::Effect::Write {
                approval:
                    ir::Approval::Human(ir::HumanApproval {
                        group,
                        count,
                        expires_secs,
                    }),
                scope,
            } => (
                GrantKind::Approval {
                    group: group.clone(),
                    count: *count,
                    expires_secs: *expires_secs,
                },
                scope,
            ),
        };
        cell.grants.push(Grant {
            rule: r.id,
            kind,
            conditional,
            scope: scope.clone(),
        });
    }
    let write = policy
        .tools
        .get(tool.0 as usize)
        .is_some_and(|t| t.class == ir::ToolClass::Write);
    cell.writes_off = write && policy.writes != ir::Writes::Enabled;
    // A stable sort keeps source order within a rank.
    cell.grants.sort_by_key(|g| match g.kind {
        GrantKind::Allow => (0, 0),
        GrantKind::Budget(_) => (1, 0),
        GrantKind::Approval { count, .. } => (2, count),
    });
    cell
}

/// Every cell, agents in declaration order, tools in declaration order.
pub fn cells(policy: &ir::Policy) -> Vec<Cell> {
    let mut out = Vec::new();
    for a in 0..policy.agents.len() {
        for t in 0..policy.tools.len() {
            out.push(cell(policy, ir::AgentId(a as u32), ir::ToolId(t as u32)));
        }
    }
    out
}
