//! Comparing two policies cell by cell (`policyc diff`).
//!
//! For every (agent, tool) named by either policy, the two cells of
//! [`crate::matrix`] are compared rule by rule (by what a rule says, not
//! where) and each difference is classified: an **escalation** (NEW grants
//! more), a **restriction** (less) or **neutral**. Every cell with a
//! difference is also searched ([`crate::search`], values from both
//! policies) for a **witness**: a request the NEW engine decides more
//! permissively than the OLD one, confirmed by running both. A condition
//! change is an escalation when a witness exists, a restriction when a
//! request the OLD policy decides more permissively exists and none the
//! other way, else neutral; a structural escalation without a witness is
//! reported as unproven.

mod provenance;

use crate::matrix::{self, Cell, Grant, GrantKind};
use crate::{search, Budgeted, Decision, Engine, Outcome, OwnedRequest};
use serde_json::{Map, Value as Json};
use toolgate_check::ir;

/// How a change moves permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// NEW grants more.
    Escalation,
    /// NEW grants less.
    Restriction,
    /// Neither (or not decidable by the search).
    Neutral,
}

impl Kind {
    /// `escalation`, `restriction` or `neutral`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Escalation => "escalation",
            Kind::Restriction => "restriction",
            Kind::Neutral => "neutral",
        }
    }
}

/// A request NEW decides more permissively than OLD, with both decisions.
#[derive(Clone, Debug, PartialEq)]
pub struct Witness {
    /// The request.
    pub request: OwnedRequest,
    /// OLD's decision, summarised (`deny`, `approval (g × 1, 900s)`, `allow`, ...).
    pub old: String,
    /// NEW's decision, summarised.
    pub new: String,
}

/// One difference in one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The agent.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// Its classification.
    pub kind: Kind,
    /// What changed, in words.
    pub what: String,
    /// OLD's rule involved (line), if any.
    pub old_rule: Option<usize>,
    /// NEW's rule involved (line), if any.
    pub new_rule: Option<usize>,
    /// For an escalation: the witness, or `None` when the search found none (unproven).
    pub witness: Option<Witness>,
}

/// A policy to compare: the checked IR, its source text and its file name.
pub struct Side<'a> {
    /// The checked policy.
    pub policy: &'a ir::Policy,
    /// Its text (conditions are compared as written).
    pub src: &'a str,
    /// Its engine.
    pub engine: &'a Engine,
}

/// Every change from `old` to `new`; `context` seeds the search's contexts.
pub fn compare(old: &Side<'_>, new: &Side<'_>, context: &Map<String, Json>) -> Vec<Change> {
    let mut agents: Vec<&str> = new.policy.agents.iter().map(|a| a.name.as_str()).collect();
    agents.extend(old.policy.agents.iter().map(|a| a.name.as_str()));
    let mut tools: Vec<&str> = new.policy.tools.iter().map(|t| t.name.as_str()).collect();
    tools.extend(old.policy.tools.iter().map(|t| t.name.as_str()));
    dedup_keep_order(&mut agents);
    dedup_keep_order(&mut tools);
    let mut out = Vec::new();
    for agent in &agents {
        for tool in &tools {
            out.extend(compare_cell(old, new, agent, tool, context));
        }
    }
    out.extend(provenance::labels(old, new));
    out
}

fn dedup_keep_order(v: &mut Vec<&str>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(*x));
}

fn cell_of(side: &Side<'_>, agent: &str, tool: &str) -> Option<Cell> {
    let a = side.policy.agent_id(agent)?;
    let t = side.policy.tool_id(tool)?;
    Some(matrix::cell(side.policy, a, t))
}

