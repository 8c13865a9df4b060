//! `policyc eval` and `policyc explain`.

use crate::cli::{Color, EvalArgs, ExplainArgs};
use crate::lines::LineError;
use crate::{diag, lines, Exit};
use serde_json::json;
use std::io::Write as _;
use std::path::Path;
use toolgate_check::ir;
use toolgate_check::time;
use toolgate_engine::provenance::SessionView;
use toolgate_engine::{Engine, Finding, Timestamp, Verdict};
use toolgate_runtime::gateway::Call;

/// A policy that checked clean, with its text.
pub(crate) struct Loaded {
    pub policy: ir::Policy,
    pub src: String,
    pub file: String,
}

/// Reads, parses and checks a policy; renders its errors and fails when it has any.
pub(crate) fn load(path: &Path) -> Result<Loaded, Exit> {
    let bytes = std::fs::read(path).map_err(|e| {
        eprintln!("error: cannot read `{}`: {e}", path.display());
        Exit::Usage
    })?;
    let report = diag::analyze(path, &bytes);
    if report.errors() > 0 {
        let mut out = String::new();
        report.render_human(Color::Auto, &mut out);
        eprint!("{out}");
        eprintln!(
            "error: `{}` has errors; nothing was evaluated",
            path.display()
        );
        return Err(Exit::Findings);
    }
    let Some(policy) = report.policy else {
        eprintln!("error: `{}` did not check", path.display());
        return Err(Exit::Findings);
    };
    Ok(Loaded {
        policy,
        src: report.src,
        file: path.display().to_string(),
    })
}

pub(crate) fn engine(loaded: &Loaded) -> Result<Engine, Exit> {
    Engine::new(&loaded.policy, &loaded.file).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Usage
    })
}

/// A request file: one wire call (`POST /v1/decide`'s body), its id optional.
fn read_request(path: &Path) -> Result<Call, Exit> {
    let bytes = std::fs::read(path).map_err(|e| {
        eprintln!("error: cannot read `{}`: {e}", path.display());
        Exit::Usage
    })?;
    let fits = bytes.len() <= lines::MAX_LINE;
    lines::object(fits, bytes.trim_ascii_end())
        .and_then(|obj| lines::call(obj, false))
        .map_err(|e| {
            let at = e.field.map_or(String::new(), |f| format!(" (`{f}`)"));
            eprintln!(
                "error: invalid request in `{}`{at}: {}",
                path.display(),
                e.message
            );
            Exit::Findings
        })
}

pub(crate) fn run(args: &EvalArgs) -> Exit {
    match eval(args) {
        Ok(exit) | Err(exit) => exit,
    }
}

/// The `now` of each decision: `--now` (checked before anything is read), or
/// the system clock at that decision.
pub(crate) fn clock(now: Option<&str>) -> Result<impl Fn() -> Timestamp, Exit> {
    let fixed = match now {
        Some(text) => Some(time::parse_datetime(text).ok_or_else(|| {
            eprintln!(
                "error: `--now` must be an RFC 3339 datetime with an offset such as 2026-11-22T10:00:00Z, not `{text}`"
            );
            Exit::Usage
        })?),
        None => None,
    };
    Ok(move || fixed.unwrap_or_else(Timestamp::now))
}

fn eval(args: &EvalArgs) -> Result<Exit, Exit> {
    let now = clock(args.now.as_deref())?;
    let loaded = load(&args.policy)?;
    let engine = engine(&loaded)?;
    if let Some(path) = &args.request {
        let call = read_request(path)?;
        let req = call.as_request().at(now());
        println!("{}", engine.decide(&req).to_json(&req));
        return Ok(Exit::Ok);
    }
    let Some(path) = &args.requests else {
        return Err(Exit::Usage);
    };
    each_request(path, |id, call| {
        let req = call.as_request().at(now());
        let mut decided = engine.decide(&req).to_json(&req);
        if let (Some(id), Some(obj)) = (id, decided.as_object_mut()) {
            obj.insert("id".into(), id);
        }
        format!("{decided}\n")
    })
}

/// Reads `path` (`-`: standard input) as JSON Lines of requests and prints
/// what `show` makes of each as soon as it is decided (the output is flushed
/// after every line, so the command works as a co-process). A line that is
/// not a request prints `{"line": N, "error": ...}` (with its `id` if it had one).
fn each_request(
    path: &Path,
    mut show: impl FnMut(Option<serde_json::Value>, Call) -> String,
) -> Result<Exit, Exit> {
    let mut input: Box<dyn std::io::BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).map_err(|e| {
            eprintln!("error: cannot read `{}`: {e}", path.display());
            Exit::Usage
        })?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut out = std::io::stdout().lock();
    let mut failed = 0usize;
    let mut line = Vec::new();
    let mut n = 0usize;
    loop {
        let read = lines::next(&mut *input, &mut line).map_err(|e| {
            eprintln!("error: cannot read `{}`: {e}", path.display());
            Exit::Usage
        })?;
        let Some(fits) = read else { break };
        n += 1;
        let (id, request) = request_of(fits, &line);
        let printed = match request {
            Ok(call) => show(id, call),
            Err(error) => {
                failed += 1;
                let mut shown = error.to_json(n);
                if let Some(id) = id {
                    shown["id"] = id;
                }
                format!("{shown}\n")
            }
        };
        out.write_all(printed.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|_| Exit::Usage)?;
    }
    if failed > 0 {
        eprintln!("error: {failed} request line(s) could not be read");
        return Ok(Exit::Findings);
    }
    Ok(Exit::Ok)
}

