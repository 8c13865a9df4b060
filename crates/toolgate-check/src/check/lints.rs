//! Pass 3: whole-policy warnings that need every rule lowered first:
//! unreachable grants, duplicate rules, URL misuse (`urls.rs`), inactive
//! writes, unused constants.

use super::Checker;
use crate::err::CheckError;
use crate::ir;
// FxHash: policy text comes from its operator, and hashing names is a measurable share of check time.
use rustc_hash::FxHashMap as HashMap;
use toolgate_syntax::ast::{self, Span};

impl Checker<'_> {
    pub(super) fn lints(&mut self, file: &ast::File) {
        self.unreachable();
        self.shadowed_approvals();
        self.risk_lints();
        self.unused_context();
        self.duplicate_rules(file);
        self.url_lints();
        self.unguarded_optionals();
        self.name_denylists();
        self.no_agents(file);
        if self.writes.is_none() {
            let dead: Vec<Span> = self
                .rules
                .iter()
                .filter(|r| matches!(r.effect, ir::Effect::Write { .. }))
                // An `allow` with a budget or an approval grants reads, which
                // `writes` does not switch.
                .filter(|r| !self.reads_only(r))
                .map(|r| r.span)
                .collect();
            for span in dead {
                self.diags.push(CheckError::DeadWrite { span: span.into() });
            }
        }
        // A constant is read by every `from trusted` (its value counts as trusted).
        let trusts = self.reads_from_trusted();
        let mut unused: Vec<(String, Span)> = self
            .constants
            .iter()
            .filter(|(_, c)| !c.used && !trusts)
            .map(|(n, c)| (n.clone(), c.span))
            .collect();
        unused.sort_by_key(|(_, s)| s.start);
        for (name, span) in unused {
            self.diags.push(CheckError::UnusedConstant {
                name,
                span: span.into(),
            });
        }
    }

    /// A grant all of whose tools an unconditional deny covers for its agents.
    fn unreachable(&mut self) {
        let mut global: HashMap<ir::ToolId, Span> = HashMap::default();
        let mut per_agent: HashMap<(ir::AgentId, ir::ToolId), Span> = HashMap::default();
        // A deny whose condition failed to check has none in the IR, but is conditional.
        for r in self.rules.iter().filter(|r| {
            r.effect == ir::Effect::Deny
                && r.condition.is_none()
                && !self.failed_conditions.contains(&r.id)
        }) {
            for &t in &r.tools {
                match r.agent {
                    None => global.entry(t).or_insert(r.span),
                    Some(a) => per_agent.entry((a, t)).or_insert(r.span),
                };
            }
        }
        let mut found = Vec::new();
        for r in self
            .rules
            .iter()
            .filter(|r| r.effect.is_grant() && !r.tools.is_empty())
        {
            let deny_of = |t: &ir::ToolId| {
                global
                    .get(t)
                    .or_else(|| r.agent.and_then(|a| per_agent.get(&(a, *t))))
            };
            let denies: Option<Vec<&Span>> = r.tools.iter().map(deny_of).collect();
            if let Some(first) = denies.and_then(|d| d.first().copied().copied()) {
                found.push(CheckError::UnreachableRule {
                    span: r.span.into(),
                    deny: first.into(),
                });
            }
        }
        self.diags.extend(found);
    }

    /// A grant needing a stricter human approval than another grant of the
    /// same (agent, tool) that the engine tries first (a weaker approval, or a
    /// plain `allow` of a read), when at least one of the two is
    /// unconditional: for the requests both match, the weaker one wins, so the
    /// stricter approval is never asked for. (A budget before an approval is
    /// the intended fallback pattern and is not reported.)
    fn shadowed_approvals(&mut self) {
        let by_tool = approvals_by_tool(&self.rules);
        let mut found = Vec::new();
        let mut candidates = Vec::new();
        for strict in &self.rules {
            let ir::Effect::Write {
                approval: strict_approval @ ir::Approval::Human(_),
                ..
            } = &strict.effect
            else {
                continue;
            };
            // Only a rule sharing a tool can overlap: look at those, in source order.
            candidates.clear();
            for t in &strict.tools {
                candidates.extend_from_slice(by_tool.get(t).map_or(&[][..], Vec::as_slice));
            }
            candidates.sort_unstable();
            candidates.dedup();
            let weaker = candidates
                .iter()
                .filter_map(|&i| self.rules.get(i))
                .find(|weak| {
                    let shadows = match &weak.effect {
                        // A plain `allow` (of a read) is tried before every approval.
                        ir::Effect::Allow { .. } => true,
                        ir::Effect::Write { approval, .. } => {
                            // The engine tries human approvals by fewest approvers, then source order.
                            let first = |r: &ir::Rule, count: u32| (count, r.id);
                            let chosen_first = match (approval, strict_approval) {
                                (ir::Approval::Human(w), ir::Approval::Human(s)) => {
                                    first(weak, w.count) < first(strict, s.count)
                                }
                                _ => false,
                            };
                            chosen_first && weaker_approval(approval, strict_approval)
                        }
                        ir::Effect::Deny | ir::Effect::Floor(_) => false,
                    };
                    shadows
                        && (weak.condition.is_none() || strict.condition.is_none())
                        && overlap(weak, strict)
                });
            if let Some(weak) = weaker {
                found.push(CheckError::ShadowedApproval {
                    span: strict.span.into(),
                    weaker: weak.span.into(),
                });
            }
        }
        self.diags.extend(found);
    }

    /// Whether the rule names only read tools (and at least one).
    fn reads_only(&self, r: &ir::Rule) -> bool {
        !r.tools.is_empty()
            && r.tools.iter().all(|t| {
                self.tools
                    .get(t.0 as usize)
                    .is_some_and(|t| t.class == ir::ToolClass::Read)
            })
    }

    /// Declared context fields that no condition reads and no scope names.
    fn unused_context(&mut self) {
        let mut used: Vec<&str> = Vec::new();
        for r in &self.rules {
            if let Some(c) = &r.condition {
                c.visit(&mut |e| match &e.kind {
                    ir::ExprKind::Path(ir::Path::Ctx(f)) | ir::ExprKind::Has(ir::Path::Ctx(f)) => {
                        used.push(f)
                    }
                    _ => {}
                });
            }
            if let ir::Effect::Allow { scope } | ir::Effect::Write { scope, .. } = &r.effect {
                used.extend(scope.iter().filter_map(|s| match s {
                    ir::ScopeItem::Ctx(f) => Some(f.as_str()),
                    _ => None,
                }));
            }
        }
        if let Some((_, scope)) = &self.default_scope {
            used.extend(scope.iter().filter_map(|s| match s {
                ir::ScopeItem::Ctx(f) => Some(f.as_str()),
                _ => None,
            }));
        }
        let mut unused: Vec<(String, Span)> = self
            .context_spans
            .iter()
            .filter(|(name, _)| !used.contains(&name.as_str()))
            .map(|(name, span)| (name.clone(), *span))
            .collect();
        unused.sort_by_key(|(_, s)| s.start);
        for (name, span) in unused {
            self.diags.push(CheckError::UnusedContextField {
                name,
                span: span.into(),
            });
        }
    }

    /// The same rule twice in one block (top level counts as one block).
    fn duplicate_rules(&mut self, file: &ast::File) {
        let mut top: HashMap<&ast::Rule, Span> = HashMap::default();
        for item in &file.items {
            match &item.node {
                ast::Item::Rule(rule) => self.same_rule(&mut top, rule, item.span),
                ast::Item::Agent(block) => {
                    let mut seen = HashMap::default();
                    for rule in &block.rules {
                        self.same_rule(&mut seen, &rule.node, rule.span);
                    }
                }
                _ => {}
            }
        }
    }

    fn same_rule<'a>(
        &mut self,
        seen: &mut HashMap<&'a ast::Rule, Span>,
        rule: &'a ast::Rule,
        span: Span,
    ) {
        match seen.get(rule) {
            Some(&first) => self.diags.push(CheckError::DuplicateRule {
                span: span.into(),
                first: first.into(),
            }),
            None => {
                seen.insert(rule, span);
            }
        }
    }
}

