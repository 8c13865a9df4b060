//! The decision table: agents and tools interned to dense ids, tool patterns
//! already expanded (by the checker), and a cell per (agent, tool) holding
//! its deny rules and its grants in decision order. A request looks up two
//! names and one cell; rules outside that cell cost nothing.
//!
//! Only non-empty cells are stored (memory follows the rules, not agents ×
//! tools): each tool has one shared cell with its top-level rules, used by
//! every agent whose own block does not name the tool; an (agent, tool) that
//! the agent's block names has its own cell (the top-level rules and the
//! agent's, in the same order as before). An agent without rules of its own
//! never looks further than the shared cell.

mod asks;
pub use asks::SessionAsks;

use crate::cache::{self, Cache, CellOutcome};
use crate::decision::{Budgeted, Decision, RuleInfo};
use crate::eval::{Cond, Scope};
use crate::floor;
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
    /// Deny rules and approval floors, in source order.
    pub denies: Box<[u32]>,
    /// Grants, most permissive first: plain allows, then budgeted grants (source
    /// order), then approval-required grants (fewest approvers first).
    pub grants: Box<[u32]>,
    /// The request values the cell's conditions read (the cache key).
    pub reads: Box<[cache::Read]>,
    /// Whether any rule of the cell has a condition (else nothing to cache).
    pub conditional: bool,
    /// Whether a condition reads the session (then its outcome is never cached).
    pub session: bool,
}

impl Cell {
    /// A cell from its rules in source order: grants put in decision order,
    /// the values its conditions read collected.
    fn build(
        denies: Vec<u32>,
        mut grants: Vec<u32>,
        policy: &ir::Policy,
        rules: &[CompiledRule],
    ) -> Cell {
        grants.sort_by_key(|g| grant_rank(&policy.rules[*g as usize].effect));
        let mut reads = Vec::new();
        let mut conditional = false;
        for r in denies.iter().chain(&grants) {
            if let Some(c) = &rules[*r as usize].cond {
                conditional = true;
                cache::reads(c, &mut reads);
            }
        }
        let session = reads.contains(&cache::Read::Session);
        Cell {
            denies: denies.into(),
            grants: grants.into(),
            reads: reads.into(),
            conditional,
            session,
        }
    }
}

#[derive(Debug)]
pub(crate) struct ToolInfo {
    pub schema: Option<Vec<ir::Field>>,
    /// The schema ends with `..`.
    pub open: bool,
    pub write: bool,
}

/// An agent's entry in the table.
#[derive(Clone, Copy, Debug)]
struct AgentEntry {
    id: u32,
    /// Where the agent's cells are.
    cells: AgentCells,
}

/// Where an agent's cells are.
#[derive(Clone, Copy, Debug)]
enum AgentCells {
    /// A row of `Table::rows` from this offset, one cell index per tool: row
    /// 0 (the tools' shared cells) for an agent without rules of its own; a
    /// row of its own (its cells, else the shared ones) for an agent whose
    /// block names at least 1/[`DENSE_RATIO`] of the tools.
    Row(u32),
    /// `Table::own`, else the tool's shared cell.
    Sparse,
}

/// An agent gets a dense row of cell indices (4 bytes per tool) when it has
/// at least one own cell per `DENSE_RATIO` tools, so a row never costs more
/// than 4 × `DENSE_RATIO` bytes per own cell (a cell itself takes about 60).
const DENSE_RATIO: usize = 16;

/// A compiled policy.
#[derive(Debug)]
pub(crate) struct Table {
    agents: FxHashMap<String, AgentEntry>,
    tools: FxHashMap<String, u32>,
    tool_info: Vec<ToolInfo>,
    /// Every stored cell; cell 0 is empty (no rule names the agent and tool).
    cells: Vec<Cell>,
    /// `own_key(agent, tool)` -> cell, where the block of an agent with
    /// [`AgentCells::Sparse`] names the tool.
    own: FxHashMap<u64, u32>,
    /// Rows of cell indices, one per tool, one after another: first the
    /// tools' shared cells (their top-level rules; 0 if none), then the rows
    /// of the agents with a dense [`AgentCells::Row`].
    rows: Vec<u32>,
    pub rules: Vec<CompiledRule>,
    writes_enabled: bool,
    envs: Vec<String>,
    context: Vec<ir::Field>,
    pub cache: Option<Cache>,
}

