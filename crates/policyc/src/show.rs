//! `policyc show`: the permission matrix (agents × tools), from
//! `toolgate_engine::matrix`, for a terminal, as JSON, or as Markdown.

use crate::cli::{ShowArgs, ShowFormat};
use crate::eval::{escape_controls, load, Loaded};
use crate::Exit;
use serde_json::{json, Value as Json};
use toolgate_check::ir;
use toolgate_engine::matrix::{self, Cell, Grant, GrantKind};

pub(crate) fn run(args: &ShowArgs) -> Exit {
    let loaded = match load(&args.policy) {
        Ok(l) => l,
        Err(exit) => return exit,
    };
    let p = &loaded.policy;
    let agents: Vec<ir::AgentId> = match &args.agent {
        Some(name) => match p.agent_id(name) {
            Some(a) => vec![a],
            None => {
                eprintln!("error: the policy has no agent `{name}`");
                return Exit::Usage;
            }
        },
        None => (0..p.agents.len()).map(|a| ir::AgentId(a as u32)).collect(),
    };
    let cells: Vec<Vec<Cell>> = agents
        .iter()
        .map(|&a| {
            (0..p.tools.len())
                .map(|t| matrix::cell(p, a, ir::ToolId(t as u32)))
                .collect()
        })
        .collect();
    let out = match args.format {
        ShowFormat::Human => human(&loaded, &cells),
        ShowFormat::Markdown => markdown(&loaded, &agents, &cells),
        ShowFormat::Json => format!("{}\n", json_doc(&loaded, &cells)),
    };
    print!("{}", escape_controls(&out));
    Exit::Ok
}

