//! The decision table: agents and tools interned to dense ids, tool patterns
//! already expanded (by the checker), and one cell per (agent, tool) holding
//! its deny rules and its grants in decision order. A request looks up two
//! names and one cell; rules outside that cell cost nothing.

use crate::cache::{self, Cache, CellOutcome};
use crate::decision::{Decision, Outcome, RuleInfo};
use crate::eval::{Cond, Scope};
use crate::request::Request;
use crate::schema;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::sync::Arc;
use toolgate_check::ir;

/// A compiled rule.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub info: RuleInfo,
    pub cond: Option<Cond>,
    pub effect: ir::Effect,
    pub reason: Option<String>,
}

/// The rules that apply to one (agent, tool).
#[derive(Debug, Default)]
pub(crate) struct Cell {
    /// Deny rules, in source order.
    pub denies: Box<[u32]>,
    /// Grants, most permissive first: allows, then budgeted writes (source
    /// order), then approval-required writes (fewest approvers first).
    pub grants: Box<[u32]>,
    /// The request values the cell's conditions read (the cache key).
    pub reads: Box<[cache::Read]>,
    /// Whether any rule of the cell has a condition (else nothing to cache).
    pub conditional: bool,
}

#[derive(Debug)]
pub(crate) struct ToolInfo {
    pub schema: Option<Vec<ir::Field>>,
    pub write: bool,
}

/// A compiled policy.
#[derive(Debug)]
pub(crate) struct Table {
    agents: FxHashMap<String, u32>,
    tools: FxHashMap<String, u32>,
    tool_info: Vec<ToolInfo>,
    cells: Vec<Cell>,
    pub rules: Vec<CompiledRule>,
    writes_enabled: bool,
    envs: Vec<String>,
    context: Vec<ir::Field>,
    pub cache: Option<Cache>,
}

/// Precedence of a grant within a cell (lower first).
pub(crate) fn grant_rank(effect: &ir::Effect) -> (u8, u32) {
    match effect {
        ir::Effect::Allow { .. } => (0, 0),
        ir::Effect::Write {
            approval: ir::Approval::Auto(_),
            ..
        } => (1, 0),
        ir::Effect::Write {
            approval: ir::Approval::Human { count, .. },
            ..
        } => (2, *count),
        ir::Effect::Deny => (3, 0),
    }
}