/// One request line (`fits`: it was no longer than [`lines::MAX_LINE`]) ->
/// its `id` (echoed back: a string, or on an error any scalar it was) and
/// the call, read as the HTTP API reads one (toolgate-api's conversion).
fn request_of(fits: bool, line: &[u8]) -> (Option<serde_json::Value>, Result<Call, LineError>) {
    let obj = match lines::object(fits, line) {
        Ok(obj) => obj,
        Err(e) => return (None, Err(e)),
    };
    let id = obj
        .get("id")
        .filter(|v| !v.is_object() && !v.is_array())
        .cloned();
    let call = lines::call(obj, false);
    let id = match &call {
        Ok(c) if c.id.is_empty() => None,
        Ok(c) => Some(serde_json::Value::String(c.id.clone())),
        Err(_) => id,
    };
    (id, call)
}

pub(crate) fn explain(args: &ExplainArgs) -> Exit {
    let run = || -> Result<Exit, Exit> {
        let now = clock(args.now.as_deref())?;
        let loaded = load(&args.policy)?;
        let engine = engine(&loaded)?;
        let session = match &args.session {
            Some(path) => Some(crate::session_file::read(path, &loaded.policy)?),
            None => None,
        };
        let view = session.as_ref().map(|s| s as &dyn SessionView);
        if let Some(path) = &args.requests {
            let mut first = true;
            return each_request(path, |id, call| {
                let req = toolgate_engine::Request {
                    session: view,
                    ..call.as_request().at(now())
                };
                let mut text = if first { String::new() } else { "\n".into() };
                first = false;
                if let Some(id) = id {
                    text.push_str(&format!("id: {id}\n"));
                }
                text.push_str(&explanation(&loaded, &engine, &req));
                escape_controls(&text)
            });
        }
        let Some(path) = &args.request else {
            return Err(Exit::Usage);
        };
        let call = read_request(path)?;
        let req = toolgate_engine::Request {
            session: view,
            ..call.as_request().at(now())
        };
        print!("{}", escape_controls(&explanation(&loaded, &engine, &req)));
        Ok(Exit::Ok)
    };
    match run() {
        Ok(exit) | Err(exit) => exit,
    }
}

/// `text` with every control character except newline and tab, and every
/// bidirectional override or isolate, written as a Rust escape (`\u{1b}`),
/// so that nothing a request carries can drive the reader's terminal.
pub(crate) fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() && c != '\n' && c != '\t') || bidi {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Why the request fails the policy's context or argument schema, if it
/// does: the engine checks both before any rule, and denies on a failure.
fn schema_failure(p: &ir::Policy, req: &toolgate_engine::Request<'_>) -> Option<String> {
    let tool = p.tool_id(req.tool)?;
    p.agent_id(req.agent)?;
    if let Err(why) = toolgate_engine::schema::context(&p.envs, &p.context, req.context) {
        return Some(why);
    }
    let tool = p.tools.get(tool.0 as usize)?;
    let schema = tool.schema.as_ref()?;
    toolgate_engine::schema::check(req.args, schema, tool.open).err()
}

/// A rule's text after its `@id("...")` / `@accepted_risk("...")`
/// annotations (which `explain` shows on their own), so its snippet is the
/// rule itself.
fn without_annotations(text: &str) -> &str {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix('@') {
        match annotation_len(after) {
            Some(n) => rest = after.get(n..).unwrap_or("").trim_start(),
            None => break,
        }
    }
    rest
}

/// The length of `name("...")` at the start of `s` (the string may hold `)`
/// and escaped quotes), or `None` if it is not one.
fn annotation_len(s: &str) -> Option<usize> {
    let open = s.find("(\"")?;
    let mut escaped = false;
    for (i, c) in s.get(open + 2..)?.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                let after = open + 2 + i + 1;
                let close = s.get(after..)?.find(')')?;
                return Some(after + close + 1);
            }
            _ => {}
        }
    }
    None
}