/// `15m`, `1h`, `7d`, or `no expiry`.
pub(crate) fn duration(secs: Option<u64>) -> String {
    let Some(s) = secs else {
        return "no expiry".into();
    };
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= n && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// A budget as `10/hour` (with its key when not the default).
pub(crate) fn budget(b: &ir::Budget) -> String {
    let per = match b.window_secs {
        60 => "minute".to_string(),
        3600 => "hour".to_string(),
        86_400 => "day".to_string(),
        s => format!("{s}s"),
    };
    let key = match b.key {
        ir::BudgetKey::AgentToolTenant => "",
        ir::BudgetKey::ToolTenant => " per tenant",
        ir::BudgetKey::AgentTool => " per agent",
    };
    format!("budget {}/{per}{key}", b.limit)
}

/// What a grant gives, in words.
pub(crate) fn grant_text(kind: &GrantKind) -> String {
    match kind {
        GrantKind::Allow => "allow".into(),
        GrantKind::Budget(b) => budget(b),
        GrantKind::Approval {
            group,
            count,
            expires_secs,
        } => format!(
            "approval ({} × {count}, {})",
            group.as_deref().unwrap_or("anyone"),
            duration(*expires_secs)
        ),
    }
}

fn line(p: &ir::Policy, rule: ir::RuleId) -> usize {
    p.rules.get(rule.0 as usize).map_or(0, |r| r.line)
}

/// A cell in one line: `@N` is the rule on line N, `if…` marks a condition,
/// `›` the fallback when a budget is spent, `unless @N` a conditional deny.
fn cell_text(p: &ir::Policy, c: &Cell) -> String {
    if let Some(d) = c.denied_by {
        return format!("deny @{}", line(p, d));
    }
    if c.writes_off {
        return "deny (writes off)".into();
    }
    if c.grants.is_empty() {
        return "deny".into();
    }
    let grant = |g: &Grant| {
        let cond = if g.conditional { " if…" } else { "" };
        format!("{}{cond} @{}", grant_text(&g.kind), line(p, g.rule))
    };
    let mut text: String = c.grants.iter().map(grant).collect::<Vec<_>>().join(" › ");
    if !c.denies.is_empty() {
        let lines: Vec<String> = c
            .denies
            .iter()
            .map(|d| format!("@{}", line(p, *d)))
            .collect();
        text.push_str(&format!(" (unless {})", lines.join(", ")));
    }
    if !c.floors.is_empty() {
        let lines: Vec<String> = c
            .floors
            .iter()
            .map(|f| format!("@{}", line(p, *f)))
            .collect();
        text.push_str(&format!(" (at least approval {})", lines.join(", ")));
    }
    text
}

const LEGEND: &str = "@N: the rule on line N; if…: the rule has a condition; ›: what applies once a budget is spent (or its condition fails); unless @N: a conditional deny that overrides; at least approval @N: an approval floor that raises whichever grant matched";

/// Every rule the shown cells mark (`if…`, `unless`), with its condition in
/// full (whitespace collapsed), so that no condition is hidden.
fn conditions(loaded: &Loaded, cells: &[Vec<Cell>], markdown: bool) -> String {
    let p = &loaded.policy;
    let mut rules: Vec<ir::RuleId> = cells
        .iter()
        .flatten()
        .filter(|c| !c.always_denied())
        .flat_map(|c| {
            let grants = c.grants.iter().filter(|g| g.conditional).map(|g| g.rule);
            grants
                .chain(c.denies.iter().copied())
                .chain(c.floors.iter().copied())
        })
        .collect();
    rules.sort_by_key(|r| r.0);
    rules.dedup();
    let mut out = String::new();
    for r in rules {
        let Some(cond) = p.rules.get(r.0 as usize).and_then(|r| r.condition.as_ref()) else {
            continue;
        };
        let text = loaded.src.get(cond.span.start..cond.span.end).unwrap_or("");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let n = line(p, r);
        out.push_str(&if markdown {
            format!("- `@{n}`: when `{text}`\n")
        } else {
            format!("  @{n}: when {text}\n")
        });
    }
    if out.is_empty() {
        return out;
    }
    format!("\nconditions:\n{out}")
}

fn human(loaded: &Loaded, cells: &[Vec<Cell>]) -> String {
    let p = &loaded.policy;
    let width = p.tools.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut out = format!("permission matrix of `{}`\n", loaded.file);
    for row in cells {
        let Some(first) = row.first() else { continue };
        out.push_str(&format!(
            "\nagent {}\n",
            p.agents[first.agent.0 as usize].name
        ));
        for c in row {
            let tool = &p.tools[c.tool.0 as usize].name;
            out.push_str(&format!("  {tool:width$}  {}\n", cell_text(p, c)));
        }
    }
    out.push_str(&conditions(loaded, cells, false));
    out.push_str(&provenance(loaded, cells, false));
    out.push_str(&format!("\n{LEGEND}\n"));
    out
}

/// The output labels of tools that have any besides the default `untrusted`,
/// and the `endorse` paths of the shown grants.
fn provenance(loaded: &Loaded, cells: &[Vec<Cell>], markdown: bool) -> String {
    let p = &loaded.policy;
    let code = |t: String| if markdown { format!("`{t}`") } else { t };
    let item = if markdown { "- " } else { "  " };
    let mut out = String::new();
    let labelled = p
        .tools
        .iter()
        .filter(|t| t.trust == ir::Trust::Trusted || !t.outputs.is_empty());
    for t in labelled {
        out.push_str(&format!("{item}{}: {}\n", code(t.name.clone()), labels(t)));
    }
    if !out.is_empty() {
        out = format!("\noutput labels:\n{out}");
    }
    let mut rules: Vec<ir::RuleId> = cells
        .iter()
        .flatten()
        .flat_map(|c| c.grants.iter().map(|g| g.rule))
        .collect();
    rules.sort_by_key(|r| r.0);
    rules.dedup();
    let mut endorse = String::new();
    for r in rules {
        let Some(rule) = p.rules.get(r.0 as usize).filter(|r| !r.endorse.is_empty()) else {
            continue;
        };
        let paths: Vec<String> = rule
            .endorse
            .iter()
            .map(|path| code(format!("args.{}", path.join("."))))
            .collect();
        endorse.push_str(&format!(
            "{item}@{}: endorse {}\n",
            rule.line,
            paths.join(", ")
        ));
    }
    if !endorse.is_empty() {
        out.push_str(&format!(
            "\nendorsements (trusted once approved):\n{endorse}"
        ));
    }
    out
}

/// `trusted; [].email: trusted, [].note: untrusted`.
pub(crate) fn labels(t: &ir::Tool) -> String {
    let fields: Vec<String> = t
        .outputs
        .iter()
        .map(|o| {
            let path = toolgate_syntax::ast::output_path_text(&o.path);
            format!("{path}: {}", o.trust.as_str())
        })
        .collect();
    let mut text = t.trust.as_str().to_string();
    if !fields.is_empty() {
        text.push_str(&format!("; {}", fields.join(", ")));
    }
    text
}

fn markdown(loaded: &Loaded, agents: &[ir::AgentId], cells: &[Vec<Cell>]) -> String {
    let p = &loaded.policy;
    let cell = |s: String| s.replace('|', "\\|");
    let mut out = format!("Permission matrix of `{}`\n\n| tool |", loaded.file);
    for a in agents {
        out.push_str(&format!(" {} |", cell(p.agents[a.0 as usize].name.clone())));
    }
    out.push_str(&format!("\n|---|{}\n", "---|".repeat(agents.len())));
    for t in 0..p.tools.len() {
        out.push_str(&format!("| `{}` |", p.tools[t].name));
        for row in cells {
            let text = row.get(t).map(|c| cell_text(p, c)).unwrap_or_default();
            out.push_str(&format!(" {} |", cell(text)));
        }
        out.push('\n');
    }
    out.push_str(&conditions(loaded, cells, true));
    out.push_str(&provenance(loaded, cells, true));
    out.push_str(&format!("\n{LEGEND}\n"));
    out
}

fn json_doc(loaded: &Loaded, cells: &[Vec<Cell>]) -> Json {
    let p = &loaded.policy;
    let at = |r: ir::RuleId| format!("{}:{}", loaded.file, line(p, r));
    let condition = |r: ir::RuleId| {
        let cond = p.rules.get(r.0 as usize)?.condition.as_ref()?;
        let text = loaded.src.get(cond.span.start..cond.span.end)?;
        Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let cells: Vec<Json> = cells
        .iter()
        .flatten()
        .map(|c| {
            let grants: Vec<Json> = c
                .grants
                .iter()
                .map(|g| json!({ "grant": grant_text(&g.kind), "condition": condition(g.rule), "rule": at(g.rule) }))
                .collect();
            json!({
                "agent": p.agents[c.agent.0 as usize].name,
                "tool": p.tools[c.tool.0 as usize].name,
                "summary": cell_text(p, c),
                "always_denied": c.always_denied(),
                "denied_by": c.denied_by.map(at),
                "writes_off": c.writes_off,
                "grants": grants,
                "conditional_denies": c.denies.iter().map(|d| json!({ "rule": at(*d), "condition": condition(*d) })).collect::<Vec<_>>(),
                "approval_floors": c.floors.iter().map(|f| json!({ "rule": at(*f), "condition": condition(*f) })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let labels: Vec<Json> = p
        .tools
        .iter()
        .map(|t| {
            let outputs: Vec<Json> = t
                .outputs
                .iter()
                .map(|o| json!({ "path": toolgate_syntax::ast::output_path_text(&o.path), "label": o.trust.as_str() }))
                .collect();
            json!({ "tool": t.name, "label": t.trust.as_str(), "outputs": outputs })
        })
        .collect();
    let endorse: Vec<Json> = p
        .rules
        .iter()
        .filter(|r| !r.endorse.is_empty())
        .map(|r| json!({ "rule": at(r.id), "endorse": r.endorse.iter().map(|path| format!("args.{}", path.join("."))).collect::<Vec<_>>() }))
        .collect();
    json!({ "policy": loaded.file, "cells": cells, "labels": labels, "endorse": endorse })
}
