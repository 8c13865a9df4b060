//! `policyc import config.yaml`: the widely copied YAML safe-default
//! configuration, converted into a policy (mapping: `docs/import.md`).
//!
//! The YAML has no agents, so the policy declares one (`--agent`, default
//! `assistant`) and says so. Every key becomes a line with a comment naming
//! the key it came from; unknown keys are errors; the output is checked
//! before it is printed and is refused if it does not check clean.

use crate::cli::{Color, ImportArgs};
use crate::{diag, Exit};
use serde::Deserialize;
use std::path::Path;

/// The YAML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    #[serde(default)]
    tools: ReadTools,
    write_tools: Option<WriteTools>,
    credentials: Option<Credentials>,
    #[serde(default)]
    approvals: Approvals,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadTools {
    #[serde(default)]
    allow: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteTools {
    enabled: bool,
    require_approval: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    scope: Scope,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scope {
    tenant: Option<bool>,
    environment: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Approvals {
    #[serde(default)]
    required_for: Vec<String>,
}

pub(crate) fn run(args: &ImportArgs) -> Exit {
    let shown = args.config.display().to_string();
    let src = match std::fs::read_to_string(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read `{shown}`: {e}");
            return Exit::Usage;
        }
    };
    let fail = |message: &str, at: Option<usize>| {
        let span = at.map(|i| i..i.saturating_add(1).min(src.len()));
        eprint!(
            "{}",
            diag::render_at(
                &shown,
                &src,
                "policyc::import::invalid",
                message,
                span,
                Color::Auto
            )
        );
        Exit::Findings
    };
    let seed: Seed = match serde_yaml_ng::from_str(&src) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string(), e.location().map(|l| l.index())),
    };
    let name = Path::new(&args.config)
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
        })
        .filter(|s| s.starts_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or_else(|| "imported".into());
    let text = match convert(&seed, &shown, &name, &args.agent) {
        Ok(t) => t,
        Err(e) => return fail(&e, None),
    };
    let report = diag::analyze(Path::new("imported.policy"), text.as_bytes());
    if report.errors() > 0 || report.warnings() > 0 {
        let mut out = String::new();
        report.render_human(Color::Auto, &mut out);
        eprint!("{out}");
        eprintln!("error: the converted policy does not check clean; nothing was written");
        return Exit::Findings;
    }
    print!("{text}");
    Exit::Ok
}

/// The policy text for a seed configuration.
fn convert(seed: &Seed, file: &str, name: &str, agent: &str) -> Result<String, String> {
    let writes = &seed.approvals.required_for;
    // Names go into the policy's text: only plain names, so that none can add a rule.
    for n in seed
        .tools
        .allow
        .iter()
        .chain(writes)
        .chain(std::iter::once(&agent.to_string()))
    {
        let plain = n.starts_with(|c: char| c.is_ascii_alphabetic())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !plain {
            return Err(format!(
                "`{}` is not a plain name (letters, digits, `.`, `_`, `-`, starting with a letter)",
                n.escape_debug()
            ));
        }
    }
    if let Some(both) = seed.tools.allow.iter().find(|t| writes.contains(t)) {
        return Err(format!(
            "`{both}` is in both `tools.allow` and `approvals.required_for`"
        ));
    }
    let write_cfg = seed.write_tools.as_ref();
    if write_cfg.and_then(|w| w.require_approval) == Some(false) && !writes.is_empty() {
        return Err("`write_tools.require_approval: false` has no equivalent: Toolgate has no unlimited auto-approval (use `auto-approve limit N per W` by hand)".into());
    }
    let scope = scope_clause(seed.credentials.as_ref())?;
    let mut out = format!("// Converted by `policyc import` from `{file}`. Each line says which key it comes from.\npolicy {name};\n\n");
    for t in &seed.tools.allow {
        out.push_str(&format!("tool {t} read; // tools.allow\n"));
    }
    for t in writes {
        out.push_str(&format!(
            "tool {t} write; // approvals.required_for (a tool needing approval is a write tool)\n"
        ));
    }
    let enabled = write_cfg.is_some_and(|w| w.enabled);
    out.push_str(&format!(
        "\n// write_tools.enabled: {enabled}\nwrites {};\n",
        if enabled { "enabled" } else { "disabled" }
    ));
    out.push_str(&format!(
        "\n// The YAML format has no agents: one agent, `{agent}` (--agent), holds every grant.\nagent {agent} {{\n"
    ));
    for t in &seed.tools.allow {
        out.push_str(&format!(
            "  allow {t}{scope}; // tools.allow; credentials.scope\n"
        ));
    }
    for t in writes {
        out.push_str(&format!(
            "  write {t} require approval{scope}; // approvals.required_for, write_tools.require_approval; credentials.scope\n"
        ));
    }
    out.push_str("}\n");
    Ok(out)
}

/// `credentials.scope` as a scope clause (`""`: the default, tenant and env).
fn scope_clause(c: Option<&Credentials>) -> Result<String, String> {
    let Some(c) = c else {
        return Ok(String::new());
    };
    match (c.scope.tenant.unwrap_or(false), c.scope.environment.unwrap_or(false)) {
        (true, true) => Ok(" scope tenant, env".into()),
        (true, false) => Ok(" scope tenant".into()),
        (false, true) => Ok(" scope env".into()),
        (false, false) => Err("`credentials.scope` names neither `tenant` nor `environment`: a credential scoped to nothing is not expressible".into()),
    }
}
