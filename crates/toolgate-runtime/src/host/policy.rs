//! Loading a policy file for the server: parse, check and compile it, or
//! refuse it with its diagnostics as JSON (for `POST /v1/policy/reload`).

use crate::gateway::CompiledPolicy;
use miette::Diagnostic;
use serde::Serialize;
use serde_json::{json, Value as Json};
use std::path::Path;
use toolgate_check::ir;

/// What `GET /v1/policy` shows of a policy.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicySummary {
    /// The `policy NAME;` name, if given.
    pub name: Option<String>,
    /// SHA-256 of the policy text (as journaled with every record).
    pub sha256: String,
    /// The file it was read from.
    pub file: String,
    /// When it was loaded (ms since the epoch).
    pub loaded_at: u64,
    /// Declared tools.
    pub tools: Vec<ToolSummary>,
    /// Agents with a block.
    pub agents: Vec<String>,
    /// Declared environments.
    pub envs: Vec<String>,
    /// Declared request-context fields (besides `tenant` and `env`), by name.
    pub context: Vec<String>,
}

/// A declared tool.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolSummary {
    /// Its dotted name.
    pub name: String,
    /// `read` or `write`.
    pub class: String,
    /// Declared `irreversible`.
    pub irreversible: bool,
}

/// A policy that checked clean, compiled.
pub struct Loaded {
    /// The gateway's form.
    pub compiled: CompiledPolicy,
    /// What the API shows.
    pub summary: PolicySummary,
    /// Warnings (the policy loads with them).
    pub warnings: Vec<Json>,
}

/// A policy that was refused: its text and why.
#[derive(Debug)]
pub struct Refused {
    /// The text (its hash is journaled).
    pub text: String,
    /// Every diagnostic, as JSON (`code`, `severity`, `message`, `line`, `column`).
    pub diagnostics: Vec<Json>,
}

/// Reads and compiles the policy at `path`; `now` is its load time.
pub fn load(path: &Path, now: u64) -> Result<Loaded, Refused> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Refused {
        text: String::new(),
        diagnostics: vec![json!({
            "code": "toolgate::server::policy_unreadable", "severity": "error",
            "message": format!("cannot read `{file}`: {e}"), "line": null, "column": null,
        })],
    })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    compile(&text, &file, now)
}

/// Parses, checks and compiles policy text.
pub fn compile(text: &str, file: &str, now: u64) -> Result<Loaded, Refused> {
    let refused = |diagnostics| Refused {
        text: text.to_string(),
        diagnostics,
    };
    let parsed = toolgate_syntax::parse(text);
    if !parsed.errors.is_empty() {
        let d = parsed.errors.iter().map(|e| diag_json(e, text)).collect();
        return Err(refused(d));
    }
    let checked = toolgate_check::check(&parsed.file, text);
    let diagnostics: Vec<Json> = checked
        .diagnostics
        .iter()
        .map(|d| diag_json(d, text))
        .collect();
    let Some(policy) = checked.policy else {
        return Err(refused(diagnostics));
    };
    let compiled = CompiledPolicy::new(&policy, text, file).map_err(|e| {
        refused(vec![json!({
            "code": "toolgate::server::policy_compile", "severity": "error",
            "message": e.to_string(), "line": null, "column": null,
        })])
    })?;
    let summary = summarize(&policy, compiled.hash(), file, now);
    Ok(Loaded {
        compiled,
        summary,
        warnings: diagnostics,
    })
}

fn summarize(policy: &ir::Policy, hash: &str, file: &str, now: u64) -> PolicySummary {
    PolicySummary {
        name: policy.name.clone(),
        sha256: hash.to_string(),
        file: file.to_string(),
        loaded_at: now,
        tools: policy
            .tools
            .iter()
            .map(|t| ToolSummary {
                name: t.name.clone(),
                class: match t.class {
                    ir::ToolClass::Read => "read".into(),
                    ir::ToolClass::Write => "write".into(),
                },
                irreversible: t.irreversible,
            })
            .collect(),
        agents: policy.agents.iter().map(|a| a.name.clone()).collect(),
        envs: policy.envs.clone(),
        context: policy.context.iter().map(|f| f.name.clone()).collect(),
    }
}

/// One diagnostic as JSON, positioned at its first primary label.
fn diag_json(d: &dyn Diagnostic, text: &str) -> Json {
    let labels: Vec<_> = d.labels().into_iter().flatten().collect();
    let label = labels.iter().find(|l| l.primary()).or(labels.first());
    let (line, column) = match label {
        Some(l) => {
            let (line, column) = position(text, l.offset());
            (json!(line), json!(column))
        }
        None => (Json::Null, Json::Null),
    };
    let warning = matches!(
        d.severity(),
        Some(miette::Severity::Warning | miette::Severity::Advice)
    );
    json!({
        "code": d.code().map(|c| c.to_string()),
        "severity": if warning { "warning" } else { "error" },
        "message": d.to_string(),
        "help": d.help().map(|h| h.to_string()),
        "line": line,
        "column": column,
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_with_errors_is_refused_with_positioned_diagnostics() {
        let refused = compile("tool a read;\nagent x { allow b; }\n", "p.policy", 0)
            .err()
            .unwrap();
        let d = &refused.diagnostics[0];
        assert_eq!(d["severity"], "error");
        assert_eq!(d["line"], 2);
        assert!(d["code"].as_str().unwrap().starts_with("toolgate::check::"));
        let syntax = compile("tool a read\n", "p.policy", 0).err().unwrap();
        assert!(syntax.diagnostics[0]["code"]
            .as_str()
            .unwrap()
            .starts_with("toolgate::syntax::"));
    }

    #[test]
    fn a_clean_policy_is_summarised() {
        let text = "policy p;\nenvs dev;\ncontext { account_id: string; }\ntool a.read read;\ntool a.write write irreversible;\nagent x { allow a.read; }\n";
        let loaded = compile(text, "p.policy", 7).ok().unwrap();
        let s = loaded.summary;
        assert_eq!(s.name.as_deref(), Some("p"));
        assert_eq!(s.loaded_at, 7);
        assert_eq!(s.agents, vec!["x".to_string()]);
        assert_eq!(s.context, vec!["account_id".to_string()]);
        assert_eq!(s.tools[1].class, "write");
        assert!(s.tools[1].irreversible);
        assert_eq!(s.sha256, loaded.compiled.hash());
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(position("ab\ncé d", 7), (2, 4));
        assert_eq!(position("x", 99), (1, 2));
    }
}
