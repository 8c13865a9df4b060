//! `policyc diff OLD NEW`: what a policy change grants, cell by cell, with a
//! witness request for each escalation (`toolgate_engine::compare`).

use crate::cli::{DiffArgs, DiffFormat};
use crate::eval::{engine, escape_controls, load};
use crate::Exit;
use serde_json::{json, Map, Value as Json};
use toolgate_engine::compare::{self, Change, Kind, Side};

pub(crate) fn run(args: &DiffArgs) -> Exit {
    match diff(args) {
        Ok(exit) | Err(exit) => exit,
    }
}

fn diff(args: &DiffArgs) -> Result<Exit, Exit> {
    let (old, new) = (load(&args.old)?, load(&args.new)?);
    let (oe, ne) = (engine(&old)?, engine(&new)?);
    let context: Map<String, Json> = match &args.context {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Json::Object(m)) => m,
            _ => {
                eprintln!("error: `--context` must be a JSON object");
                return Err(Exit::Usage);
            }
        },
    };
    let changes = compare::compare(
        &Side {
            policy: &old.policy,
            src: &old.src,
            engine: &oe,
        },
        &Side {
            policy: &new.policy,
            src: &new.src,
            engine: &ne,
        },
        &context,
    );
    let count = |k: Kind| changes.iter().filter(|c| c.kind == k).count();
    let unproven = changes
        .iter()
        .filter(|c| c.kind == Kind::Escalation && c.witness.is_none())
        .count();
    let summary = json!({
        "escalations": count(Kind::Escalation), "restrictions": count(Kind::Restriction),
        "neutral": count(Kind::Neutral), "unproven": unproven,
    });
    let out = match args.format {
        DiffFormat::Human => human(&old.file, &new.file, &changes, &summary),
        DiffFormat::Json => format!(
            "{}\n",
            json!({ "old": old.file, "new": new.file, "changes": changes.iter().map(|c| change_json(&old.file, &new.file, c)).collect::<Vec<_>>(), "summary": summary })
        ),
        DiffFormat::Sarif => format!("{}\n", sarif(&new.file, &changes)),
    };
    print!("{}", escape_controls(&out));
    if args.fail_on == Some(crate::cli::FailOn::Escalation) && count(Kind::Escalation) > 0 {
        return Ok(Exit::Findings);
    }
    Ok(Exit::Ok)
}

fn witness_json(c: &Change) -> Json {
    c.witness.as_ref().map_or(Json::Null, |w| {
        let mut ctx = w.request.context.fields.clone();
        ctx.insert("tenant".into(), json!(w.request.context.tenant));
        ctx.insert("env".into(), json!(w.request.context.env));
        json!({
            "request": { "agent": w.request.agent, "tool": w.request.tool, "args": w.request.args, "context": ctx },
            "old": w.old, "new": w.new,
        })
    })
}

fn change_json(old: &str, new: &str, c: &Change) -> Json {
    json!({
        "agent": c.agent, "tool": c.tool, "kind": c.kind.as_str(), "what": c.what,
        "old_rule": c.old_rule.map(|l| format!("{old}:{l}")),
        "new_rule": c.new_rule.map(|l| format!("{new}:{l}")),
        "witness": witness_json(c),
        "proven": c.kind != Kind::Escalation || c.witness.is_some(),
    })
}

fn human(old: &str, new: &str, changes: &[Change], summary: &Json) -> String {
    let mut out = format!("diff `{old}` -> `{new}`\n");
    for c in changes {
        let mark = match (c.kind, &c.witness) {
            (Kind::Escalation, None) => "escalation (unproven)",
            (k, _) => k.as_str(),
        };
        out.push_str(&format!("\n{mark}: {} × {}: {}\n", c.agent, c.tool, c.what));
        if let Some(l) = c.old_rule {
            out.push_str(&format!("  old: {old}:{l}\n"));
        }
        if let Some(l) = c.new_rule {
            out.push_str(&format!("  new: {new}:{l}\n"));
        }
        if let Some(w) = &c.witness {
            out.push_str(&format!(
                "  witness: {}\n    old decides {}, new decides {}\n",
                witness_json(c)["request"],
                w.old,
                w.new
            ));
        } else if c.kind == Kind::Escalation {
            out.push_str(
                "  no witness: the bounded search found no request NEW decides more permissively\n",
            );
        }
    }
    out.push_str(&format!(
        "\n{} escalations ({} unproven), {} restrictions, {} neutral\n",
        summary["escalations"], summary["unproven"], summary["restrictions"], summary["neutral"]
    ));
    out
}

/// Escalations as SARIF results at the NEW policy's lines (the file's first line when no rule is involved).
fn sarif(new: &str, changes: &[Change]) -> Json {
    let results: Vec<Json> = changes
        .iter()
        .filter(|c| c.kind == Kind::Escalation)
        .map(|c| {
            let mut text = format!("{} × {}: {}", c.agent, c.tool, c.what);
            if let Some(w) = &c.witness {
                text.push_str(&format!(
                    "\nwitness: {} (old: {}, new: {})",
                    witness_json(c)["request"],
                    w.old,
                    w.new
                ));
            } else {
                text.push_str("\nunproven: no witness found");
            }
            json!({
                "ruleId": "toolgate::diff::escalation",
                "level": "warning",
                "message": { "text": text },
                "locations": [{ "physicalLocation": {
                    "artifactLocation": { "uri": new.replace('\\', "/") },
                    "region": { "startLine": c.new_rule.unwrap_or(1) },
                }}],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "policyc diff",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": [{
                    "id": "toolgate::diff::escalation",
                    "shortDescription": { "text": "The new policy grants more than the old one." },
                    "fullDescription": { "text": "A change that grants more: a new grant, a deny removed or narrowed, a weaker approval, a raised budget, a credential scope that drops a dimension, a widened condition, or a newly visible tool. The message names a witness request when one was found." },
                }],
            }},
            "results": results,
        }],
    })
}
