//! `policyc mcp-import`: the tool declarations of a policy from an MCP
//! server's `tools/list`, asked live over stdio (`-- COMMAND ...`, with the
//! rmcp client) or read from a JSON file (`--from tools.json`).
//!
//! Class from the annotations (`readOnlyHint: true` → `read`; otherwise
//! `write`, `irreversible` unless `destructiveHint` is `false`); the
//! description as a comment; the input schema through [`schema::convert`],
//! whose notes are printed as warnings naming tool and field. The output is
//! checked and printed canonically (as `policyc fmt` would) and refused if it
//! does not check clean. It grants nothing: agents and rules are the user's.

mod schema;

use crate::cli::{Color, McpImportArgs};
use crate::{diag, Exit};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// How long the upstream gets to start, initialize and list its tools.
const LIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the tools came from: for the header comment and the policy's name.
struct Source {
    /// `server-name 1.2.3` or the file's path.
    label: String,
    /// The default policy name.
    name: String,
}

pub(crate) fn run(args: &McpImportArgs) -> Exit {
    let listed = match (&args.from, args.command.as_slice()) {
        (Some(path), []) => from_file(path),
        (None, [program, rest @ ..]) => live(program, rest),
        _ => Err("give either `--from tools.json` or `-- <server command...>`".into()),
    };
    let (tools, source) = match listed {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let name = args.name.clone().unwrap_or(source.name.clone());
    let (text, warnings) = match policy_text(&tools, &source.label, &name) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Findings;
        }
    };
    for w in &warnings {
        eprintln!("{w}");
    }
    let report = diag::analyze(Path::new("imported.policy"), text.as_bytes());
    if report.errors() > 0 || report.warnings() > 0 {
        let mut out = String::new();
        report.render_human(Color::Auto, &mut out);
        eprint!("{out}{text}");
        eprintln!("error: the imported policy does not check clean; nothing was written (please report this)");
        return Exit::Findings;
    }
    write_out(args.output.as_deref(), &text)
}

fn write_out(path: Option<&Path>, text: &str) -> Exit {
    let Some(path) = path else {
        print!("{text}");
        return Exit::Ok;
    };
    match std::fs::write(path, text) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            Exit::Usage
        }
    }
}

/// A `tools/list` result or a bare list of tools, from a file (`-`: stdin).
fn from_file(path: &Path) -> Result<(Vec<Value>, Source), String> {
    let shown = path.display().to_string();
    let text = if shown == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("`{shown}` is not JSON: {e}"))?;
    let tools = match json {
        Value::Array(tools) => tools,
        Value::Object(mut o) => match o.remove("tools") {
            Some(Value::Array(tools)) => tools,
            _ => return Err(format!("`{shown}` has no `tools` list")),
        },
        _ => {
            return Err(format!(
                "`{shown}` is neither a `tools/list` result nor a list"
            ))
        }
    };
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    Ok((
        tools,
        Source {
            label: format!("`{shown}`"),
            name: policy_name(stem),
        },
    ))
}

/// Starts the server, initializes, pages through `tools/list` and stops it.
fn live(program: &str, rest: &[String]) -> Result<(Vec<Value>, Source), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let shown = std::iter::once(program)
        .chain(rest.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let listed = runtime.block_on(async {
        tokio::time::timeout(LIVE_TIMEOUT, list_tools(program, rest))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {LIVE_TIMEOUT:?}")))
    });
    let (tools, server) = listed.map_err(|e| format!("`{shown}`: {e}"))?;
    let name = server
        .as_ref()
        .map_or_else(|| "imported".into(), |(n, _)| policy_name(n));
    let label = match server {
        Some((n, v)) => format!("server `{n}` {v} (`{shown}`)"),
        None => format!("`{shown}`"),
    };
    Ok((tools, Source { label, name }))
}

async fn list_tools(
    program: &str,
    rest: &[String],
) -> Result<(Vec<Value>, Option<(String, String)>), String> {
    use rmcp::ServiceExt as _;
    let mut command = tokio::process::Command::new(program);
    command.args(rest);
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let client = ().serve(transport).await.map_err(|e| format!("initialization failed: {e}"))?;
    let server = client.peer_info().and_then(|i| {
        let s = i.server_info.as_ref()?;
        Some((s.name.clone(), s.version.clone()))
    });
    let tools = client.list_all_tools().await;
    // Stopping the child is best effort: the tools are what was asked for.
    let _stopped = client.cancel().await;
    let tools = tools.map_err(|e| format!("`tools/list` failed: {e}"))?;
    let tools = tools
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read a tool: {e}"))?;
    Ok((tools, server))
}

