//! `policyc replay --journal AUDIT.jsonl --policy NEW`: every `decision`
//! record of a real audit journal re-decided by a candidate policy, and the
//! flips counted.
//!
//! A decision record holds the agent, tool, tenant, env and the arguments
//! (fields marked `redact` replaced by the string `"[redacted]"`, all of them
//! `null` when too large), not the other context fields. So a decision is
//! `unknown`, never guessed, when a rule of the candidate policy that applies
//! to the call reads a context field (other than tenant and env), an argument
//! that was redacted, or any argument when they were not recorded; and when
//! the recorded outcome came from runtime state rather than the policy (the
//! kill switch, an exhausted budget, an argument size limit). Otherwise the
//! missing context fields and redacted values are filled with placeholders
//! of their declared type (no rule reads them) and the engine decides.

use crate::cli::{ReplayArgs, ShadowFormat};
use crate::eval::{engine, escape_controls, load};
use crate::{lines, Exit};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use toolgate_check::ir;
use toolgate_engine::{Engine, OwnedRequest};

/// At most this many example call ids per flip kind.
const EXAMPLES: usize = 5;

/// The counts and examples of one kind of result.
#[derive(Default)]
struct Tally {
    count: u64,
    examples: Vec<String>,
}

impl Tally {
    fn add(&mut self, call: &str) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(call.to_string());
        }
    }
}

#[derive(Default)]
struct Report {
    decisions: u64,
    same: u64,
    flips: BTreeMap<String, Tally>,
    unknown: BTreeMap<String, Tally>,
    more_permissive: u64,
    bad_lines: u64,
}

pub(crate) fn run(args: &ReplayArgs, journal: &Path, policy: &Path) -> Exit {
    let go = || -> Result<Exit, Exit> {
        let loaded = load(policy)?;
        let engine = engine(&loaded)?;
        let (approvals, exhausted) = first_pass(journal)?;
        let mut report = Report::default();
        each_record(journal, |line, rec| match rec {
            Some(rec) if rec["kind"] == "decision" => {
                let body = &rec["body"];
                // `now` is the record's own time, so a replay is deterministic.
                let now = rec["ts_ms"]
                    .as_i64()
                    .and_then(|ms| toolgate_engine::Timestamp::from_millisecond(ms).ok());
                decide(
                    &loaded.policy,
                    &engine,
                    (body, now),
                    &approvals,
                    &exhausted,
                    &mut report,
                );
            }
            Some(_) => {}
            None => {
                report.bad_lines += 1;
                eprintln!(
                    "error: line {line} of `{}` is not a journal record",
                    journal.display()
                );
            }
        })?;
        print!("{}", escape_controls(&render(args.format, &report)));
        if report.bad_lines > 0 {
            return Ok(Exit::Usage);
        }
        if report.more_permissive > 0 && !args.allow_escalation {
            return Ok(Exit::Findings);
        }
        Ok(Exit::Ok)
    };
    match go() {
        Ok(e) | Err(e) => e,
    }
}

/// Calls `f` with each line's number and record (`None`: not a JSON object).
fn each_record(path: &Path, mut f: impl FnMut(usize, Option<Json>)) -> Result<(), Exit> {
    let file = std::fs::File::open(path).map_err(|e| {
        eprintln!("error: cannot read `{}`: {e}", path.display());
        Exit::Usage
    })?;
    let mut input = std::io::BufReader::new(file);
    let mut buf = Vec::new();
    let mut n = 0;
    while let Some(fits) = lines::next(&mut input, &mut buf).map_err(|e| {
        eprintln!("error: cannot read `{}`: {e}", path.display());
        Exit::Usage
    })? {
        n += 1;
        let rec = if fits {
            serde_json::from_slice::<Json>(&buf)
                .ok()
                .filter(Json::is_object)
        } else {
            None
        };
        f(n, rec);
    }
    Ok(())
}

type Key = (String, String);
type Approvals = HashMap<Key, (Option<String>, u64)>;

fn key_of(body: &Json) -> Key {
    let s = |k: &str| body[k].as_str().unwrap_or("").to_string();
    (s("tenant"), s("call"))
}

/// The approvals requested (group, count) and the calls whose budget was exhausted.
fn first_pass(journal: &Path) -> Result<(Approvals, HashSet<Key>), Exit> {
    let (mut approvals, mut exhausted) = (HashMap::new(), HashSet::new());
    each_record(journal, |_, rec| {
        let Some(rec) = rec else { return };
        let body = &rec["body"];
        match rec["kind"].as_str() {
            Some("approval_requested") => {
                let group = body["group"].as_str().map(String::from);
                approvals.insert(key_of(body), (group, body["count"].as_u64().unwrap_or(1)));
            }
            Some("budget_exhausted") => {
                exhausted.insert(key_of(body));
            }
            _ => {}
        }
    })?;
    Ok((approvals, exhausted))
}