/// A cell's rules while the table is built: denies (and floors) and grants, in source order.
type Lists = (Vec<u32>, Vec<u32>);

fn own_key(agent: u32, tool: u32) -> u64 {
    (u64::from(agent) << 32) | u64::from(tool)
}

fn push(lists: &mut Lists, rule: &ir::Rule) {
    let list = if rule.effect.is_grant() {
        &mut lists.1
    } else {
        &mut lists.0
    };
    list.push(rule.id.0);
}

/// The rule lists of every non-empty cell: per tool, its top-level rules;
/// per (agent, tool) named in the agent's block, the top-level rules and the
/// agent's, both in source order (as if every agent had every cell).
fn cell_lists(policy: &ir::Policy) -> (Vec<Lists>, FxHashMap<u64, Lists>) {
    let mut own: FxHashMap<u64, Lists> = FxHashMap::default();
    // Per tool, the agents with a cell of their own for it.
    let mut owners: Vec<Vec<u32>> = vec![Vec::new(); policy.tools.len()];
    for r in &policy.rules {
        for (a, t) in r
            .agent
            .iter()
            .flat_map(|a| r.tools.iter().map(|t| (a.0, t.0)))
        {
            own.entry(own_key(a, t)).or_insert_with(|| {
                owners[t as usize].push(a);
                Lists::default()
            });
        }
    }
    let mut shared = vec![Lists::default(); policy.tools.len()];
    for r in &policy.rules {
        for t in &r.tools {
            let own_agent = r.agent.map(|a| a.0);
            let agents = match &own_agent {
                Some(a) => std::slice::from_ref(a),
                None => {
                    push(&mut shared[t.0 as usize], r);
                    &owners[t.0 as usize][..]
                }
            };
            for a in agents {
                if let Some(lists) = own.get_mut(&own_key(*a, t.0)) {
                    push(lists, r);
                }
            }
        }
    }
    (shared, own)
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
            approval: ir::Approval::Human(ir::HumanApproval { count, .. }),
            ..
        } => (2, *count),
        ir::Effect::Deny | ir::Effect::Floor(_) => (3, 0),
    }
}

/// The table's cells: every non-empty cell (cell 0 empty), the rows (the
/// first one the tools' shared cells), and where each agent's own cells are.
struct Cells {
    cells: Vec<Cell>,
    own: FxHashMap<u64, u32>,
    rows: Vec<u32>,
    /// The agents with rules of their own.
    placed: FxHashMap<u32, AgentCells>,
}

impl Cells {
    fn build(policy: &ir::Policy, rules: &[CompiledRule], dense_ratio: usize) -> Cells {
        let (shared_lists, own_lists) = cell_lists(policy);
        let mut cells = vec![Cell::default()];
        let mut store = |(denies, grants): Lists| -> u32 {
            if denies.is_empty() && grants.is_empty() {
                return 0;
            }
            cells.push(Cell::build(denies, grants, policy, rules));
            (cells.len() - 1) as u32
        };
        let shared: Vec<u32> = shared_lists.into_iter().map(&mut store).collect();
        let own: FxHashMap<u64, u32> = own_lists
            .into_iter()
            .map(|(key, lists)| (key, store(lists)))
            .collect();
        let mut cells = Cells {
            cells,
            own: FxHashMap::default(),
            rows: shared,
            placed: FxHashMap::default(),
        };
        cells.place(own, dense_ratio);
        cells
    }

    /// Puts each agent's own cells in a dense row or in the sparse map.
    fn place(&mut self, own: FxHashMap<u64, u32>, dense_ratio: usize) {
        let mut counts: FxHashMap<u32, usize> = FxHashMap::default();
        for key in own.keys() {
            *counts.entry((key >> 32) as u32).or_default() += 1;
        }
        let tools = self.rows.len();
        for (&agent, &count) in &counts {
            let placed = if count.saturating_mul(dense_ratio) >= tools {
                let offset = self.rows.len() as u32;
                self.rows.extend_from_within(..tools);
                AgentCells::Row(offset)
            } else {
                AgentCells::Sparse
            };
            self.placed.insert(agent, placed);
        }
        for (key, cell) in own {
            let (agent, tool) = ((key >> 32) as u32, key as u32);
            match self.placed.get(&agent) {
                Some(AgentCells::Row(offset)) => self.rows[*offset as usize + tool as usize] = cell,
                _ => drop(self.own.insert(key, cell)),
            }
        }
    }
}