/// For each `x from SOURCE` of `rule`: the value and which source satisfied
/// it, or where it was seen instead.
fn provenance_lines(
    loaded: &Loaded,
    req: &toolgate_engine::Request<'_>,
    rule: ir::RuleId,
) -> String {
    let mut out = String::new();
    for line in provenance_findings(&loaded.policy, &loaded.src, req, &[rule]) {
        out.push_str(&format!("         {line}\n"));
    }
    out
}

/// For each `x from SOURCE` of `rules` (`src`: the policy's text): "`cond`
/// with `value` holds: SOURCES" (or "fails: found only in ...", "cannot be
/// evaluated: ..."). `explain` and `replay` word provenance alike.
pub(crate) fn provenance_findings(
    policy: &ir::Policy,
    src: &str,
    req: &toolgate_engine::Request<'_>,
    rules: &[ir::RuleId],
) -> Vec<String> {
    let mut out = Vec::new();
    for t in toolgate_engine::explain_provenance(policy, req, rules) {
        let cond = src.get(t.at.start..t.at.end).unwrap_or("");
        let cond = cond.split_whitespace().collect::<Vec<_>>().join(" ");
        let value = t.value.map_or(String::new(), |v| format!(" with `{v}`"));
        let found = match t.finding {
            Finding::Holds(by) => format!("holds: {}", by.join("; ")),
            Finding::Fails(seen) if seen.is_empty() => "fails: not found in the session".into(),
            Finding::Fails(seen) => format!("fails: found only in {}", seen.join("; ")),
            Finding::Error(why) => format!("cannot be evaluated: {why}"),
        };
        out.push(format!("`{cond}`{value} {found}"));
    }
    out
}

fn explanation(loaded: &Loaded, engine: &Engine, req: &toolgate_engine::Request<'_>) -> String {
    let p = &loaded.policy;
    let lines = toolgate_syntax::LineIndex::new(&loaded.src);
    let snippet = |span: toolgate_syntax::ast::Span| -> String {
        let text = without_annotations(loaded.src.get(span.start..span.end).unwrap_or(""));
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("").trim().to_string();
        if lines.next().is_some() {
            format!("{first} …")
        } else {
            first
        }
    };
    let mut out = format!(
        "request: agent `{}` calls `{}` for tenant `{}` in env `{}`\n",
        req.agent, req.tool, req.context.tenant, req.context.env
    );
    if let Some(now) = req.now {
        out.push_str(&format!("now: {now} (what the policy's `now` reads)\n"));
    }
    out.push('\n');
    let traces = toolgate_engine::explain(p, req);
    if traces.is_empty() {
        out.push_str("no rule names this agent and tool\n");
    } else {
        out.push_str(&format!(
            "rules considered for ({}, {}), in decision order:\n",
            req.agent, req.tool
        ));
    }
    for t in &traces {
        let rule = &p.rules[t.rule.0 as usize];
        let id = rule
            .name
            .as_ref()
            .map_or(String::new(), |n| format!(" @id({n})"));
        out.push_str(&format!(
            "  {}:{}:{}{id}  {}\n",
            loaded.file,
            rule.line,
            rule.column,
            snippet(rule.span)
        ));
        if let Some(risk) = &rule.accepted_risk {
            out.push_str(&format!("      accepted risk: {risk}\n"));
        }
        let verdict = match &t.verdict {
            Verdict::Unconditional => "matches (no condition)".to_string(),
            Verdict::Holds => "matches: its condition holds".to_string(),
            Verdict::False { at } => format!("does not match: `{}` is false", snippet(*at)),
            Verdict::Error {
                at,
                missing,
                session,
            } => {
                let why = match (*missing, *session) {
                    (true, _) => "reads a value the request does not have",
                    (_, true) => "needs the call's session, which it does not have",
                    _ => "has a value of the wrong type",
                };
                let effect = match rule.effect {
                    ir::Effect::Deny => "so this deny applies",
                    ir::Effect::Floor(_) => "so this approval floor applies",
                    _ => "so this grant does not apply",
                };
                let (l, c) = lines.line_col(&loaded.src, at.start);
                format!(
                    "cannot be evaluated: `{}` ({l}:{c}) {why}, {effect}",
                    snippet(*at)
                )
            }
        };
        out.push_str(&format!("      -> {verdict}\n"));
        out.push_str(&provenance_lines(loaded, req, t.rule));
    }
    let decision = engine.decide(req);
    let json = decision.to_json(req);
    if let Some(why) = schema_failure(p, req) {
        out.push_str(&format!(
            "\nthe schema check decided before any rule: {why}\n"
        ));
    }
    out.push_str(&format!(
        "\ndecision: {} ({})\n",
        decision.outcome().as_str(),
        decision.reason()
    ));
    if let Some(r) = decision.rule() {
        out.push_str(&format!("  by rule {r}\n"));
    }
    for key in ["scope", "approval", "budget", "fallback"] {
        if !json[key].is_null() && json[key] != json!({}) {
            out.push_str(&format!("  {key}: {}\n", json[key]));
        }
    }
    out
}
