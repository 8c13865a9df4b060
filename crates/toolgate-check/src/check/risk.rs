//! Pass 3: the risks a rule may accept with `@accepted_risk("...")`. An
//! `irreversible` tool approvable by anyone with no expiry is a warning
//! (`irreversible_open_approval`; the auto-approved one is reported in pass 2),
//! unless the rule accepts it; an acceptance on a rule without such a risk is
//! a warning too (`unneeded_accepted_risk`), so it cannot hide one added later.

use super::Checker;
use crate::err::CheckError;
use crate::ir;

impl Checker<'_> {
    pub(super) fn risk_lints(&mut self) {
        let mut found = Vec::new();
        for r in &self.rules {
            let open = self.open_irreversible(r);
            match self.risk_spans.get(&r.id) {
                Some(&span) if open.is_empty() && !self.auto_irreversible(r) => {
                    found.push(CheckError::UnneededAcceptedRisk { span: span.into() });
                }
                Some(_) => {}
                None => {
                    found.extend(
                        open.into_iter()
                            .map(|t| CheckError::IrreversibleOpenApproval {
                                tool: t.name.clone(),
                                span: r.span.into(),
                                decl: t.span.into(),
                            }),
                    )
                }
            }
        }
        self.diags.extend(found);
    }

    /// Whether the rule auto-approves an `irreversible` tool.
    fn auto_irreversible(&self, r: &ir::Rule) -> bool {
        matches!(
            r.effect,
            ir::Effect::Write {
                approval: ir::Approval::Auto(_),
                ..
            }
        ) && r
            .tools
            .iter()
            .any(|t| self.tool_decl(*t).is_some_and(|t| t.irreversible))
    }

    /// The `irreversible` tools this grant lets anyone approve with no
    /// expiry: its approval names no group and no expiry, and no
    /// unconditional approval floor for every agent it serves adds either.
    fn open_irreversible(&self, r: &ir::Rule) -> Vec<&ir::Tool> {
        let ir::Effect::Write {
            approval:
                ir::Approval::Human(ir::HumanApproval {
                    group: None,
                    expires_secs: None,
                    ..
                }),
            ..
        } = &r.effect
        else {
            return Vec::new();
        };
        // Irreversible first: the floor search looks at every rule.
        r.tools
            .iter()
            .filter(|t| self.tool_decl(**t).is_some_and(|d| d.irreversible))
            .filter(|t| !self.bounded_by_floor(r, **t))
            .filter_map(|t| self.tool_decl(*t))
            .collect()
    }

    /// Whether an unconditional floor on `tool`, applying wherever `grant`
    /// does, names a group or an expiry.
    fn bounded_by_floor(&self, grant: &ir::Rule, tool: ir::ToolId) -> bool {
        self.rules.iter().any(|f| {
            let ir::Effect::Floor(ir::HumanApproval {
                group,
                expires_secs,
                ..
            }) = &f.effect
            else {
                return false;
            };
            let everywhere = f.agent.is_none() || f.agent == grant.agent;
            everywhere
                && f.condition.is_none()
                && f.tools.contains(&tool)
                && (group.is_some() || expires_secs.is_some())
        })
    }

    fn tool_decl(&self, id: ir::ToolId) -> Option<&ir::Tool> {
        self.tools.get(id.0 as usize)
    }
}