fn compile_rules(policy: &ir::Policy, file: &str) -> Result<Vec<CompiledRule>, String> {
    let file: Arc<str> = Arc::from(file);
    let cx = crate::eval::Compiler {
        policy,
        constants: Arc::new(crate::provenance::decide::Constants::of(&policy.constants)),
    };
    policy
        .rules
        .iter()
        .map(|r| {
            Ok(CompiledRule {
                info: RuleInfo {
                    id: r.id,
                    identity: r.identity.as_str().into(),
                    name: r.name.as_deref().map(Arc::from),
                    accepted_risk: r.accepted_risk.as_deref().map(Arc::from),
                    endorse: r.endorse.clone().into(),
                    file: file.clone(),
                    line: r.line,
                    column: r.column,
                },
                cond: r
                    .condition
                    .as_ref()
                    .map(|c| Cond::compile(c, &cx))
                    .transpose()?,
                effect: r.effect.clone(),
                reason: r.reason.clone(),
            })
        })
        .collect()
}

impl Table {
    pub(crate) fn compile(policy: &ir::Policy, file: &str) -> Result<Table, String> {
        Table::compile_with(policy, file, DENSE_RATIO)
    }

    /// [`Table::compile`] with another density threshold (tests: 0 makes every
    /// agent sparse, `usize::MAX` gives every agent with own rules a row).
    fn compile_with(policy: &ir::Policy, file: &str, dense_ratio: usize) -> Result<Table, String> {
        let rules = compile_rules(policy, file)?;
        let Cells {
            cells,
            own,
            rows,
            placed,
        } = Cells::build(policy, &rules, dense_ratio);
        let agents = policy.agents.iter().enumerate().map(|(i, a)| {
            let id = i as u32;
            let cells = placed.get(&id).copied().unwrap_or(AgentCells::Row(0));
            (a.name.clone(), AgentEntry { id, cells })
        });
        let tools = policy.tools.iter().enumerate();
        Ok(Table {
            agents: agents.collect(),
            tools: tools.map(|(i, t)| (t.name.clone(), i as u32)).collect(),
            tool_info: policy
                .tools
                .iter()
                .map(|t| ToolInfo {
                    schema: t.schema.clone(),
                    open: t.open,
                    write: t.class == ir::ToolClass::Write,
                })
                .collect(),
            cells,
            own,
            rows,
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
            if let Err(why) = schema::check(req.args, schema, info.open) {
                return Decision::deny(why, None);
            }
        }
        let cell = &self.cells[self.cell_of(agent, tool)];
        let scope = Scope { req, elem: None };
        if let Some(cache) = self
            .cache
            .as_ref()
            .filter(|_| cell.conditional && !cell.session)
        {
            let key = Cache::key(agent.id, tool, &cell.reads, req);
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
                CellOutcome::Granted(..) if info.write && !self.writes_enabled => Decision::deny(
                    "writes are not enabled in this policy (`writes enabled;`)",
                    None,
                ),
                CellOutcome::Granted(grants, floors) => {
                    let d = grant_chain(&mut grants.iter().map(|g| &self.rules[*g as usize]));
                    let floors: Vec<&CompiledRule> =
                        floors.iter().map(|f| &self.rules[*f as usize]).collect();
                    apply_floors(d, &floors)
                }
            };
        }
        let mut floors: Vec<&CompiledRule> = Vec::new();
        for &d in cell.denies.iter() {
            let rule = &self.rules[d as usize];
            // Fail closed: a deny (or floor) whose condition cannot be evaluated applies.
            if rule
                .cond
                .as_ref()
                .is_none_or(|c| c.truth(&scope).unwrap_or(true))
            {
                if let ir::Effect::Floor(_) = rule.effect {
                    floors.push(rule);
                    continue;
                }
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
        apply_floors(grant_chain(&mut matching), &floors)
    }

    /// The index of the cell for (agent, tool): the agent's own if its block
    /// names the tool, else the tool's shared cell.
    fn cell_of(&self, agent: AgentEntry, tool: u32) -> usize {
        let cell = match agent.cells {
            AgentCells::Row(offset) => self.rows[offset as usize + tool as usize],
            AgentCells::Sparse => match self.own.get(&own_key(agent.id, tool)) {
                Some(&cell) => cell,
                None => self.rows[tool as usize],
            },
        };
        cell as usize
    }

    /// Every condition of a cell, for the cache: the deny that applies, or every grant that holds.
    fn evaluate(&self, cell: &Cell, scope: &Scope<'_>) -> CellOutcome {
        let mut floors = Vec::new();
        for &d in cell.denies.iter() {
            let rule = &self.rules[d as usize];
            if rule
                .cond
                .as_ref()
                .is_none_or(|c| c.truth(scope).unwrap_or(true))
            {
                if let ir::Effect::Floor(_) = rule.effect {
                    floors.push(d);
                    continue;
                }
                return CellOutcome::Denied(d);
            }
        }
        let holds = |g: &&u32| {
            self.rules[**g as usize]
                .cond
                .as_ref()
                .is_none_or(|c| c.truth(scope).unwrap_or(false))
        };
        CellOutcome::Granted(cell.grants.iter().filter(holds).copied().collect(), floors)
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
        ir::Effect::Allow { scope } => Decision::Allow {
            reason: reason(rule, "allowed by rule"),
            rule: &rule.info,
            scope,
            budget: None,
        },
        ir::Effect::Write {
            approval: ir::Approval::Auto(budget),
            scope,
        } => {
            let fallback = match grant_chain(matching) {
                Decision::Deny { rule, .. } => Decision::Deny {
                    reason: Cow::Borrowed(
                        "the auto-approval budget is exhausted and no other rule grants this call",
                    ),
                    rule,
                },
                next => next,
            };
            Decision::Allow {
                reason: reason(rule, "auto-approved within budget"),
                rule: &rule.info,
                scope,
                budget: Some(Budgeted {
                    budget,
                    fallback: Box::new(fallback),
                }),
            }
        }
        ir::Effect::Write {
            approval: ir::Approval::Human(approval),
            scope,
        } => Decision::ApprovalRequired {
            reason: reason(rule, "needs human approval"),
            rule: &rule.info,
            scope,
            approval: Cow::Borrowed(approval),
        },
        ir::Effect::Deny | ir::Effect::Floor(_) => {
            Decision::deny(reason(rule, "denied by rule"), Some(&rule.info))
        }
    }
}

/// The decision once the approval floors that apply (`floors`, source order)
/// are taken into account: at least as strict as each of them.
fn apply_floors<'e>(d: Decision<'e>, floors: &[&'e CompiledRule]) -> Decision<'e> {
    let Some(first) = floors.first() else {
        return d;
    };
    let granted = match &d {
        Decision::Deny { .. } => return d,
        Decision::ApprovalRequired { approval, .. } => Some(&**approval),
        Decision::Allow { .. } => None,
    };
    let approvals: Vec<&ir::HumanApproval> = floors
        .iter()
        .filter_map(|f| match &f.effect {
            ir::Effect::Floor(a) => Some(a),
            _ => None,
        })
        .collect();
    match floor::raise(granted, &approvals) {
        floor::Raised::Unchanged => d,
        floor::Raised::Conflict(why) => Decision::deny(why, Some(&first.info)),
        floor::Raised::To(approval) => Decision::ApprovalRequired {
            reason: reason(first, "needs approval: raised by an approval floor"),
            rule: &first.info,
            scope: d.scope(),
            approval: Cow::Owned(approval),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::Table;
    use crate::{Outcome, OwnedRequest};

    fn compile(src: &str) -> Table {
        compile_with(src, super::DENSE_RATIO)
    }

    fn compile_with(src: &str, dense_ratio: usize) -> Table {
        let parsed = toolgate_syntax::parse(src);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let checked = toolgate_check::check(&parsed.file, src);
        let Some(policy) = checked.policy else {
            panic!("{:?}", checked.diagnostics);
        };
        Table::compile_with(&policy, "t.policy", dense_ratio).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn dense_rows_and_sparse_cells_decide_alike() {
        let src = include_str!("../../../policies/support-desk.policy");
        let tables = [0, super::DENSE_RATIO, usize::MAX].map(|ratio| compile_with(src, ratio));
        assert!(tables[0].rows.len() == tables[0].tool_info.len() && tables[2].own.is_empty());
        let agents = ["support-bot", "browser", "nobody"];
        let tools = [
            "kb.read",
            "search.read",
            "ticket.close",
            "ticket.create",
            "db.write",
            "http.get",
            "email.send",
        ];
        let argss = [
            r#"{}"#,
            r#"{"account_id": "A1", "ticket_id": "T-1"}"#,
            r#"{"tenant_id": "other", "account_id": "A1"}"#,
            r#"{"url": "https://docs.example.com/x", "q": "y"}"#,
        ];
        let mut decided = 0;
        for agent in agents {
            for tool in tools {
                for args in argss {
                    let json = format!(
                        r#"{{"agent": "{agent}", "tool": "{tool}", "args": {args}, "context": {{"tenant": "acme", "env": "dev", "account_id": "A1"}}}}"#
                    );
                    let owned = OwnedRequest::from_json(&json).unwrap_or_else(|e| panic!("{e}"));
                    let req = owned.as_request();
                    let [a, b, c] = tables.each_ref().map(|t| t.decide(&req).to_json(&req));
                    assert_eq!(a, b, "{json}");
                    assert_eq!(a, c, "{json}");
                    decided += usize::from(a["decision"] != "deny");
                }
            }
        }
        assert!(decided > 5, "the requests reach grants: {decided}");
    }

    fn decide(table: &Table, agent: &str, tool: &str) -> Outcome {
        decide_why(table, agent, tool).0
    }

    fn decide_why(table: &Table, agent: &str, tool: &str) -> (Outcome, String) {
        let json = format!(
            r#"{{"agent": "{agent}", "tool": "{tool}", "args": {{}}, "context": {{"tenant": "t", "env": "prod"}}}}"#
        );
        let owned = OwnedRequest::from_json(&json).unwrap_or_else(|e| panic!("{e}"));
        let d = table.decide(&owned.as_request());
        (d.outcome(), d.reason().to_string())
    }

    #[test]
    fn an_agents_own_cell_keeps_source_order_across_top_level_and_block_rules() {
        let table = compile(
            "envs prod;\ntool t read;\ntool u read;\n\
             deny t reason \"top-level first\";\n\
             agent a {\n  deny t reason \"a's own\";\n  deny u reason \"a's own\";\n}\n\
             deny u reason \"top-level second\";\n\
             agent b {}\n",
        );
        let why = |agent, tool| decide_why(&table, agent, tool).1;
        assert_eq!(why("a", "t"), "top-level first");
        assert_eq!(why("a", "u"), "a's own");
        assert_eq!(why("b", "t"), "top-level first");
        assert_eq!(why("b", "u"), "top-level second");
    }

    #[test]
    fn memory_is_the_rules_cells_not_agents_times_tools() {
        // M9: one cell per (agent, tool): 6,000 tools and 6,000 agents with one
        // top-level rule made 36 million cells (3.6 GB). Only non-empty cells
        // are stored: one shared cell per tool named at top level, one per
        // (agent, tool) that the agent's own block names.
        let n = 6_000;
        let mut src = String::from("envs prod;\n");
        for i in 0..n {
            src.push_str(&format!("tool t{i} read;\n"));
        }
        src.push_str("allow t0;\nagent a1 {\n  deny t0;\n  allow t1;\n}\n");
        for i in (0..n).filter(|i| *i != 1) {
            src.push_str(&format!("agent a{i} {{}}\n"));
        }
        assert!(src.len() > 150_000, "{}", src.len());
        let table = compile(&src);
        assert_eq!(
            table.cells.len(),
            4,
            "the empty cell, t0's shared cell, (a1, t0) and (a1, t1)"
        );
        for (agent, tool, outcome) in [
            ("a5999", "t0", Outcome::Allow),
            ("a0", "t0", Outcome::Allow),
            ("a0", "t1", Outcome::Deny),
            ("a17", "t5999", Outcome::Deny),
            ("a1", "t0", Outcome::Deny),
            ("a1", "t1", Outcome::Allow),
            ("a1", "t2", Outcome::Deny),
            ("nobody", "t0", Outcome::Deny),
        ] {
            assert_eq!(decide(&table, agent, tool), outcome, "{agent} {tool}");
        }
    }
}