/// A rule's condition as written, whitespace collapsed (`""`: none).
fn condition(side: &Side<'_>, rule: ir::RuleId) -> String {
    let Some(c) = side
        .policy
        .rules
        .get(rule.0 as usize)
        .and_then(|r| r.condition.as_ref())
    else {
        return String::new();
    };
    let text = side.src.get(c.span.start..c.span.end).unwrap_or("");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn line(side: &Side<'_>, rule: ir::RuleId) -> usize {
    side.policy.rules.get(rule.0 as usize).map_or(0, |r| r.line)
}

/// A difference before the witness search: (kind, what, OLD line, NEW line).
type Found = (Kind, String, Option<usize>, Option<usize>);

/// The differences of one cell, classified, with witnesses attached.
fn compare_cell(
    old: &Side<'_>,
    new: &Side<'_>,
    agent: &str,
    tool: &str,
    context: &Map<String, Json>,
) -> Vec<Change> {
    let mut found = visibility(old, new, agent, tool);
    if found.is_empty() && same_inputs(old.policy, new.policy, tool) {
        // Same rules, same schemas: the two engines decide alike; nothing to search.
        return Vec::new();
    }
    let search = |a: &Side<'_>, b: &Side<'_>, strict: bool| {
        find(a, b, [new.policy, old.policy], agent, tool, context, strict)
    };
    // A witness that changes the outcome itself is the most telling one.
    let witness = search(new, old, true).or_else(|| search(new, old, false));
    if found.is_empty() && witness.is_none() {
        return Vec::new();
    }
    let undecided = found.iter().any(|f| f.0 == Kind::Neutral);
    let down = witness.is_none() && undecided && search(old, new, false).is_some();
    settle_conditions(&mut found, witness.is_some(), down);
    if witness.is_some() && !found.iter().any(|f| f.0 == Kind::Escalation) {
        let what = "decides some requests more permissively".to_string();
        found.push((Kind::Escalation, what, None, None));
    }
    found
        .into_iter()
        .map(|(kind, what, old_rule, new_rule)| Change {
            agent: agent.to_string(),
            tool: tool.to_string(),
            witness: witness.clone().filter(|_| kind == Kind::Escalation),
            kind,
            what,
            old_rule,
            new_rule,
        })
        .collect()
}

/// The structural differences of the cell, including a cell only one policy has.
fn visibility(old: &Side<'_>, new: &Side<'_>, agent: &str, tool: &str) -> Vec<Found> {
    let mut found = Vec::new();
    let first = |side: &Side<'_>, c: &Cell| c.grants.first().map(|g| line(side, g.rule));
    match (cell_of(old, agent, tool), cell_of(new, agent, tool)) {
        (None, Some(n)) if !n.always_denied() => found.push((
            Kind::Escalation,
            "newly visible: the agent or tool is new and granted".into(),
            None,
            first(new, &n),
        )),
        (Some(o), None) if !o.always_denied() => found.push((
            Kind::Restriction,
            "no longer visible: the agent or tool was removed".into(),
            first(old, &o),
            None,
        )),
        (Some(o), Some(n)) => structural(old, new, &o, &n, &mut found),
        _ => {}
    }
    found
}

/// A request `a` decides more permissively than `b` (`strict`: with a
/// more permissive outcome), with both decisions summarised as OLD/NEW
/// when `a` is the NEW side.
fn find(
    a: &Side<'_>,
    b: &Side<'_>,
    policies: [&ir::Policy; 2],
    agent: &str,
    tool: &str,
    context: &Map<String, Json>,
    strict: bool,
) -> Option<Witness> {
    let request = search::search(&policies, agent, tool, context, |req| {
        let r = req.as_request();
        let (da, db) = (a.engine.decide(&r), b.engine.decide(&r));
        if strict {
            level(da.outcome()) > level(db.outcome())
        } else {
            more_permissive(&da, &db)
        }
    })?;
    let r = request.as_request();
    let (new, old) = (summary(&a.engine.decide(&r)), summary(&b.engine.decide(&r)));
    Some(Witness {
        request: request.clone(),
        old,
        new,
    })
}

/// A changed condition is a widening when a witness exists, a narrowing when
/// only the other direction has one, and stays neutral otherwise.
fn settle_conditions(found: &mut [Found], up: bool, down: bool) {
    for f in found.iter_mut() {
        if f.0 != Kind::Neutral || !f.1.starts_with("condition") {
            continue;
        }
        if up {
            f.0 = Kind::Escalation;
            f.1 = f.1.replacen("condition changed", "condition widened", 1);
        } else if down {
            f.0 = Kind::Restriction;
            f.1 = f.1.replacen("condition changed", "condition narrowed", 1);
        }
    }
}

/// Whether what the engine checks before any rule is the same in both
/// policies for `tool`: its class and schema (open or not), the envs and the context fields.
fn same_inputs(old: &ir::Policy, new: &ir::Policy, tool: &str) -> bool {
    let decl = |p: &ir::Policy| {
        p.tools
            .iter()
            .find(|t| t.name == tool)
            .map(|t| (t.class, t.schema.clone(), t.open))
    };
    decl(old) == decl(new) && old.envs == new.envs && old.context == new.context
}

/// What differs between two cells, rule by rule.
fn structural(old: &Side<'_>, new: &Side<'_>, o: &Cell, n: &Cell, found: &mut Vec<Found>) {
    match (o.denied_by, n.denied_by) {
        (Some(d), None) => found.push((
            Kind::Escalation,
            "an unconditional deny was removed".into(),
            Some(line(old, d)),
            None,
        )),
        (None, Some(d)) => found.push((
            Kind::Restriction,
            "an unconditional deny was added".into(),
            None,
            Some(line(new, d)),
        )),
        _ => {}
    }
    if o.denied_by.is_some() && n.denied_by.is_some() {
        return;
    }
    match (o.writes_off, n.writes_off) {
        (true, false) => found.push((Kind::Escalation, "writes were enabled".into(), None, None)),
        (false, true) => found.push((Kind::Restriction, "writes were disabled".into(), None, None)),
        _ => {}
    }
    let old_denies: Vec<(String, ir::RuleId)> =
        o.denies.iter().map(|d| (condition(old, *d), *d)).collect();
    let new_denies: Vec<(String, ir::RuleId)> =
        n.denies.iter().map(|d| (condition(new, *d), *d)).collect();
    for (c, d) in &old_denies {
        if !new_denies.iter().any(|(nc, _)| nc == c) {
            found.push((
                Kind::Escalation,
                format!("the deny `when {c}` was removed or narrowed"),
                Some(line(old, *d)),
                None,
            ));
        }
    }
    for (c, d) in &new_denies {
        if !old_denies.iter().any(|(oc, _)| oc == c) {
            found.push((
                Kind::Restriction,
                format!("a deny `when {c}` was added"),
                None,
                Some(line(new, *d)),
            ));
        }
    }
    floors(old, new, o, n, found);
    grants(old, new, o, n, found);
}

/// Approval floors compared by approval and condition: one the new policy no
/// longer has (or has changed) may let a call through with less approval, so
/// it is an escalation; a new one a restriction.
fn floors(old: &Side<'_>, new: &Side<'_>, o: &Cell, n: &Cell, found: &mut Vec<Found>) {
    let key = |side: &Side<'_>, r: ir::RuleId| {
        let effect = side.policy.rules.get(r.0 as usize).map(|r| &r.effect);
        (format!("{effect:?}"), condition(side, r))
    };
    let old_floors: Vec<_> = o.floors.iter().map(|f| (key(old, *f), *f)).collect();
    let new_floors: Vec<_> = n.floors.iter().map(|f| (key(new, *f), *f)).collect();
    for (k, f) in &old_floors {
        if !new_floors.iter().any(|(nk, _)| nk == k) {
            let msg = "an approval floor was removed or changed".to_string();
            found.push((Kind::Escalation, msg, Some(line(old, *f)), None));
        }
    }
    for (k, f) in &new_floors {
        if !old_floors.iter().any(|(ok, _)| ok == k) {
            let msg = "an approval floor was added".to_string();
            found.push((Kind::Restriction, msg, None, Some(line(new, *f))));
        }
    }
}