/// Why the candidate's decision cannot be known from the record, if it cannot.
fn unknowable(p: &ir::Policy, body: &Json, exhausted: &HashSet<Key>) -> Option<String> {
    let reason = body["reason"].as_str().unwrap_or("");
    if reason.contains("kill switch") {
        return Some("decided by the kill switch".into());
    }
    if exhausted.contains(&key_of(body)) {
        return Some("decided by budget state".into());
    }
    if reason.contains("bytes, over the limit") {
        return Some("decided by the argument size limit".into());
    }
    let (agent, tool) = (
        p.agent_id(body["agent"].as_str()?),
        p.tool_id(body["tool"].as_str()?),
    );
    let (Some(agent), Some(tool)) = (agent, tool) else {
        return None;
    };
    let redacted = redacted_paths(&body["args"], &mut Vec::new());
    for rule in p
        .rules
        .iter()
        .filter(|r| toolgate_engine::matrix::applies(r, agent, tool))
    {
        let mut reads = Vec::new();
        if let Some(c) = &rule.condition {
            paths(c, &mut reads);
        }
        for path in reads {
            match path {
                ir::Path::Ctx(f) => {
                    return Some(format!(
                        "a rule reads `ctx.{f}`, which decision records do not hold"
                    ))
                }
                ir::Path::Args(_) if body["args"].is_null() => {
                    return Some("the arguments were not recorded (too large)".into())
                }
                ir::Path::Args(segs)
                    if redacted
                        .iter()
                        .any(|r| segs.starts_with(r) || r.starts_with(&segs)) =>
                {
                    return Some(format!(
                        "a rule reads `args.{}`, which was redacted",
                        segs.join(".")
                    ));
                }
                _ => {}
            }
        }
    }
    None
}

fn redacted_paths(v: &Json, at: &mut Vec<String>) -> Vec<Vec<String>> {
    match v {
        Json::String(s) if s == "[redacted]" => vec![at.clone()],
        Json::Object(m) => m
            .iter()
            .flat_map(|(k, v)| {
                at.push(k.clone());
                let out = redacted_paths(v, at);
                at.pop();
                out
            })
            .collect(),
        // A redacted value inside a list: the whole list counts as read.
        Json::Array(items)
            if items
                .iter()
                .any(|i| !redacted_paths(i, &mut Vec::new()).is_empty()) =>
        {
            vec![at.clone()]
        }
        _ => Vec::new(),
    }
}

fn paths(e: &ir::Expr, out: &mut Vec<ir::Path>) {
    use ir::ExprKind as K;
    match &e.kind {
        K::Path(p) | K::Has(p) => out.push(p.clone()),
        K::Lit(_) | K::Elem | K::Now | K::Duration(_) | K::SessionTainted | K::SessionCalls(_) => {}
        K::From(a, _)
        | K::Extract(_, a)
        | K::Len(a)
        | K::Time(_, a)
        | K::Lower(a)
        | K::Text(_, a)
        | K::Url(_, a)
        | K::Not(a)
        | K::Glob(a, _)
        | K::Regex(a, _)
        | K::IsNull(a) => paths(a, out),
        K::And(xs) | K::Or(xs) => xs.iter().for_each(|x| paths(x, out)),
        K::Binary(_, a, b) | K::Quant(_, a, b) | K::Within(a, b) | K::Arith(_, a, b) => {
            paths(a, out);
            paths(b, out);
        }
    }
}

/// A placeholder of type `ty` (for values no applicable rule reads).
fn placeholder(ty: &ir::Type) -> Json {
    match ty {
        ir::Type::String => json!(""),
        ir::Type::Int | ir::Type::Number => json!(0),
        ir::Type::Bool => json!(false),
        ir::Type::Date => json!("1970-01-01"),
        ir::Type::Datetime => json!("1970-01-01T00:00:00Z"),
        ir::Type::List(_) => json!([]),
        ir::Type::Nullable(_) | ir::Type::Any => Json::Null,
        ir::Type::OneOf(values) => match values.first() {
            Some(ir::Value::Int(i)) => json!(i),
            Some(ir::Value::Str(s)) => json!(s),
            _ => Json::Null,
        },
        ir::Type::Record(fields) | ir::Type::OpenRecord(fields) => Json::Object(
            fields
                .iter()
                .filter(|f| !f.optional)
                .map(|f| (f.name.clone(), placeholder(&f.ty)))
                .collect(),
        ),
    }
}