impl Table {
    pub(crate) fn compile(policy: &ir::Policy, file: &str) -> Result<Table, String> {
        let file: Arc<str> = Arc::from(file);
        let rules = policy
            .rules
            .iter()
            .map(|r| {
                Ok(CompiledRule {
                    info: RuleInfo {
                        id: r.id,
                        identity: r.identity.as_str().into(),
                        file: file.clone(),
                        line: r.line,
                        column: r.column,
                    },
                    cond: r.condition.as_ref().map(Cond::compile).transpose()?,
                    effect: r.effect.clone(),
                    reason: r.reason.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let n_tools = policy.tools.len();
        let mut cells: Vec<(Vec<u32>, Vec<u32>)> =
            vec![(Vec::new(), Vec::new()); policy.agents.len() * n_tools];
        for r in &policy.rules {
            let agents: Vec<usize> = match r.agent {
                Some(a) => vec![a.0 as usize],
                None => (0..policy.agents.len()).collect(),
            };
            for a in agents {
                for t in &r.tools {
                    let cell = &mut cells[a * n_tools + t.0 as usize];
                    let list = if r.effect == ir::Effect::Deny {
                        &mut cell.0
                    } else {
                        &mut cell.1
                    };
                    list.push(r.id.0);
                }
            }
        }
        let cells = cells
            .into_iter()
            .map(|(denies, mut grants)| {
                grants.sort_by_key(|g| grant_rank(&policy.rules[*g as usize].effect));
                let mut reads = Vec::new();
                let mut conditional = false;
                for r in denies.iter().chain(&grants) {
                    if let Some(c) = &rules[*r as usize].cond {
                        conditional = true;
                        cache::reads(c, &mut reads);
                    }
                }
                Cell {
                    denies: denies.into(),
                    grants: grants.into(),
                    reads: reads.into(),
                    conditional,
                }
            })
            .collect();
        let index = |names: Vec<&String>| {
            names
                .into_iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i as u32))
                .collect()
        };
        Ok(Table {
            agents: index(policy.agents.iter().map(|a| &a.name).collect()),
            tools: index(policy.tools.iter().map(|t| &t.name).collect()),
            tool_info: policy
                .tools
                .iter()
                .map(|t| ToolInfo {
                    schema: t.schema.clone(),
                    write: t.class == ir::ToolClass::Write,
                })
                .collect(),
            cells,
            rules,
            writes_enabled: policy.writes == ir::Writes::Enabled,
            envs: policy.envs.clone(),
            context: policy.context.clone(),
            cache: None,
        })
    }

    pub(crate) fn decide<'e>(&'e self, req: &Request<'_>) -> Decision<'e> {
        let Some(&agent) = self.agents.get(req.agent) else {
            return Decision::deny(format!("unknown agent `{}`", req.agent), None);
        };
        let Some(&tool) = self.tools.get(req.tool) else {
            return Decision::deny(format!("undeclared tool `{}`", req.tool), None);
        };
        if let Err(why) = schema::context(&self.envs, &self.context, req.context) {
            return Decision::deny(why, None);
        }
        let info = &self.tool_info[tool as usize];
        if let Some(schema) = &info.schema {
            if let Err(why) = schema::check(req.args, schema) {
                return Decision::deny(why, None);
            }
        }
        let cell = &self.cells[agent as usize * self.tool_info.len() + tool as usize];
        let scope = Scope { req, elem: None };
        if let Some(cache) = self.cache.as_ref().filter(|_| cell.conditional) {
            let key = Cache::key(agent, tool, &cell.reads, req);
            let outcome = cache.get(&key).unwrap_or_else(|| {
                let outcome = std::sync::Arc::new(self.evaluate(cell, &scope));
                cache.put(key, outcome.clone());
                outcome
            });
            return match &*outcome {
                CellOutcome::Denied(d) => {
                    let rule = &self.rules[*d as usize];
                    Decision::deny(reason(rule, "denied by rule"), Some(&rule.info))
                }
                CellOutcome::Granted(_) if info.write && !self.writes_enabled => Decision::deny(
                    "writes are not enabled in this policy (`writes enabled;`)",
                    None,
                ),
                CellOutcome::Granted(grants) => {
                    grant_chain(&mut grants.iter().map(|g| &self.rules[*g as usize]))
                }
            };
        }
        for &d in cell.denies.iter() {
            let rule = &self.rules[d as usize];
            // Fail closed: a deny whose condition cannot be evaluated applies.
            if rule
                .cond
                .as_ref()
                .is_none_or(|c| c.truth(&scope).unwrap_or(true))
            {
                return Decision::deny(reason(rule, "denied by rule"), Some(&rule.info));
            }
        }
        if info.write && !self.writes_enabled {
            return Decision::deny(
                "writes are not enabled in this policy (`writes enabled;`)",
                None,
            );
        }
        let mut matching = cell
            .grants
            .iter()
            .map(|&g| &self.rules[g as usize])
            .filter(|rule| {
                // Fail closed: a grant whose condition cannot be evaluated does not apply.
                rule.cond
                    .as_ref()
                    .is_none_or(|c| c.truth(&scope).unwrap_or(false))
            });
        grant_chain(&mut matching)
    }

    /// Every condition of a cell, for the cache: the deny that applies, or every grant that holds.
    fn evaluate(&self, cell: &Cell, scope: &Scope<'_>) -> CellOutcome {
        for &d in cell.denies.iter() {
            let rule = &self.rules[d as usize];
            if rule
                .cond
                .as_ref()
                .is_none_or(|c| c.truth(scope).unwrap_or(true))
            {
                return CellOutcome::Denied(d);
            }
        }
        let holds = |g: &&u32| {
            self.rules[**g as usize]
                .cond
                .as_ref()
                .is_none_or(|c| c.truth(scope).unwrap_or(false))
        };
        CellOutcome::Granted(cell.grants.iter().filter(holds).copied().collect())
    }
}

fn reason<'e>(rule: &'e CompiledRule, default: &'static str) -> Cow<'e, str> {
    rule.reason
        .as_deref()
        .map_or(Cow::Borrowed(default), Cow::Borrowed)
}

/// The decision from the matching grants, most permissive first. A budgeted
/// grant falls back to the next matching grant when its budget is exhausted.
pub(crate) fn grant_chain<'e>(
    matching: &mut dyn Iterator<Item = &'e CompiledRule>,
) -> Decision<'e> {
    let Some(rule) = matching.next() else {
        return Decision::deny("no rule grants this call", None);
    };
    match &rule.effect {
        ir::Effect::Allow { scope } => {
            granted(rule, Outcome::Allow, scope, None, "allowed by rule")
        }
        ir::Effect::Write {
            approval: ir::Approval::Auto(budget),
            scope,
        } => {
            let mut d = granted(
                rule,
                Outcome::Allow,
                scope,
                None,
                "auto-approved within budget",
            );
            d.budget = Some(budget);
            let mut next = grant_chain(matching);
            if next.outcome == Outcome::Deny {
                next.reason = Cow::Borrowed(
                    "the auto-approval budget is exhausted and no other rule grants this call",
                );
            }
            d.fallback = Some(Box::new(next));
            d
        }
        ir::Effect::Write { approval, scope } => granted(
            rule,
            Outcome::ApprovalRequired,
            scope,
            Some(approval),
            "needs human approval",
        ),
        ir::Effect::Deny => Decision::deny(reason(rule, "denied by rule"), Some(&rule.info)),
    }
}

fn granted<'e>(
    rule: &'e CompiledRule,
    outcome: Outcome,
    scope: &'e [ir::ScopeItem],
    approval: Option<&'e ir::Approval>,
    default: &'static str,
) -> Decision<'e> {
    Decision {
        outcome,
        reason: reason(rule, default),
        rule: Some(&rule.info),
        scope,
        approval,
        budget: None,
        fallback: None,
    }
}