fn rank(k: &GrantKind) -> u8 {
    match k {
        GrantKind::Allow => 0,
        GrantKind::Budget(_) => 1,
        GrantKind::Approval { .. } => 2,
    }
}

fn grants(old: &Side<'_>, new: &Side<'_>, o: &Cell, n: &Cell, found: &mut Vec<Found>) {
    let same = |a: &Grant, sa: &Side<'_>, b: &Grant, sb: &Side<'_>| {
        a.kind == b.kind && a.scope == b.scope && condition(sa, a.rule) == condition(sb, b.rule)
    };
    let mut old_left: Vec<&Grant> = o
        .grants
        .iter()
        .filter(|g| !n.grants.iter().any(|h| same(g, old, h, new)))
        .collect();
    for g in n
        .grants
        .iter()
        .filter(|g| !o.grants.iter().any(|h| same(h, old, g, new)))
    {
        let nl = Some(line(new, g.rule));
        let Some(pos) = old_left.iter().position(|h| rank(&h.kind) == rank(&g.kind)) else {
            found.push((
                Kind::Escalation,
                format!("a new grant: {}", describe(new, g)),
                None,
                nl,
            ));
            continue;
        };
        let h = old_left.remove(pos);
        let ol = Some(line(old, h.rule));
        for (kind, what) in differences(old, h, new, g) {
            found.push((kind, what, ol, nl));
        }
    }
    for h in old_left {
        found.push((
            Kind::Restriction,
            format!("a grant was removed: {}", describe(old, h)),
            Some(line(old, h.rule)),
            None,
        ));
    }
}