/// The request a decision record describes, placeholders filled in.
fn request_of(p: &ir::Policy, body: &Json) -> Option<OwnedRequest> {
    let mut ctx = Map::new();
    ctx.insert("tenant".into(), body["tenant"].clone());
    ctx.insert("env".into(), body["env"].clone());
    for f in p.context.iter().filter(|f| !f.optional) {
        ctx.insert(f.name.clone(), placeholder(&f.ty));
    }
    let mut args = body["args"].clone();
    let schema = p
        .tool_id(body["tool"].as_str()?)
        .and_then(|t| p.tools[t.0 as usize].schema.as_ref());
    if let (Json::Object(m), Some(schema)) = (&mut args, schema) {
        for f in schema {
            if m.get(&f.name).is_some_and(|v| v == "[redacted]") {
                m.insert(f.name.clone(), placeholder(&f.ty));
            }
        }
    }
    let text =
        json!({ "agent": body["agent"], "tool": body["tool"], "args": args, "context": ctx });
    OwnedRequest::from_json(&text.to_string()).ok()
}

fn level(d: &str) -> u8 {
    match d {
        "allow" => 2,
        "approval_required" => 1,
        _ => 0,
    }
}

fn decide(
    p: &ir::Policy,
    engine: &Engine,
    (body, now): (&Json, Option<toolgate_engine::Timestamp>),
    approvals: &Approvals,
    exhausted: &HashSet<Key>,
    report: &mut Report,
) {
    report.decisions += 1;
    let call = body["call"].as_str().unwrap_or("?");
    let old = body["decision"].as_str().unwrap_or("deny");
    if let Some(why) = unknowable(p, body, exhausted) {
        report.unknown.entry(why).or_default().add(call);
        return;
    }
    let Some(req) = request_of(p, body) else {
        report
            .unknown
            .entry("the record does not make a request".into())
            .or_default()
            .add(call);
        return;
    };
    let d = engine.decide(&toolgate_engine::Request {
        now,
        ..req.as_request()
    });
    let new = d.outcome().as_str();
    let flip = if level(new) != level(old) {
        if level(new) > level(old) {
            report.more_permissive += 1;
        }
        Some(format!("{old} -> {new}"))
    } else if new == "approval_required" {
        approval_flip(approvals.get(&key_of(body)), d.approval(), report)
    } else {
        None
    };
    match flip {
        Some(kind) => report.flips.entry(kind).or_default().add(call),
        None => report.same += 1,
    }
}

fn approval_flip(
    old: Option<&(Option<String>, u64)>,
    new: Option<&ir::HumanApproval>,
    report: &mut Report,
) -> Option<String> {
    let (Some((og, oc)), Some(ir::HumanApproval { group, count, .. })) = (old, new) else {
        return None;
    };
    let weaker = u64::from(*count) < *oc || (og.is_some() && group != og);
    let stronger = u64::from(*count) > *oc || (og.is_none() && group.is_some());
    if weaker {
        report.more_permissive += 1;
        Some("approval weaker".into())
    } else if stronger {
        Some("approval stronger".into())
    } else {
        None
    }
}

fn render(format: ShadowFormat, r: &Report) -> String {
    let tallies = |m: &BTreeMap<String, Tally>| -> Json {
        m.iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    json!({ "count": t.count, "examples": t.examples }),
                )
            })
            .collect::<Map<String, Json>>()
            .into()
    };
    match format {
        ShadowFormat::Json => format!(
            "{}\n",
            json!({
                "decisions": r.decisions, "same": r.same, "flips": tallies(&r.flips),
                "unknown": tallies(&r.unknown), "more_permissive": r.more_permissive,
            })
        ),
        ShadowFormat::Human => {
            let mut out = format!(
                "{} decisions re-decided: {} the same\n",
                r.decisions, r.same
            );
            for (title, m) in [("flips", &r.flips), ("unknown", &r.unknown)] {
                if !m.is_empty() {
                    out.push_str(&format!("\n{title}:\n"));
                }
                for (k, t) in m {
                    out.push_str(&format!(
                        "  {k}: {} (e.g. {})\n",
                        t.count,
                        t.examples.join(", ")
                    ));
                }
            }
            out.push_str(&format!("\n{} more permissive\n", r.more_permissive));
            out
        }
    }
}