/// The policy text (canonical layout) and the warnings for the tools.
fn policy_text(tools: &[Value], label: &str, name: &str) -> Result<(String, Vec<String>), String> {
    if !is_name(name) {
        return Err(format!(
            "`{}` is not a policy name (letters, digits, `_`, `-`, starting with a letter or `_`); give one with `--name`",
            name.escape_debug()
        ));
    }
    let mut warnings = Vec::new();
    let mut body = String::new();
    let mut seen: Vec<&str> = Vec::new();
    for tool in tools {
        let Some(decl) = declaration(tool, &seen, &mut warnings) else {
            continue;
        };
        seen.push(decl.0);
        body.push_str(&decl.1);
    }
    let mut text = format!(
        "// Imported by `policyc mcp-import` from {label}: {} of {} tools declared.\n\
         // Nothing is granted until agents and rules are added (docs/mcp.md).\n\
         policy {name};\n",
        seen.len(),
        tools.len()
    );
    text.push_str(&body);
    canonical(&text).map(|t| (t, warnings))
}

/// One tool's comment, declaration and enum rules, with its name; `None`
/// (and a warning) for a tool that cannot be declared.
fn declaration<'a>(
    tool: &'a Value,
    seen: &[&str],
    warnings: &mut Vec<String>,
) -> Option<(&'a str, String)> {
    let Some(name) = tool.get("name").and_then(Value::as_str) else {
        warnings.push(
            "warning[policyc::mcp_import::skipped]: a tool without a `name` is skipped".into(),
        );
        return None;
    };
    let skipped = |why: &str| {
        format!(
            "warning[policyc::mcp_import::skipped]: tool `{}`: {why}",
            name.escape_debug()
        )
    };
    if !is_tool_name(name) {
        warnings.push(skipped("the name is not a Toolgate tool name (`a.b`, each part letters, digits, `_`, `-`, starting with a letter or `_`); not declared, so the proxy hides it and denies every call to it"));
        return None;
    }
    if seen.contains(&name) {
        warnings.push(skipped("listed twice; only the first one is declared"));
        return None;
    }
    let converted = schema::convert(tool.get("inputSchema").unwrap_or(&Value::Null));
    for n in &converted.notes {
        warnings.push(format!(
            "warning[{}]: tool `{name}`, field `{}`: {}",
            n.kind.code(),
            n.field,
            n.message
        ));
    }
    let mut out = String::from("\n");
    out.push_str(&comment(tool));
    let _ = writeln!(out, "tool {name} {} {};", class(tool), converted.schema);
    for a in &converted.allowed {
        out.push_str(&enum_rule(name, a));
    }
    Some((name, out))
}

/// `read`, `write` or `write irreversible`, from the annotations.
fn class(tool: &Value) -> &'static str {
    let hint = |k: &str| {
        tool.get("annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_bool)
    };
    match (hint("readOnlyHint"), hint("destructiveHint")) {
        (Some(true), _) => "read",
        (_, Some(false)) => "write",
        _ => "write irreversible",
    }
}

/// The description (or title) as `//` lines, control characters dropped.
fn comment(tool: &Value) -> String {
    let text = ["description", "title"]
        .iter()
        .find_map(|k| tool.get(*k).and_then(Value::as_str))
        .or_else(|| tool.get("annotations")?.get("title")?.as_str())
        .unwrap_or("");
    let mut out = String::new();
    for line in text.trim().lines() {
        let line: String = line.chars().filter(|c| !c.is_control()).collect();
        let line = line.trim_end();
        let _ = writeln!(out, "//{}{line}", if line.is_empty() { "" } else { " " });
    }
    out
}

/// `deny TOOL when [has …] args.p not in [...]` for one enum.
fn enum_rule(tool: &str, a: &schema::Allowed) -> String {
    let path = a.path.join(".");
    let mut cond: Vec<String> = a
        .guards
        .iter()
        .map(|g| format!("has args.{}", g.join(".")))
        .collect();
    let values = a.values.join(", ");
    let each = if a.each { "any " } else { "" };
    cond.push(format!("{each}args.{path} not in [{values}]"));
    let what = if a.each { "each element of " } else { "" };
    format!(
        "deny {tool} when {} reason \"{what}`{path}` must be one of the values the server's schema lists\";\n",
        cond.join(" and ")
    )
}

/// The text as `policyc fmt` prints it (so the output is `fmt`-clean).
fn canonical(text: &str) -> Result<String, String> {
    let parsed = toolgate_syntax::parse(text);
    if let Some(e) = parsed.errors.first() {
        return Err(format!(
            "internal error: the imported policy does not parse ({e}); please report this\n{text}"
        ));
    }
    Ok(toolgate_syntax::print(&parsed.file, text))
}

/// A Toolgate name: `[A-Za-z_][A-Za-z0-9_-]*`.
fn is_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Names joined by `.`.
fn is_tool_name(s: &str) -> bool {
    s.split('.').all(is_name)
}

/// A server's or file's name as a policy name (other characters → `-`).
fn policy_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if is_name(&name) {
        name
    } else {
        "imported".into()
    }
}