fn describe(side: &Side<'_>, g: &Grant) -> String {
    let c = condition(side, g.rule);
    let what = match &g.kind {
        GrantKind::Allow => "allow".to_string(),
        GrantKind::Budget(b) => format!("auto-approve {} per {}s", b.limit, b.window_secs),
        GrantKind::Approval {
            group,
            count,
            expires_secs,
        } => format!(
            "approval by {count} from {} ({})",
            group
                .as_deref()
                .map_or("no particular group".to_string(), |g| format!("`{g}`")),
            expires_secs.map_or("no expiry".to_string(), |s| format!("expires {s}s"))
        ),
    };
    if c.is_empty() {
        what
    } else {
        format!("{what} when `{c}`")
    }
}

/// The differences between two grants of the same rank.
fn differences(old: &Side<'_>, h: &Grant, new: &Side<'_>, g: &Grant) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    let by = |up: bool| {
        if up {
            Kind::Escalation
        } else {
            Kind::Restriction
        }
    };
    match (&h.kind, &g.kind) {
        (GrantKind::Budget(a), GrantKind::Budget(b)) => {
            // Calls per second, compared without division.
            let (ra, rb) = (
                u128::from(a.limit) * u128::from(b.window_secs),
                u128::from(b.limit) * u128::from(a.window_secs),
            );
            if ra != rb {
                out.push((
                    by(rb > ra),
                    format!(
                        "budget {} per {}s -> {} per {}s",
                        a.limit, a.window_secs, b.limit, b.window_secs
                    ),
                ));
            }
            if a.key != b.key {
                let fine = |k: ir::BudgetKey| k == ir::BudgetKey::AgentToolTenant;
                out.push((
                    by(fine(b.key)),
                    format!("budget key {:?} -> {:?}", a.key, b.key),
                ));
            }
        }
        (
            GrantKind::Approval {
                group: ga,
                count: ca,
                expires_secs: ea,
            },
            GrantKind::Approval {
                group: gb,
                count: cb,
                expires_secs: eb,
            },
        ) => {
            if ca != cb {
                out.push((by(cb < ca), format!("approvers {ca} -> {cb}")));
            }
            if ga != gb {
                let shown = |g: &Option<String>| {
                    g.as_deref()
                        .map_or("no particular group".to_string(), |g| format!("`{g}`"))
                };
                out.push((
                    by(ga.is_some()),
                    format!("approval group {} -> {}", shown(ga), shown(gb)),
                ));
            }
            if ea != eb {
                let longer = match (ea, eb) {
                    (Some(a), Some(b)) => b > a,
                    (Some(_), None) => true,
                    _ => false,
                };
                let shown =
                    |e: &Option<u64>| e.map_or("no expiry".to_string(), |s| format!("{s}s"));
                out.push((
                    by(longer),
                    format!("approval expiry {} -> {}", shown(ea), shown(eb)),
                ));
            }
        }
        _ => {}
    }
    if h.scope != g.scope {
        let dropped = h.scope.iter().any(|s| !g.scope.contains(s));
        out.push((
            by(dropped),
            format!("credential scope {:?} -> {:?}", h.scope, g.scope),
        ));
    }
    let (ca, cb) = (condition(old, h.rule), condition(new, g.rule));
    if ca != cb {
        let show = |c: &str| {
            if c.is_empty() {
                "(none)".to_string()
            } else {
                format!("`{c}`")
            }
        };
        let (kind, word) = if cb.is_empty() {
            (Kind::Escalation, "condition removed")
        } else if ca.is_empty() {
            (Kind::Restriction, "condition added")
        } else {
            provenance::shift(&ca, &cb).unwrap_or((Kind::Neutral, "condition changed"))
        };
        out.push((kind, format!("{word}: {} -> {}", show(&ca), show(&cb))));
    }
    out
}