/// The indices of the rules that may shadow an approval (plain `allow`s and
/// grants needing human approval), by tool, ascending.
fn approvals_by_tool(rules: &[ir::Rule]) -> HashMap<ir::ToolId, Vec<usize>> {
    let mut by_tool: HashMap<ir::ToolId, Vec<usize>> = HashMap::default();
    for (i, r) in rules.iter().enumerate() {
        let candidate = matches!(
            &r.effect,
            ir::Effect::Allow { .. }
                | ir::Effect::Write {
                    approval: ir::Approval::Human(_),
                    ..
                }
        );
        if candidate {
            for &t in &r.tools {
                by_tool.entry(t).or_default().push(i);
            }
        }
    }
    by_tool
}

/// Whether two rules apply to a common (agent, tool).
fn overlap(a: &ir::Rule, b: &ir::Rule) -> bool {
    let agents = a.agent.is_none() || b.agent.is_none() || a.agent == b.agent;
    agents && a.tools.iter().any(|t| b.tools.contains(t))
}

/// Whether human approval `a` lets a call through more easily than `b`
/// (fewer approvers, another or no group, a longer or no expiry).
pub(super) fn weaker_approval(a: &ir::Approval, b: &ir::Approval) -> bool {
    let (
        ir::Approval::Human(ir::HumanApproval {
            group: ga,
            count: ca,
            expires_secs: ea,
        }),
        ir::Approval::Human(ir::HumanApproval {
            group: gb,
            count: cb,
            expires_secs: eb,
        }),
    ) = (a, b)
    else {
        // A budget falling back to an approval is the intended pattern, not a shadow.
        return false;
    };
    let longer = match (ea, eb) {
        (Some(x), Some(y)) => x > y,
        (None, Some(_)) => true,
        _ => false,
    };
    ca < cb || (gb.is_some() && ga != gb) || longer
}
