//! `[[never]]`: no grant of a kind can match in any of the named cells.
//!
//! Static, over the compiled policy: a rule that names the cell's agent (or
//! every agent) and tool and grants that kind counts as able to match,
//! conditional or not, unless an unconditional deny in the cell shadows it
//! (or it is a write rule and writes are not enabled). When one can, the
//! failure names it and, if the bounded search of `toolgate_engine::search` finds one, a
//! request the engine grants in that cell.

use super::spec::{Never, Tools};
use super::Broken;
use crate::eval::Loaded;
use serde_json::{Map, Value as Json};
use toolgate_check::ir;
use toolgate_engine::{Engine, Outcome};

/// The failures of one `never` (empty: it holds).
pub(crate) fn check(
    loaded: &Loaded,
    engine: &Engine,
    never: &Never,
    context: &Map<String, Json>,
) -> Result<Vec<String>, Broken> {
    let p = &loaded.policy;
    let with_human = match never.decision.get_ref().as_str() {
        "allow" => false,
        "approval_required" => true,
        other => {
            return Err(Broken::at(
                &never.decision,
                format!(
                    "`decision` of a never must be `allow` or `approval_required`, not `{other}`"
                ),
            ))
        }
    };
    let agents = named(
        &never.agent,
        p.agents.iter().map(|a| a.name.as_str()),
        "agent",
    )?;
    let tool_names: Vec<String> = match never.tools.get_ref() {
        Tools::One(t) => vec![t.clone()],
        Tools::Many(ts) => ts.clone(),
    };
    let mut tools = Vec::new();
    for t in &tool_names {
        let shown = toml::Spanned::new(never.tools.span(), t.clone());
        tools.extend(named(
            &shown,
            p.tools.iter().map(|t| t.name.as_str()),
            "tool",
        )?);
    }
    let mut failures = Vec::new();
    for &agent in &agents {
        for &tool in &tools {
            failures.extend(cell(loaded, engine, agent, tool, with_human, context));
        }
    }
    Ok(failures)
}

/// The indices of the names `pattern` stands for (`*`, `prefix.*` or a name).
fn named<'p>(
    pattern: &toml::Spanned<String>,
    names: impl Iterator<Item = &'p str>,
    what: &str,
) -> Result<Vec<usize>, Broken> {
    let pat = pattern.get_ref();
    let hits: Vec<usize> = names
        .enumerate()
        .filter(|(_, n)| match pat.strip_suffix('*') {
            Some(prefix) => n.starts_with(prefix),
            None => n == pat,
        })
        .map(|(i, _)| i)
        .collect();
    if hits.is_empty() {
        return Err(Broken::at(
            pattern,
            format!("no {what} of the policy is named `{pat}`"),
        ));
    }
    Ok(hits)
}

/// Whether `rule` applies to the cell.
fn applies(rule: &ir::Rule, agent: usize, tool: usize) -> bool {
    rule.agent.is_none_or(|a| a.0 as usize == agent)
        && rule.tools.iter().any(|t| t.0 as usize == tool)
}

/// The failures of one cell.
fn cell(
    loaded: &Loaded,
    engine: &Engine,
    agent: usize,
    tool: usize,
    with_human: bool,
    context: &Map<String, Json>,
) -> Vec<String> {
    let p = &loaded.policy;
    let rules: Vec<&ir::Rule> = p.rules.iter().filter(|r| applies(r, agent, tool)).collect();
    let shadowed = rules
        .iter()
        .any(|r| r.effect == ir::Effect::Deny && r.condition.is_none());
    let write = p.tools[tool].class == ir::ToolClass::Write;
    if shadowed || (write && p.writes != ir::Writes::Enabled) {
        return Vec::new();
    }
    let grants = |r: &&&ir::Rule| match &r.effect {
        ir::Effect::Deny | ir::Effect::Floor(_) => false,
        ir::Effect::Allow { .. }
        | ir::Effect::Write {
            approval: ir::Approval::Auto(_),
            ..
        } => true,
        ir::Effect::Write { .. } => with_human,
    };
    let (agent_name, tool_name) = (&p.agents[agent].name, &p.tools[tool].name);
    let forbidden =
        |o: Outcome| o == Outcome::Allow || (with_human && o == Outcome::ApprovalRequired);
    let example = toolgate_engine::search::search(&[p], agent_name, tool_name, context, |req| {
        forbidden(engine.decide(&req.as_request()).outcome())
    });
    let example = example.map_or_else(
        || "no granted request was found by the bounded search".to_string(),
        |req| {
            let shown = serde_json::json!({
                "agent": req.agent, "tool": req.tool, "args": req.args,
                "context": req.context.fields.clone().into_iter()
                    .chain([("tenant".into(), req.context.tenant.clone().into()), ("env".into(), req.context.env.clone().into())])
                    .collect::<Map<String, Json>>(),
            });
            format!("e.g. {shown} is granted")
        },
    );
    rules
        .iter()
        .filter(grants)
        .map(|r| {
            let cond = if r.condition.is_some() {
                " (conditional)"
            } else {
                ""
            };
            format!(
                "rule {}:{}{cond} can grant `{tool_name}` to `{agent_name}`; {example}",
                loaded.file, r.line
            )
        })
        .collect()
}