/// deny < approval_required < allow.
fn level(o: Outcome) -> u8 {
    match o {
        Outcome::Deny => 0,
        Outcome::ApprovalRequired => 1,
        Outcome::Allow => 2,
    }
}

/// Whether `a` lets the call through more easily than `b`: a more
/// permissive outcome; or for the same outcome a weaker approval (fewer
/// approvers, a group dropped or changed, a longer or no expiry), a higher
/// or no budget, or a credential scope that drops a dimension.
pub fn more_permissive(a: &Decision<'_>, b: &Decision<'_>) -> bool {
    if level(a.outcome()) != level(b.outcome()) {
        return level(a.outcome()) > level(b.outcome());
    }
    let dropped = b.scope().iter().any(|s| !a.scope().contains(s));
    match (a, b) {
        (
            Decision::ApprovalRequired { approval: x, .. },
            Decision::ApprovalRequired { approval: y, .. },
        ) => {
            let longer = match (x.expires_secs, y.expires_secs) {
                (Some(ex), Some(ey)) => ex > ey,
                (None, Some(_)) => true,
                _ => false,
            };
            x.count < y.count || (y.group.is_some() && x.group != y.group) || longer || dropped
        }
        (Decision::Allow { budget: ba, .. }, Decision::Allow { budget: bb, .. }) => {
            let rate = |b: &Option<Budgeted<'_>>| {
                b.as_ref().map(|b| (b.budget.limit, b.budget.window_secs))
            };
            let higher = match (rate(ba), rate(bb)) {
                (None, Some(_)) => true,
                (Some((la, wa)), Some((lb, wb))) => {
                    u128::from(la) * u128::from(wb) > u128::from(lb) * u128::from(wa)
                }
                _ => false,
            };
            higher || dropped
        }
        _ => false,
    }
}

/// A decision in a few words.
pub fn summary(d: &Decision<'_>) -> String {
    match d {
        Decision::ApprovalRequired { approval, .. } => format!(
            "approval_required ({} × {}, {})",
            approval.group.as_deref().unwrap_or("anyone"),
            approval.count,
            approval
                .expires_secs
                .map_or("no expiry".to_string(), |s| format!("{s}s"))
        ),
        Decision::Allow {
            budget: Some(b), ..
        } => {
            format!(
                "allow (budget {} per {}s)",
                b.budget.limit, b.budget.window_secs
            )
        }
        _ => d.outcome().as_str().to_string(),
    }
}
